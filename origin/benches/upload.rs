//! `bench/upload`: 1 GiB over loopback to an in-process origin, three ways, interleaved:
//! one plain request carrying the whole file (one PATCH, the baseline), tus in one stream of
//! 16 MiB chunks (each made durable before the next), and tus as 4 parallel partial uploads
//! joined by concatenation. Reports MB/s and the ratio of each to the plain request.
//!
//! `cargo bench -p origin --bench upload` (BENCH_UPLOAD_MIB and BENCH_RUNS override size and
//! repeats). Writes `bench/results/upload-DATE.json`.

use std::path::Path;
use std::time::Instant;

use origin::Config;
use origin::client::{Client, UploadPlan};
use origin::config::DEV_CREATOR_TOKEN;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Incompressible bytes, fast: xorshift, written in 8 MiB blocks.
fn make_file(path: &Path, bytes: u64) {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut block = vec![0u8; 8 << 20];
    let mut left = bytes;
    while left > 0 {
        for word in block.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            word.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(block.len() as u64) as usize;
        f.write_all(&block[..n]).unwrap();
        left -= n as u64;
    }
    f.flush().unwrap();
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let mib = env_or("BENCH_UPLOAD_MIB", 1024);
    let runs = env_or("BENCH_RUNS", 3);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("payload.bin");
    make_file(&file, mib << 20);
    let mut config = Config::for_dir(&dir.path().join("data"));
    // Uploads only: nothing transcodes the payload (it is not a video).
    config.workers = 0;
    config.max_upload_bytes = (mib << 20).max(1 << 30);
    let running = origin::start(config).await.unwrap();
    let client = Client::new(&running.app.config.public_url, DEV_CREATOR_TOKEN);
    let http = reqwest::Client::new();
    let modes: [(&str, UploadPlan); 3] = [
        ("plain single request", UploadPlan { chunk: mib << 20, parallel: 1 }),
        ("tus single stream (16 MiB chunks)", UploadPlan { chunk: 16 << 20, parallel: 1 }),
        ("tus 4 parallel partials + concat", UploadPlan { chunk: 16 << 20, parallel: 4 }),
    ];
    let mut results: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    for run in 0..runs {
        for (i, (name, plan)) in modes.iter().enumerate() {
            let (id, url) = client.create_video("bench", &file).await.unwrap();
            let started = Instant::now();
            client.upload(&url, &file, *plan).await.unwrap();
            let secs = started.elapsed().as_secs_f64();
            let mbps = (mib << 20) as f64 / secs / 1e6;
            eprintln!("run {}/{runs} {name:36} {secs:6.2} s {mbps:8.1} MB/s", run + 1);
            results[i].push(mbps);
            let _ = http
                .delete(format!("{}/v1/videos/{id}", running.app.config.public_url))
                .bearer_auth(DEV_CREATOR_TOKEN)
                .send()
                .await;
        }
    }
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let base = median(&results[0]);
    println!("\n{:36} {:>10} {:>14}", format!("upload of {mib} MiB"), "MB/s", "vs plain");
    let mut rows = Vec::new();
    for (i, (name, _)) in modes.iter().enumerate() {
        let m = median(&results[i]);
        println!("{name:36} {m:10.1} {:14.2}", m / base);
        rows.push(serde_json::json!({"mode": name, "mb_per_s": results[i], "median": m, "ratio_to_plain": m / base}));
    }
    let date = std::process::Command::new("date")
        .arg("+%F")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/results").join(format!("upload-{date}.json"));
    let doc = serde_json::json!({"benchmark": "upload", "date": date, "cores": std::thread::available_parallelism().map_or(1, |n| n.get()), "mib": mib, "runs": rows});
    std::fs::write(&out, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    println!("wrote {}", out.display());
    running.stop().await;
}
