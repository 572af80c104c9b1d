//! The audio rendition: decode, resample onto the video's timeline (silence-padded so both
//! start at zero), encode AAC (or Opus) in fixed-size frames.

use std::path::Path;

use ff::{ChannelLayout, Rational, codec, filter, format, frame};
use ffmpeg_next as ff;

use super::{is_again, media_error, read_packet, template};
use crate::error::{Error, Result};
use crate::es::{EsHeader, EsPacket, EsWriter};
use crate::media::{MediaInfo, Timeline, rescale};
use crate::pipeline::{AudioCodec, AudioSpec};
use crate::store::Store;
use crate::task::TaskContext;

const OUTPUT_RATE: u32 = 48_000;

/// Encodes the source's audio stream into `output`; `None` when there is none.
pub(super) fn encode_audio(
    source: &Path,
    media: &MediaInfo,
    timeline: Timeline,
    spec: &AudioSpec,
    output: &str,
    store: &Store,
    ctx: &TaskContext,
) -> Result<Option<String>> {
    let Some(info) = &media.audio else { return Ok(None) };
    let mut ictx = format::input(&source).map_err(media_error("opening source"))?;
    let stream = ictx.stream(info.index).ok_or_else(|| Error::Internal("audio stream vanished".into()))?;
    let atb = stream.time_base();
    let mut decoder = codec::context::Context::from_parameters(stream.parameters())
        .map_err(media_error("audio decoder"))?
        .decoder()
        .audio()
        .map_err(media_error("opening audio decoder"))?;
    let (mut encoder, codec_name) = open_encoder(spec)?;
    let layout = if decoder.channel_layout().bits() == 0 {
        ChannelLayout::default(i32::from(decoder.channels()))
    } else {
        decoder.channel_layout()
    };
    let mut graph = build_graph(&decoder, layout, spec, encoder.frame_size())?;
    let params = codec::Parameters::from(&*encoder);
    let init_template =
        template::init_template(store, &format!("{output}.template.mp4"), params, Rational(1, OUTPUT_RATE as i32))?;
    let header = EsHeader {
        codec: codec_name.to_owned(),
        timescale: OUTPUT_RATE,
        width: 0,
        height: 0,
        sample_rate: OUTPUT_RATE,
        channels: spec.channels,
        frame_rate: 0.0,
        init_template,
    };
    let mut writer = EsWriter::create(&store.prepare(output)?, &header)?;
    let in_rate = decoder.rate();
    let origin = rescale(timeline.origin_pts, timeline.time_base, in_rate);
    let total = (media.duration * f64::from(in_rate)) as u64;
    let mut decoded = frame::Audio::empty();
    let mut done = 0u64;
    let sink_and_encode =
        |graph: &mut filter::Graph, encoder: &mut ff::encoder::Audio, writer: &mut EsWriter| -> Result<()> {
            let mut filtered = frame::Audio::empty();
            loop {
                match graph.get("out").expect("sink").sink().frame(&mut filtered) {
                    Ok(()) => {
                        encoder.send_frame(&filtered).map_err(media_error("encoding audio"))?;
                        receive(encoder, writer)?;
                    }
                    Err(e) if is_again(&e) => return Ok(()),
                    Err(e) => return Err(media_error("audio filter")(e)),
                }
            }
        };
    loop {
        let Some(packet) = read_packet(&mut ictx).map_err(media_error("reading audio"))? else { break };
        if packet.stream() != info.index {
            continue;
        }
        ctx.check()?;
        let _ = decoder.send_packet(&packet);
        while decoder.receive_frame(&mut decoded).is_ok() {
            let Some(pts) = decoded.timestamp().or(decoded.pts()) else { continue };
            decoded.set_pts(Some(rescale(pts, (atb.numerator(), atb.denominator()), in_rate) - origin));
            done += decoded.samples() as u64;
            graph.get("in").expect("source").source().add(&decoded).map_err(media_error("audio filter"))?;
            sink_and_encode(&mut graph, &mut encoder, &mut writer)?;
            ctx.progress(done, total);
        }
    }
    let _ = decoder.send_eof();
    while decoder.receive_frame(&mut decoded).is_ok() {
        let Some(pts) = decoded.timestamp().or(decoded.pts()) else { continue };
        decoded.set_pts(Some(rescale(pts, (atb.numerator(), atb.denominator()), in_rate) - origin));
        graph.get("in").expect("source").source().add(&decoded).map_err(media_error("audio filter"))?;
        sink_and_encode(&mut graph, &mut encoder, &mut writer)?;
    }
    graph.get("in").expect("source").source().flush().map_err(media_error("audio filter"))?;
    sink_and_encode(&mut graph, &mut encoder, &mut writer)?;
    encoder.send_eof().map_err(media_error("flushing audio encoder"))?;
    receive(&mut encoder, &mut writer)?;
    if writer.packets() == 0 {
        return Ok(None);
    }
    writer.finish()?;
    Ok(Some(output.to_owned()))
}

