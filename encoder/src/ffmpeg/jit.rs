//! Just-in-time segments: decode the original from the last keyframe before a segment,
//! keep exactly the frames of the requested segments, filter them as a full encode would
//! (rotation, watermark, scaling) and encode each requested rung with the rung's own
//! settings, handing out CMAF chunks while the encoder still works on later frames. Each
//! chunk is sealed for every tree the request's protection asks for (AES-128 at the top
//! level, cbcs in `cbcs/`), so one encode makes every stored copy of a segment.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex};

use ff::{Rational, codec, format, frame};
use ffmpeg_next as ff;

use super::video::{Feed, PacketSink, RungJob, join, rung_threads};
use super::{media_error, read_packet};
use crate::error::{Error, Result};
use crate::es::{EsHeader, EsPacket};
use crate::jit::{SegmentsRequest, Span};
use crate::ladder::Rung;
use crate::media::VIDEO_TIMESCALE;
use crate::package::fragment::{Emit, Sealer, SpanLayout, SpanSegmenter};
use crate::store::Store;
use crate::task::TaskContext;

/// Frames buffered between the filter graph and each rung's encoder.
const QUEUE_DEPTH: usize = 4;

/// What an encode of a span did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SegmentsReport {
    /// Frames decoded, including those before the span that decoding had to go through.
    pub decoded: u64,
    /// Frames encoded per rung.
    pub encoded: u64,
    /// Each rung's codec configuration (hex `ftyp`+`moov`), to compare with its published
    /// init segment.
    pub templates: Vec<String>,
}

/// Encodes `req`'s segments of `req`'s rungs, handing each piece to `emit` as it is made,
/// once per tree of the request's protection (tagged with [`crate::jit::SegmentPiece::tree`]).
pub fn encode_segments(req: &SegmentsRequest, ctx: &TaskContext, emit: Emit) -> Result<SegmentsReport> {
    super::init();
    let plan = &req.plan;
    plan.check()?;
    let span = plan
        .span(req.first, req.count)
        .ok_or_else(|| Error::Invalid(format!("segment {} is past the end of the video", req.first)))?;
    let rungs = req
        .rungs
        .iter()
        .map(|name| plan.rung(name).map(|r| r.rung.clone()))
        .collect::<Option<Vec<Rung>>>()
        .ok_or_else(|| Error::Invalid(format!("unknown rung in {:?}", req.rungs)))?;
    let sealers = Sealer::for_request(req.encryption.as_ref())?;
    let store = Store::open(&req.scratch)?;
    let templates = Arc::new(Mutex::new(vec![String::new(); rungs.len()]));
    let fps = Rational(plan.media.video.frame_rate.0 as i32, plan.media.video.frame_rate.1.max(1) as i32);
    let segment_ticks = (plan.segment_seconds * f64::from(VIDEO_TIMESCALE)).round() as i64;
    let threads = rung_threads(&rungs, ctx.cores());
    let (mut senders, mut workers) = (Vec::new(), Vec::new());
    for (i, rung) in rungs.iter().enumerate() {
        let (tx, rx) = sync_channel::<frame::Video>(QUEUE_DEPTH);
        senders.push(tx);
        let layout = SpanLayout {
            rung: i,
            codec: rung.codec.as_str().to_owned(),
            first: span.first,
            starts: plan.starts(&span),
            end: span.end,
            policy: req.fragments,
            sealers: sealers.clone(),
        };
        let sink = SpanSink { segmenter: SpanSegmenter::new(layout, emit.clone()), templates: templates.clone(), i };
        let job = RungJob {
            rung: rung.clone(),
            threads: threads[i],
            sink: Box::new(sink),
            template_key: unique_key(&rung.name),
            deferred: Vec::new(),
            store: store.clone(),
            segment_ticks,
            chunk_end: span.end,
            fps,
        };
        workers.push(job.spawn(rx)?);
    }
    let overlay = match (&plan.overlay, &req.overlay) {
        (Some(o), Some(png)) => Some((o, png.into())),
        (Some(_), None) => return Err(Error::Internal("the plan has a watermark but none was staged".into())),
        _ => None,
    };
    let mut feed = Feed {
        graph: None,
        overlay,
        video_rotation: plan.media.video.rotation,
        rungs: &rungs,
        senders,
        last: i64::MIN,
        frames: 0,
    };
    let mut decoded = 0;
    let fed = match decode_span(req, &span, ctx, &mut feed, &mut decoded, true) {
        Ok(Step::Late) => decode_span(req, &span, ctx, &mut feed, &mut decoded, false),
        other => other,
    }
    .and_then(|step| match step {
        Step::Late => Err(Error::Internal("the original starts after the segment".into())),
        _ => feed.finish(),
    });
    let encoded = feed.frames;
    drop(feed);
    join(workers, fed)?;
    let templates = templates.lock().expect("templates").clone();
    Ok(SegmentsReport { decoded, encoded, templates })
}

