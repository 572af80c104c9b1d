//! Encode one chunk into every rung of a ladder: decode once, filter once (rotation,
//! watermark, cascaded scaling from the largest rung down), and run each rung's encoder on
//! its own thread, so a chunk alone can still fill the cores.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use ff::{Dictionary, Rational, codec, format, frame, picture};
use ffmpeg_next as ff;

use super::cascade::ladder_filter;
use super::graph::{BufferSpec, VideoGraph};
use super::{is_again, media_error, read_packet, template};
use crate::error::{Error, Result};
use crate::es::{EsHeader, EsPacket, EsWriter};
use crate::ladder::{RateControl, Rung, VideoCodec};
use crate::media::VIDEO_TIMESCALE;
use crate::store::Store;
use crate::task::{Overlay, TaskContext, Work};

/// Frames buffered between the filter graph and each rung's encoder.
const QUEUE_DEPTH: usize = 6;

/// Runs an encode task; returns the part keys written, one per rung.
pub(super) fn encode_chunk(work: &Work, store: &Store, ctx: &TaskContext) -> Result<Vec<String>> {
    let Work::Encode { chunk, timeline, video, rungs, overlay, segment_seconds, outputs, deferred } = work else {
        return Err(Error::Internal("encode_chunk needs encode work".into()));
    };
    let path = store.path(&chunk.key)?;
    let mut ictx = format::input(&path).map_err(media_error("opening chunk"))?;
    let stream = ictx.stream(0).ok_or_else(|| Error::Internal("chunk has no stream".into()))?;
    let tb = stream.time_base();
    let mut dec_ctx = codec::context::Context::from_parameters(stream.parameters()).map_err(media_error("decoder"))?;
    dec_ctx.set_threading(codec::threading::Config {
        kind: codec::threading::Type::Frame,
        count: 1,
        ..Default::default()
    });
    let mut decoder = dec_ctx.decoder().video().map_err(media_error("opening decoder"))?;
    let fps = Rational(video.frame_rate.0 as i32, video.frame_rate.1.max(1) as i32);
    let segment_ticks = (segment_seconds * f64::from(VIDEO_TIMESCALE)).round() as i64;
    let expected =
        chunk.end.map_or(0, |e| ((e - chunk.start) as f64 / f64::from(VIDEO_TIMESCALE) * video.fps()) as u64);

    let mut senders = Vec::new();
    let mut workers = Vec::new();
    let threads = rung_threads(rungs, ctx.cores());
    for (i, rung) in rungs.iter().enumerate() {
        let (tx, rx) = sync_channel::<frame::Video>(QUEUE_DEPTH);
        senders.push(tx);
        // The first chunk also records the codec configuration of the rungs left for later,
        // so their init segments and codec strings exist before any of them is encoded.
        let later = if i == 0 && chunk.index == 0 { deferred.clone() } else { Vec::new() };
        let job = RungJob {
            rung: rung.clone(),
            threads: threads[i],
            sink: Box::new(PartFile { path: store.prepare(&outputs[i])?, writer: None }),
            template_key: format!("{}.template.mp4", outputs[i]),
            deferred: later.iter().map(|r| (r.clone(), template_key(&outputs[i], &r.name))).collect(),
            store: store.clone(),
            segment_ticks,
            chunk_end: chunk.end,
            fps,
        };
        workers.push(job.spawn(rx)?);
    }

    let overlay_png = overlay.as_ref().map(|o| store.path(&o.key)).transpose()?;
    let mut feed = Feed {
        graph: None,
        overlay: overlay.as_ref().zip(overlay_png),
        video_rotation: video.rotation,
        rungs,
        senders,
        last: i64::MIN,
        frames: 0,
    };
    let result = (|| -> Result<()> {
        let mut decoded = frame::Video::empty();
        let ticks_of = |pts: i64| timeline.to_ticks(pts, (tb.numerator(), tb.denominator()), VIDEO_TIMESCALE);
        let owns = |t: i64| t >= chunk.start && chunk.end.is_none_or(|e| t < e);
        let on_frame = |f: &mut frame::Video, feed: &mut Feed<'_>| -> Result<()> {
            let Some(pts) = f.timestamp().or(f.pts()) else { return Ok(()) };
            let t = ticks_of(pts);
            if owns(t) {
                feed.frame(f, t, chunk.start)?;
                ctx.progress(feed.frames, expected);
            }
            Ok(())
        };
        loop {
            let Some(packet) = read_packet(&mut ictx).map_err(media_error("reading chunk"))? else { break };
            ctx.check()?;
            // A damaged packet is concealed by the decoder rather than failing the chunk.
            let _ = decoder.send_packet(&packet);
            while decoder.receive_frame(&mut decoded).is_ok() {
                on_frame(&mut decoded, &mut feed)?;
            }
        }
        let _ = decoder.send_eof();
        while decoder.receive_frame(&mut decoded).is_ok() {
            on_frame(&mut decoded, &mut feed)?;
        }
        feed.finish()
    })();
    drop(feed);
    join(workers, result)?;
    let mut written = outputs.clone();
    if chunk.index == 0 {
        written.extend(deferred.iter().map(|r| template_key(&outputs[0], &r.name)));
    }
    Ok(written)
}

