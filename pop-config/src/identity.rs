//! `[pop]`: who this PoP is, for logs, metrics and the origin's reports.

use toml::de::DeValue;

use crate::defaults;
use crate::document::{Section, boolean, string};

/// The PoP's name and where it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Unique among the platform's PoPs; `[A-Za-z0-9_-]`, 1 to 64 characters.
    pub id: String,
    /// The region it serves; same alphabet.
    pub region: String,
    /// Run by a partner (an ISP) rather than by us. A partner PoP serves video objects and
    /// takes tus uploads (each authorised by its own pre-signed URL) and nothing else: no
    /// pages and no video API pass-through, which would put creators' bearer tokens and
    /// script it could rewrite in its hands. The origin's registry says the same of it.
    pub partner: bool,
    /// The base URL viewers and creators reach this PoP at (`https://host[:port]`), reported
    /// to the origin, which steers viewers and creators to it. `None`: the PoP is not steered
    /// to (it serves whoever is sent to it by a static URL).
    pub public_url: Option<String>,
}

pub(crate) fn read(mut s: Section<'_>) -> Identity {
    let id = s.field("id", name).unwrap_or_else(|| defaults::POP_ID.to_owned());
    let region = s.field("region", name).unwrap_or_else(|| defaults::POP_REGION.to_owned());
    let partner = s.field("partner", boolean).unwrap_or(false);
    let public_url = s.field("public_url", public_url);
    s.finish();
    Identity { id, region, partner, public_url }
}

/// `http(s)://host[:port]`: where viewers reach this PoP; a path would not survive the
/// steering's host replacement.
fn public_url(v: &DeValue<'_>) -> Result<String, String> {
    let text = string(v)?;
    let url = crate::origin::origin_url(text).map_err(|why| format!("`{text}` is not a URL: {why}"))?;
    let authority = url.split_once("://").map_or("", |(_, rest)| rest);
    if authority.contains('/') {
        return Err(format!("`{text}` has a path: give scheme, host and port only"));
    }
    Ok(url)
}

/// A name that is safe in metric labels, file names and the `.`-separated token format:
/// `[A-Za-z0-9_-]`, 1 to 64 characters.
pub(crate) fn name(v: &DeValue<'_>) -> Result<String, String> {
    let text = string(v)?;
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if (1..=64).contains(&text.len()) && text.chars().all(allowed) {
        Ok(text.to_owned())
    } else {
        Err(format!("`{text}` is not a valid name (1 to 64 of A-Z, a-z, 0-9, `_`, `-`)"))
    }
}
