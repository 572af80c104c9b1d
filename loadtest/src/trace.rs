//! The request trace (`loadtest run --trace FILE`, `loadtest synth-trace`): one line per
//! object request, so the PoP's cache can be measured afterwards against other eviction
//! policies replaying the very same requests (`replay`).
//!
//! The format is tab-separated text with a header line, easy to read with `awk` or a
//! spreadsheet and cheap to write (tabs shown here as `→`):
//!
//! ```text
//! at_ms→server→key→bytes→x_cache
//! 1532→pop-a.example:8443→/vid/720p/seg_00003.m4s→1048576→hit-memory
//! ```
//!
//! `at_ms` is when the request was sent, milliseconds since the run started (lines are
//! written as requests complete, so they are nearly but not exactly in that order); `server`
//! the `host[:port]` it went to; `key` the object's path: the URL path without the query
//! string and without a playback token's `/p/{token}` prefix (a capability stays out of the
//! file, and every viewer's request of an object is one key, as in the PoP's cache);
//! `bytes` the body length; `x_cache` the value
//! the PoP answered, `-` when there was none. Only successful (2xx) fetches with a body are
//! traced: a failed request says nothing about what a cache would have held.
//!
//! During a run lines go through a channel to a writer thread with a buffered file, so a
//! viewer only pays for formatting one small record and a channel send.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use crate::error::{Error, Result};

/// The first line of every trace file.
pub const HEADER: &str = "at_ms\tserver\tkey\tbytes\tx_cache";

/// One object request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceRecord {
    /// When it was sent, milliseconds since the start.
    pub at_ms: u64,
    /// `host[:port]` it was sent to: the PoP.
    pub server: String,
    /// The URL path, without the query string.
    pub key: String,
    /// Body bytes.
    pub bytes: u64,
    /// `x-cache`, as answered.
    pub x_cache: Option<String>,
}

impl TraceRecord {
    /// The record as one line (without the newline). Tabs and line breaks inside a field
    /// (only a header value could hold one) become spaces, so every line has five fields.
    pub fn line(&self) -> String {
        let x_cache = self.x_cache.as_deref().map_or_else(|| "-".to_owned(), clean);
        format!("{}\t{}\t{}\t{}\t{x_cache}", self.at_ms, clean(&self.server), clean(&self.key), self.bytes)
    }

    /// Parses one line written by [`TraceRecord::line`].
    pub fn parse(line: &str) -> Result<Self, String> {
        let fields: Vec<&str> = line.split('\t').collect();
        let [at_ms, server, key, bytes, x_cache] = fields[..] else {
            return Err(format!("{} fields where 5 belong ({HEADER})", fields.len()));
        };
        let number =
            |name: &str, text: &str| text.parse::<u64>().map_err(|_| format!("{name} `{text}` is not a number"));
        Ok(Self {
            at_ms: number("at_ms", at_ms)?,
            server: server.to_owned(),
            key: key.to_owned(),
            bytes: number("bytes", bytes)?,
            x_cache: (x_cache != "-").then(|| x_cache.to_owned()),
        })
    }
}

/// The object a request path names: `/p/{token}/{video}/...` is `/{video}/...` (the PoP's
/// cache key leaves the token out too); any other path is itself.
pub fn object_key(path: &str) -> &str {
    match path.strip_prefix("/p/").and_then(|rest| rest.find('/').map(|i| &rest[i..])) {
        Some(object) if object.len() > 1 => object,
        _ => path,
    }
}

fn clean(field: &str) -> String {
    field.replace(['\t', '\n', '\r'], " ")
}

/// Writes `records` to `path` (replacing it) with the header; returns the lines written.
pub fn write_file(path: &Path, records: impl IntoIterator<Item = TraceRecord>) -> Result<u64> {
    let file = File::create(path).map_err(Error::io(path))?;
    let mut out = BufWriter::new(file);
    let mut lines = 0;
    let write = || -> std::io::Result<()> {
        writeln!(out, "{HEADER}")?;
        for r in records {
            writeln!(out, "{}", r.line())?;
            lines += 1;
        }
        out.flush()
    };
    write().map_err(Error::io(path))?;
    Ok(lines)
}

/// Reads a trace file: the header, then one record a line (blank lines and `#` comments
/// are skipped, so traces can be concatenated or annotated).
pub fn read_file(path: &Path) -> Result<Vec<TraceRecord>> {
    let file = File::open(path).map_err(Error::io(path))?;
    let bad =
        |n: usize, message: String| Error::Trace { path: path.to_owned(), message: format!("line {n}: {message}") };
    let mut records = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(Error::io(path))?;
        let line = line.trim_end_matches('\r');
        if line.is_empty() || line.starts_with('#') || line == HEADER {
            continue;
        }
        records.push(TraceRecord::parse(line).map_err(|m| bad(i + 1, m))?);
    }
    Ok(records)
}

enum Message {
    Record(TraceRecord),
    Finish(mpsc::SyncSender<std::io::Result<u64>>),
}

