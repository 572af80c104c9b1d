//! Every connection has timeouts and limits, shown with slow and greedy sockets: partial
//! headers and silent connections are cut at the header timeout, idle HTTP/1.1 and HTTP/2
//! connections at the idle timeout, a stalled PATCH at the body timeout (what arrived stays
//! acknowledged and the upload is free again), connections past the caps are closed at
//! once, HTTP/2 streams and header lists are bounded, and event streams are limited per
//! address, overall and in time.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo};
use origin::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Longer than any limit under test: a read still blocked then means nothing was cut.
const PATIENCE: Duration = Duration::from_secs(15);

fn config(dir: &std::path::Path, tune: impl FnOnce(&mut Config)) -> Config {
    let mut config = Config::for_dir(&dir.join("data"));
    config.workers = 0;
    tune(&mut config);
    config
}

/// A TCP connection to `addr` from the local address `from`.
async fn connect_from(from: &str, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from.parse().unwrap(), 0)).unwrap();
    socket.connect(addr).await.unwrap()
}

/// Reads until the server closes; returns what arrived and how long it took. Fails the test
/// when the connection is still open after [`PATIENCE`].
async fn read_until_closed(stream: &mut TcpStream) -> (String, Duration) {
    let started = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(PATIENCE, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into_owned(), started.elapsed()),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => {
                panic!("the connection was still open after {PATIENCE:?}; received {:?}", String::from_utf8_lossy(&out))
            }
        }
    }
}

/// Whether the server closes the connection within `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}

