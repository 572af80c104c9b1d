//! The configuration file as an operator meets it: what a valid file becomes, and how every
//! kind of mistake is reported (all at once, each at its field path).

use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use pop_config::token::{PlaybackGrant, Scope, SigningKey, sign_playback, verify_playback};
use pop_config::{ConfigErrors, PopConfig, parse};

/// What every file must have: the origin credential and one token key.
const REQUIRED: &str = r#"
[origin]
credential = "pop-local.pop-secret-0123456789"

[[tokens]]
kid = "k1"
public_key = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
"#;

fn valid(text: &str) -> PopConfig {
    parse(text, Path::new("/base")).unwrap_or_else(|e| panic!("expected a valid config, got:\n{e}"))
}

fn invalid(text: &str) -> ConfigErrors {
    parse(text, Path::new("/base")).expect_err("expected errors")
}

/// `extra` sections followed by the required ones.
fn with_required(extra: &str) -> String {
    format!("{extra}\n{REQUIRED}")
}

fn paths(errors: &ConfigErrors) -> Vec<&str> {
    errors.iter().map(|e| e.path.as_str()).collect()
}

fn assert_only_error(errors: &ConfigErrors, path: &str, message_part: &str) {
    assert_eq!(paths(errors), [path], "{errors}");
    assert!(errors.0[0].message.contains(message_part), "`{message_part}` not in: {errors}");
}

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

#[test]
fn full_example_parses_to_typed_values() {
    let dir = tempfile::tempdir().unwrap();
    let generated = rcgen::generate_simple_self_signed(vec!["pop.example".to_owned()]).unwrap();
    fs::write(dir.path().join("cert.pem"), generated.cert.pem()).unwrap();
    fs::write(dir.path().join("key.pem"), generated.signing_key.serialize_pem()).unwrap();
    fs::write(dir.path().join("k2.hex"), "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100\n").unwrap();
    let text = r#"
        [pop]
        id = "fra-1"
        region = "eu-central"

        [listen]
        https = "0.0.0.0:443"
        h3 = "0.0.0.0:443"
        http = "127.0.0.1:8080"
        metrics = "10.0.0.5:9464"

        [tls]
        cert = "cert.pem"
        key = "key.pem"

        [origin]
        urls = ["https://origin-a.example.com/", "http://10.0.0.2:8080/base"]
        credential = "fra-1.a-long-pop-secret-0123456789"
        connect_timeout_ms = 1500
        request_timeout_ms = 20000
        retries = 3

        [[tokens]]
        kid = "k1"
        public_key = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"

        [[tokens]]
        kid = "k2"
        public_key_file = "k2.hex"

        [cache]
        memory = "512MiB"
        disk = "10GB"
        path = "/var/cache/edge"
        block = "32MiB"
        playlist_stale = "2m"
        not_found_ttl = "3s"

        [admission]
        min_uses = 3
        window = "1h"

        [prefetch]
        enabled = false
        heartbeat = "500ms"
        top_n = 50

        [uploads]
        enabled = false
        max_size = 2147483648

        [limits]
        max_connections = 50000
        max_connections_per_address = 64
        max_streams_per_connection = 200
        max_header_bytes = "64KiB"
        header_read_timeout = "5s"
        idle_timeout = "2m"
        body_timeout = "20s"
    "#;
    let config = parse(text, dir.path()).unwrap_or_else(|e| panic!("{e}"));

    assert_eq!((config.pop.id.as_str(), config.pop.region.as_str()), ("fra-1", "eu-central"));
    assert_eq!(config.listen.https, addr("0.0.0.0:443"));
    assert_eq!(config.listen.h3, Some(addr("0.0.0.0:443")));
    assert_eq!(config.listen.http, Some(addr("127.0.0.1:8080")));
    assert_eq!(config.listen.metrics, Some(addr("10.0.0.5:9464")));
    let tls = config.tls.as_ref().unwrap();
    assert_eq!((tls.cert.clone(), tls.key.clone()), (dir.path().join("cert.pem"), dir.path().join("key.pem")));
    assert_eq!(config.origin.urls, ["https://origin-a.example.com", "http://10.0.0.2:8080/base"]);
    assert_eq!(config.origin.credential, "fra-1.a-long-pop-secret-0123456789");
    assert!(!config.pop.partner);
    assert_eq!(config.origin.connect_timeout, Duration::from_millis(1500));
    assert_eq!(config.origin.request_timeout, Duration::from_secs(20));
    assert_eq!(config.origin.retries, 3);
    assert_eq!(config.tokens.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(), ["k1", "k2"]);
    assert_eq!(config.cache.memory, 512 << 20);
    assert_eq!(config.cache.disk, 10_000_000_000);
    assert_eq!(config.cache.path, Path::new("/var/cache/edge"));
    assert_eq!(config.cache.block, 32 << 20);
    assert_eq!(config.cache.playlist_stale, Duration::from_secs(120));
    assert_eq!(config.cache.not_found_ttl, Duration::from_secs(3));
    assert_eq!((config.admission.min_uses, config.admission.window), (3, Duration::from_secs(3600)));
    assert_eq!(
        (config.prefetch.enabled, config.prefetch.heartbeat, config.prefetch.top_n),
        (false, Duration::from_millis(500), 50)
    );
    assert_eq!((config.uploads.enabled, config.uploads.max_size), (false, 2 << 30));
    assert_eq!(
        config.limits,
        pop_config::Limits {
            max_connections: 50_000,
            max_connections_per_address: 64,
            max_streams_per_connection: 200,
            max_header_bytes: 64 << 10,
            header_read_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(120),
            body_timeout: Duration::from_secs(20),
        }
    );
}

