//! Shared helpers: generated clips (FFmpeg lavfi, made at test time), ffprobe, and running
//! the encoder in-process or as the CLI.
#![allow(dead_code, unreachable_pub)]

pub mod cenc;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use encoder::event::{Event, EventSink};
use encoder::executor::{Executor, LocalExecutor, Runner};
use encoder::job::JobReport;
use encoder::media::Limits;
use encoder::pipeline::Pipeline;
use encoder::task::Protection;
use encoder::transcode::{KeyRequest, TranscodeRequest, transcode};

/// Generates a clip with ffmpeg: `inputs` are lavfi graphs, `args` output options.
pub fn clip(dir: &Path, name: &str, inputs: &[&str], args: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-y", "-hide_banner", "-loglevel", "error"]);
    for i in inputs {
        cmd.args(["-f", "lavfi", "-i", i]);
    }
    cmd.args(args).arg(&out);
    let status = cmd.status().expect("ffmpeg CLI is installed (make test installs it)");
    assert!(status.success(), "ffmpeg failed to make {name}");
    out
}

/// A testsrc2 + sine clip of `seconds` at `size`, H.264/AAC in MP4 with a `gop`-frame GOP.
pub fn h264_clip(dir: &Path, name: &str, size: &str, seconds: u32, gop: u32) -> PathBuf {
    let video = format!("testsrc2=size={size}:rate=30:duration={seconds}");
    let audio = format!("sine=frequency=440:sample_rate=48000:duration={seconds}");
    let g = gop.to_string();
    clip(
        dir,
        name,
        &[&video, &audio],
        &["-c:v", "libx264", "-preset", "veryfast", "-g", &g, "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest"],
    )
}

/// ffprobe's JSON output for `args` + `file`.
pub fn probe(file: &Path, args: &[&str]) -> serde_json::Value {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-of", "json"])
        .args(args)
        .arg(file)
        .output()
        .expect("ffprobe runs");
    assert!(out.status.success(), "ffprobe {}: {}", file.display(), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("ffprobe json")
}

/// Runs the `encoder` binary.
pub fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_encoder")).args(args).output().expect("encoder binary runs")
}

/// A request with the built-in pipeline or `pipeline` text, temp storage under `work`.
pub fn request(input: &Path, out: &Path, work: &Path, pipeline: Option<&str>) -> TranscodeRequest {
    let pipeline = match pipeline {
        Some(text) => Pipeline::parse(text, "test.toml", Path::new(".")).expect("test pipeline is valid"),
        None => Pipeline::builtin(),
    };
    TranscodeRequest {
        input: input.to_owned(),
        out_dir: out.to_owned(),
        pipeline,
        encrypt: None,
        video_id: None,
        work_dir: Some(work.to_owned()),
        keep_work_dir: false,
        force: false,
        limits: Limits::default(),
        materialise: encoder::jit::Materialise::All,
        on_demand: false,
    }
}

/// Adds AES-128 with the key written to `key_file`.
pub fn encrypted(req: TranscodeRequest, key_file: &Path, key_uri: &str) -> TranscodeRequest {
    protected(req, key_file, key_uri, Protection::Aes128)
}

/// Adds encryption with `profile`, the key written to `key_file`.
pub fn protected(mut req: TranscodeRequest, key_file: &Path, key_uri: &str, profile: Protection) -> TranscodeRequest {
    req.encrypt = Some(KeyRequest {
        key_file: key_file.to_owned(),
        key_uri: key_uri.to_owned(),
        profile,
        licence_uri: "https://licence.example/v1/clearkey?video={video}".to_owned(),
    });
    req
}

/// The in-process executor the CLI uses.
pub fn local_executor() -> Arc<LocalExecutor> {
    let runner: Runner = Arc::new(encoder::ffmpeg::run_task);
    Arc::new(LocalExecutor::new(2, 1, runner))
}

/// Runs a transcode in-process, collecting every event.
pub fn run(req: TranscodeRequest, executor: Arc<dyn Executor>) -> (encoder::Result<JobReport>, Vec<Event>) {
    let events = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink: EventSink = {
        let events = events.clone();
        Arc::new(move |e: &Event| events.lock().unwrap().push(e.clone()))
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let result = rt.block_on(transcode(req, executor, sink));
    let events = events.lock().unwrap().clone();
    (result, events)
}

/// Segment durations from a media playlist.
pub fn extinf(playlist: &Path) -> Vec<f64> {
    std::fs::read_to_string(playlist)
        .expect("playlist exists")
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .map(|l| l.trim_end_matches(',').parse().expect("EXTINF number"))
        .collect()
}

/// Serves one file's bytes over HTTP on 127.0.0.1, counting requests.
pub struct KeyServer {
    pub url: String,
    pub hits: Arc<AtomicUsize>,
}

impl KeyServer {
    pub fn start(key_file: PathBuf) -> Self {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/key", listener.local_addr().unwrap());
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf);
                counter.fetch_add(1, Ordering::SeqCst);
                let key = std::fs::read(&key_file).unwrap_or_default();
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", key.len());
                let _ = conn.write_all(head.as_bytes());
                let _ = conn.write_all(&key);
            }
        });
        Self { url, hits }
    }
}

/// One `[[task]]` of a pipeline file; `settings` are extra `key = value` lines.
pub fn task(id: &str, kind: &str, after: &[&str], settings: &str) -> String {
    let after: Vec<String> = after.iter().map(|a| format!("\"{a}\"")).collect();
    format!("[[task]]\nid = \"{id}\"\nkind = \"{kind}\"\nafter = [{}]\n{settings}\n", after.join(", "))
}

/// inspect -> split -> encode `video` (with `settings`) [-> audio] -> package.
pub fn ladder_pipeline(video_settings: &str, with_audio: bool) -> String {
    let mut p = task("inspect", "inspect", &[], "") + &task("split", "split", &["inspect"], "");
    p += &task("video", "encode", &["split"], video_settings);
    if with_audio {
        p += &task("audio", "audio", &["inspect"], "");
        p += &task("package", "package", &["video", "audio"], "");
    } else {
        p += &task("package", "package", &["video"], "");
    }
    p
}