/// Reads one HTTP/1.1 response with a `content-length` body, leaving the connection open.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut buf)).await.expect("a response").unwrap();
        assert!(n > 0, "closed before the response");
        out.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&out).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
                .unwrap_or(0usize);
            if body.len() >= length {
                return text;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_headers_and_silent_connections_are_cut_at_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let origin = TestOrigin::start_with(config(dir.path(), |c| {
        c.limits.header_timeout = Duration::from_secs(1);
        c.limits.idle_timeout = Duration::from_secs(30);
    }))
    .await;
    let addr = origin.running.addr;

    let mut partial = TcpStream::connect(addr).await.unwrap();
    partial.write_all(b"GET /healthz HTTP/1.1\r\nHost: origin\r\nX-Slow: ").await.unwrap();
    let (_, took) = read_until_closed(&mut partial).await;
    assert!(took < Duration::from_secs(6), "partial headers held for {took:?}");

    // The same on a keep-alive connection's next request (hyper's own header timer).
    let mut second = TcpStream::connect(addr).await.unwrap();
    second.write_all(b"GET /healthz HTTP/1.1\r\nHost: origin\r\n\r\n").await.unwrap();
    assert!(read_response(&mut second).await.starts_with("HTTP/1.1 200"));
    second.write_all(b"GET /healthz HTTP/1.1\r\nHost: ori").await.unwrap();
    let (_, took) = read_until_closed(&mut second).await;
    assert!(took < Duration::from_secs(6), "a second request's partial headers held for {took:?}");

    let mut silent = TcpStream::connect(addr).await.unwrap();
    let (received, took) = read_until_closed(&mut silent).await;
    assert!(took < Duration::from_secs(6), "a silent connection held for {took:?}");
    assert!(received.is_empty(), "{received}");

    // Whoever sends a whole request in time is served.
    let r = origin.client.get(origin.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    origin.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http1_and_http2_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let origin = TestOrigin::start_with(config(dir.path(), |c| {
        c.limits.idle_timeout = Duration::from_secs(1);
        c.limits.header_timeout = Duration::from_secs(30);
    }))
    .await;
    let addr = origin.running.addr;

    // HTTP/1.1 keep-alive: one request, then silence.
    let mut h1 = TcpStream::connect(addr).await.unwrap();
    h1.write_all(b"GET /healthz HTTP/1.1\r\nHost: origin\r\n\r\n").await.unwrap();
    assert!(read_response(&mut h1).await.starts_with("HTTP/1.1 200"));
    let (_, took) = read_until_closed(&mut h1).await;
    assert!(took < Duration::from_secs(6), "an idle keep-alive connection held for {took:?}");

    // HTTP/2 (prior knowledge): one request, then silence; the server ends the connection.
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp)).await.unwrap();
    let connection = tokio::spawn(conn);
    let req = http::Request::get(format!("http://{addr}/healthz")).body(Empty::<Bytes>::new()).unwrap();
    let response = send.send_request(req).await.unwrap();
    assert_eq!(response.status(), 200);
    let started = Instant::now();
    tokio::time::timeout(PATIENCE, connection).await.expect("the idle HTTP/2 connection is closed").unwrap().ok();
    assert!(started.elapsed() < Duration::from_secs(6), "an idle HTTP/2 connection held for {:?}", started.elapsed());
    origin.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_patch_is_cut_keeps_what_arrived_and_frees_the_upload() {
    let dir = tempfile::tempdir().unwrap();
    let origin = TestOrigin::start_with(config(dir.path(), |c| c.limits.body_timeout = Duration::from_secs(1))).await;
    let created = origin.create_video("stalled", 100).await;
    let tus = origin.tus(&created);
    let location = tus.create(100, false).await;
    let target = location.strip_prefix(&origin.base).unwrap().to_owned();

    let mut slow = TcpStream::connect(origin.running.addr).await.unwrap();
    let head = format!(
        "PATCH {target} HTTP/1.1\r\nHost: origin\r\nTus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\n\
         Upload-Offset: 0\r\nContent-Length: 100\r\n\r\n"
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    slow.write_all(&[7u8; 10]).await.unwrap();
    // ... and nothing more: the server must not wait for the other 90 bytes forever.
    let started = Instant::now();
    let (response, _) = read_until_closed(&mut slow).await;
    assert!(started.elapsed() < Duration::from_secs(6), "the stalled body was held for {:?}", started.elapsed());
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(response.contains("body_timeout"), "{response}");

    // What arrived is acknowledged, and the upload is free for the next PATCH at once.
    assert_eq!(tus.offset(&location).await, 10);
    let next = tokio::time::timeout(Duration::from_secs(5), tus.patch(&location, 10, vec![8u8; 90])).await;
    assert_eq!(next.expect("the upload lock was released").status(), 204);
    assert_eq!(tus.offset(&location).await, 100);
    let metrics = origin.client.get(format!("http://{}/metrics", origin.running.metrics_addr.unwrap())).send();
    let page = metrics.await.unwrap().text().await.unwrap();
    assert!(page.contains("origin_request_body_stalls_total 1"), "{page}");
    origin.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_caps_are_closed_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let origin = TestOrigin::start_with(config(dir.path(), |c| {
        c.limits.header_timeout = Duration::from_secs(30);
        c.limits.max_connections = 4;
        c.limits.max_connections_per_address = 2;
        c.limits.exempt = vec!["127.0.0.3/32".parse().unwrap()];
    }))
    .await;
    let addr = origin.running.addr;

    // Two silent connections from 127.0.0.1 hold its share; a third is closed at once.
    let mut held = vec![connect_from("127.0.0.1", addr).await, connect_from("127.0.0.1", addr).await];
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = connect_from("127.0.0.1", addr).await;
    assert!(closed_within(&mut third, Duration::from_secs(2)).await, "a third connection from one address is served");
    // Another address still gets in, and the exempt one past the per-address share.
    let mut other = connect_from("127.0.0.2", addr).await;
    other.write_all(b"GET /healthz HTTP/1.1\r\nHost: origin\r\n\r\n").await.unwrap();
    assert!(read_response(&mut other).await.starts_with("HTTP/1.1 200"));
    held.push(other);
    held.push(connect_from("127.0.0.3", addr).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Four open: the overall cap closes the next one, exempt or not.
    let mut fifth = connect_from("127.0.0.3", addr).await;
    assert!(closed_within(&mut fifth, Duration::from_secs(2)).await, "a fifth connection is served past the cap");

    // Places come back when connections close.
    held.truncate(1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut again = connect_from("127.0.0.1", addr).await;
    again.write_all(b"GET /healthz HTTP/1.1\r\nHost: origin\r\n\r\n").await.unwrap();
    assert!(read_response(&mut again).await.starts_with("HTTP/1.1 200"));
    let page = reqwest::get(format!("http://{}/metrics", origin.running.metrics_addr.unwrap())).await.unwrap();
    let page = page.text().await.unwrap();
    assert!(page.contains("origin_connections_refused_total{reason=\"per_address\"} 1"), "{page}");
    assert!(page.contains("origin_connections_refused_total{reason=\"full\"} 1"), "{page}");
    drop(held);
    origin.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_streams_and_header_lists_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let origin = TestOrigin::start_with(config(dir.path(), |c| {
        c.limits.h2_max_concurrent_streams = 2;
        c.limits.h2_max_header_bytes = 4096;
    }))
    .await;
    let addr = origin.running.addr;
    let created = origin.create_video("streams", 100).await;
    let id = created["video"]["id"].as_str().unwrap().to_owned();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    let get = |path: String| {
        let mut send = send.clone();
        async move {
            let req = http::Request::get(format!("http://{addr}{path}")).body(Empty::<Bytes>::new()).unwrap();
            send.send_request(req).await
        }
    };
    // Two event streams stay open and fill the connection's two streams ...
    let first = get(format!("/v1/videos/{id}/events")).await.unwrap();
    let second = get(format!("/v1/videos/{id}/events")).await.unwrap();
    assert_eq!((first.status().as_u16(), second.status().as_u16()), (200, 200));
    // ... so a third request waits for a free stream ...
    let third = tokio::spawn(get("/healthz".into()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!third.is_finished(), "a third concurrent stream was opened past the limit of two");
    // ... which it gets once one ends.
    drop(first);
    let third = tokio::time::timeout(Duration::from_secs(5), third).await.expect("served after a stream ended");
    assert_eq!(third.unwrap().unwrap().status(), 200);

    let big = http::Request::get(format!("http://{addr}/healthz"))
        .header("x-padding", "p".repeat(8192))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let mut sender = send.clone();
    match sender.send_request(big).await {
        Ok(r) => assert_eq!(r.status(), 431, "an 8 KiB header list passed a 4 KiB limit"),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    drop(second);
    origin.running.stop().await;
}

/// An event stream's response from `client`, unread.
async fn events(client: &reqwest::Client, origin: &TestOrigin, id: &str) -> reqwest::Response {
    client.get(origin.url(&format!("/v1/videos/{id}/events"))).send().await.unwrap()
}

async fn code(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await.unwrap_or_default();
    (status, body["error"]["code"].as_str().unwrap_or_default().to_owned())
}

fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder().local_address(ip.parse::<IpAddr>().unwrap()).build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_are_limited_per_address_and_overall() {
    let dir = tempfile::tempdir().unwrap();
    let origin = TestOrigin::start_with(config(dir.path(), |c| {
        c.limits.sse.per_address = 2;
        c.limits.sse.max_streams = 3;
    }))
    .await;
    let created = origin.create_video("watched", 100).await;
    let id = created["video"]["id"].as_str().unwrap().to_owned();
    let (one, two) = (client_from("127.0.0.1"), client_from("127.0.0.2"));
    let mut open = vec![events(&one, &origin, &id).await, events(&one, &origin, &id).await];
    assert!(open.iter().all(|r| r.status() == 200));
    assert_eq!(code(events(&one, &origin, &id).await).await, (429, "too_many_streams".into()));
    open.push(events(&two, &origin, &id).await);
    assert_eq!(open[2].status(), 200, "another address has its own share");
    assert_eq!(code(events(&two, &origin, &id).await).await, (503, "streams_exhausted".into()));
    // A closed stream gives its place back.
    open.truncate(1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let r = events(&one, &origin, &id).await;
        if r.status() == 200 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "places never came back: {}", r.status());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(open);
    origin.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_ends_after_its_lifetime_with_a_reconnect_hint() {
    let dir = tempfile::tempdir().unwrap();
    let origin = TestOrigin::start_with(config(dir.path(), |c| {
        c.limits.sse.max_lifetime = Duration::from_secs(1);
        c.limits.sse.retry = Duration::from_millis(2500);
    }))
    .await;
    let created = origin.create_video("long watched", 100).await;
    let id = created["video"]["id"].as_str().unwrap().to_owned();
    let started = Instant::now();
    let r = events(&origin.client, &origin, &id).await;
    let text = tokio::time::timeout(PATIENCE, r.text()).await.expect("the stream ends").unwrap();
    assert!(started.elapsed() < Duration::from_secs(6), "the stream lived {:?}", started.elapsed());
    assert!(text.starts_with("retry: 2500\nevent: state\n"), "{text}");
    assert!(text.contains("\"state\":\"uploading\""), "{text}");
    assert!(text.ends_with("event: reconnect\ndata: {}\n\n"), "{text}");
    origin.running.stop().await;
}