#[test]
fn token_keys_verify_what_the_origin_signs() {
    let config = valid(REQUIRED);
    let origin_key = SigningKey::from_seed("k1", &(0..32).collect::<Vec<u8>>()).unwrap();
    assert_eq!(config.tokens, [origin_key.public()], "the documented public key is the seed's");
    let grant = PlaybackGrant { video: "v".into(), expires: 100, viewer: None, scope: Scope::Delivery };
    let token = sign_playback(&origin_key, &grant);
    assert_eq!(verify_playback(&config.tokens, &token, "v", Scope::Delivery, 50), Ok(grant));
}

#[test]
fn absent_sections_take_the_defaults() {
    let config = valid(REQUIRED);
    assert_eq!((config.pop.id.as_str(), config.pop.region.as_str()), ("pop-local", "local"));
    assert_eq!(config.listen.https, addr("127.0.0.1:8443"));
    assert_eq!(config.listen.h3, Some(addr("127.0.0.1:8443")), "h3 follows https");
    assert_eq!(config.listen.http, None);
    assert_eq!(config.listen.metrics, Some(addr("127.0.0.1:9464")), "metrics on loopback, apart from viewers");
    assert!(config.tls.is_none());
    assert_eq!(config.origin.urls, ["http://127.0.0.1:8080"]);
    assert_eq!(config.origin.connect_timeout, Duration::from_secs(2));
    assert_eq!(config.origin.request_timeout, Duration::from_secs(15));
    assert_eq!(config.origin.retries, 2);
    assert_eq!(config.cache.memory, 256 << 20);
    assert_eq!(config.cache.disk, 4 << 30);
    assert_eq!(config.cache.path, Path::new("/base/data/edge-cache"), "relative to the file's directory");
    assert_eq!(config.cache.block, 16 << 20);
    assert_eq!(config.cache.playlist_stale, Duration::from_secs(300));
    assert_eq!(config.cache.not_found_ttl, Duration::from_secs(5));
    assert_eq!((config.admission.min_uses, config.admission.window), (2, Duration::from_secs(600)));
    assert_eq!(
        (config.prefetch.enabled, config.prefetch.heartbeat, config.prefetch.top_n),
        (true, Duration::from_secs(3), 20)
    );
    assert_eq!((config.uploads.enabled, config.uploads.max_size), (true, 1 << 30));
    let limits = config.limits;
    assert_eq!((limits.max_connections, limits.max_connections_per_address), (20_000, 256));
    assert_eq!((limits.max_streams_per_connection, limits.max_header_bytes), (100, 32 << 10));
    assert_eq!(
        (limits.header_read_timeout, limits.idle_timeout, limits.body_timeout),
        (Duration::from_secs(10), Duration::from_secs(60), Duration::from_secs(30))
    );
}

