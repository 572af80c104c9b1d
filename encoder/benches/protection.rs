//! Protection cost, runnable by anyone: `cargo bench -p encoder --bench protection`.
//!
//! Makes a clip with the FFmpeg CLI, transcodes it with the built-in pipeline (keeping the
//! encoded parts), then boxes every rendition's segments three ways on one thread: clear,
//! HLS AES-128 (whole segment) and CENC cbcs (per sample). It prints one JSON object:
//! throughput in MB of segments per second per core for each, OpenSSL's AES-128-CBC speed
//! on this machine as the upper bound (`openssl speed -evp aes-128-cbc`), and the share of
//! the transcode's CPU time that protection adds. Set `PROTECTION_BENCH_SECONDS` to change
//! the clip length (default 20).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use encoder::executor::{LocalExecutor, Runner};
use encoder::media::Limits;
use encoder::package::cenc::CencKey;
use encoder::package::cmaf::Track;
use encoder::package::crypt;
use encoder::package::segmenter::{self, CutRule, MediaFragment, PartStream};
use encoder::pipeline::Pipeline;
use encoder::transcode::{TranscodeRequest, transcode};

/// How many times each way is repeated; the best run counts.
const ROUNDS: usize = 5;

fn main() {
    let seconds: u32 = std::env::var("PROTECTION_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
    let dir = tempfile::tempdir().expect("temp dir");
    let src = make_clip(dir.path(), seconds);
    let (encode_cpu, work) = encode_ladder(&src, dir.path());
    let renditions = load_segments(&work);
    let bytes: usize = renditions.iter().flat_map(|(_, f)| f.iter().map(|m| m.data.len())).sum();
    let clear = best(|| seal_clear(&renditions));
    let aes = best(|| seal_aes128(&renditions));
    let cbcs = best(|| seal_cbcs(&renditions));
    let mb = bytes as f64 / 1e6;
    let result = serde_json::json!({
        "clip_seconds": seconds,
        "renditions": renditions.iter().map(|(t, _)| t.codec_name()).collect::<Vec<_>>(),
        "segment_megabytes": mb,
        "mb_per_s_per_core": {
            "clear": mb / clear.as_secs_f64(),
            "aes128": mb / aes.as_secs_f64(),
            "cbcs": mb / cbcs.as_secs_f64(),
            "openssl_aes_128_cbc": openssl_cbc_mb_per_s(),
        },
        "seconds": { "clear": clear.as_secs_f64(), "aes128": aes.as_secs_f64(), "cbcs": cbcs.as_secs_f64() },
        "transcode_cpu_seconds": encode_cpu.as_secs_f64(),
        "share_of_transcode_cpu": {
            "aes128": (aes.saturating_sub(clear)).as_secs_f64() / encode_cpu.as_secs_f64(),
            "cbcs": (cbcs.saturating_sub(clear)).as_secs_f64() / encode_cpu.as_secs_f64(),
        },
    });
    println!("{}", serde_json::to_string_pretty(&result).expect("json"));
}

trait CodecName {
    fn codec_name(&self) -> String;
}

impl CodecName for Track {
    fn codec_name(&self) -> String {
        encoder::package::cmaf::codec_string(&self.codec).unwrap_or_default()
    }
}

fn make_clip(dir: &Path, seconds: u32) -> PathBuf {
    let out = dir.join("src.mp4");
    let status = Command::new("ffmpeg")
        .args(["-y", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size=1280x720:rate=30:duration={seconds}"))
        .args(["-f", "lavfi", "-i"])
        .arg(format!("sine=frequency=440:sample_rate=48000:duration={seconds}"))
        .args(["-c:v", "libx264", "-preset", "veryfast", "-g", "60", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest"])
        .arg(&out)
        .status()
        .expect("the ffmpeg CLI is installed");
    assert!(status.success(), "ffmpeg failed to make the clip");
    out
}

/// CPU time this process has used (user + system), from /proc (Linux).
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let fields: Vec<&str> = stat.rsplit_once(')').expect("stat").1.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0);
    // USER_HZ is 100 on every Linux this runs on.
    Duration::from_millis(ticks * 10)
}

/// Transcodes with the built-in pipeline, keeping the encoded parts; returns the CPU time
/// of the transcode (the ladder's encode and everything around it) and the job's folder.
fn encode_ladder(src: &Path, dir: &Path) -> (Duration, PathBuf) {
    let work = dir.join("work");
    let req = TranscodeRequest {
        input: src.to_owned(),
        out_dir: dir.join("out"),
        pipeline: Pipeline::builtin(),
        encrypt: None,
        video_id: None,
        work_dir: Some(work.clone()),
        keep_work_dir: true,
        force: false,
        limits: Limits::default(),
        materialise: encoder::jit::Materialise::All,
        on_demand: false,
    };
    let runner: Runner = Arc::new(encoder::ffmpeg::run_task);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let executor = Arc::new(LocalExecutor::new(cores, 1, runner));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let before = process_cpu();
    rt.block_on(transcode(req, executor, Arc::new(|_| {}))).expect("transcode");
    let job = std::fs::read_dir(&work).expect("work").next().expect("job").expect("entry").path();
    (process_cpu() - before, job)
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> =
        std::fs::read_dir(dir).map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default();
    out.retain(|p| p.extension().is_some_and(|e| e == ext));
    out.sort();
    out
}

/// Every rendition's segments, cut as the packager cuts them, in memory.
fn load_segments(job: &Path) -> Vec<(Track, Vec<MediaFragment>)> {
    let mut parts: Vec<Vec<PathBuf>> = std::fs::read_dir(job.join("encoded/video"))
        .expect("encoded video")
        .filter_map(|e| e.ok().map(|e| files(&e.path(), "es")))
        .collect();
    parts.push(files(&job.join("encoded/audio"), "es"));
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .map(|paths| {
            let mut stream = PartStream::open(paths).expect("parts");
            let header = stream.header().clone();
            let template = crypt::hex_decode(&header.init_template).expect("template");
            let track = Track::from_template(&template, header.timescale).expect("track");
            let rule = if header.width > 0 {
                CutRule::Keyframe { segment_ticks: 2 * i64::from(header.timescale) }
            } else {
                CutRule::At { cuts: Vec::new(), end: i64::MAX }
            };
            let mut fragments = Vec::new();
            segmenter::segment(&mut stream, rule, |s| {
                fragments.push(s.media);
                Ok(())
            })
            .expect("segments");
            (track, fragments)
        })
        .collect()
}

fn best(mut f: impl FnMut() -> usize) -> Duration {
    (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(f());
            start.elapsed()
        })
        .min()
        .expect("rounds")
}

fn seal_clear(renditions: &[(Track, Vec<MediaFragment>)]) -> usize {
    renditions.iter().flat_map(|(_, f)| f).map(|m| m.segment().expect("segment").len()).sum()
}

fn seal_aes128(renditions: &[(Track, Vec<MediaFragment>)]) -> usize {
    let key = [7u8; 16];
    let mut total = 0;
    for (_, fragments) in renditions {
        for (n, m) in fragments.iter().enumerate() {
            let mut bytes = m.segment().expect("segment");
            crypt::encrypt_segment(&key, n as u64, &mut bytes).expect("aes");
            total += bytes.len();
        }
    }
    total
}

fn seal_cbcs(renditions: &[(Track, Vec<MediaFragment>)]) -> usize {
    let key = CencKey::from_content_key(&[7u8; 16]);
    let mut total = 0;
    for (track, fragments) in renditions {
        let mut encryptor = track.encryptor(&key).expect("encryptor");
        for m in fragments {
            total += m.protected_segment(&mut encryptor).expect("cbcs").len();
        }
    }
    total
}

/// OpenSSL's single-core AES-128-CBC encryption speed on 16 KiB blocks, MB/s.
fn openssl_cbc_mb_per_s() -> Option<f64> {
    let out = Command::new("openssl")
        .args(["speed", "-evp", "aes-128-cbc", "-seconds", "1", "-bytes", "16384"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().rev().find(|l| l.starts_with("AES-128-CBC") || l.starts_with("aes-128-cbc"))?;
    // "aes-128-cbc  1234567.89k": thousands of bytes per second.
    let kbytes: f64 = line.split_whitespace().last()?.trim_end_matches('k').parse().ok()?;
    Some(kbytes / 1000.0)
}