fn open_encoder(spec: &AudioSpec) -> Result<(ff::encoder::Audio, &'static str)> {
    let (name, codec_name, sample_format) = match spec.codec {
        AudioCodec::Aac => ("aac", "aac", format::Sample::F32(format::sample::Type::Planar)),
        AudioCodec::Opus => ("libopus", "opus", format::Sample::F32(format::sample::Type::Packed)),
    };
    let codec =
        ff::encoder::find_by_name(name).ok_or_else(|| Error::Internal(format!("encoder {name} is not available")))?;
    let mut enc =
        codec::context::Context::new_with_codec(codec).encoder().audio().map_err(media_error("audio encoder"))?;
    let layout = if spec.channels == 1 { ChannelLayout::MONO } else { ChannelLayout::STEREO };
    enc.set_rate(OUTPUT_RATE as i32);
    enc.set_channel_layout(layout);
    enc.set_channels(spec.channels as i32);
    enc.set_format(sample_format);
    enc.set_bit_rate(spec.bitrate_kbps as usize * 1000);
    enc.set_time_base(Rational(1, OUTPUT_RATE as i32));
    enc.set_flags(codec::Flags::GLOBAL_HEADER);
    let encoder = enc.open().map_err(media_error("opening audio encoder"))?;
    Ok((encoder, codec_name))
}

fn build_graph(
    decoder: &ff::decoder::Audio,
    layout: ChannelLayout,
    spec: &AudioSpec,
    frame_size: u32,
) -> Result<filter::Graph> {
    let mut graph = filter::Graph::new();
    let args = format!(
        "time_base=1/{rate}:sample_rate={rate}:sample_fmt={fmt}:channel_layout=0x{layout:x}",
        rate = decoder.rate(),
        fmt = decoder.format().name(),
        layout = layout.bits()
    );
    graph.add(&filter::find("abuffer").expect("abuffer"), "in", &args).map_err(media_error("audio source"))?;
    graph.add(&filter::find("abuffersink").expect("abuffersink"), "out", "").map_err(media_error("audio sink"))?;
    let (fmt, channels) = match (spec.codec, spec.channels) {
        (AudioCodec::Aac, 1) => ("fltp", "mono"),
        (AudioCodec::Aac, _) => ("fltp", "stereo"),
        (AudioCodec::Opus, 1) => ("flt", "mono"),
        (AudioCodec::Opus, _) => ("flt", "stereo"),
    };
    // async=1 pads a late start with silence and keeps drifting sources in sync; first_pts=0
    // makes audio begin exactly where the video timeline does.
    let chain = format!(
        "aresample={OUTPUT_RATE}:async=1:first_pts=0,aformat=sample_fmts={fmt}:sample_rates={OUTPUT_RATE}:channel_layouts={channels}"
    );
    graph
        .output("in", 0)
        .and_then(|p| p.input("out", 0))
        .and_then(|p| p.parse(&chain))
        .map_err(media_error("audio graph"))?;
    graph.validate().map_err(media_error("audio graph"))?;
    if frame_size > 0 {
        graph.get("out").expect("sink").sink().set_frame_size(frame_size);
    }
    Ok(graph)
}

fn receive(encoder: &mut ff::encoder::Audio, writer: &mut EsWriter) -> Result<()> {
    let mut p = ff::Packet::empty();
    loop {
        match encoder.receive_packet(&mut p) {
            Ok(()) => writer.write(&EsPacket {
                pts: p.pts().unwrap_or(0),
                dts: p.dts().or(p.pts()).unwrap_or(0),
                duration: p.duration().max(0) as u32,
                keyframe: true,
                data: p.data().map(<[u8]>::to_vec).unwrap_or_default(),
            })?,
            Err(e) if is_again(&e) => return Ok(()),
            Err(e) => return Err(media_error("encoding audio")(e)),
        }
    }
}