#[test]
fn limits_that_cannot_work_are_reported_with_their_paths() {
    let errors = invalid(&with_required(
        "[limits]\nmax_connections = 0\nmax_streams_per_connection = 0\nmax_header_bytes = \"100B\"\n\
         header_read_timeout = \"0s\"\nbody_timeout = \"0ms\"",
    ));
    assert_eq!(
        paths(&errors),
        [
            "limits.max_connections",
            "limits.max_streams_per_connection",
            "limits.max_header_bytes",
            "limits.header_read_timeout",
            "limits.body_timeout",
            "limits.max_connections_per_address"
        ],
        "{errors}"
    );
    let errors = invalid(&with_required("[limits]\nmax_connections = 10\nmax_connections_per_address = 11"));
    assert_only_error(&errors, "limits.max_connections_per_address", "more than max_connections (10)");
    let errors = invalid(&with_required("[limits]\nmax_conections = 10"));
    assert_only_error(&errors, "limits.max_conections", "did you mean `max_connections`?");
}

#[test]
fn a_silent_connection_must_outlast_the_origin_wait() {
    let errors = invalid(&with_required("[limits]\nidle_timeout = \"15s\""));
    assert_only_error(&errors, "limits.idle_timeout", "longer than origin.request_timeout (15s)");
    let text = REQUIRED.replace("[origin]", "[origin]\nrequest_timeout_ms = 5000");
    valid(&format!("[limits]\nidle_timeout = \"6s\"\n{text}"));
}

#[test]
fn metrics_listen_apart_and_can_be_disabled() {
    let config = valid(&with_required("[listen]\nmetrics = false"));
    assert_eq!(config.listen.metrics, None);
    let errors = invalid(&with_required("[listen]\nmetrics = true"));
    assert_only_error(&errors, "listen.metrics", "expected an address");
    let errors = invalid(&with_required("[listen]\nhttps = \"127.0.0.1:9464\""));
    assert_only_error(&errors, "listen.metrics", "conflicts with listen.https");
}

#[test]
fn not_found_ttl_is_whole_seconds() {
    let errors = invalid(&with_required("[cache]\nnot_found_ttl = \"1500ms\""));
    assert_only_error(&errors, "cache.not_found_ttl", "whole seconds");
    assert_eq!(valid(&with_required("[cache]\nnot_found_ttl = \"0s\"")).cache.not_found_ttl, Duration::ZERO);
}

#[test]
fn h3_follows_https_and_can_be_disabled() {
    let config = valid(&with_required("[listen]\nhttps = \"[::]:9443\""));
    assert_eq!(config.listen.h3, Some(addr("[::]:9443")));
    let config = valid(&with_required("[listen]\nh3 = false"));
    assert_eq!(config.listen.h3, None);
    let config = valid(&with_required("[listen]\nh3 = \"127.0.0.1:9000\""));
    assert_eq!(config.listen.h3, Some(addr("127.0.0.1:9000")));
}

#[test]
fn unknown_top_level_key() {
    let errors = invalid(&format!("colour = \"blue\"\n{REQUIRED}"));
    assert_only_error(&errors, "colour", "unknown key");
    assert_eq!(errors.0[0].line, Some(1));
    let errors = invalid(&with_required("[cahce]\nmemory = 1"));
    assert_only_error(&errors, "cahce", "did you mean `cache`?");
}

#[test]
fn unknown_nested_key_names_its_path_and_a_suggestion() {
    let errors = invalid(&with_required("[cache]\nmemroy = \"1GiB\""));
    assert_only_error(&errors, "cache.memroy", "did you mean `memory`?");
    assert_eq!(errors.0[0].line, Some(2));
    let errors = invalid(&format!("{REQUIRED}\nsekret_file = \"x\""));
    assert_only_error(&errors, "tokens[0].sekret_file", "did you mean `secret_file`?");
    let errors = invalid(&with_required("[pop]\nzzz = 1"));
    assert_only_error(&errors, "pop.zzz", "known keys here: id, region");
}

#[test]
fn unknown_keys_are_found_in_every_section() {
    for section in ["pop", "listen", "cache", "admission", "prefetch", "uploads", "limits"] {
        let errors = invalid(&with_required(&format!("[{section}]\nbogus = 1")));
        assert_only_error(&errors, &format!("{section}.bogus"), "unknown key");
    }
    let errors = invalid(&REQUIRED.replace("[origin]", "[origin]\nbogus = 1"));
    assert_only_error(&errors, "origin.bogus", "unknown key");
    let dir = tempfile::tempdir().unwrap();
    let errors = parse(&with_required("[tls]\nbogus = 1"), dir.path()).unwrap_err();
    assert!(paths(&errors).contains(&"tls.bogus"), "{errors}");
}

