//! The titles viewers choose from: a list of master playlist URLs (or paths), or the
//! origin's own catalogue (`GET /v1/videos`, paged) with a playback token requested per
//! title when a viewer first needs it, and renewed before it expires. Every master URL is
//! moved onto the target PoP, so one list measures nginx and the edge alike; only a title
//! whose playlist failed there is asked for again and played where the origin sends it
//! ([`Catalogue::regrant`], with content steering).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::Url;
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::error::{Error, Result};

/// Page size when listing the origin (its maximum).
const PAGE: usize = 100;

/// A playback token is renewed this long before it expires.
const RENEW_BEFORE: Duration = Duration::from_secs(30);

/// The titles.
#[derive(Debug)]
pub struct Catalogue {
    titles: Vec<Title>,
    api: Option<Api>,
    target: Url,
}

#[derive(Debug)]
enum Title {
    Url(Url),
    Video { id: String, master: Mutex<Option<Grant>> },
}

/// A title's playback grant as viewers use it.
#[derive(Debug)]
struct Grant {
    /// The master playlist URL.
    url: Url,
    /// When its token expires, seconds since the Unix epoch.
    expires: u64,
    /// Where the origin issued it (after a [`Catalogue::regrant`]), not moved onto the target.
    as_issued: bool,
}

#[derive(Debug)]
struct Api {
    origin: Url,
    client: reqwest::Client,
}

#[derive(Deserialize)]
struct Page {
    videos: Vec<Video>,
}

#[derive(Deserialize)]
struct Video {
    id: String,
    state: String,
}

#[derive(Deserialize)]
struct Playback {
    master_url: String,
    expires_at: Option<u64>,
}

