//! What one client can hold of a PoP, tried with slow and silent sockets: headers trickled
//! byte by byte (slowloris), a handshake never finished, an idle keep-alive connection, an
//! upload body that stops coming, more connections than the PoP takes in all or from one
//! address, and the h2 and h3 limits (concurrent streams, header block size, QUIC idle).

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use pop_config::Limits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A PoP whose `[limits]` are `limits` (and whose origin answers within 1 s, so that idle
/// timeouts can be short).
async fn pop_with(limits: Limits) -> (Pop, TestOrigin, tempfile::TempDir) {
    init();
    let origin = TestOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &origin.url());
    cfg.origin.request_timeout = Duration::from_secs(1);
    cfg.limits = limits;
    (Pop::start(cfg).await, origin, dir)
}

/// How long until the PoP ends `tcp` (EOF, reset, or an answer and then EOF), reading at most
/// `limit`; `None` if it was still open then.
async fn closed_within(tcp: &mut TcpStream, limit: Duration) -> Option<(Duration, String)> {
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((started + limit).into(), tcp.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some((started.elapsed(), String::from_utf8_lossy(&seen).into_owned())),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

/// A connection from `from` (any 127/8 address reaches loopback on Linux).
async fn connect_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((from, 0))).unwrap();
    socket.connect(to).await.unwrap()
}

async fn healthz(tcp: &mut TcpStream) -> String {
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_string(&mut answer)).await.unwrap().unwrap();
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_trickled_byte_by_byte_are_cut_off() {
    let limits = Limits { header_read_timeout: Duration::from_secs(1), ..Limits::default() };
    let (pop, _origin, _dir) = pop_with(limits).await;
    // Slowloris over HTTP/1.1: a header line every 100 ms, forever.
    let tcp = TcpStream::connect(pop.running.http.unwrap()).await.unwrap();
    let (mut reader, mut writer) = tcp.into_split();
    let trickle = tokio::spawn(async move {
        writer.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n").await.unwrap();
        for i in 0.. {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if writer.write_all(format!("x-{i}: y\r\n").as_bytes()).await.is_err() {
                return i;
            }
        }
        unreachable!()
    });
    let started = Instant::now();
    let mut buf = [0u8; 256];
    let read = tokio::time::timeout(Duration::from_secs(5), reader.read(&mut buf)).await;
    let held = started.elapsed();
    assert!(read.is_ok(), "the trickling connection was still open after 5 s");
    assert!(held >= Duration::from_millis(900) && held < Duration::from_secs(4), "held {held:?}");
    trickle.abort();

    // A TLS handshake never begun, and an h2 connection that never asks for anything.
    let mut silent = TcpStream::connect(pop.running.https).await.unwrap();
    let (held, _) = closed_within(&mut silent, Duration::from_secs(5)).await.expect("handshake cut off");
    assert!(held < Duration::from_secs(4), "held {held:?}");
    let mut preface_only = TcpStream::connect(pop.running.http.unwrap()).await.unwrap();
    preface_only.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.unwrap();
    let (held, _) =
        closed_within(&mut preface_only, Duration::from_secs(5)).await.expect("h2 without requests cut off");
    assert!(held < Duration::from_secs(4), "held {held:?}");
    let metrics = pop.metrics().await;
    assert!(metric(&metrics, "edge_timeouts_total", &["kind=\"header\""]) >= 3.0, "{metrics}");
    pop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_are_closed() {
    let limits = Limits {
        idle_timeout: Duration::from_secs(2),
        header_read_timeout: Duration::from_secs(10),
        ..Limits::default()
    };
    let (pop, _origin, _dir) = pop_with(limits).await;
    // HTTP/1.1: one request, then silence.
    let mut tcp = TcpStream::connect(pop.running.http.unwrap()).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 1024];
    let n = tcp.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
    let (held, _) = closed_within(&mut tcp, Duration::from_secs(6)).await.expect("idle h1 connection closed");
    assert!(held >= Duration::from_millis(1500), "closed too early: {held:?}");

    // HTTP/2 (cleartext, prior knowledge): one request, then silence.
    let tcp = TcpStream::connect(pop.running.http.unwrap()).await.unwrap();
    let (mut h2, connection) = h2::client::handshake(tcp).await.unwrap();
    let started = Instant::now();
    let ended = tokio::spawn(async move {
        let _ = connection.await;
        started.elapsed()
    });
    let request = http::Request::get(pop.http("/healthz")).body(()).unwrap();
    let (response, _) = h2.send_request(request, true).unwrap();
    assert_eq!(response.await.unwrap().status(), 200);
    let held = tokio::time::timeout(Duration::from_secs(6), ended).await.expect("idle h2 connection closed").unwrap();
    assert!(held >= Duration::from_millis(1500), "closed too early: {held:?}");
    let metrics = pop.metrics().await;
    assert!(metric(&metrics, "edge_timeouts_total", &["kind=\"idle\""]) >= 2.0, "{metrics}");
    pop.stop().await;
}