#[test]
fn several_errors_are_reported_together_in_file_order() {
    let text = r#"
[pop]
id = "has spaces"

[listen]
https = "127.0.0.1:8443"
http = "127.0.0.1:8443"

[origin]
urls = ["ftp://nope"]

[[tokens]]
kid = "k1"
public_key = "abc"

[cache]
memory = "12 parsecs"
memroy = 1
playlist_stale = "forever"
"#;
    let errors = invalid(text);
    assert_eq!(
        paths(&errors),
        [
            "pop.id",
            "listen.http",
            "origin",
            "origin.urls[0]",
            "tokens[0].public_key",
            "cache.memory",
            "cache.memroy",
            "cache.playlist_stale"
        ],
        "{errors}"
    );
    let shown = errors.to_string();
    assert_eq!(shown.lines().count(), 8, "one line per problem:\n{shown}");
    assert!(shown.starts_with("pop.id (line 3): `has spaces` is not a valid name"), "{shown}");
    assert!(shown.ends_with("`forever` is not a duration (write e.g. \"500ms\", \"30s\", \"10m\", \"1h\")"), "{shown}");
}

#[test]
fn bad_size() {
    let errors = invalid(&with_required("[cache]\nmemory = \"12 parsecs\""));
    assert_only_error(&errors, "cache.memory", "`12 parsecs` is not a size");
    let errors = invalid(&with_required("[uploads]\nmax_size = -5"));
    assert_only_error(&errors, "uploads.max_size", "out of range");
    let errors = invalid(&with_required("[cache]\ndisk = true"));
    assert_only_error(&errors, "cache.disk", "expected a string, found a boolean");
}

#[test]
fn sizes_the_cache_cannot_use() {
    let errors = invalid(&with_required("[cache]\nblock = \"1000KB\"\nmemory = 1000"));
    assert_eq!(paths(&errors), ["cache.block", "cache.memory"], "{errors}");
    let errors = invalid(&with_required("[cache]\nblock = \"2MiB\"\ndisk = \"7MiB\""));
    assert_only_error(&errors, "cache.disk", "at least 4 blocks");
    valid(&with_required("[cache]\ndisk = 0"));
}

#[test]
fn bad_duration() {
    let errors = invalid(&with_required("[admission]\nwindow = \"10 fortnights\""));
    assert_only_error(&errors, "admission.window", "not a duration");
    let errors = invalid(&with_required("[prefetch]\nheartbeat = 10"));
    assert_only_error(&errors, "prefetch.heartbeat", "expected a string, found an integer");
    let errors = invalid(&with_required("[prefetch]\nheartbeat = \"0s\""));
    assert_only_error(&errors, "prefetch.heartbeat", "longer than 0");
}

#[test]
fn unreadable_tls_files() {
    let dir = tempfile::tempdir().unwrap();
    let errors =
        parse(&with_required("[tls]\ncert = \"missing-cert.pem\"\nkey = \"missing-key.pem\""), dir.path()).unwrap_err();
    assert_eq!(paths(&errors), ["tls.cert", "tls.key"], "{errors}");
    assert!(errors.0[0].message.contains("cannot read") && errors.0[0].message.contains("missing-cert.pem"));
    assert_eq!(errors.0[1].line, Some(3));
}

#[test]
fn tls_section_needs_both_files() {
    let errors = invalid(&with_required("[tls]\n"));
    assert_eq!(paths(&errors), ["tls.cert", "tls.key"], "{errors}");
    assert!(errors.iter().all(|e| e.message == "missing (required)"));
}

#[test]
fn tls_files_that_are_not_pem() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("cert.pem"), "hello").unwrap();
    fs::write(dir.path().join("key.pem"), "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").unwrap();
    let errors = parse(&with_required("[tls]\ncert = \"cert.pem\"\nkey = \"key.pem\""), dir.path()).unwrap_err();
    assert_eq!(paths(&errors), ["tls.cert", "tls.key"], "{errors}");
    assert!(errors.0[0].message.contains("no CERTIFICATE"), "{errors}");
    assert!(errors.0[1].message.contains("no private key"), "{errors}");
}

