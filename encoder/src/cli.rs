//! The `encoder` command line: argument parsing, progress display and exit statuses. Kept
//! out of `main.rs` so tests can drive it in-process.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::error::Error;
use crate::event::{Event, EventSink};
use crate::executor::LocalExecutor;
use crate::jit::Materialise;
use crate::media::Limits;
use crate::pipeline::Pipeline;
use crate::task::Protection;
use crate::transcode::{KeyRequest, TranscodeRequest, transcode};
use crate::{dag, ffmpeg};

/// Command-line interface.
#[derive(Debug, Parser)]
#[command(
    name = "encoder",
    version,
    about = "Transcode a video into an encrypted adaptive ladder (HLS + DASH over CMAF)"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// `--protection` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum ProtectionArg {
    Aes128,
    Cbcs,
    Both,
}

impl From<ProtectionArg> for Protection {
    fn from(p: ProtectionArg) -> Self {
        match p {
            ProtectionArg::Aes128 => Self::Aes128,
            ProtectionArg::Cbcs => Self::Cbcs,
            ProtectionArg::Both => Self::Both,
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole pipeline on one machine and write a playable folder.
    Transcode {
        /// Source video file.
        input: PathBuf,
        /// Output folder (master.m3u8, manifest.mpd, renditions, pictures).
        #[arg(long)]
        out: PathBuf,
        /// Pipeline file (TOML DAG); the built-in pipeline when omitted.
        #[arg(long)]
        pipeline: Option<PathBuf>,
        /// Print one JSON event per line instead of progress bars.
        #[arg(long)]
        json: bool,
        /// Encrypt media segments (see --protection).
        #[arg(long)]
        encrypt: bool,
        /// With --encrypt: aes128 (HLS AES-128), cbcs (CENC in cbcs/, DASH + HLS
        /// SAMPLE-AES) or both.
        #[arg(long, value_enum, default_value = "aes128")]
        protection: ProtectionArg,
        /// ClearKey licence URL written into the DASH manifest (cbcs); `{video}` becomes
        /// the video id.
        #[arg(long, default_value = "")]
        licence_uri: String,
        /// Where the content key is written [default: OUT.key, beside the output folder].
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// Key URI in the playlists; `{video}` becomes the video id.
        #[arg(long, default_value = "/v1/videos/{video}/key")]
        key_uri: String,
        /// Video id for key URIs [default: the output folder's name].
        #[arg(long)]
        video_id: Option<String>,
        /// Temporary storage root [default: the system temp folder].
        #[arg(long)]
        work_dir: Option<PathBuf>,
        /// Keep temporary storage after the job.
        #[arg(long)]
        keep_work_dir: bool,
        /// Replace a non-empty output folder.
        #[arg(long)]
        force: bool,
        /// Encode workers [default: one per core].
        #[arg(long)]
        workers: Option<usize>,
        /// Encode only the floor (the highest rung at or under this class, e.g. 360) and
        /// leave an on-demand plan in `OUT/source/` for the other rungs.
        #[arg(long)]
        floor: Option<u32>,
    },
    /// Encode segments of one rung just in time from a floor-only output's on-demand plan,
    /// as the origin does when a viewer asks; prints when the first and last bytes were ready.
    Segment {
        /// The original the output was made from.
        input: PathBuf,
        /// The output folder of `transcode --floor`.
        #[arg(long)]
        from: PathBuf,
        /// Rung name, e.g. 720p.
        #[arg(long)]
        rung: String,
        /// First segment number.
        #[arg(long)]
        segment: usize,
        /// Segments to encode.
        #[arg(long, default_value_t = 1)]
        count: usize,
        /// Where the segments' bytes go (concatenated).
        #[arg(long)]
        out: PathBuf,
    },
    /// Probe a file and print what the encoder would see, or why it refuses it.
    Inspect {
        /// The file.
        input: PathBuf,
    },
    /// Validate a pipeline file and print its stages.
    Plan {
        /// Pipeline file; the built-in pipeline when omitted.
        #[arg(long)]
        pipeline: Option<PathBuf>,
    },
}

/// Runs the CLI and returns the process exit status.
pub fn main() -> i32 {
    let cli = Cli::parse();
    init_tracing();
    match cli.command {
        Command::Inspect { input } => inspect(&input),
        Command::Plan { pipeline } => plan(pipeline),
        Command::Segment { input, from, rung, segment: first, count, out } => {
            segment(&input, &from, &rung, first, count, &out)
        }
        Command::Transcode {
            input,
            out,
            pipeline,
            json,
            encrypt,
            protection,
            licence_uri,
            key_file,
            key_uri,
            video_id,
            work_dir,
            keep_work_dir,
            force,
            workers,
            floor,
        } => {
            let pipeline = match load_pipeline(pipeline) {
                Ok(p) => p,
                Err(e) => return report_error(&e, json),
            };
            let encrypt = encrypt.then(|| KeyRequest {
                key_file: key_file.unwrap_or_else(|| {
                    let name =
                        out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "output".into());
                    out.with_file_name(format!("{name}.key"))
                }),
                key_uri,
                profile: protection.into(),
                licence_uri,
            });
            let req = TranscodeRequest {
                input,
                out_dir: out,
                pipeline,
                encrypt,
                video_id,
                work_dir,
                keep_work_dir,
                force,
                limits: Limits::default(),
                materialise: floor.map_or(Materialise::All, |max_class| Materialise::Floor { max_class }),
                on_demand: floor.is_some(),
            };
            run_transcode(req, json, workers)
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ENCODER_LOG").unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

fn load_pipeline(path: Option<PathBuf>) -> Result<Pipeline, Error> {
    match path {
        Some(p) => Ok(Pipeline::load(&p)?),
        None => Ok(Pipeline::builtin()),
    }
}

fn report_error(e: &Error, json: bool) -> i32 {
    if json {
        println!(
            "{}",
            serde_json::json!({"event": "error", "code": e.code(), "message": e.to_string(), "exit_status": e.exit_status()})
        );
    } else {
        eprintln!("error[{}]: {e}", e.code());
    }
    e.exit_status()
}

fn inspect(input: &std::path::Path) -> i32 {
    match ffmpeg::inspect(input, &Limits::default()) {
        Ok(media) => {
            println!("{}", serde_json::to_string_pretty(&media).expect("serialisable"));
            0
        }
        Err(e) => report_error(&e, true),
    }
}

fn plan(path: Option<PathBuf>) -> i32 {
    match load_pipeline(path) {
        Ok(p) => {
            for (i, stage) in dag::stages(&p.nodes).iter().enumerate() {
                let names: Vec<String> =
                    stage.iter().map(|&n| format!("{} ({})", p.nodes[n].id, p.nodes[n].kind().as_str())).collect();
                println!("stage {i}: {}", names.join(", "));
            }
            0
        }
        Err(e) => report_error(&e, false),
    }
}

fn segment(
    input: &std::path::Path,
    from: &std::path::Path,
    rung: &str,
    first: usize,
    count: usize,
    out: &std::path::Path,
) -> i32 {
    let started = std::time::Instant::now();
    let plan_file = from.join(crate::package::SOURCE_DIR).join(crate::jit::PLAN_FILE);
    let plan: crate::jit::OnDemandPlan = match std::fs::read(&plan_file)
        .map_err(Error::io("read", &plan_file))
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| Error::Invalid(format!("{}: {e}", plan_file.display()))))
    {
        Ok(p) => p,
        Err(e) => return report_error(&e, true),
    };
    let scratch = std::env::temp_dir().join(format!("encoder-segment-{}", std::process::id()));
    let overlay = plan
        .overlay
        .as_ref()
        .map(|_| from.join(crate::package::SOURCE_DIR).join(crate::jit::OVERLAY_FILE).display().to_string());
    let fps = plan.media.video.fps();
    let req = crate::jit::SegmentsRequest {
        source: input.display().to_string(),
        plan,
        overlay,
        rungs: vec![rung.to_owned()],
        first,
        count,
        encryption: None,
        fragments: crate::jit::FragmentPolicy::streaming(fps),
        scratch: scratch.display().to_string(),
    };
    let pieces = Arc::new(Mutex::new((Vec::<u8>::new(), None::<f64>)));
    let sink = pieces.clone();
    let ctx = crate::task::TaskContext::default();
    ctx.set_cores(std::thread::available_parallelism().map_or(1, |n| n.get()));
    let result = ffmpeg::jit::encode_segments(
        &req,
        &ctx,
        Arc::new(move |p: crate::jit::SegmentPiece| {
            let mut s = sink.lock().expect("pieces");
            s.1.get_or_insert(started.elapsed().as_secs_f64());
            s.0.extend_from_slice(&p.bytes);
            Ok(())
        }),
    );
    let _ = std::fs::remove_dir_all(&scratch);
    let last = started.elapsed().as_secs_f64();
    match result {
        Ok(report) => {
            let (bytes, first_piece) = std::mem::take(&mut *pieces.lock().expect("pieces"));
            if let Err(e) = std::fs::write(out, &bytes) {
                return report_error(&Error::io("write", out)(e), true);
            }
            println!(
                "{}",
                serde_json::json!({"first_byte_s": first_piece, "last_byte_s": last, "bytes": bytes.len(),
                    "frames_decoded": report.decoded, "frames_encoded": report.encoded})
            );
            0
        }
        Err(e) => report_error(&e, true),
    }
}

fn run_transcode(req: TranscodeRequest, json: bool, workers: Option<usize>) -> i32 {
    let runner: crate::executor::Runner = Arc::new(ffmpeg::run_task);
    let executor = Arc::new(match workers {
        Some(n) => LocalExecutor::new(n, 1, runner),
        None => LocalExecutor::for_machine(runner),
    });
    let out = req.out_dir.clone();
    let sink = if json { json_sink() } else { progress_sink() };
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime");
    match runtime.block_on(transcode(req, executor, sink)) {
        Ok(report) => {
            if !json {
                println!(
                    "done in {:.1} s: {} renditions, {} segments of {:.1} s video ({} tasks, {} retries)",
                    report.seconds,
                    report.summary.renditions.len(),
                    report.summary.segments,
                    report.summary.duration,
                    report.tasks,
                    report.retries
                );
                println!("playable output: {}", out.join(crate::layout::MASTER_PLAYLIST).display());
                if report.summary.dash {
                    println!("DASH manifest:   {}", out.join(crate::layout::DASH_MANIFEST).display());
                }
            }
            0
        }
        Err(e) => report_error(&e, json),
    }
}

fn json_sink() -> EventSink {
    let out = Mutex::new(std::io::stdout());
    Arc::new(move |e: &Event| {
        if let Ok(line) = serde_json::to_string(e) {
            let mut out = out.lock().expect("stdout lock");
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    })
}

struct Bars {
    multi: MultiProgress,
    overall: ProgressBar,
    tasks: HashMap<String, ProgressBar>,
}

fn progress_sink() -> EventSink {
    let target =
        if std::io::stderr().is_terminal() { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
    let multi = MultiProgress::with_draw_target(target);
    let overall = multi.add(ProgressBar::new(0));
    overall.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} tasks {msg}").expect("template"),
    );
    overall.enable_steady_tick(Duration::from_millis(200));
    let bars = Mutex::new(Bars { multi, overall, tasks: HashMap::new() });
    let task_style = ProgressStyle::with_template("  {prefix:28} [{bar:30}] {percent:>3}% {msg}").expect("template");
    Arc::new(move |e: &Event| {
        let mut b = bars.lock().expect("progress lock");
        match e {
            Event::NodeQueued { tasks, .. } => b.overall.inc_length(*tasks as u64),
            Event::TaskStarted { task, worker, attempt, .. } => {
                let bar = b.multi.add(ProgressBar::new(1));
                bar.set_style(task_style.clone());
                bar.set_prefix(task.clone());
                bar.set_message(if *attempt > 1 { format!("{worker}, attempt {attempt}") } else { worker.clone() });
                b.tasks.insert(task.clone(), bar);
            }
            Event::TaskProgress { task, done, total } => {
                if let Some(bar) = b.tasks.get(task) {
                    bar.set_length((*total).max(*done).max(1));
                    bar.set_position(*done);
                }
            }
            Event::TaskFinished { task, .. } => {
                if let Some(bar) = b.tasks.remove(task) {
                    bar.finish_and_clear();
                }
                b.overall.inc(1);
            }
            Event::TaskRetried { task, code, .. } => {
                if let Some(bar) = b.tasks.remove(task) {
                    bar.abandon_with_message(format!("failed ({code}), retrying"));
                }
            }
            Event::TaskFailed { task, code, message, .. } => {
                if let Some(bar) = b.tasks.remove(task) {
                    bar.abandon_with_message(format!("failed: {code}: {message}"));
                }
            }
            Event::JobFinished { .. } | Event::JobFailed { .. } => b.overall.finish_and_clear(),
            Event::JobStarted { .. } => {}
        }
    })
}
