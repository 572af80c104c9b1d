//! The key service (P18): content keys for HLS AES-128 (`GET /v1/keys/{id}`) and W3C
//! ClearKey licences for CENC (`POST /v1/keys/{id}/licence`). Viewers reach it directly at
//! `key_url`, never through a PoP, with the playback's key token (`Authorization: Bearer`, or
//! `?token=` for players that cannot set a header). Every answer is `no-store`; each token
//! gets a bounded number of answers per minute; issuance and refusals are counted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{StatusCode, header};
use serde::Deserialize;

use super::{now_secs, query};
use crate::app::App;
use crate::error::{Error, Kind, Result};
use crate::sign::{Scope, query_param};
use crate::web::{self, Request, Response};

/// Answers one key token may get per minute: a player asks once per protection system and
/// again on renewals; a token asking more is being shared or replayed.
const PER_TOKEN_PER_MINUTE: u32 = 30;
/// Largest licence request body (a handful of key ids).
const LICENCE_BODY_LIMIT: usize = 4096;

/// `GET /v1/keys/{id}`: the 16 bytes of the video's content key.
pub async fn key(app: &Arc<App>, req: Request, id: &str) -> Result<Response> {
    counted(app, "aes128", raw_key(app, req, id).await)
}

async fn raw_key(app: &App, req: Request, id: &str) -> Result<Response> {
    let key = authorised_key(app, &req, id).await?;
    let mut r = Response::new(web::full(key.to_vec()));
    web::set(&mut r, header::CONTENT_TYPE.as_str(), "application/octet-stream");
    no_store(&mut r);
    Ok(r)
}

#[derive(Deserialize)]
struct LicenceRequest {
    kids: Vec<String>,
    #[serde(rename = "type", default)]
    session: Option<String>,
}

/// `POST /v1/keys/{id}/licence`: the W3C ClearKey exchange. `{"kids": [...], "type":
/// "temporary"}` gets `{"keys": [{"kty": "oct", "kid", "k"}], "type": "temporary"}` with only
/// the keys of this video among those asked for.
pub async fn licence(app: &Arc<App>, req: Request, id: &str) -> Result<Response> {
    counted(app, "clearkey", clearkey(app, req, id).await)
}

async fn clearkey(app: &App, req: Request, id: &str) -> Result<Response> {
    let key = authorised_key(app, &req, id).await?;
    let body = web::read_body(req, LICENCE_BODY_LIMIT).await?;
    let asked: LicenceRequest = serde_json::from_slice(&body)
        .map_err(|e| Error::bad_request("bad_licence_request", format!("not a ClearKey licence request: {e}")))?;
    if asked.session.as_deref().is_some_and(|t| t != "temporary") {
        return Err(Error::bad_request("unsupported_session", "only temporary ClearKey sessions are licensed"));
    }
    let kid = URL_SAFE_NO_PAD.encode(encoder::package::cenc::CencKey::from_content_key(&key).kid);
    if !asked.kids.iter().any(|k| k.trim_end_matches('=') == kid) {
        return Err(Error::refused(Kind::NotFound, "unknown_kid", "none of the key ids asked for is this video's"));
    }
    let answer = serde_json::json!({
        "keys": [{ "kty": "oct", "kid": kid, "k": URL_SAFE_NO_PAD.encode(key) }],
        "type": "temporary",
    });
    let mut r = web::json(StatusCode::OK, &answer);
    no_store(&mut r);
    Ok(r)
}

/// The key token checked (scope, video, expiry), the rate respected and the video servable:
/// the content key.
async fn authorised_key(app: &App, req: &Request, id: &str) -> Result<[u8; 16]> {
    let token = key_token(req)?;
    app.signer.verify_playback(token, id, Scope::Keys, now_secs())?;
    app.key_rate.admit(token, now_secs() / 60)?;
    super::objects::servable(app, id).await?;
    app.keys.content_key(app.meta.as_ref(), id).await?.ok_or_else(|| Error::not_found("key"))
}

/// Counts an answer of `kind` as issued, or by the code it was refused with.
fn counted(app: &App, kind: &'static str, answer: Result<Response>) -> Result<Response> {
    let outcome = match &answer {
        Ok(_) => "issued",
        Err(e) => e.code(),
    };
    app.metrics.keys.get_or_create(&vec![("kind", kind.to_owned()), ("outcome", outcome.to_owned())]).inc();
    answer
}

fn key_token(req: &Request) -> Result<&str> {
    super::bearer(req)
        .or_else(|| query_param(query(req), "token"))
        .ok_or_else(|| Error::refused(Kind::Unauthenticated, "unauthenticated", "the playback's key token is required"))
}

fn no_store(r: &mut Response) {
    // Never stored by a browser, a proxy or a PoP.
    web::set(r, header::CACHE_CONTROL.as_str(), "no-store, private");
}

/// Answers per key token per minute, in this process. The map holds one minute only, so it
/// stays as small as the number of tokens seen in a minute.
#[derive(Debug, Default)]
pub struct KeyRate {
    counts: Mutex<(i64, HashMap<String, u32>)>,
}

impl KeyRate {
    /// Counts one answer for `token` in `minute`; `429 key_rate_limited` past the budget.
    pub fn admit(&self, token: &str, minute: i64) -> Result<()> {
        let mut guard = self.counts.lock().expect("key rate lock");
        let (current, counts) = &mut *guard;
        if *current != minute {
            *current = minute;
            counts.clear();
        }
        let signature = token.rsplit('.').next().unwrap_or(token);
        let n = counts.entry(signature.to_owned()).or_insert(0);
        *n += 1;
        if *n > PER_TOKEN_PER_MINUTE {
            return Err(Error::refused(
                Kind::RateLimited,
                "key_rate_limited",
                format!("at most {PER_TOKEN_PER_MINUTE} key answers per token per minute"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_gets_a_bounded_number_of_answers_per_minute() {
        let rate = KeyRate::default();
        for _ in 0..PER_TOKEN_PER_MINUTE {
            rate.admit("v2.k1.k.vid.1.-.sig", 7).unwrap();
        }
        assert_eq!(rate.admit("v2.k1.k.vid.1.-.sig", 7).unwrap_err().code(), "key_rate_limited");
        rate.admit("v2.k1.k.vid.1.-.other", 7).unwrap();
        rate.admit("v2.k1.k.vid.1.-.sig", 8).unwrap();
    }
}