#[test]
fn tls_key_of_another_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let one = rcgen::generate_simple_self_signed(vec!["a.example".to_owned()]).unwrap();
    let other = rcgen::generate_simple_self_signed(vec!["b.example".to_owned()]).unwrap();
    fs::write(dir.path().join("cert.pem"), one.cert.pem()).unwrap();
    fs::write(dir.path().join("key.pem"), other.signing_key.serialize_pem()).unwrap();
    let errors = parse(&with_required("[tls]\ncert = \"cert.pem\"\nkey = \"key.pem\""), dir.path()).unwrap_err();
    assert_only_error(&errors, "tls.key", "does not belong to the certificate");
}

#[test]
fn unreadable_public_key_file() {
    let text = REQUIRED.replace(
        "public_key = \"03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8\"",
        "public_key_file = \"nope/k1.hex\"",
    );
    let errors = invalid(&text);
    assert_only_error(&errors, "tokens[0].public_key_file", "cannot read /base/nope/k1.hex");
}

#[test]
fn public_key_file_resolves_against_the_config_files_directory() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("keys")).unwrap();
    fs::write(dir.path().join("keys/k1.hex"), "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c\n")
        .unwrap();
    let text = REQUIRED.replace(
        "public_key = \"03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8\"",
        "public_key_file = \"keys/k1.hex\"",
    );
    fs::write(dir.path().join("pop.toml"), text).unwrap();
    let config = pop_config::load(&dir.path().join("pop.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.tokens[0].kid, "k1");
    assert_eq!(config.cache.path, dir.path().join("data/edge-cache"));
}

#[test]
fn key_and_credential_files_are_read_only_when_small() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("huge"), vec![b'0'; 1 << 20]).unwrap();
    let text = REQUIRED
        .replace(
            "public_key = \"03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8\"",
            "public_key_file = \"huge\"",
        )
        .replace("credential = \"pop-local.pop-secret-0123456789\"", "credential_file = \"huge\"");
    let errors = parse(&text, dir.path()).unwrap_err();
    assert_eq!(paths(&errors), ["origin.credential_file", "tokens[0].public_key_file"], "{errors}");
    assert!(errors.to_string().contains("larger than 4096 bytes"), "{errors}");
}

#[test]
fn unreadable_config_file() {
    let errors = pop_config::load(Path::new("/nonexistent/pop.toml")).unwrap_err();
    assert_eq!(paths(&errors), [""]);
    assert!(errors.to_string().starts_with("cannot read /nonexistent/pop.toml"), "{errors}");
}

#[test]
fn missing_or_foreign_origin_credential() {
    let errors = invalid(&REQUIRED.replace("credential = \"pop-local.pop-secret-0123456789\"", ""));
    assert_only_error(&errors, "origin", "exactly one of `credential` and `credential_file`");
    let errors = invalid(&REQUIRED.replace("pop-secret-0123456789", "short"));
    assert_only_error(&errors, "origin.credential", "at least 16 characters");
    let errors = invalid(&REQUIRED.replace("pop-local.pop-secret-0123456789", "pop-secret-0123456789"));
    assert_only_error(&errors, "origin.credential", "expected `{pop id}.{secret}`");
    let errors = invalid(&REQUIRED.replace("pop-local.pop-secret", "pop-other.pop-secret"));
    assert_only_error(&errors, "origin.credential", "issued to PoP `pop-other` but this is `pop-local`");
}

#[test]
fn a_pop_refuses_signing_material() {
    // An HMAC secret or a private key would let this PoP mint tokens: refused, with the reason.
    for (key, value) in [
        ("secret", "\"000102030405060708090a0b0c0d0e0f\""),
        ("secret_file", "\"k1.hex\""),
        ("private_key", "\"-----BEGIN PRIVATE KEY-----\""),
        ("seed", "\"00\""),
    ] {
        let errors = invalid(&format!("{REQUIRED}{key} = {value}\n"));
        assert_only_error(&errors, &format!("tokens[0].{key}"), "a PoP holds only public keys");
    }
    let pem = REQUIRED.replace(
        "public_key = \"03a1",
        "public_key = \"-----BEGIN PRIVATE KEY-----MC4CAQAwBQYDK2VwBCIEIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f-----END PRIVATE KEY-----03a1",
    );
    assert_only_error(&invalid(&pem), "tokens[0].public_key", "this is a private key");
}

#[test]
fn a_partner_pop_serves_no_pages() {
    let config = valid(&with_required("[pop]\npartner = true"));
    assert!(config.pop.partner);
    let errors = invalid(&with_required("[pop]\npartner = true\n[web]\ndir = \"/base\""));
    assert!(paths(&errors).contains(&"web"), "{errors}");
}

