//! Inspection: probe the container and streams, decode the first picture, and refuse what
//! cannot become a video, each refusal with its own code.

use std::fs;
use std::io::Read;
use std::path::Path;

use ff::{codec, format, media};
use ffmpeg_next as ff;

use crate::error::{Error, Rejection, Result};
use crate::media::{AudioInfo, Limits, MediaInfo, VideoInfo};

/// Probes `source` and checks it against `limits`.
pub fn inspect(source: &Path, limits: &Limits) -> Result<MediaInfo> {
    super::init();
    let size = fs::metadata(source).map_err(Error::io("stat", source))?.len();
    if size == 0 {
        return Err(Error::rejected(Rejection::EmptyFile, "the file is empty"));
    }
    if size > limits.max_bytes {
        return Err(Error::rejected(
            Rejection::FileTooLarge,
            format!("the file has {size} bytes; the limit is {} bytes", limits.max_bytes),
        ));
    }
    let mut ictx = format::input(&source).map_err(|e| unreadable(source, &e))?;
    let container = ictx.format().name().to_owned();
    let video_stream = ictx
        .streams()
        .filter(|s| s.parameters().medium() == media::Type::Video)
        .filter(|s| !s.disposition().contains(format::stream::Disposition::ATTACHED_PIC))
        .max_by_key(|s| {
            let p = s.parameters();
            let (w, h) = unsafe { ((*p.as_ptr()).width, (*p.as_ptr()).height) };
            i64::from(w) * i64::from(h)
        })
        .ok_or_else(|| Error::rejected(Rejection::NoVideoStream, "the file has no video stream"))?;
    let index = video_stream.index();
    let time_base = video_stream.time_base();
    let params = video_stream.parameters();
    let codec_name = params.id().name().to_owned();
    // Demuxers for text art (ANSI, binary text) accept almost any bytes as "video".
    if matches!(codec_name.as_str(), "bintext" | "xbin" | "idf" | "ansi" | "tty" | "text") {
        return Err(Error::rejected(Rejection::NotMedia, "not a recognised audio/video format"));
    }
    if is_still_image(&container, &codec_name, video_stream.frames()) {
        return Err(Error::rejected(Rejection::StillImage, format!("a still picture ({codec_name}), not a video")));
    }
    let rotation = display_rotation(&video_stream);
    let avg = video_stream.avg_frame_rate();
    let real = video_stream.rate();
    let frame_rate = pick_rate(avg, real);
    let vfr = avg.numerator() > 0
        && real.numerator() > 0
        && (f64::from(avg) - f64::from(real)).abs() / f64::from(real) > 0.01;
    let duration = container_duration(&ictx, &video_stream);
    let audio = pick_audio(&ictx);
    let (first, start_pts) = first_picture(&mut ictx, index, params, &codec_name)?;
    let video = VideoInfo {
        index,
        codec: codec_name,
        width: first.width(),
        height: first.height(),
        sample_aspect: aspect_of(first.aspect_ratio()),
        rotation,
        frame_rate,
        variable_frame_rate: vfr,
        pixel_format: format!("{:?}", first.format()).to_lowercase(),
        bit_depth: bit_depth(first.format()),
        time_base: (time_base.numerator(), time_base.denominator()),
        start_pts,
    };
    check_limits(&video, duration, limits)?;
    Ok(MediaInfo { container, size, duration, video, audio })
}

fn check_limits(video: &VideoInfo, duration: f64, limits: &Limits) -> Result<()> {
    let (w, h) = (video.width, video.height);
    let dims_ok = w >= limits.min_dimension
        && h >= limits.min_dimension
        && w <= limits.max_dimension
        && h <= limits.max_dimension
        && u64::from(w) * u64::from(h) <= limits.max_pixels;
    if !dims_ok {
        return Err(Error::rejected(
            Rejection::DimensionsOutOfRange,
            format!(
                "{w}x{h} is outside {min}..{max} pixels per side",
                min = limits.min_dimension,
                max = limits.max_dimension
            ),
        ));
    }
    if !(duration.is_finite() && duration >= limits.min_duration && duration <= limits.max_duration) {
        return Err(Error::rejected(
            Rejection::DurationOutOfRange,
            format!("duration {duration:.2} s is outside {}..{} s", limits.min_duration, limits.max_duration),
        ));
    }
    Ok(())
}

/// Tells a file no demuxer knows from a known container that cannot be read.
fn unreadable(source: &Path, e: &ff::Error) -> Error {
    let mut head = [0u8; 16];
    let n = fs::File::open(source).and_then(|mut f| f.read(&mut head)).unwrap_or(0);
    let head = &head[..n];
    let known = head.get(4..8).is_some_and(|b| matches!(b, b"ftyp" | b"moov" | b"mdat" | b"free" | b"wide"))
        || head.starts_with(&[0x1a, 0x45, 0xdf, 0xa3])
        || head.starts_with(b"RIFF")
        || head.starts_with(b"OggS")
        || head.starts_with(b"FLV")
        || head.first() == Some(&0x47);
    if known {
        Error::rejected(Rejection::CorruptMedia, format!("the container is damaged or truncated: {e}"))
    } else {
        Error::rejected(Rejection::NotMedia, format!("not a recognised audio/video format: {e}"))
    }
}

