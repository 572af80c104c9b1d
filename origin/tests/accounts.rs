//! People on the platform over real HTTP: sign-up and sign-in with Argon2id, cookie sessions
//! with anti-forgery tokens and revocation, throttling, API tokens and their scopes, privacy
//! levels on every route, shares, quotas, views, reports and moderation, and the bootstrap
//! token's end.

mod common;

use std::time::Duration;

use common::TestOrigin;
use origin::config::DEV_CREATOR_TOKEN;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A browser: its session cookie and anti-forgery token.
#[derive(Clone, Default)]
struct Browser {
    cookie: Option<String>,
    csrf: Option<String>,
}

struct Site {
    origin: TestOrigin,
}

impl Site {
    async fn start(tune: impl FnOnce(&mut origin::Config)) -> (Self, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let mut config = origin::Config::for_dir(dir.path());
        tune(&mut config);
        (Self { origin: TestOrigin::start_with(config).await }, dir)
    }

    /// A request as `who`: the cookie, and the anti-forgery token unless `forge`.
    async fn call(
        &self,
        who: &Browser,
        method: Method,
        path: &str,
        body: Option<Value>,
        forge: bool,
    ) -> (StatusCode, Value, reqwest::header::HeaderMap) {
        let mut r = self.origin.client.request(method, self.origin.url(path));
        if let Some(c) = &who.cookie {
            r = r.header("cookie", c);
        }
        if let (Some(t), false) = (&who.csrf, forge) {
            r = r.header("x-csrf-token", t);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let answer = r.send().await.unwrap();
        let (status, headers) = (answer.status(), answer.headers().clone());
        let text = answer.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null), headers)
    }

    async fn as_(&self, who: &Browser, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let (s, v, _) = self.call(who, method, path, body, false).await;
        (s, v)
    }

    async fn bearer(&self, token: &str, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut r = self.origin.client.request(method, self.origin.url(path)).bearer_auth(token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let answer = r.send().await.unwrap();
        let status = answer.status();
        (status, answer.json().await.unwrap_or(Value::Null))
    }

    /// Signs up (or in, when `handle` exists) and returns the browser.
    async fn sign_up(&self, handle: &str, display: &str) -> Browser {
        let body =
            json!({ "handle": handle, "password": format!("{handle} has a long password"), "display_name": display });
        let (status, v, headers) =
            self.call(&Browser::default(), Method::POST, "/v1/accounts", Some(body), false).await;
        assert_eq!(status, 201, "{v}");
        browser(&headers, &v)
    }

    async fn sign_in(&self, handle: &str, password: &str) -> (StatusCode, Value, Browser) {
        let body = json!({ "handle": handle, "password": password });
        let (status, v, headers) =
            self.call(&Browser::default(), Method::POST, "/v1/sessions", Some(body), false).await;
        let b = if status == 200 { browser(&headers, &v) } else { Browser::default() };
        (status, v, b)
    }

    async fn create(&self, who: &Browser, title: &str, privacy: &str) -> String {
        let body =
            json!({"title": title, "filename": "a.mp4", "size": 1000, "content_type": "video/mp4", "privacy": privacy});
        let (status, v) = self.as_(who, Method::POST, "/v1/videos", Some(body)).await;
        assert_eq!(status, 201, "{v}");
        v["video"]["id"].as_str().unwrap().to_owned()
    }
}

