//! The only code that talks to FFmpeg (libav*). Everything here is blocking and runs on a
//! worker's dedicated thread, never on the async runtime.

mod audio;
mod cascade;
mod graph;
mod inspect;
pub mod jit;
mod picture;
mod split;
mod template;
mod video;

use std::path::Path;
use std::sync::Once;

use ffmpeg_next as ff;

use crate::error::{Error, Result};
use crate::package::{self, PackageJob};
use crate::store::Store;
use crate::task::{TaskContext, TaskFailure, TaskOutput, TaskSpec, Work};

pub use inspect::inspect;

/// Initialises FFmpeg once per process and keeps its logging quiet (errors only).
pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = ff::init();
        ff::util::log::set_level(ff::util::log::Level::Fatal);
    });
}

/// Runs any task in this process: the function behind [`crate::executor::LocalExecutor`].
pub fn run_task(spec: &TaskSpec, ctx: &TaskContext) -> Result<TaskOutput, TaskFailure> {
    init();
    let _span = tracing::info_span!("task", id = %spec.id, attempt = spec.attempt).entered();
    run(spec, ctx).map_err(|e| {
        tracing::warn!(error = %e, code = e.code(), "task failed");
        TaskFailure::from(e)
    })
}

fn run(spec: &TaskSpec, ctx: &TaskContext) -> Result<TaskOutput> {
    let store = Store::open(&spec.store)?;
    Ok(match &spec.work {
        Work::Inspect { source, limits } => TaskOutput::Inspected(inspect(Path::new(source), limits)?),
        Work::Split { source, media, chunk_seconds } => {
            TaskOutput::Split(split::split(Path::new(source), media, *chunk_seconds, &store, ctx)?)
        }
        Work::Watermark { spec: wm, video } => TaskOutput::Watermark(picture::render_watermark(wm, video, &store)?),
        Work::Encode { .. } => TaskOutput::Encoded(video::encode_chunk(&spec.work, &store, ctx)?),
        Work::Audio { source, media, timeline, spec: a, output } => {
            TaskOutput::Audio(audio::encode_audio(Path::new(source), media, *timeline, a, output, &store, ctx)?)
        }
        Work::Thumbnail { source, media, spec: t } => {
            TaskOutput::Thumbnails(picture::thumbnails(Path::new(source), media, t, &store, ctx)?)
        }
        Work::Package { spec: p, ladders, audio, thumbnails, segment_seconds, out_dir, encryption, on_demand } => {
            let job = PackageJob {
                spec: *p,
                ladders,
                audio: audio.as_ref(),
                thumbnails: thumbnails.as_ref(),
                segment_seconds: *segment_seconds,
                out_dir: Path::new(out_dir),
                encryption: encryption.as_ref(),
                on_demand: on_demand.as_ref(),
            };
            TaskOutput::Packaged(package::run(&job, &store, ctx)?)
        }
    })
}

/// Wraps an FFmpeg error that is not the input's fault.
fn media_error(context: &'static str) -> impl FnOnce(ff::Error) -> Error {
    move |e| Error::Media { context, message: e.to_string() }
}

/// Reads the next packet into a fresh packet (`av_read_frame` does not release what a
/// reused packet held, so reusing one leaks every packet read). `None` at the end.
fn read_packet(ictx: &mut ff::format::context::Input) -> Result<Option<ff::Packet>, ff::Error> {
    let mut packet = ff::Packet::empty();
    match packet.read(ictx) {
        Ok(()) => Ok(Some(packet)),
        Err(ff::Error::Eof) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether an FFmpeg error means "no more output right now".
fn is_again(e: &ff::Error) -> bool {
    matches!(e, ff::Error::Eof) || matches!(e, ff::Error::Other { errno } if *errno == ff::util::error::EAGAIN)
}