fn is_still_image(container: &str, codec: &str, frames: i64) -> bool {
    let image_container = container.ends_with("_pipe") || container == "image2";
    let image_codec = matches!(codec, "png" | "mjpeg" | "bmp" | "webp" | "tiff" | "gif" | "jpeg2000");
    image_container || (image_codec && frames == 1)
}

fn pick_rate(avg: ff::Rational, real: ff::Rational) -> (u32, u32) {
    let valid = |r: ff::Rational| r.numerator() > 0 && r.denominator() > 0 && f64::from(r) < 1000.0;
    let r = if valid(avg) {
        avg
    } else if valid(real) {
        real
    } else {
        ff::Rational(25, 1)
    };
    (r.numerator() as u32, r.denominator() as u32)
}

fn aspect_of(r: ff::Rational) -> (u32, u32) {
    if r.numerator() > 0 && r.denominator() > 0 { (r.numerator() as u32, r.denominator() as u32) } else { (1, 1) }
}

fn bit_depth(format: format::Pixel) -> u32 {
    let name = format!("{format:?}").to_lowercase();
    ["16", "14", "12", "10", "9"]
        .iter()
        .find(|d| name.contains(&format!("p{d}")))
        .and_then(|d| d.parse().ok())
        .unwrap_or(8)
}

/// Clockwise rotation (0/90/180/270) a player applies, from the display matrix.
fn display_rotation(stream: &format::stream::Stream<'_>) -> u32 {
    for side in stream.side_data() {
        if side.kind() == codec::packet::side_data::Type::DisplayMatrix && side.data().len() >= 36 {
            let m: Vec<f64> = side
                .data()
                .chunks_exact(4)
                .take(9)
                .map(|c| f64::from(i32::from_ne_bytes([c[0], c[1], c[2], c[3]])) / 65536.0)
                .collect();
            let (s0, s1) = (m[0].hypot(m[3]), m[1].hypot(m[4]));
            if s0 == 0.0 || s1 == 0.0 {
                return 0;
            }
            let degrees = (m[1] / s1).atan2(m[0] / s0).to_degrees();
            let quarter = ((degrees / 90.0).round() as i64).rem_euclid(4);
            return (quarter * 90) as u32;
        }
    }
    0
}

fn container_duration(ictx: &format::context::Input, stream: &format::stream::Stream<'_>) -> f64 {
    let d = ictx.duration();
    if d > 0 {
        return d as f64 / f64::from(ff::ffi::AV_TIME_BASE);
    }
    let sd = stream.duration();
    if sd > 0 {
        return sd as f64 * f64::from(stream.time_base());
    }
    f64::NAN
}

fn pick_audio(ictx: &format::context::Input) -> Option<AudioInfo> {
    let stream = ictx.streams().best(media::Type::Audio)?;
    let params = stream.parameters();
    let ctx = codec::context::Context::from_parameters(params).ok()?;
    let dec = ctx.decoder().audio().ok()?;
    if dec.rate() == 0 {
        return None;
    }
    let layout = dec.channel_layout();
    Some(AudioInfo {
        index: stream.index(),
        codec: dec.id().name().to_owned(),
        sample_rate: dec.rate(),
        channels: u32::from(dec.channels()),
        layout: format!("{:?}", layout).to_lowercase(),
    })
}

/// Decodes the first picture from the first keyframe on; returns it and that keyframe's pts.
fn first_picture(
    ictx: &mut format::context::Input,
    index: usize,
    params: codec::Parameters,
    codec_name: &str,
) -> Result<(ff::frame::Video, i64)> {
    let ctx = codec::context::Context::from_parameters(params).map_err(super::media_error("decoder context"))?;
    let mut decoder = ctx.decoder().video().map_err(|e| {
        Error::rejected(Rejection::UnsupportedCodec, format!("no decoder for video codec `{codec_name}`: {e}"))
    })?;
    let mut frame = ff::frame::Video::empty();
    let mut start_pts = None;
    let mut sent = 0;
    loop {
        let packet = match super::read_packet(ictx) {
            Ok(Some(p)) => p,
            Ok(None) => break,
            Err(e) => {
                return Err(Error::rejected(Rejection::CorruptMedia, format!("cannot read the first packets: {e}")));
            }
        };
        if packet.stream() != index {
            continue;
        }
        if start_pts.is_none() {
            if !packet.is_key() {
                continue;
            }
            start_pts = packet.pts().or(packet.dts());
        }
        // A damaged packet here and there is tolerated; the decoder conceals it.
        let _ = decoder.send_packet(&packet);
        sent += 1;
        if decoder.receive_frame(&mut frame).is_ok() {
            return Ok((frame, start_pts.unwrap_or(0)));
        }
        if sent > 300 {
            break;
        }
    }
    let _ = decoder.send_eof();
    if decoder.receive_frame(&mut frame).is_ok() {
        return Ok((frame, start_pts.unwrap_or(0)));
    }
    Err(Error::rejected(Rejection::CorruptMedia, "no picture could be decoded from the video stream"))
}
