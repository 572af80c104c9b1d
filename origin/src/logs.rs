//! Log output. Plain-text lines are one event each: every field value is escaped, so user
//! text (titles, file names, JSON keys echoed in error messages) cannot end a line or start
//! a forged one. `ORIGIN_LOG_FORMAT=json` writes JSON lines instead (JSON escapes by itself).
//! [`redact`] is the one function that takes capabilities out of URLs before they are logged.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;

/// What replaces a secret in a logged URL.
pub const REDACTED: &str = "…redacted…";

/// Query parameters that are capabilities: upload URL signatures and tokens.
const SECRET_PARAMS: [&str; 2] = ["sig", "token"];

/// Installs the process's subscriber: `ORIGIN_LOG` filter (default `info`), plain text on
/// stderr with escaped fields, or JSON with `ORIGIN_LOG_FORMAT=json`.
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ORIGIN_LOG").unwrap_or_else(|_| "info".into());
    // Colours only for a terminal: log files (`make run` writes `data/origin.log`) stay plain.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    if std::env::var("ORIGIN_LOG_FORMAT").as_deref() == Ok("json") {
        logs.json().init();
    } else {
        logs.fmt_fields(EscapedFields).init();
    }
}

/// A URL or `path?query` with capabilities replaced by [`REDACTED`]: the token segment of
/// `/p/{token}/...` and the values of `sig=` and `token=`.
pub fn redact(url: &str) -> String {
    let (before_query, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    // The path starts after `scheme://authority` when there is one.
    let path_start = before_query.find("://").map_or(0, |i| {
        let rest = i + 3;
        before_query[rest..].find('/').map_or(before_query.len(), |p| rest + p)
    });
    let (head, path) = before_query.split_at(path_start);
    let mut out = String::with_capacity(url.len());
    out.push_str(head);
    match path.strip_prefix("/p/") {
        Some(rest) => {
            out.push_str("/p/");
            out.push_str(REDACTED);
            if let Some(slash) = rest.find('/') {
                out.push_str(&rest[slash..]);
            }
        }
        None => out.push_str(path),
    }
    if let Some(query) = query {
        out.push('?');
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            match pair.split_once('=') {
                Some((key, _)) if SECRET_PARAMS.contains(&key) => {
                    out.push_str(key);
                    out.push('=');
                    out.push_str(REDACTED);
                }
                _ => out.push_str(pair),
            }
        }
    }
    out
}

/// `text` with line breaks and other control characters written as escapes (`\n`, `\r`,
/// `\t`, `\u{1b}`), so it stays on one line and cannot drive a terminal.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// The plain-text field formatter: `message name=value ...` like the default one, with
/// every value passed through [`escape`].
#[derive(Debug, Clone, Copy, Default)]
pub struct EscapedFields;

impl<'writer> FormatFields<'writer> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = EscapingVisitor { writer, first: true, result: Ok(()) };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct EscapingVisitor<'writer> {
    writer: Writer<'writer>,
    first: bool,
    result: fmt::Result,
}

impl EscapingVisitor<'_> {
    fn write(&mut self, field: &Field, rendered: &str) {
        if self.result.is_err() {
            return;
        }
        let separator = if self.first { "" } else { " " };
        self.first = false;
        let value = escape(rendered);
        self.result = match field.name() {
            "message" => write!(self.writer, "{separator}{value}"),
            name => write!(self.writer, "{separator}{}={value}", name.strip_prefix("r#").unwrap_or(name)),
        };
    }
}

impl Visit for EscapingVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.write(field, value);
        } else {
            self.write(field, &format!("{value:?}"));
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.write(field, &value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.write(field, &format!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_signatures_are_redacted() {
        assert_eq!(redact("/p/v1.abc.def/vid/master.m3u8"), "/p/…redacted…/vid/master.m3u8");
        assert_eq!(redact("/p/v1.abc.def"), "/p/…redacted…");
        assert_eq!(
            redact("/v1/uploads/u1?video=v&max=10&exp=99&sig=deadbeef"),
            "/v1/uploads/u1?video=v&max=10&exp=99&sig=…redacted…"
        );
        assert_eq!(
            redact("https://pop.example/p/tok/vid/key?token=x&a=b"),
            "https://pop.example/p/…redacted…/vid/key?token=…redacted…&a=b"
        );
        assert_eq!(redact("http://p/abc"), "http://p/abc", "a host named p is not a token path");
        assert_eq!(redact("/v1/videos?q=sig"), "/v1/videos?q=sig");
        assert_eq!(redact("/v1/videos?signature=1"), "/v1/videos?signature=1");
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape("plain 한글"), "plain 한글");
        assert_eq!(escape("a\nb\r\tc\u{1b}[31m"), "a\\nb\\r\\tc\\u{1b}[31m");
    }

    #[test]
    fn a_formatted_event_is_one_line() {
        let sink = ::tests::logs::Captured::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .fmt_fields(EscapedFields)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("request", path = %"/x\nERROR forged span");
            let _in = span.enter();
            let title = "Cats\n2030-01-01T00:00:00Z ERROR origin: forged";
            tracing::info!(%title, debug = ?title, "created {}", "line\nbreak");
        });
        let out = sink.text();
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(out.contains("title=Cats\\n2030"), "{out}");
        assert!(out.contains("created line\\nbreak"), "{out}");
        assert!(out.contains("path=/x\\nERROR forged span"), "{out}");
    }
}