fn browser(headers: &reqwest::header::HeaderMap, body: &Value) -> Browser {
    let set = headers.get("set-cookie").expect("a session cookie").to_str().unwrap().to_owned();
    for attribute in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
        assert!(set.contains(attribute), "{set}");
    }
    let pair = set.split(';').next().unwrap().to_owned();
    Browser { cookie: Some(pair), csrf: body["csrf_token"].as_str().map(str::to_owned) }
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn sign_up_sign_in_sessions_and_throttling() {
    let (site, _dir) = Site::start(|_| {}).await;
    let alice = site.sign_up("alice", "앨리스 Алиса").await;
    let (status, me) = site.as_(&alice, Method::GET, "/v1/me", None).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!((me["user"]["handle"].as_str(), me["user"]["role"].as_str()), (Some("alice"), Some("creator")));
    assert_eq!(me["user"]["display_name"], "앨리스 Алиса", "display names in any script");
    assert!(me["user"].get("password_phc").is_none(), "{me}");
    assert_eq!(me["channels"][0]["handle"], "alice");
    assert_eq!(me["csrf_token"].as_str(), alice.csrf.as_deref());

    // Handles are unique ignoring case; weak passwords and bad handles are refused.
    let taken = json!({ "handle": "ALICE", "password": "another long password" });
    let (status, v) = site.as_(&Browser::default(), Method::POST, "/v1/accounts", Some(taken)).await;
    assert_eq!((status, code(&v)), (StatusCode::CONFLICT, "handle_taken"));
    let weak = json!({ "handle": "weakling", "password": "short" });
    assert_eq!(code(&site.as_(&Browser::default(), Method::POST, "/v1/accounts", Some(weak)).await.1), "weak_password");
    let bad = json!({ "handle": "a b", "password": "long enough password" });
    assert_eq!(code(&site.as_(&Browser::default(), Method::POST, "/v1/accounts", Some(bad)).await.1), "bad_handle");

    // A wrong password and an unknown account get the same answer.
    let (s1, wrong, _) = site.sign_in("alice", "not the password at all").await;
    let (s2, nobody, _) = site.sign_in("nobody-here", "not the password at all").await;
    assert_eq!((s1, s2), (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED));
    assert_eq!(wrong["error"]["code"], nobody["error"]["code"]);
    assert_eq!(wrong["error"]["message"], nobody["error"]["message"]);

    // Signing in from another site's page is refused (login forgery).
    let r = site
        .origin
        .client
        .post(site.origin.url("/v1/sessions"))
        .header("sec-fetch-site", "cross-site")
        .json(&json!({ "handle": "alice", "password": "alice has a long password" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // A second browser; signing out needs the anti-forgery token, then ends that session at once.
    let (status, _, second) = site.sign_in("Alice", "alice has a long password").await;
    assert_eq!(status, 200, "handles sign in in any case");
    let (status, v, _) = site.call(&second, Method::DELETE, "/v1/sessions", None, true).await;
    assert_eq!((status, code(&v)), (StatusCode::FORBIDDEN, "csrf"));
    assert_eq!(site.as_(&second, Method::DELETE, "/v1/sessions", None).await.0, 204);
    assert_eq!(site.as_(&second, Method::GET, "/v1/me", None).await.0, 401, "revoked at once");
    assert_eq!(site.as_(&alice, Method::GET, "/v1/me", None).await.0, 200, "the other browser stays");

    // Signing out everywhere ends the first browser too.
    let (_, _, third) = site.sign_in("alice", "alice has a long password").await;
    let (status, v) = site.as_(&third, Method::DELETE, "/v1/me/sessions", None).await;
    assert_eq!((status, v["revoked"].as_u64()), (StatusCode::OK, Some(2)));
    assert_eq!(site.as_(&alice, Method::GET, "/v1/me", None).await.0, 401);

    // Throttling: five failures for an account, then even the right password waits.
    for _ in 0..5 {
        assert_eq!(site.sign_in("alice", "guess guess guess").await.0, 401);
    }
    let (status, v, _) = site.sign_in("alice", "alice has a long password").await;
    assert_eq!((status, code(&v)), (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts"), "{v}");
    let r = site
        .origin
        .client
        .post(site.origin.url("/v1/sessions"))
        .json(&json!({ "handle": "alice", "password": "x" }))
        .send()
        .await
        .unwrap();
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((60..=900).contains(&retry), "{retry}");
    site.origin.running.stop().await;
}

/// The per-address sign-in budget counts the address that connected, unless the
/// `X-Forwarded-For` comes from whoever may set it: a PoP of ours (its credential in
/// `x-pop-credential`) or a configured proxy. A client that rotates a forged header still
/// spends one budget.
#[tokio::test]
async fn forwarded_addresses_count_only_from_our_pops_and_trusted_proxies() {
    let (site, _dir) = Site::start(|_| {}).await;
    let app = &site.origin.running.app;
    let enrol = async |id: &str, partner: bool| {
        let who = origin::pops::Enrolment { id: id.into(), region: "r1".into(), partner };
        origin::pops::enrol(app.pops.as_ref(), &who, origin::meta::now()).await
    };
    let (ours, partners) = (enrol("pop-ours", false).await.unwrap(), enrol("pop-partner", true).await.unwrap());
    let attempt = async |n: u32, forwarded: &str, credential: Option<&str>| {
        let mut r = site
            .origin
            .client
            .post(site.origin.url("/v1/sessions"))
            .header("x-forwarded-for", forwarded)
            .json(&json!({ "handle": format!("nobody-{n}"), "password": "not the password at all" }));
        if let Some(c) = credential {
            r = r.header("x-pop-credential", c);
        }
        r.send().await.unwrap().status()
    };
    // Twenty-five failures, each claiming another address: the budget of one (20) runs out.
    let mut statuses = Vec::new();
    for n in 0..25 {
        statuses.push(attempt(n, &format!("203.0.113.{n}"), None).await);
    }
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::UNAUTHORIZED).count(), 20, "{statuses:?}");
    assert_eq!(statuses.last(), Some(&StatusCode::TOO_MANY_REQUESTS));
    // Passed on by our PoP, the address it saw is the viewer's: a fresh budget.
    assert_eq!(attempt(30, "198.51.100.7", Some(&ours)).await, StatusCode::UNAUTHORIZED);
    // Not by a partner's PoP (they pass on no API call), nor with a wrong credential.
    assert_eq!(attempt(31, "198.51.100.8", Some(&partners)).await, StatusCode::TOO_MANY_REQUESTS);
    let forged = format!("{}x", &ours[..ours.len() - 1]);
    assert_eq!(attempt(32, "198.51.100.9", Some(&forged)).await, StatusCode::TOO_MANY_REQUESTS);
    site.origin.running.stop().await;

    // Behind a trusted proxy, the chain is read from the right, past the proxy's own hops.
    let (site, _dir) = Site::start(|c| c.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()]).await;
    let attempt = async |n: u32, forwarded: &str| {
        let body = json!({ "handle": format!("nobody-{n}"), "password": "not the password at all" });
        let r = site.origin.client.post(site.origin.url("/v1/sessions")).header("x-forwarded-for", forwarded);
        r.json(&body).send().await.unwrap().status()
    };
    // The client forges the left entry; the proxy appended what it saw (192.0.2.1) and a hop
    // of its own (127.0.0.2).
    for n in 0..20 {
        assert_eq!(attempt(n, &format!("203.0.113.{n}, 192.0.2.1, 127.0.0.2")).await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(attempt(20, "203.0.113.99, 192.0.2.1").await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(attempt(21, "192.0.2.2").await, StatusCode::UNAUTHORIZED, "another client, another budget");
    // Our PoP behind that proxy: the PoP wrote the first entry, the proxy appended the PoP's
    // address. The first is the client, not the PoP (whose viewers would share one budget).
    let app = &site.origin.running.app;
    let who = origin::pops::Enrolment { id: "pop-lb".into(), region: "r1".into(), partner: false };
    let pop = origin::pops::enrol(app.pops.as_ref(), &who, origin::meta::now()).await.unwrap();
    for n in 0..21 {
        let body = json!({ "handle": format!("nobody-lb-{n}"), "password": "not the password at all" });
        let r = site.origin.client.post(site.origin.url("/v1/sessions")).header("x-pop-credential", &pop);
        let r = r.header("x-forwarded-for", format!("198.51.100.{n}, 192.0.2.1")).json(&body);
        assert_eq!(r.send().await.unwrap().status(), StatusCode::UNAUTHORIZED, "viewer {n} of the PoP");
    }
    site.origin.running.stop().await;
}

/// A password change needs the current password and a browser; it ends every session of the
/// account (another browser's at once), signs this browser in again and leaves API tokens be.
#[tokio::test]
async fn a_password_change_needs_the_current_one_and_ends_every_other_session() {
    let (site, _dir) = Site::start(|_| {}).await;
    let alice = site.sign_up("alice", "Alice").await;
    let (_, _, elsewhere) = site.sign_in("alice", "alice has a long password").await;
    let (status, token) =
        site.as_(&alice, Method::POST, "/v1/me/tokens", Some(json!({"name": "cli", "scopes": ["manage"]}))).await;
    assert_eq!(status, 201, "{token}");
    let token = token["token"].as_str().unwrap().to_owned();
    let change = |current: &str, new: &str| Some(json!({ "current": current, "new": new }));

    // A token is not a browser; the current password must be right; the new one strong.
    let (status, v) = site
        .bearer(&token, Method::PUT, "/v1/me/password", change("alice has a long password", "a new long password"))
        .await;
    assert_eq!((status, code(&v)), (StatusCode::FORBIDDEN, "not_a_session"), "{v}");
    let (status, v) =
        site.as_(&alice, Method::PUT, "/v1/me/password", change("a wrong guess here", "a new long password")).await;
    assert_eq!((status, code(&v)), (StatusCode::FORBIDDEN, "wrong_password"), "{v}");
    let (status, v) =
        site.as_(&alice, Method::PUT, "/v1/me/password", change("alice has a long password", "short")).await;
    assert_eq!((status, code(&v)), (StatusCode::BAD_REQUEST, "weak_password"), "{v}");

    // Changed: this browser is signed in again with a new session, every other one is out.
    let (status, v, headers) = site
        .call(&alice, Method::PUT, "/v1/me/password", change("alice has a long password", "a new long password"), false)
        .await;
    assert_eq!(status, 200, "{v}");
    let renewed = browser(&headers, &v);
    assert_ne!(renewed.cookie, alice.cookie);
    assert_eq!(site.as_(&renewed, Method::GET, "/v1/me", None).await.0, 200);
    assert_eq!(site.as_(&alice, Method::GET, "/v1/me", None).await.0, 401, "the old session ended");
    assert_eq!(site.as_(&elsewhere, Method::GET, "/v1/me", None).await.0, 401, "so did every other");
    assert_eq!(site.bearer(&token, Method::GET, "/v1/me", None).await.0, 200, "tokens stay");
    assert_eq!(site.sign_in("alice", "alice has a long password").await.0, 401);
    assert_eq!(site.sign_in("alice", "a new long password").await.0, 200);

    // Wrong current passwords count against the sign-in budget (five per account), then
    // even the right one waits.
    for _ in 0..5 {
        let (status, _) = site
            .as_(&renewed, Method::PUT, "/v1/me/password", change("guess guess guess", "x".repeat(12).as_str()))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    let (status, v) = site
        .as_(&renewed, Method::PUT, "/v1/me/password", change("a new long password", "another long password"))
        .await;
    assert_eq!((status, code(&v)), (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts"), "{v}");
    site.origin.running.stop().await;
}

/// Every state-changing route but those that take no session (sign-up and sign-in, tus with
/// its signed URL, PoPs and the key service with their own credentials) refuses a session
/// cookie without the anti-forgery token.
#[tokio::test]
async fn every_state_changing_cookie_route_needs_the_anti_forgery_token() {
    let (site, _dir) = Site::start(|_| {}).await;
    let alice = site.sign_up("alice", "Alice").await;
    let id = site.create(&alice, "mine", "public").await;
    let no_session = ["/v1/accounts", "/v1/sessions"];
    let own_credentials = ["/v1/uploads", "/v1/pops", "/v1/keys", "/p/", "/v1/objects", "/v1/steering"];
    let mut tried = 0;
    for (method, template) in origin::api::ROUTES {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        if matches!(method, Method::GET | Method::HEAD | Method::OPTIONS)
            || (method == Method::POST && no_session.contains(template))
            || own_credentials.iter().any(|p| template.starts_with(p))
        {
            continue;
        }
        let path = template
            .replace("{id}", &id)
            .replace("{handle}", "alice")
            .replace("{report}", "000000000000")
            .replace("{token}", "0000000000000000");
        let (status, v, _) = site.call(&alice, method.clone(), &path, Some(json!({})), true).await;
        assert_eq!((status, code(&v)), (StatusCode::FORBIDDEN, "csrf"), "{method} {path}: {v}");
        tried += 1;
    }
    assert!(tried >= 14, "only {tried} routes tried");
    site.origin.running.stop().await;
}

#[tokio::test]
async fn another_account_cannot_see_change_play_or_delete_a_private_video_until_shared() {
    let (site, _dir) = Site::start(|_| {}).await;
    let alice = site.sign_up("alice", "Alice").await;
    let bob = site.sign_up("bob", "Bob").await;
    let id = site.create(&alice, "secret plans", "private").await;
    let anonymous = Browser::default();

    let (status, v) = site.as_(&bob, Method::GET, &format!("/v1/videos/{id}"), None).await;
    assert_eq!((status, code(&v)), (StatusCode::FORBIDDEN, "private_video"));
    let (status, v) = site.as_(&anonymous, Method::GET, &format!("/v1/videos/{id}"), None).await;
    assert_eq!((status, code(&v)), (StatusCode::UNAUTHORIZED, "private_video"));
    for who in [&bob, &anonymous] {
        let (status, v) = site.as_(who, Method::POST, &format!("/v1/videos/{id}/playback"), Some(json!({}))).await;
        assert!(status == 403 || status == 401, "{v}");
        assert_eq!(code(&v), "private_video");
    }
    let refused = [
        (Method::PATCH, format!("/v1/videos/{id}"), json!({ "title": "bob's now" })),
        (Method::PATCH, format!("/v1/videos/{id}"), json!({ "privacy": "public" })),
        (Method::DELETE, format!("/v1/videos/{id}"), json!({})),
        (Method::PUT, format!("/v1/videos/{id}/pin"), json!({ "pin": "full" })),
        (Method::GET, format!("/v1/videos/{id}/shares"), json!({})),
        (Method::PUT, format!("/v1/videos/{id}/shares/bob"), json!({})),
        (Method::DELETE, format!("/v1/videos/{id}/shares/bob"), json!({})),
        (Method::POST, format!("/v1/videos/{id}/reports"), json!({ "reason": "spam" })),
        (Method::POST, format!("/v1/videos/{id}/views"), json!({ "token": "x" })),
        (Method::GET, format!("/v1/videos/{id}/events"), json!({})),
    ];
    for (method, path, body) in &refused {
        let (status, v) = site.as_(&bob, method.clone(), path, Some(body.clone())).await;
        assert_eq!(status, 403, "{method} {path}: {v}");
        assert!(["not_owner", "private_video"].contains(&code(&v)), "{method} {path}: {v}");
    }
    let (_, me) = site.as_(&alice, Method::GET, &format!("/v1/videos/{id}"), None).await;
    assert_eq!((me["title"].as_str(), me["state"].as_str()), (Some("secret plans"), Some("uploading")), "unchanged");

    // Shared with bob: he sees it and may ask to play it (it is not uploaded yet: 409).
    let (status, v) = site.as_(&alice, Method::PUT, &format!("/v1/videos/{id}/shares/bob"), None).await;
    assert_eq!((status, v["shares"][0]["handle"].as_str()), (StatusCode::OK, Some("bob")), "{v}");
    assert_eq!(site.as_(&bob, Method::GET, &format!("/v1/videos/{id}"), None).await.0, 200);
    let (status, v) = site.as_(&bob, Method::POST, &format!("/v1/videos/{id}/playback"), Some(json!({}))).await;
    assert_eq!((status, code(&v)), (StatusCode::CONFLICT, "not_ready"));
    // He still may not change it.
    assert_eq!(site.as_(&bob, Method::PATCH, &format!("/v1/videos/{id}"), Some(json!({ "title": "x" }))).await.0, 403);
    // Unshared: refused again at once.
    assert_eq!(site.as_(&alice, Method::DELETE, &format!("/v1/videos/{id}/shares/bob"), None).await.0, 204);
    assert_eq!(site.as_(&bob, Method::GET, &format!("/v1/videos/{id}"), None).await.0, 403);
    site.origin.running.stop().await;
}

#[tokio::test]
async fn only_public_videos_are_listed_searched_and_on_channel_pages() {
    let (site, _dir) = Site::start(|_| {}).await;
    let alice = site.sign_up("alice", "Alice").await;
    let public = site.create(&alice, "가을 public", "public").await;
    let unlisted = site.create(&alice, "가을 unlisted", "unlisted").await;
    let private = site.create(&alice, "가을 private", "private").await;
    let ids = |v: &Value, key: &str| -> Vec<String> {
        v[key].as_array().unwrap().iter().map(|v| v["id"].as_str().unwrap().to_owned()).collect()
    };
    let anonymous = Browser::default();
    for path in ["/v1/videos", "/v1/videos?q=%EA%B0%80%EC%9D%84", "/v1/videos?q=unlisted"] {
        let (_, v) = site.as_(&alice, Method::GET, path, None).await;
        let listed = ids(&v, "videos");
        assert!(!listed.contains(&unlisted) && !listed.contains(&private), "{path}: {v}");
        assert_eq!(listed.contains(&public), !path.ends_with("unlisted"), "{path}");
    }
    let (_, channel) = site.as_(&anonymous, Method::GET, "/v1/channels/alice", None).await;
    assert_eq!(ids(&channel, "videos"), vec![public.clone()]);

    // A second channel: its own page lists only what was uploaded to it.
    let (status, made) = site
        .as_(&alice, Method::POST, "/v1/me/channels", Some(json!({ "handle": "alice-music", "name": "앨리스 음악" })))
        .await;
    assert_eq!(status, 201, "{made}");
    let (status, v) =
        site.as_(&alice, Method::POST, "/v1/me/channels", Some(json!({ "handle": "ALICE", "name": "x" }))).await;
    assert_eq!((status, code(&v)), (StatusCode::CONFLICT, "handle_taken"), "handles are shared with accounts");
    let song = json!({"title": "노래", "filename": "a.mp4", "size": 10, "content_type": "video/mp4", "channel": "alice-music"});
    let (status, v) = site.as_(&alice, Method::POST, "/v1/videos", Some(song)).await;
    assert_eq!((status, &v["video"]["channel"]), (StatusCode::CREATED, &made["id"]), "{v}");
    let (_, music) = site.as_(&anonymous, Method::GET, "/v1/channels/alice-music", None).await;
    assert_eq!(ids(&music, "videos"), vec![v["video"]["id"].as_str().unwrap().to_owned()]);
    let (_, channel) = site.as_(&anonymous, Method::GET, "/v1/channels/alice", None).await;
    assert_eq!(ids(&channel, "videos"), vec![public.clone()]);
    let bob = site.sign_up("bob", "Bob").await;
    let stolen =
        json!({"title": "t", "filename": "a.mp4", "size": 10, "content_type": "video/mp4", "channel": "alice-music"});
    assert_eq!(code(&site.as_(&bob, Method::POST, "/v1/videos", Some(stolen)).await.1), "bad_channel");
    assert_eq!(channel["owner"]["display_name"], "Alice");
    // Unlisted plays by link; the owner sees all three.
    assert_eq!(site.as_(&anonymous, Method::GET, &format!("/v1/videos/{unlisted}"), None).await.0, 200);
    let (_, mine) = site.as_(&alice, Method::GET, "/v1/me/videos", None).await;
    assert_eq!(ids(&mine, "videos").len(), 4);
    // Making it public lists it.
    let (status, _) =
        site.as_(&alice, Method::PATCH, &format!("/v1/videos/{unlisted}"), Some(json!({ "privacy": "public" }))).await;
    assert_eq!(status, 200);
    let (_, v) = site.as_(&anonymous, Method::GET, "/v1/videos", None).await;
    assert!(ids(&v, "videos").contains(&unlisted));
    site.origin.running.stop().await;
}

#[tokio::test]
async fn api_tokens_are_scoped_shown_once_and_revocable_at_once() {
    let (site, _dir) = Site::start(|_| {}).await;
    let alice = site.sign_up("alice", "Alice").await;
    let (status, made) =
        site.as_(&alice, Method::POST, "/v1/me/tokens", Some(json!({ "name": "ingest", "scopes": ["upload"] }))).await;
    assert_eq!(status, 201, "{made}");
    let token = made["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("vt_"));
    let (_, listed) = site.as_(&alice, Method::GET, "/v1/me/tokens", None).await;
    assert_eq!(listed["tokens"][0]["id"], made["id"]);
    assert!(!listed.to_string().contains(&token), "never shown again");

    let body = json!({"title": "by script", "filename": "a.mp4", "size": 10, "content_type": "video/mp4"});
    let (status, v) = site.bearer(&token, Method::POST, "/v1/videos", Some(body.clone())).await;
    assert_eq!(status, 201, "{v}");
    let id = v["video"]["id"].as_str().unwrap().to_owned();
    assert_eq!(v["video"]["channel"], site.as_(&alice, Method::GET, "/v1/me", None).await.1["channels"][0]["id"]);
    let (status, v) =
        site.bearer(&token, Method::PATCH, &format!("/v1/videos/{id}"), Some(json!({ "title": "x" }))).await;
    assert_eq!((status, code(&v)), (StatusCode::FORBIDDEN, "scope"));
    let (status, v) =
        site.bearer(&token, Method::POST, "/v1/me/tokens", Some(json!({ "name": "n", "scopes": ["manage"] }))).await;
    assert_eq!(status, 403, "a token mints no token: {v}");

    // Another account cannot revoke it; its owner can, and it stops at once.
    let bob = site.sign_up("bob", "Bob").await;
    let path = format!("/v1/me/tokens/{}", made["id"].as_str().unwrap());
    assert_eq!(site.as_(&bob, Method::DELETE, &path, None).await.0, 404);
    assert_eq!(site.as_(&alice, Method::DELETE, &path, None).await.0, 204);
    let (status, v) = site.bearer(&token, Method::POST, "/v1/videos", Some(body)).await;
    assert_eq!((status, code(&v)), (StatusCode::UNAUTHORIZED, "bad_credentials"));
    // A forged token with a real id fails the same way.
    let forged = format!("vt_{}.{}", made["id"].as_str().unwrap(), "0".repeat(64));
    assert_eq!(site.bearer(&forged, Method::GET, "/v1/me", None).await.0, 401);
    site.origin.running.stop().await;
}

#[tokio::test]
async fn upload_quotas_are_refused_before_any_byte() {
    let (site, _dir) = Site::start(|c| {
        c.accounts.quota_day_bytes = 3000;
        c.accounts.quota_total_bytes = 10_000;
    })
    .await;
    let alice = site.sign_up("alice", "Alice").await;
    let create = |size: u64| json!({"title": "t", "filename": "a.mp4", "size": size, "content_type": "video/mp4"});
    assert_eq!(site.as_(&alice, Method::POST, "/v1/videos", Some(create(2500))).await.0, 201);
    let (status, v, headers) = site.call(&alice, Method::POST, "/v1/videos", Some(create(1000)), false).await;
    assert_eq!((status, code(&v)), (StatusCode::TOO_MANY_REQUESTS, "quota_day"), "{v}");
    // The 2500 bytes leave the window a day after they came: that is when to come back.
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((24 * 3600 - 60..=24 * 3600 + 1).contains(&retry), "Retry-After {retry}");
    // More than the day's quota alone never fits: no time to come back at.
    let (status, v, headers) = site.call(&alice, Method::POST, "/v1/videos", Some(create(3500)), false).await;
    assert_eq!((status, code(&v)), (StatusCode::TOO_MANY_REQUESTS, "quota_day"), "{v}");
    assert!(headers.get("retry-after").is_none());
    let (status, v) = site.as_(&alice, Method::POST, "/v1/videos", Some(create(8000))).await;
    assert_eq!((status, code(&v)), (StatusCode::PAYLOAD_TOO_LARGE, "quota_total"), "{v}");
    let (_, me) = site.as_(&alice, Method::GET, "/v1/me", None).await;
    assert_eq!((me["quota"]["day_bytes"].as_u64(), me["quota"]["day_limit"].as_u64()), (Some(2500), Some(3000)));
    site.origin.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_at_once_never_pass_the_quota_together() {
    let (site, _dir) = Site::start(|c| {
        c.accounts.quota_day_bytes = 3000;
        c.accounts.quota_total_bytes = 100_000;
    })
    .await;
    let alice = site.sign_up("alice", "Alice").await;
    let create = json!({"title": "t", "filename": "a.mp4", "size": 1000, "content_type": "video/mp4"});
    // Twelve at once, three of which fit: each checks the quota before any of them is created.
    let calls = (0..12).map(|_| site.as_(&alice, Method::POST, "/v1/videos", Some(create.clone())));
    let answers = futures_util::future::join_all(calls).await;
    let created = answers.iter().filter(|(status, _)| *status == 201).count();
    for (status, v) in &answers {
        let refused = *status == 429 && ["quota_day", "quota_contended"].contains(&code(v));
        assert!(*status == 201 || refused, "{status} {v}");
    }
    let (_, me) = site.as_(&alice, Method::GET, "/v1/me", None).await;
    assert_eq!(me["quota"]["day_bytes"].as_u64(), Some(created as u64 * 1000), "{me}");
    assert!(created <= 3, "{created} uploads of 1000 bytes were let into a 3000-byte day");
    // Those taken back left nothing behind: one at a time, the day fills to exactly three.
    let mut more = 0;
    while site.as_(&alice, Method::POST, "/v1/videos", Some(create.clone())).await.0 == 201 {
        more += 1;
        assert!(created + more <= 3, "over the quota one at a time");
    }
    assert_eq!(created + more, 3);
    site.origin.running.stop().await;
}

#[tokio::test]
async fn reports_reach_moderators_who_take_down_and_the_creator_sees_why() {
    let (site, _dir) = Site::start(|_| {}).await;
    let alice = site.sign_up("alice", "Alice").await;
    let bob = site.sign_up("bob", "Bob").await;
    let mod_ = site.sign_up("maria", "Maria").await;
    let id = site.create(&alice, "reported", "public").await;
    let (status, report) = site
        .as_(
            &bob,
            Method::POST,
            &format!("/v1/videos/{id}/reports"),
            Some(json!({ "reason": "copyright", "text": "mine" })),
        )
        .await;
    assert_eq!(status, 201, "{report}");
    let bad = json!({ "reason": "boring" });
    assert_eq!(site.as_(&bob, Method::POST, &format!("/v1/videos/{id}/reports"), Some(bad)).await.0, 400);
    assert_eq!(
        site.as_(
            &Browser::default(),
            Method::POST,
            &format!("/v1/videos/{id}/reports"),
            Some(json!({"reason": "spam"}))
        )
        .await
        .0,
        401
    );

    // Not a moderator yet: no queue. The bootstrap admin makes Maria one.
    assert_eq!(code(&site.as_(&mod_, Method::GET, "/v1/reports", None).await.1), "role");
    let (status, v) =
        site.bearer(DEV_CREATOR_TOKEN, Method::PUT, "/v1/users/maria/role", Some(json!({ "role": "moderator" }))).await;
    assert_eq!(status, 200, "{v}");
    let (_, queue) = site.as_(&mod_, Method::GET, "/v1/reports", None).await;
    assert_eq!(queue["reports"][0]["id"], report["id"]);
    assert_eq!(queue["reports"][0]["video"]["title"], "reported");
    assert_eq!(queue["reports"][0]["reporter_handle"], "bob");
    let (_, shown) = site.as_(&bob, Method::GET, &format!("/v1/videos/{id}"), None).await;
    assert_eq!(
        (shown["channel_handle"].as_str(), shown["channel_name"].as_str()),
        (Some("alice"), Some("Alice")),
        "{shown}"
    );

    let decide = format!("/v1/reports/{}/decision", report["id"].as_str().unwrap());
    let body = json!({ "resolution": "taken_down", "note": "the rights holder asked" });
    assert_eq!(site.as_(&bob, Method::POST, &decide, Some(body.clone())).await.0, 403);
    let (status, decided) = site.as_(&mod_, Method::POST, &decide, Some(body.clone())).await;
    assert_eq!((status, decided["resolution"].as_str()), (StatusCode::OK, Some("taken_down")), "{decided}");
    let (status, v) = site.as_(&mod_, Method::POST, &decide, Some(body)).await;
    assert_eq!((status, code(&v)), (StatusCode::CONFLICT, "decided"));

    // The video is gone; the audit row names the moderator and the report; the creator sees why.
    let video = site.origin.video(&id).await;
    assert_eq!(video["state"], "deleted");
    let audits = site.origin.running.app.meta.audits(&id).await.unwrap();
    let by = site.as_(&mod_, Method::GET, "/v1/me", None).await.1["user"]["id"].as_str().unwrap().to_owned();
    assert!(audits.iter().any(|a| a.actor == by && a.reason.contains(report["id"].as_str().unwrap())), "{audits:?}");
    let (_, mine) = site.as_(&alice, Method::GET, "/v1/me/videos", None).await;
    assert_eq!(mine["videos"][0]["moderation"][0]["note"], "the rights holder asked", "{mine}");
    let shown = mine["videos"][0]["moderation"][0].as_object().unwrap();
    assert!(
        !shown.contains_key("reporter") && !shown.contains_key("text"),
        "the creator never learns who reported: {mine}"
    );
    assert!(site.origin.running.app.people.open_reports(10).await.unwrap().is_empty());

    // Gating: a sensitive video needs consent to play (it is not ready, so consent gets 409).
    let other = site.create(&alice, "sensitive", "public").await;
    let (_, r2) = site
        .as_(&bob, Method::POST, &format!("/v1/videos/{other}/reports"), Some(json!({ "reason": "sensitive" })))
        .await;
    let gate = format!("/v1/reports/{}/decision", r2["id"].as_str().unwrap());
    assert_eq!(site.as_(&mod_, Method::POST, &gate, Some(json!({ "resolution": "gated" }))).await.0, 200);
    let (status, v) = site.as_(&bob, Method::POST, &format!("/v1/videos/{other}/playback"), Some(json!({}))).await;
    assert_eq!((status, code(&v)), (StatusCode::FORBIDDEN, "consent_required"));
    let (status, v) =
        site.as_(&bob, Method::POST, &format!("/v1/videos/{other}/playback"), Some(json!({ "consent": true }))).await;
    assert_eq!((status, code(&v)), (StatusCode::CONFLICT, "not_ready"));
    site.origin.running.stop().await;
}

#[tokio::test]
async fn a_view_counts_once_per_session_after_playback_and_not_on_a_refresh_loop() {
    let (site, _dir) = Site::start(|_| {}).await;
    let alice = site.sign_up("alice", "Alice").await;
    let id = site.create(&alice, "watched", "public").await;
    let app = site.origin.running.app.clone();
    let grant = |age: i64| {
        app.signer.playback_token(&origin::sign::PlaybackGrant {
            video: id.clone(),
            expires: origin::api::now_secs() + app.config.playback_ttl.as_secs() as i64 - age,
            viewer: None,
            scope: origin::sign::Scope::Delivery,
        })
    };
    let path = format!("/v1/videos/{id}/views");
    let (status, v) = site.as_(&alice, Method::POST, &path, Some(json!({ "token": grant(0) }))).await;
    assert_eq!((status, code(&v)), (StatusCode::CONFLICT, "too_early"), "a fresh grant has not played yet");
    assert_eq!(site.as_(&alice, Method::POST, &path, Some(json!({ "token": "forged" }))).await.0, 403);
    for (i, expected) in [(0, true), (1, false), (2, false)] {
        let (status, v) = site.as_(&alice, Method::POST, &path, Some(json!({ "token": grant(11 + i) }))).await;
        assert_eq!((status, v["counted"].as_bool()), (StatusCode::OK, Some(expected)), "{v}");
        assert_eq!(v["views"], 1);
    }
    // Not signed in: once per address and day, however many grants a refresh loop gets.
    for expected in [true, false, false] {
        let (_, v) = site.as_(&Browser::default(), Method::POST, &path, Some(json!({ "token": grant(12) }))).await;
        assert_eq!(v["counted"].as_bool(), Some(expected), "{v}");
    }
    assert_eq!(site.origin.video(&id).await["views"], 2);
    site.origin.running.stop().await;
}

#[tokio::test]
async fn the_bootstrap_token_is_an_admin_until_an_admin_account_exists() {
    let (site, _dir) = Site::start(|_| {}).await;
    let root = site.sign_up("root", "Root").await;
    let body = json!({"title": "t", "filename": "a.mp4", "size": 10, "content_type": "video/mp4"});
    assert_eq!(site.bearer(DEV_CREATOR_TOKEN, Method::POST, "/v1/videos", Some(body.clone())).await.0, 201);
    let (status, v) =
        site.bearer(DEV_CREATOR_TOKEN, Method::PUT, "/v1/users/root/role", Some(json!({ "role": "admin" }))).await;
    assert_eq!((status, v["role"].as_str()), (StatusCode::OK, Some("admin")), "{v}");
    let (status, v) = site.bearer(DEV_CREATOR_TOKEN, Method::POST, "/v1/videos", Some(body)).await;
    assert_eq!((status, code(&v)), (StatusCode::UNAUTHORIZED, "bootstrap_over"));
    // An admin's upload-only token (an ingest machine's) does not administer.
    let (_, made) =
        site.as_(&root, Method::POST, "/v1/me/tokens", Some(json!({ "name": "ingest", "scopes": ["upload"] }))).await;
    let token = made["token"].as_str().unwrap();
    let (status, v) = site.bearer(token, Method::PUT, "/v1/users/root/role", Some(json!({ "role": "viewer" }))).await;
    assert_eq!((status, code(&v)), (StatusCode::FORBIDDEN, "scope"));
    assert_eq!(code(&site.bearer(token, Method::GET, "/v1/reports", None).await.1), "scope");
    tokio::time::sleep(Duration::from_millis(1)).await;
    site.origin.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moderators_takedown_is_restorable_while_retained_and_removed_after() {
    let (site, dir) = Site::start(|_| {}).await;
    let src = common::clip(dir.path(), "src.mp4", "320x180", 2);
    let data = std::fs::read(&src).unwrap();
    let alice = site.sign_up("alice", "Alice").await;
    let maria = site.sign_up("maria", "Maria").await;
    site.bearer(DEV_CREATOR_TOKEN, Method::PUT, "/v1/users/maria/role", Some(json!({ "role": "moderator" }))).await;
    let body = json!({"title": "restorable", "filename": "a.mp4", "size": data.len(), "content_type": "video/mp4"});
    let (_, created) = site.as_(&alice, Method::POST, "/v1/videos", Some(body)).await;
    let id = created["video"]["id"].as_str().unwrap().to_owned();
    site.origin.tus(&created).upload(&data, 1 << 20).await;
    site.origin.wait_state(&id, "ready", 180).await;
    let master = |grant: &Value| grant["master_url"].as_str().unwrap().to_owned();
    let grant = site.origin.playback(&id).await;
    assert_eq!(site.origin.client.get(master(&grant)).send().await.unwrap().status(), 200);

    // The creator picks another poster: playback grants name it, and it is there.
    let (status, v) = site.as_(&alice, Method::PATCH, &format!("/v1/videos/{id}"), Some(json!({ "poster": 2 }))).await;
    assert_eq!((status, v["poster"].as_u64()), (StatusCode::OK, Some(2)), "{v}");
    let (status, v) = site.as_(&alice, Method::PATCH, &format!("/v1/videos/{id}"), Some(json!({ "poster": 9 }))).await;
    assert_eq!((status, code(&v)), (StatusCode::BAD_REQUEST, "bad_field"));
    let grant = site.origin.playback(&id).await;
    let poster = grant["poster_url"].as_str().unwrap();
    assert!(poster.ends_with("/poster-2.jpg"), "{grant}");
    assert_eq!(grant["poster_choices"].as_array().unwrap().len(), encoder::layout::POSTER_CHOICES);
    let picture = site.origin.client.get(poster).send().await.unwrap();
    assert_eq!((picture.status(), picture.headers()["content-type"].to_str().unwrap()), (StatusCode::OK, "image/jpeg"));

    // Taken down by the moderator: unservable at once, but kept.
    let (status, v) =
        site.as_(&maria, Method::DELETE, &format!("/v1/videos/{id}"), Some(json!({ "reason": "looked bad" }))).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["video"]["state"], "deleted");
    let until = v["video"]["retained_until"].as_i64().expect("retained");
    let grace = site.origin.running.app.config.accounts.restore_grace.as_millis() as i64;
    assert!((until - origin::meta::now() - grace).abs() < 60_000, "{until}");
    assert_eq!(site.origin.client.get(master(&grant)).send().await.unwrap().status(), 410);
    let (status, v) = site.as_(&alice, Method::POST, &format!("/v1/videos/{id}/restore"), None).await;
    assert_eq!((status, code(&v)), (StatusCode::FORBIDDEN, "role"), "a creator does not restore");
    // A second moderator takedown (another report, a retry) leaves it restorable.
    let (status, v) = site.as_(&maria, Method::DELETE, &format!("/v1/videos/{id}"), None).await;
    assert_eq!((status, code(&v)), (StatusCode::GONE, "deleted"));
    let playlist = format!("{}{}", origin::storage::published(&id), encoder::layout::MASTER_PLAYLIST);
    assert!(site.origin.running.app.blobs.exists(&playlist).await.unwrap(), "still kept");

    // Restored: playable again from the same bytes, audited.
    let (status, v) =
        site.as_(&maria, Method::POST, &format!("/v1/videos/{id}/restore"), Some(json!({ "reason": "mistake" }))).await;
    assert_eq!((status, v["state"].as_str()), (StatusCode::OK, Some("ready")), "{v}");
    let grant = site.origin.playback(&id).await;
    assert_eq!(site.origin.client.get(master(&grant)).send().await.unwrap().status(), 200);
    let actions: Vec<String> =
        site.origin.running.app.meta.audits(&id).await.unwrap().into_iter().map(|a| a.action).collect();
    assert_eq!(actions, ["takedown", "takedown", "restore"]);

    // Taken down again and left past its retention: removed for good, not restorable.
    assert_eq!(site.as_(&maria, Method::DELETE, &format!("/v1/videos/{id}"), None).await.0, 200);
    let app = &site.origin.running.app;
    assert!(app.blobs.exists(&playlist).await.unwrap(), "kept while retained");
    assert_eq!(origin::lifecycle::apply::expire_retained(app, origin::meta::now()).await.unwrap(), 0);
    let later = origin::meta::now() + grace + 1;
    assert_eq!(origin::lifecycle::apply::expire_retained(app, later).await.unwrap(), 1);
    assert!(!app.blobs.exists(&playlist).await.unwrap(), "removed after");
    assert!(app.meta.key(&id).await.unwrap().is_none(), "the key went with the bytes");
    let (status, v) = site.as_(&maria, Method::POST, &format!("/v1/videos/{id}/restore"), None).await;
    assert_eq!((status, code(&v)), (StatusCode::CONFLICT, "not_restorable"));

    // A creator's own takedown is for good at once.
    let (_, created) = site
        .as_(
            &alice,
            Method::POST,
            "/v1/videos",
            Some(json!({"title": "t", "filename": "a.mp4", "size": 10, "content_type": "video/mp4"})),
        )
        .await;
    let own = created["video"]["id"].as_str().unwrap().to_owned();
    let (_, v) = site.as_(&alice, Method::DELETE, &format!("/v1/videos/{own}"), None).await;
    assert!(v["video"]["retained_until"].is_null(), "{v}");
    site.origin.running.stop().await;
}