#[test]
fn no_token_keys() {
    let errors = invalid("[origin]\ncredential = \"pop-local.pop-secret-0123456789\"");
    assert_only_error(&errors, "tokens", "at least one [[tokens]] key");
    let errors = invalid("tokens = []\n[origin]\ncredential = \"pop-local.pop-secret-0123456789\"");
    assert_only_error(&errors, "tokens", "at least one [[tokens]] key");
}

#[test]
fn bad_hex_and_short_public_keys() {
    let errors = invalid(&REQUIRED.replace(
        "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8",
        "zza107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8",
    ));
    assert_only_error(&errors, "tokens[0].public_key", "not hex");
    let errors =
        invalid(&REQUIRED.replace("03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8", "0001020304"));
    assert_only_error(&errors, "tokens[0].public_key", "5 bytes: an Ed25519 public key is 32 bytes");
}

#[test]
fn public_key_and_public_key_file_are_exclusive() {
    let errors = invalid(&format!("{REQUIRED}public_key_file = \"k1.hex\"\n"));
    assert_only_error(&errors, "tokens[0]", "exactly one of `public_key` and `public_key_file`");
    let errors = invalid(
        &REQUIRED.replace("public_key = \"03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8\"", ""),
    );
    assert_only_error(&errors, "tokens[0]", "exactly one of `public_key` and `public_key_file`");
}

#[test]
fn duplicate_token_kid() {
    let text = format!(
        "{REQUIRED}\n[[tokens]]\nkid = \"k1\"\npublic_key = \"8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c\"\n"
    );
    let errors = invalid(&text);
    assert_only_error(&errors, "tokens[1].kid", "duplicate key id `k1`");
}

#[test]
fn invalid_pop_id_and_kid() {
    let errors = invalid(&with_required("[pop]\nid = \"pop.one\"\nregion = \"\""));
    assert_eq!(paths(&errors), ["pop.id", "pop.region"], "{errors}");
    let errors = invalid(&REQUIRED.replace("kid = \"k1\"", "kid = \"k.1\""));
    assert_only_error(&errors, "tokens[0].kid", "not a valid name");
}

#[test]
fn invalid_origin_url() {
    let text = REQUIRED.replace("[origin]", "[origin]\nurls = [\"http://ok:8080\", \"http://bad host\", 7]");
    let errors = invalid(&text);
    assert_eq!(paths(&errors), ["origin.urls[1]", "origin.urls[2]"], "{errors}");
    assert!(errors.0[0].message.contains("not an origin URL"), "{errors}");
    let errors = invalid(&REQUIRED.replace("[origin]", "[origin]\nurls = []"));
    assert_only_error(&errors, "origin.urls", "must not be empty");
}

#[test]
fn https_and_http_on_the_same_address_conflict() {
    let errors = invalid(&with_required("[listen]\nhttps = \"127.0.0.1:8443\"\nhttp = \"127.0.0.1:8443\""));
    assert_only_error(&errors, "listen.http", "conflicts with listen.https");
    assert_eq!(errors.0[0].line, Some(3));
}

#[test]
fn unspecified_address_overlaps_every_address_on_its_port() {
    let errors = invalid(&with_required("[listen]\nhttps = \"0.0.0.0:8443\"\nhttp = \"127.0.0.1:8443\""));
    assert_only_error(&errors, "listen.http", "both are TCP port 8443");
    valid(&with_required("[listen]\nhttps = \"0.0.0.0:8443\"\nhttp = \"127.0.0.1:8080\""));
    valid(&with_required("[listen]\nhttps = \"127.0.0.1:0\"\nhttp = \"127.0.0.1:0\""));
}

#[test]
fn h3_may_share_the_https_port_number() {
    let config =
        valid(&with_required("[listen]\nhttps = \"0.0.0.0:443\"\nh3 = \"0.0.0.0:443\"\nhttp = \"127.0.0.1:80\""));
    assert_eq!(config.listen.h3, Some(config.listen.https));
}

#[test]
fn bad_listen_address() {
    let errors = invalid(&with_required("[listen]\nhttps = \"localhost:8443\""));
    assert_only_error(&errors, "listen.https", "not an IP:port address");
}