/// The run's trace file, written by its own thread: [`TraceWriter::record`] only sends.
#[derive(Debug)]
pub struct TraceWriter {
    path: PathBuf,
    sender: mpsc::Sender<Message>,
}

impl TraceWriter {
    /// Creates (or replaces) `path` and writes the header, so a bad path stops the run
    /// before any viewer starts.
    pub fn create(path: &Path) -> Result<Self> {
        let file = File::create(path).map_err(Error::io(path))?;
        let mut out = BufWriter::new(file);
        writeln!(out, "{HEADER}").map_err(Error::io(path))?;
        let (sender, receiver) = mpsc::channel();
        std::thread::Builder::new()
            .name("trace-writer".into())
            .spawn(move || write_until_finished(out, &receiver))
            .map_err(Error::io(path))?;
        Ok(Self { path: path.to_owned(), sender })
    }

    /// Queues one line.
    pub fn record(&self, record: TraceRecord) {
        // Only fails once the writer has finished: a request completing after the report.
        let _ = self.sender.send(Message::Record(record));
    }

    /// Writes what is queued, flushes, and stops the writer; returns the lines written, or
    /// the first write error.
    pub fn finish(&self) -> Result<u64> {
        let (reply, answer) = mpsc::sync_channel(1);
        let gone = || Error::Trace { path: self.path.clone(), message: "the trace writer has stopped".into() };
        self.sender.send(Message::Finish(reply)).map_err(|_| gone())?;
        answer.recv().map_err(|_| gone())?.map_err(Error::io(&self.path))
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The writer thread: lines in arrival order until told to finish. After a write error it
/// keeps draining (viewers must not block) and reports that error at the end.
fn write_until_finished(mut out: BufWriter<File>, receiver: &mpsc::Receiver<Message>) {
    let mut lines = 0u64;
    let mut failed: Option<std::io::Error> = None;
    while let Ok(message) = receiver.recv() {
        match message {
            Message::Record(r) if failed.is_none() => match writeln!(out, "{}", r.line()) {
                Ok(()) => lines += 1,
                Err(e) => failed = Some(e),
            },
            Message::Record(_) => {}
            Message::Finish(reply) => {
                let result = match failed.take() {
                    Some(e) => Err(e),
                    None => out.flush().map(|()| lines),
                };
                let _ = reply.send(result);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn keys_leave_the_playback_token_out() {
        assert_eq!(object_key("/p/v2.k1.d.vid.99.-.sig/vid/720p/seg_00003.m4s"), "/vid/720p/seg_00003.m4s");
        assert_eq!(object_key("/p/another-token/vid/720p/seg_00003.m4s"), "/vid/720p/seg_00003.m4s");
        assert_eq!(object_key("/vid/master.m3u8"), "/vid/master.m3u8");
        assert_eq!(object_key("/p/only-a-token"), "/p/only-a-token");
        assert_eq!(object_key("/p/tok/"), "/p/tok/");
    }

    use super::*;

    fn record(at_ms: u64, key: &str, x_cache: Option<&str>) -> TraceRecord {
        TraceRecord {
            at_ms,
            server: "pop-a:8443".into(),
            key: key.into(),
            bytes: 1000 + at_ms,
            x_cache: x_cache.map(Into::into),
        }
    }

    #[test]
    fn a_file_written_by_the_run_reads_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trace.tsv");
        let writer = TraceWriter::create(&path).unwrap();
        let records =
            vec![record(0, "/v/a/seg_00000.m4s", Some("miss")), record(7, "/v/a/seg_00000.m4s", Some("hit-memory"))];
        for r in &records {
            writer.record(r.clone());
        }
        // A value with a tab and no x-cache at all.
        writer.record(record(9, "/v/b/master.m3u8", Some("hit\tdisk")));
        writer.record(record(12, "/v/b/master.m3u8", None));
        assert_eq!(writer.finish().unwrap(), 4);
        let back = read_file(&path).unwrap();
        assert_eq!(back[..2], records[..]);
        assert_eq!(back[2].x_cache.as_deref(), Some("hit disk"));
        assert_eq!(back[3].x_cache, None);
        assert!(std::fs::read_to_string(&path).unwrap().starts_with(HEADER));
        // A second finish finds the writer gone.
        assert!(writer.finish().is_err());
    }

    #[test]
    fn write_file_and_read_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("synth.tsv");
        let records: Vec<_> = (0..50).map(|i| record(i, &format!("/s/{}", i % 7), None)).collect();
        assert_eq!(write_file(&path, records.clone()).unwrap(), 50);
        assert_eq!(read_file(&path).unwrap(), records);
    }

    #[test]
    fn bad_lines_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.tsv");
        std::fs::write(&path, format!("{HEADER}\n# a comment\n\n1\tpop\t/a\t10\tmiss\n2\tpop\t/b\tten\tmiss\n"))
            .unwrap();
        let e = read_file(&path).unwrap_err().to_string();
        assert!(e.contains("line 5") && e.contains("bytes `ten`"), "{e}");
        std::fs::write(&path, "1\tpop\t/a\n").unwrap();
        assert!(read_file(&path).unwrap_err().to_string().contains("3 fields"));
    }
}