/// `PATCH` of a 1000-byte upload through the PoP's plain listener, its body sent by `send`.
async fn upload_patch(pop: &Pop) -> TcpStream {
    let grant =
        pop_config::token::UploadGrant { video: "v50".into(), max_bytes: 1 << 20, expires: edge::now_secs() + 60 };
    let query = pop_config::token::sign_upload(&key(), &grant);
    let mut tcp = TcpStream::connect(pop.running.http.unwrap()).await.unwrap();
    let head = format!(
        "PATCH /v1/uploads/u1?{query} HTTP/1.1\r\nhost: x\r\ntus-resumable: 1.0.0\r\nupload-offset: 0\r\n\
         content-type: application/offset+octet-stream\r\ncontent-length: 1000\r\nconnection: close\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upload_body_lets_go_of_the_origin() {
    let limits = Limits { body_timeout: Duration::from_secs(1), ..Limits::default() };
    let (pop, origin, _dir) = pop_with(limits).await;
    // Bytes every 300 ms keep an upload going.
    let mut tcp = upload_patch(&pop).await;
    for piece in origin::pattern("upload", 1000).chunks(100) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        tcp.write_all(piece).await.unwrap();
    }
    let (_, answer) = closed_within(&mut tcp, Duration::from_secs(5)).await.unwrap_or_default();
    assert!(answer.starts_with("HTTP/1.1 204") && answer.contains("upload-offset: 1000"), "{answer}");

    // Ten bytes, then nothing: the PoP gives up on the body and aborts the origin's request.
    let mut tcp = upload_patch(&pop).await;
    tcp.write_all(b"0123456789").await.unwrap();
    let stalled = Instant::now();
    let (_, answer) =
        closed_within(&mut tcp, Duration::from_secs(5)).await.expect("the PoP answers the stalled upload");
    assert!(answer.starts_with("HTTP/1.1 408") && answer.contains("body_timeout"), "{answer}");
    let deadline = stalled + Duration::from_secs(4);
    while origin.upload_aborts().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let aborts = origin.upload_aborts();
    assert_eq!(aborts.len(), 1, "the origin's upload request was broken off");
    assert!(aborts[0] - stalled < Duration::from_secs(4), "the origin held it {:?}", aborts[0] - stalled);
    let metrics = pop.metrics().await;
    assert!(metric(&metrics, "edge_timeouts_total", &["kind=\"body\""]) >= 1.0, "{metrics}");
    pop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_are_closed_on_arrival() {
    let limits = Limits { max_connections: 4, max_connections_per_address: 4, ..Limits::default() };
    let (pop, _origin, _dir) = pop_with(limits).await;
    let http = pop.running.http.unwrap();
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(http).await.unwrap());
    }
    // Over the cap, on either listener.
    for to in [http, pop.running.https] {
        let mut flood = TcpStream::connect(to).await.unwrap();
        let (after, _) = closed_within(&mut flood, Duration::from_secs(2)).await.expect("closed on arrival");
        assert!(after < Duration::from_secs(1), "{after:?}");
    }
    // The cap does not hide the PoP from its monitoring, and a freed place is taken again.
    let metrics = pop.metrics().await;
    assert!(metric(&metrics, "edge_connections_refused_total", &["reason=\"capacity\""]) >= 2.0, "{metrics}");
    assert_eq!(metric(&metrics, "edge_connections_open", &[]), 4.0, "{metrics}");
    drop(held.pop());
    let mut answer = String::new();
    for _ in 0..50 {
        let mut again = TcpStream::connect(http).await.unwrap();
        let _ = again.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await;
        answer.clear();
        let _ = tokio::time::timeout(Duration::from_secs(2), again.read_to_string(&mut answer)).await;
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(answer.starts_with("HTTP/1.1 200"), "served once a place is free: {answer}");
    pop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_take_every_connection() {
    let limits = Limits { max_connections: 100, max_connections_per_address: 2, ..Limits::default() };
    let (pop, _origin, _dir) = pop_with(limits).await;
    let http = pop.running.http.unwrap();
    let _first = connect_from([127, 0, 0, 1], http).await;
    let _second = connect_from([127, 0, 0, 1], http).await;
    let mut third = connect_from([127, 0, 0, 1], http).await;
    assert!(closed_within(&mut third, Duration::from_secs(2)).await.is_some(), "a third from one address is closed");
    // QUIC counts against the same share, once its handshake has proven the address.
    let attempt = quic_try_connect(pop.running.h3.unwrap(), &pop.running.certificate);
    match tokio::time::timeout(Duration::from_secs(3), attempt).await.expect("QUIC answers") {
        Err(_) => {}
        Ok((_endpoint, conn)) => {
            let why = tokio::time::timeout(Duration::from_secs(3), conn.closed()).await.expect("closed at once");
            assert!(matches!(why, quinn::ConnectionError::ApplicationClosed(_)), "{why:?}");
        }
    }
    let mut other = connect_from([127, 0, 0, 2], http).await;
    assert!(healthz(&mut other).await.starts_with("HTTP/1.1 200"), "another address is served");
    let metrics = pop.metrics().await;
    assert!(metric(&metrics, "edge_connections_refused_total", &["reason=\"per_address\""]) >= 2.0, "{metrics}");
    pop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_settings_bound_streams_and_header_blocks() {
    let limits = Limits { max_streams_per_connection: 8, max_header_bytes: 4 << 10, ..Limits::default() };
    let (pop, _origin, _dir) = pop_with(limits).await;
    let tcp = TcpStream::connect(pop.running.http.unwrap()).await.unwrap();
    let (mut h2, mut connection) = h2::client::handshake(tcp).await.unwrap();
    let (response, _) = h2.send_request(http::Request::get(pop.http("/healthz")).body(()).unwrap(), true).unwrap();
    let status = tokio::select! {
        r = response => r.unwrap().status(),
        _ = &mut connection => panic!("connection ended"),
    };
    assert_eq!(status, 200);
    assert_eq!(connection.max_concurrent_send_streams(), 8, "SETTINGS_MAX_CONCURRENT_STREAMS");
    let big = http::Request::get(pop.http("/healthz")).header("x-big", "a".repeat(8 << 10)).body(()).unwrap();
    let (response, _) = h2.send_request(big, true).unwrap();
    let outcome = tokio::select! {
        r = response => r.map(|r| r.status().as_u16()),
        _ = &mut connection => panic!("connection ended"),
    };
    assert_eq!(outcome.ok(), Some(431), "a header block over max_header_bytes");
    drop((h2, connection));
    pop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_bounds_streams_header_blocks_and_silence() {
    let limits = Limits {
        max_streams_per_connection: 2,
        max_header_bytes: 4 << 10,
        idle_timeout: Duration::from_secs(2),
        ..Limits::default()
    };
    let (pop, _origin, _dir) = pop_with(limits).await;
    let (addr, cert) = (pop.running.h3.unwrap(), pop.running.certificate.clone());

    // Stream credit: two bidirectional streams, and a third waits.
    let (endpoint, conn) = quic_connect(addr, &cert).await;
    let _a = conn.open_bi().await.unwrap();
    let _b = conn.open_bi().await.unwrap();
    assert!(tokio::time::timeout(Duration::from_millis(500), conn.open_bi()).await.is_err(), "a third stream waits");
    // Silence: the connection ends after the idle timeout.
    let started = Instant::now();
    let why = tokio::time::timeout(Duration::from_secs(6), conn.closed()).await.expect("an idle QUIC connection ends");
    assert!(matches!(why, quinn::ConnectionError::TimedOut), "{why:?}");
    assert!(started.elapsed() >= Duration::from_millis(1500), "{:?}", started.elapsed());
    endpoint.close(0u32.into(), b"done");

    // The field section: 431 beyond max_header_bytes (or the client, told the limit, refuses).
    let (endpoint, conn) = quic_connect(addr, &cert).await;
    let (mut driver, mut sender) = h3::client::new(h3_quinn::Connection::new(conn)).await.unwrap();
    let drive = tokio::spawn(async move { futures_util::future::poll_fn(|cx| driver.poll_close(cx)).await });
    let big = http::Request::get(format!("https://localhost:{}/healthz", addr.port()))
        .header("x-big", "a".repeat(8 << 10))
        .body(())
        .unwrap();
    let status = match sender.send_request(big).await {
        Ok(mut stream) => {
            stream.finish().await.ok();
            stream.recv_response().await.map(|r| r.status().as_u16()).unwrap_or(0)
        }
        Err(e) => {
            assert!(e.to_string().to_lowercase().contains("header"), "{e}");
            431
        }
    };
    assert_eq!(status, 431);
    drive.abort();
    endpoint.close(0u32.into(), b"done");
    pop.stop().await;
}
