//! The binary: `edge check-config` validates without starting (exit 78 with every problem and
//! its field path), and `edge serve` starts from a file, serves, and stops on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const EDGE: &str = env!("CARGO_BIN_EXE_edge");

fn write(dir: &std::path::Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("pop.toml");
    std::fs::write(&path, text).unwrap();
    path
}

const VALID: &str = r#"
[pop]
id = "pop-test"
[listen]
https = "127.0.0.1:0"
h3 = false
http = "127.0.0.1:0"
metrics = "127.0.0.1:0"
[origin]
credential = "pop-test.a-pop-credential-of-16+"
[[tokens]]
kid = "k1"
public_key = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
[cache]
memory = "16MiB"
disk = "64MiB"
path = "cache"
block = "1MiB"
"#;

#[test]
fn check_config_accepts_a_valid_file_and_reports_every_problem_of_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(EDGE).args(["check-config"]).arg(write(dir.path(), VALID)).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid"));

    let bad = VALID.replace("memory = \"16MiB\"", "memory = \"lots\"").replace("[pop]", "[pop]\ncolour = \"red\"");
    let out = Command::new(EDGE).args(["check-config"]).arg(write(dir.path(), &bad)).output().unwrap();
    assert_eq!(out.status.code(), Some(78));
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(errors.contains("cache.memory") && errors.contains("pop.colour"), "{errors}");
    assert!(!dir.path().join("cache").exists(), "checking starts nothing");
}

#[test]
fn check_config_refuses_anything_that_could_sign() {
    // A PoP holds only public keys: an HMAC secret or a private key is refused by name.
    let dir = tempfile::tempdir().unwrap();
    for extra in ["secret = \"00112233445566778899aabbccddeeff\"", "private_key = \"-----BEGIN PRIVATE KEY-----\""] {
        let bad = VALID.replace("kid = \"k1\"", &format!("kid = \"k1\"\n{extra}"));
        let out = Command::new(EDGE).args(["check-config"]).arg(write(dir.path(), &bad)).output().unwrap();
        assert_eq!(out.status.code(), Some(78), "{extra}");
        let errors = String::from_utf8_lossy(&out.stderr);
        assert!(errors.contains("a PoP holds only public keys"), "{errors}");
    }
}

#[test]
fn serve_starts_from_a_file_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(EDGE)
        .args(["serve", "--threads", "1", "--config"])
        .arg(write(dir.path(), VALID))
        .env("EDGE_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(line.starts_with("edge listening"), "{line}");
    let http = line.split("http=Some(").nth(1).and_then(|s| s.split(')').next()).expect("plain HTTP address");
    let health = http_get(&format!("http://{http}/healthz"));
    assert!(health.starts_with("HTTP/1.1 200") && health.ends_with("ok"), "{health}");
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "clean exit on SIGTERM: {status}");
    assert!(dir.path().join("cache/tls").exists(), "a development certificate was generated beside the cache");
}

/// A plain HTTP/1.1 GET with std only; the answer as text.
fn http_get(url: &str) -> String {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (addr, path) = rest.split_once('/').unwrap();
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    write!(tcp, "GET /{path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn client_text_cannot_forge_log_lines() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    // An origin that is not there: the request fails and is logged with its path.
    let config = VALID.replace("[origin]\n", "[origin]\nurls = [\"http://127.0.0.1:9\"]\nretries = 0\n");
    let mut child = Command::new(EDGE)
        .args(["serve", "--threads", "1", "--config"])
        .arg(write(dir.path(), &config))
        .env("EDGE_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let http =
        line.split("http=Some(").nth(1).and_then(|s| s.split(')').next()).expect("plain HTTP address").to_owned();
    // Paths and header values may carry UTF-8 beyond ASCII: here a NEL (U+0085) and a LINE
    // SEPARATOR (U+2028), each followed by what would pass for a log line of its own.
    let forged = "2026-01-01T00:00:00.000000Z ERROR forged";
    let mut tcp = std::net::TcpStream::connect(&http).unwrap();
    let request = format!(
        "GET /v1/videos/x\u{85}FORGED-PATH\u{2028}AGAIN HTTP/1.1\r\nhost: x\r\nx-request-id: id\u{85}{forged}\r\nconnection: close\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let mut log = String::new();
    child.stderr.take().unwrap().read_to_string(&mut log).unwrap();
    child.wait().unwrap();
    let failed =
        log.lines().find(|l| l.contains("request failed")).unwrap_or_else(|| panic!("no request line:\n{log}"));
    assert!(failed.contains(r"x\u{85}FORGED-PATH\u{2028}AGAIN") && failed.contains(r"id\u{85}2026"), "{failed}");
    assert!(!log.contains(['\u{85}', '\u{2028}']), "raw line breaks reached the log:\n{log}");
    assert!(!log.lines().any(|l| l.starts_with("FORGED") || l.starts_with(forged)), "{log}");
}