impl Catalogue {
    /// From a list: one absolute URL or absolute path per line; `#` comments and blank lines
    /// are skipped.
    pub fn from_list(text: &str, target: &Url, limit: Option<usize>) -> Result<Self> {
        let mut titles = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let url = if line.starts_with('/') { target.join(line) } else { Url::parse(line) }
                .map_err(|e| Error::Catalogue(format!("line {}: `{line}`: {e}", n + 1)))?;
            titles.push(Title::Url(rebase(&url, target)));
            if limit.is_some_and(|l| titles.len() >= l) {
                break;
            }
        }
        if titles.is_empty() {
            return Err(Error::Catalogue("the list names no master playlist".into()));
        }
        Ok(Self { titles, api: None, target: target.clone() })
    }

    /// From the origin's API: every `ready` video, newest first.
    pub async fn from_origin(
        client: reqwest::Client,
        origin: &Url,
        target: &Url,
        limit: Option<usize>,
    ) -> Result<Self> {
        let mut titles = Vec::new();
        let mut offset = 0;
        loop {
            let mut url = origin.join("/v1/videos").map_err(|e| Error::Catalogue(e.to_string()))?;
            url.query_pairs_mut().append_pair("limit", &PAGE.to_string()).append_pair("offset", &offset.to_string());
            let page: Page =
                json(client.get(url.clone())).await.map_err(|e| Error::Catalogue(format!("{url}: {e}")))?;
            let n = page.videos.len();
            titles.extend(
                page.videos
                    .into_iter()
                    .filter(|v| v.state == "ready")
                    .map(|v| Title::Video { id: v.id, master: Mutex::new(None) }),
            );
            if let Some(l) = limit {
                titles.truncate(l);
            }
            offset += n;
            if n < PAGE || limit.is_some_and(|l| titles.len() >= l) {
                break;
            }
        }
        if titles.is_empty() {
            return Err(Error::Catalogue(format!("{origin} has no ready video")));
        }
        Ok(Self { titles, api: Some(Api { origin: origin.clone(), client }), target: target.clone() })
    }

    /// Number of titles.
    pub fn len(&self) -> usize {
        self.titles.len()
    }

    /// Never true (an empty catalogue is refused).
    pub fn is_empty(&self) -> bool {
        self.titles.is_empty()
    }

    /// Whether titles come from the origin's API (so a new grant can be asked for).
    pub fn has_api(&self) -> bool {
        self.api.is_some()
    }

    /// Title `i`'s master playlist URL on the target; may ask the origin for a token.
    pub async fn master_url(&self, i: usize) -> Result<Url, String> {
        match &self.titles[i] {
            Title::Url(u) => Ok(u.clone()),
            Title::Video { id, master } => {
                // Held across the request, so viewers arriving together make one token request.
                let mut cached = master.lock().await;
                let now = unix_now();
                if let Some(g) = cached.as_ref()
                    && now + RENEW_BEFORE.as_secs() < g.expires
                {
                    return Ok(g.url.clone());
                }
                // A renewal keeps the title where its last grant was played.
                let as_issued = cached.as_ref().is_some_and(|g| g.as_issued);
                let grant = self.grant(id, as_issued, now).await?;
                let url = grant.url.clone();
                *cached = Some(grant);
                Ok(url)
            }
        }
    }

    /// A new grant for title `i`, whose playlist at `failed` could not be loaded (its PoP is
    /// down), played where the origin issues it: the origin's steering names a live PoP of
    /// the caller's region, as a page asking the API again would be told. Viewers of the
    /// title that failed at the same URL share one new grant; a title from a list has none.
    pub async fn regrant(&self, i: usize, failed: &Url) -> Result<Url, String> {
        let Title::Video { id, master } = &self.titles[i] else { return Err("a listed title has no grant".into()) };
        let mut cached = master.lock().await;
        let now = unix_now();
        if let Some(g) = cached.as_ref()
            && g.url != *failed
            && now + RENEW_BEFORE.as_secs() < g.expires
        {
            return Ok(g.url.clone());
        }
        let grant = self.grant(id, true, now).await?;
        let url = grant.url.clone();
        *cached = Some(grant);
        Ok(url)
    }

    async fn grant(&self, id: &str, as_issued: bool, now: u64) -> Result<Grant, String> {
        let api = self.api.as_ref().ok_or("no origin API")?;
        let url = api.origin.join(&format!("/v1/videos/{id}/playback")).map_err(|e| e.to_string())?;
        let p: Playback = json(api.client.post(url)).await?;
        let issued = api.origin.join(&p.master_url).map_err(|e| format!("master_url: {e}"))?;
        let url = if as_issued { issued } else { rebase(&issued, &self.target) };
        Ok(Grant { url, expires: p.expires_at.unwrap_or(now + 3600), as_issued })
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

async fn json<T: serde::de::DeserializeOwned>(request: reqwest::RequestBuilder) -> Result<T, String> {
    let r = request.send().await.map_err(|e| e.to_string())?;
    let status = r.status();
    let body = r.bytes().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("{status}: {}", String::from_utf8_lossy(&body[..body.len().min(300)])));
    }
    serde_json::from_slice(&body).map_err(|e| format!("unexpected answer: {e}"))
}

/// `url` with the scheme, host and port of `target` (path and query kept).
pub fn rebase(url: &Url, target: &Url) -> Url {
    let mut out = target.clone();
    out.set_path(url.path());
    out.set_query(url.query());
    out.set_fragment(None);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn list_lines_become_urls_on_the_target() {
        let target = url("https://pop.example:8443");
        let c = Catalogue::from_list(
            "# masters\n/p/t/a/master.m3u8\n\nhttp://origin:8080/p/t/b/master.m3u8?x=1\n/c/master.m3u8\n",
            &target,
            Some(2),
        )
        .unwrap();
        assert_eq!(c.len(), 2);
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        assert_eq!(rt.block_on(c.master_url(0)).unwrap().as_str(), "https://pop.example:8443/p/t/a/master.m3u8");
        assert_eq!(rt.block_on(c.master_url(1)).unwrap().as_str(), "https://pop.example:8443/p/t/b/master.m3u8?x=1");
    }

    #[test]
    fn bad_lists_are_refused() {
        let target = url("http://pop");
        assert!(Catalogue::from_list("# nothing\n\n", &target, None).is_err());
        let e = Catalogue::from_list("/ok\nnot a url\n", &target, None).unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
    }
}