#[test]
fn toml_syntax_error_names_its_line() {
    let errors = invalid("[pop]\nid = \"ok\"\nregion = \n[origin]\n");
    assert_eq!(paths(&errors), [""], "{errors}");
    assert_eq!(errors.0[0].line, Some(3), "{errors}");
    assert!(errors.to_string().starts_with("line 3: invalid TOML"), "{errors}");
    let errors = invalid(&format!("{REQUIRED}\n[origin]\nretries = 1\n"));
    assert!(errors.0[0].message.contains("invalid TOML"), "a table defined twice: {errors}");
}

#[test]
fn wrong_types_say_what_was_expected() {
    let errors = invalid(&with_required("cache = 5\n[prefetch]\nenabled = \"yes\"\ntop_n = 2.5"));
    assert_eq!(paths(&errors), ["cache", "prefetch.enabled", "prefetch.top_n"], "{errors}");
    assert!(errors.0[0].message.contains("expected a table, found an integer"), "{errors}");
    assert!(errors.0[1].message.contains("expected true or false, found a string"), "{errors}");
}

#[test]
fn the_origin_token_stays_out_of_debug_output() {
    let config = valid(REQUIRED);
    let shown = format!("{config:?}");
    assert!(!shown.contains("pop-secret-0123456789") && shown.contains("<redacted>"), "{shown}");
}

#[test]
fn default_for_is_a_runnable_in_process_pop() {
    let dir = tempfile::tempdir().unwrap();
    let keys = vec![SigningKey::from_seed("k1", &[7; 32]).unwrap().public()];
    let config = PopConfig::default_for(dir.path(), "http://127.0.0.1:9/", "pop-9.pop-secret-0123456789", keys);
    assert_eq!(config.pop.id, "pop-9");
    assert_eq!(config.listen.https.port(), 0);
    assert_eq!(config.origin.urls, ["http://127.0.0.1:9"]);
    assert_eq!(config.cache.path, dir.path());
    assert!(config.tls.is_none());
}

#[test]
fn the_shipped_example_is_valid() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("pop.example.toml");
    let config = pop_config::load(&example).unwrap_or_else(|e| panic!("{}:\n{e}", example.display()));
    assert_eq!(config.tokens.len(), 1);
}

#[test]
fn integers_in_any_toml_notation() {
    let config =
        valid(&with_required("[prefetch]\ntop_n = 1_000\n[admission]\nmin_uses = 0x10\n[uploads]\nmax_size = 0o777"));
    assert_eq!((config.prefetch.top_n, config.admission.min_uses, config.uploads.max_size), (1000, 16, 0o777));
}

#[test]
fn web_pages_need_a_folder_with_pages() {
    let dir = tempfile::tempdir().unwrap();
    let config = parse(&with_required(""), dir.path()).unwrap();
    assert!(config.web.is_none(), "no pages unless asked");

    let errors = parse(&with_required("[web]\ndir = \"site\""), dir.path()).unwrap_err();
    assert!(paths(&errors).contains(&"web.dir"), "{errors}");
    let errors = parse(&with_required("[web]\nroot = \"site\""), dir.path()).unwrap_err();
    assert!(paths(&errors).contains(&"web.root") && paths(&errors).contains(&"web.dir"), "{errors}");

    fs::create_dir_all(dir.path().join("site/pages")).unwrap();
    let config = parse(&with_required("[web]\ndir = \"site\""), dir.path()).unwrap();
    assert_eq!(config.web.unwrap().dir, dir.path().join("site"));
}

#[test]
fn a_purge_lag_shorter_than_the_heartbeat_and_a_rare_heartbeat_are_refused() {
    let base = "[origin]\ncredential = \"pop-local.0123456789abcdef\"\n[[tokens]]\nkid = \"k1\"\npublic_key = \"03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8\"\n";
    let short = base.replace("[[tokens]]", "max_purge_lag_ms = 5000\n[[tokens]]");
    let errors = parse(&short, Path::new(".")).unwrap_err().to_string();
    assert!(errors.contains("origin.max_purge_lag_ms"), "{errors}");
    let rare = format!("{base}[prefetch]\nheartbeat = \"2m\"\n");
    let errors = parse(&rare, Path::new(".")).unwrap_err().to_string();
    assert!(errors.contains("prefetch.heartbeat"), "{errors}");
    let off = base.replace("[[tokens]]", "max_purge_lag_ms = 0\n[[tokens]]") + "[prefetch]\nheartbeat = \"50s\"\n";
    assert!(parse(&off, Path::new(".")).is_ok(), "no lag limit, a long beat");
}