/// Decodes the original from the span's keyframe and feeds the span's frames. When the
/// demuxer cannot land on that keyframe (a container without an index), decodes from the
/// start of the file instead.
fn decode_span(
    req: &SegmentsRequest,
    span: &Span,
    ctx: &TaskContext,
    feed: &mut Feed<'_>,
    decoded: &mut u64,
    seek: bool,
) -> Result<Step> {
    let plan = &req.plan;
    let mut ictx = format::input(&Path::new(&req.source)).map_err(media_error("opening the original"))?;
    let index = plan.media.video.index;
    let stream = ictx.stream(index).ok_or_else(|| Error::Internal("the original has no video stream".into()))?;
    let tb = stream.time_base();
    let mut dec_ctx = codec::context::Context::from_parameters(stream.parameters()).map_err(media_error("decoder"))?;
    // Decoding up to the segment is on the viewer's critical path: use every core for it.
    dec_ctx.set_threading(codec::threading::Config {
        kind: codec::threading::Type::Frame,
        count: ctx.cores(),
        ..Default::default()
    });
    let mut decoder = dec_ctx.decoder().video().map_err(media_error("opening decoder"))?;
    if seek && plan.ticks(span.seek.pts) > plan.ticks(plan.keyframes[0].pts) {
        seek_to(&mut ictx, index, span.seek.pts, span.seek.pos)?;
    }
    let timeline = plan.media.timeline();
    let ticks_of = |pts: i64| timeline.to_ticks(pts, (tb.numerator(), tb.denominator()), VIDEO_TIMESCALE);
    let mut first_seen: Option<i64> = None;
    let mut frame = frame::Video::empty();
    // What to do with one decoded frame: skip it, feed it, or stop (past the span).
    let mut take = |f: &mut frame::Video, feed: &mut Feed<'_>| -> Result<Step> {
        let Some(pts) = f.timestamp().or(f.pts()) else { return Ok(Step::Go) };
        let t = ticks_of(pts);
        *decoded += 1;
        if first_seen.is_none() {
            first_seen = Some(t);
            if seek && t > span.start {
                return Ok(Step::Late);
            }
        }
        if span.end.is_some_and(|e| t >= e) {
            return Ok(Step::Done);
        }
        if t >= span.start {
            feed.frame(f, t, span.start)?;
        }
        Ok(Step::Go)
    };
    loop {
        let Some(packet) = read_packet(&mut ictx).map_err(media_error("reading the original"))? else { break };
        if packet.stream() != index {
            continue;
        }
        ctx.check()?;
        // A damaged packet is concealed by the decoder rather than failing the segment.
        let _ = decoder.send_packet(&packet);
        while decoder.receive_frame(&mut frame).is_ok() {
            match take(&mut frame, feed)? {
                Step::Go => {}
                stop => return Ok(stop),
            }
        }
    }
    let _ = decoder.send_eof();
    while decoder.receive_frame(&mut frame).is_ok() {
        match take(&mut frame, feed)? {
            Step::Go => {}
            stop => return Ok(stop),
        }
    }
    Ok(Step::Done)
}

enum Step {
    Go,
    Done,
    Late,
}

/// Positions the demuxer on the keyframe at `pts` (stream time base), or at its byte
/// position when the container cannot seek by time.
#[allow(unsafe_code)]
fn seek_to(ictx: &mut format::context::Input, stream: usize, pts: i64, pos: i64) -> Result<()> {
    // SAFETY: the context is open and owned by `ictx`; avformat_seek_file only reads it.
    let by_time = unsafe { ff::ffi::avformat_seek_file(ictx.as_mut_ptr(), stream as i32, i64::MIN, pts, pts, 0) };
    if by_time >= 0 {
        return Ok(());
    }
    if pos >= 0 {
        // SAFETY: as above.
        let by_byte =
            unsafe { ff::ffi::avformat_seek_file(ictx.as_mut_ptr(), -1, pos, pos, pos, ff::ffi::AVSEEK_FLAG_BYTE) };
        if by_byte >= 0 {
            return Ok(());
        }
    }
    Err(Error::Media { context: "seeking in the original", message: format!("no keyframe at pts {pts}") })
}

/// A per-encode name for the encoder's temporary template file.
fn unique_key(rung: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("jit/{}-{}-{rung}.template.mp4", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A rung's packets into its segments, remembering the codec configuration.
struct SpanSink {
    segmenter: SpanSegmenter,
    templates: Arc<Mutex<Vec<String>>>,
    i: usize,
}

impl PacketSink for SpanSink {
    fn open(&mut self, header: &EsHeader) -> Result<()> {
        self.templates.lock().expect("templates")[self.i] = header.init_template.clone();
        self.segmenter.open(header)
    }

    fn packet(&mut self, p: EsPacket) -> Result<()> {
        self.segmenter.push(p)
    }

    fn finish(self: Box<Self>) -> Result<()> {
        self.segmenter.finish()
    }
}