/// Where the first chunk records a deferred rung's codec configuration.
pub(crate) fn template_key(first_output: &str, rung: &str) -> String {
    let dir = first_output.rsplit_once('/').map_or("", |(d, _)| d);
    let node_dir = dir.rsplit_once('/').map_or(dir, |(d, _)| d);
    format!("{node_dir}/templates/{rung}.hex")
}

/// Waits for every rung's encoder; the first error wins.
pub(super) fn join(workers: Vec<std::thread::JoinHandle<Result<()>>>, fed: Result<()>) -> Result<()> {
    let mut first_error = fed.err();
    for w in workers {
        match w.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(_) => {
                first_error.get_or_insert(Error::Internal("encoder thread panicked".into()));
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// The decode side: filters frames and hands each rung its pictures.
pub(super) struct Feed<'a> {
    pub(super) graph: Option<VideoGraph>,
    /// The watermark and its rendered picture.
    pub(super) overlay: Option<(&'a Overlay, PathBuf)>,
    pub(super) video_rotation: u32,
    pub(super) rungs: &'a [Rung],
    pub(super) senders: Vec<SyncSender<frame::Video>>,
    pub(super) last: i64,
    pub(super) frames: u64,
}

impl Feed<'_> {
    pub(super) fn frame(&mut self, f: &mut frame::Video, ticks: i64, chunk_start: i64) -> Result<()> {
        // Broken sources sometimes repeat a timestamp; encoders need them strictly rising.
        if ticks <= self.last {
            return Ok(());
        }
        self.last = ticks;
        if self.graph.is_none() {
            self.graph = Some(self.build_graph(f, chunk_start)?);
        }
        f.set_pts(Some(ticks));
        self.graph.as_mut().expect("built").push("in", f)?;
        self.frames += 1;
        self.drain()
    }

    fn build_graph(&self, first: &frame::Video, chunk_start: i64) -> Result<VideoGraph> {
        let input = BufferSpec {
            name: "in",
            width: first.width(),
            height: first.height(),
            format: first.format(),
            time_base: Rational(1, VIDEO_TIMESCALE as i32),
            aspect: first.aspect_ratio(),
        };
        // The picture size after rotation; a non-square sample aspect always needs scaling.
        let upright = if self.video_rotation % 180 == 90 {
            (first.height(), first.width())
        } else {
            (first.width(), first.height())
        };
        let square = first.aspect_ratio().numerator() == first.aspect_ratio().denominator()
            || first.aspect_ratio().numerator() == 0;
        let overlay = self.overlay.as_ref().map(|(o, _)| *o);
        let spec = ladder_filter(self.video_rotation, overlay, self.rungs, if square { upright } else { (0, 0) });
        let Some((_, png)) = &self.overlay else {
            return VideoGraph::new(&[input], &spec, self.rungs.len());
        };
        let mut picture = super::picture::load_png(png)?;
        let mark = BufferSpec {
            name: "wm",
            width: picture.width(),
            height: picture.height(),
            format: picture.format(),
            time_base: Rational(1, VIDEO_TIMESCALE as i32),
            aspect: Rational(1, 1),
        };
        let mut graph = VideoGraph::new(&[input, mark], &spec, self.rungs.len())?;
        picture.set_pts(Some(chunk_start));
        graph.push("wm", &picture)?;
        graph.close("wm")?;
        Ok(graph)
    }

    fn drain(&mut self) -> Result<()> {
        let Some(graph) = self.graph.as_mut() else { return Ok(()) };
        for i in 0..graph.outputs() {
            let mut out = frame::Video::empty();
            while graph.pull(i, &mut out)? {
                if self.senders[i].send(out).is_err() {
                    // The encoder thread stopped; its own error is reported when joined.
                    return Err(Error::Internal(format!("encoder for {} stopped", self.rungs[i].name)));
                }
                out = frame::Video::empty();
            }
        }
        Ok(())
    }

    pub(super) fn finish(&mut self) -> Result<()> {
        if let Some(graph) = self.graph.as_mut() {
            graph.close("in")?;
        }
        self.drain()
    }
}

/// Encoder threads per rung: one each, plus extra frame threads for a rung whose share of
/// the pixels exceeds what one core can carry, so the largest rung does not leave the
/// other cores idle at the end of every chunk.
pub(super) fn rung_threads(rungs: &[Rung], cores: usize) -> Vec<usize> {
    let pixels = |r: &Rung| u64::from(r.width) * u64::from(r.height);
    let total: u64 = rungs.iter().map(pixels).sum::<u64>().max(1);
    rungs
        .iter()
        .map(|r| 1 + (pixels(r) as f64 / total as f64 * cores as f64).floor() as usize)
        .map(|t| t.min(cores.max(1)))
        .collect()
}

/// Where one rung's packets go, in decode order, each with its display duration known.
pub(super) trait PacketSink: Send {
    /// The encoder is open: what its packets are.
    fn open(&mut self, header: &EsHeader) -> Result<()>;
    /// The next packet.
    fn packet(&mut self, p: EsPacket) -> Result<()>;
    /// No more packets.
    fn finish(self: Box<Self>) -> Result<()>;
}

/// An encoded part in temporary storage, for the package task.
struct PartFile {
    path: PathBuf,
    writer: Option<EsWriter>,
}

impl PacketSink for PartFile {
    fn open(&mut self, header: &EsHeader) -> Result<()> {
        self.writer = Some(EsWriter::create(&self.path, header)?);
        Ok(())
    }

    fn packet(&mut self, p: EsPacket) -> Result<()> {
        self.writer.as_mut().ok_or_else(|| Error::Internal("part written before it was opened".into()))?.write(&p)
    }

    fn finish(self: Box<Self>) -> Result<()> {
        self.writer.ok_or_else(|| Error::Internal("part finished before it was opened".into()))?.finish()
    }
}

/// One rung's encoder, on its own thread.
pub(super) struct RungJob {
    pub(super) rung: Rung,
    pub(super) threads: usize,
    pub(super) sink: Box<dyn PacketSink>,
    pub(super) template_key: String,
    /// Rungs whose codec configuration to record (artifact key, hex) when this one opens.
    pub(super) deferred: Vec<(Rung, String)>,
    pub(super) store: Store,
    pub(super) segment_ticks: i64,
    pub(super) chunk_end: Option<i64>,
    pub(super) fps: Rational,
}

impl RungJob {
    /// Runs the encoder on its own thread, fed through `frames`.
    pub(super) fn spawn(self, frames: Receiver<frame::Video>) -> Result<std::thread::JoinHandle<Result<()>>> {
        std::thread::Builder::new()
            .name(format!("enc-{}", self.rung.name))
            .spawn(move || self.run(frames))
            .map_err(|e| Error::Internal(format!("spawn encoder thread: {e}")))
    }

    fn run(mut self, frames: Receiver<frame::Video>) -> Result<()> {
        let mut opened: Option<ff::encoder::Video> = None;
        let mut prev: Option<(i64, i64)> = None;
        let mut durations: HashMap<i64, u32> = HashMap::new();
        let mut waiting: VecDeque<EsPacket> = VecDeque::new();
        let nominal = (i64::from(VIDEO_TIMESCALE) * i64::from(self.fps.denominator())
            / i64::from(self.fps.numerator().max(1))) as u32;
        for mut f in frames {
            let pts = f.pts().unwrap_or(0);
            if opened.is_none() {
                opened = Some(self.open(&f)?);
            }
            let encoder = opened.as_mut().expect("opened");
            let segment = pts.div_euclid(self.segment_ticks);
            if let Some((p, _)) = prev {
                durations.insert(p, (pts - p) as u32);
            }
            // A keyframe at the first frame of each segment slot, in every rung alike.
            let forced = prev.is_none_or(|(_, s)| s != segment);
            f.set_kind(if forced { picture::Type::I } else { picture::Type::None });
            encoder.send_frame(&f).map_err(media_error("encoding"))?;
            receive(encoder, &mut waiting)?;
            flush_ready(&mut waiting, &durations, self.sink.as_mut(), false)?;
            prev = Some((pts, segment));
        }
        let mut encoder =
            opened.ok_or_else(|| Error::Internal(format!("{}: the chunk yielded no frames", self.rung.name)))?;
        if let Some((p, _)) = prev {
            let last = self.chunk_end.map_or(nominal, |e| (e - p).clamp(1, i64::from(u32::MAX)) as u32);
            durations.insert(p, last);
        }
        encoder.send_eof().map_err(media_error("flushing encoder"))?;
        receive(&mut encoder, &mut waiting)?;
        flush_ready(&mut waiting, &durations, self.sink.as_mut(), true)?;
        self.sink.finish()
    }

    fn open(&mut self, first: &frame::Video) -> Result<ff::encoder::Video> {
        let encoder = open_encoder(&self.rung, self.threads, first, self.fps)?;
        let header = header_of(&self.rung, &encoder, self.fps, &self.store, &self.template_key)?;
        self.sink.open(&header)?;
        for (rung, key) in &self.deferred {
            let other = open_encoder(rung, 1, first, self.fps)?;
            let template = header_of(rung, &other, self.fps, &self.store, &format!("{key}.mp4"))?.init_template;
            self.store.write_atomic(key, template.as_bytes())?;
        }
        Ok(encoder)
    }
}

/// The stream description of an opened encoder, with the sample entry FFmpeg's muxer would
/// write for it.
fn header_of(r: &Rung, encoder: &ff::encoder::Video, fps: Rational, store: &Store, key: &str) -> Result<EsHeader> {
    let params = codec::Parameters::from(&**encoder);
    let init_template = template::init_template(store, key, params, Rational(1, VIDEO_TIMESCALE as i32))?;
    Ok(EsHeader {
        codec: r.codec.as_str().to_owned(),
        timescale: VIDEO_TIMESCALE,
        width: r.width,
        height: r.height,
        sample_rate: 0,
        channels: 0,
        frame_rate: f64::from(fps),
        init_template,
    })
}

/// Opens `r`'s encoder for pictures like `first`. Everything that shapes the bitstream's
/// configuration comes from the rung, so every encode of a rung, whole or one segment at a
/// time, matches the rung's one init segment.
pub(super) fn open_encoder(
    r: &Rung,
    threads: usize,
    first: &frame::Video,
    fps: Rational,
) -> Result<ff::encoder::Video> {
    {
        let codec = ff::encoder::find_by_name(r.codec.encoder_name())
            .ok_or_else(|| Error::Internal(format!("encoder {} is not available", r.codec.encoder_name())))?;
        let mut enc =
            codec::context::Context::new_with_codec(codec).encoder().video().map_err(media_error("encoder"))?;
        enc.set_width(r.width);
        enc.set_height(r.height);
        enc.set_format(format::Pixel::YUV420P);
        enc.set_time_base(Rational(1, VIDEO_TIMESCALE as i32));
        enc.set_frame_rate(Some(fps));
        enc.set_aspect_ratio(Rational(1, 1));
        // Keyframes come from forced frames at segment starts; never from a GOP counter.
        enc.set_gop((fps.numerator().max(1) as u32 / fps.denominator().max(1) as u32 + 1) * 60);
        enc.set_flags(codec::Flags::GLOBAL_HEADER);
        enc.set_colorspace(first.color_space());
        enc.set_color_range(first.color_range());
        enc.set_color_primaries(first.color_primaries());
        enc.set_color_transfer_characteristic(first.color_transfer_characteristic());
        let mut opts = Dictionary::new();
        opts.set("threads", &threads.to_string());
        opts.set("maxrate", &r.max_bitrate.to_string());
        opts.set("bufsize", &r.buffer_bits.to_string());
        if r.rate_control == RateControl::Abr {
            opts.set("b", &r.max_bitrate.to_string());
        }
        match r.codec {
            VideoCodec::H264 => {
                opts.set("preset", &r.preset);
                opts.set("profile", "high");
                opts.set("forced-idr", "1");
                opts.set("x264-params", "scenecut=0:open-gop=0");
                if r.rate_control == RateControl::Crf {
                    opts.set("crf", &r.crf.to_string());
                }
            }
            VideoCodec::Vp9 => {
                opts.set("deadline", "good");
                opts.set("cpu-used", &r.preset);
                opts.set("row-mt", "1");
                if r.rate_control == RateControl::Crf {
                    // Constrained quality: CRF with the cap as the target ceiling.
                    opts.set("crf", &r.crf.to_string());
                    opts.set("b", &r.max_bitrate.to_string());
                }
            }
            VideoCodec::Av1 => {
                opts.set("preset", &r.preset);
                if r.rate_control == RateControl::Crf {
                    opts.set("crf", &r.crf.to_string());
                }
            }
        }
        enc.open_with(opts).map_err(media_error("opening encoder"))
    }
}

fn receive(encoder: &mut ff::encoder::Video, waiting: &mut VecDeque<EsPacket>) -> Result<()> {
    let mut p = ff::Packet::empty();
    loop {
        match encoder.receive_packet(&mut p) {
            Ok(()) => waiting.push_back(EsPacket {
                pts: p.pts().unwrap_or(0),
                dts: p.dts().or(p.pts()).unwrap_or(0),
                duration: 0,
                keyframe: p.is_key(),
                data: p.data().map(<[u8]>::to_vec).unwrap_or_default(),
            }),
            Err(e) if is_again(&e) => return Ok(()),
            Err(e) => return Err(media_error("encoding")(e)),
        }
    }
}

/// Writes queued packets whose display duration is known (packets leave the encoder in
/// decode order, durations become known in presentation order).
fn flush_ready(
    waiting: &mut VecDeque<EsPacket>,
    durations: &HashMap<i64, u32>,
    sink: &mut dyn PacketSink,
    all: bool,
) -> Result<()> {
    while let Some(front) = waiting.front() {
        let duration = match durations.get(&front.pts) {
            Some(&d) => d,
            None if all => 1,
            None => return Ok(()),
        };
        let mut p = waiting.pop_front().expect("front exists");
        p.duration = duration;
        sink.packet(p)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ladder::{LadderSpec, derive};
    use crate::media::VideoInfo;

    #[test]
    fn threads_follow_the_pixel_share() {
        let video = VideoInfo::sample(1920, 1080);
        let mut spec = LadderSpec::for_codec(VideoCodec::H264);
        spec.classes = Some(vec![360, 1080, 720]);
        let rungs = derive(&video, &spec);
        assert_eq!(rung_threads(&rungs, 2), vec![1, 1, 2]);
        assert_eq!(rung_threads(&rungs, 1), vec![1, 1, 1]);
    }
}
