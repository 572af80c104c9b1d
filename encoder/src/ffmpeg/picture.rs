//! Pictures: the poster (the most detailed of many evenly spaced frames, never a black
//! opening frame) and the creator's other poster choices, the storyboard sprite and its WebVTT track, and the watermark overlay.

use std::fmt::Write as _;
use std::path::Path;

use ff::{Rational, codec, format, frame};
use ffmpeg_next as ff;

use super::graph::{BufferSpec, VideoGraph, rotation_filters};
use super::media_error;
use crate::error::{Error, Result};
use crate::media::{MediaInfo, VideoInfo};
use crate::pipeline::{Corner, ThumbnailSpec, WatermarkSpec};
use crate::store::Store;
use crate::task::{Overlay, TaskContext, Thumbnails};

/// Produces the poster and storyboard in temporary storage.
pub(super) fn thumbnails(
    source: &Path,
    media: &MediaInfo,
    spec: &ThumbnailSpec,
    store: &Store,
    ctx: &TaskContext,
) -> Result<Thumbnails> {
    let (dw, dh) = media.video.display_size();
    let duration = media.duration.max(0.1);
    let interval = spec
        .storyboard_interval
        .unwrap_or_else(|| (duration / f64::from(spec.max_tiles)).ceil().max(1.0))
        .max(duration / f64::from(spec.max_tiles));
    let count = ((duration / interval).ceil() as usize).clamp(1, spec.max_tiles as usize);
    let tile_w = even(spec.tile_width.min(dw));
    let tile_h = even((f64::from(tile_w) * f64::from(dh) / f64::from(dw)).round() as u32);
    let times: Vec<f64> =
        (0..count).map(|k| (k as f64 + 0.5) * interval).map(|t| t.min(duration - 0.05).max(0.0)).collect();

    let mut grabber = Grabber::open(source, &media.video)?;
    let mut tiles = Vec::with_capacity(count);
    for (k, &t) in times.iter().enumerate() {
        ctx.check()?;
        match grabber.frame_at(t)? {
            Some(f) => tiles.push(Some(grabber.scaled(&f, tile_w, tile_h)?)),
            None => tiles.push(None),
        }
        ctx.progress(k as u64 + 1, count as u64 + 1);
    }
    // The poster is the tile with the most detail (luma spread), away from black and white;
    // the creator's other choices are the next most detailed tiles apart from it and each other.
    let scores: Vec<Option<f64>> = tiles.iter().map(|t| t.as_ref().map(interest)).collect();
    let picks = poster_picks(&scores, crate::layout::POSTER_CHOICES);
    let poster_w = even(spec.poster_width.min(dw));
    let poster_h = even((f64::from(poster_w) * f64::from(dh) / f64::from(dw)).round() as u32);
    let mut out = Thumbnails {
        poster: "pictures/poster.jpg".into(),
        sprite: "pictures/storyboard.jpg".into(),
        vtt: "pictures/storyboard.vtt".into(),
        choices: Vec::with_capacity(picks.len()),
    };
    for (n, &k) in picks.iter().enumerate() {
        let frame = grabber
            .frame_at(times[k])?
            .ok_or_else(|| Error::Internal("the poster frame could not be decoded".into()))?;
        let jpeg = encode_jpeg(&grabber.scaled(&frame, poster_w, poster_h)?)?;
        if n == 0 {
            store.write_atomic(&out.poster, &jpeg)?;
        }
        let key = format!("pictures/{}", crate::layout::poster_choice(n + 1));
        store.write_atomic(&key, &jpeg)?;
        out.choices.push(key);
    }
    let columns = spec.columns.min(count as u32).max(1);
    let sprite = sprite(&tiles, columns, tile_w, tile_h)?;
    store.write_atomic(&out.sprite, &encode_jpeg(&sprite)?)?;
    store.write_atomic(&out.vtt, storyboard_vtt(count, interval, duration, columns, tile_w, tile_h).as_bytes())?;
    ctx.progress(count as u64 + 1, count as u64 + 1);
    Ok(out)
}

/// Up to `n` tile indexes for posters, best first: the most detailed decoded tile, then the
/// most detailed ones at least a quarter of the tiles away from every pick (then any, when the
/// video is too short to spread them). Never empty: tile 0 when nothing decoded.
pub(crate) fn poster_picks(scores: &[Option<f64>], n: usize) -> Vec<usize> {
    let mut ranked: Vec<(usize, f64)> = scores.iter().enumerate().filter_map(|(k, s)| s.map(|s| (k, s))).collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let apart = (scores.len() / 4).max(1);
    let mut picks: Vec<usize> = Vec::with_capacity(n);
    for &(k, _) in &ranked {
        if picks.len() < n && picks.iter().all(|&p| p.abs_diff(k) >= apart) {
            picks.push(k);
        }
    }
    for &(k, _) in &ranked {
        if picks.len() < n && !picks.contains(&k) {
            picks.push(k);
        }
    }
    if picks.is_empty() {
        picks.push(0);
    }
    picks
}

fn even(v: u32) -> u32 {
    (v & !1).max(2)
}

/// The WebVTT track mapping each interval to its tile in `storyboard.jpg`.
pub(crate) fn storyboard_vtt(count: usize, interval: f64, duration: f64, columns: u32, w: u32, h: u32) -> String {
    let mut vtt = String::from("WEBVTT\n");
    for k in 0..count {
        let start = k as f64 * interval;
        let end = ((k + 1) as f64 * interval).min(duration.max(start + 0.001));
        let (col, row) = (k as u32 % columns, k as u32 / columns);
        let _ = write!(
            vtt,
            "\n{} --> {}\n{}#xywh={},{},{w},{h}\n",
            vtt_time(start),
            vtt_time(end),
            crate::layout::STORYBOARD,
            col * w,
            row * h
        );
    }
    vtt
}

fn vtt_time(t: f64) -> String {
    let ms = (t * 1000.0).round() as u64;
    format!("{:02}:{:02}:{:02}.{:03}", ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000)
}

fn interest(f: &frame::Video) -> f64 {
    let (w, h, stride) = (f.width() as usize, f.height() as usize, f.stride(0));
    let y = f.data(0);
    let (mut sum, mut sq, mut n) = (0f64, 0f64, 0f64);
    for row in (0..h).step_by(2) {
        for &v in y[row * stride..row * stride + w].iter().step_by(2) {
            let v = f64::from(v);
            sum += v;
            sq += v * v;
            n += 1.0;
        }
    }
    let mean = sum / n.max(1.0);
    let spread = (sq / n.max(1.0) - mean * mean).max(0.0).sqrt();
    let exposure = if (40.0..=215.0).contains(&mean) { 1.0 } else { 0.25 };
    spread * exposure
}

fn sprite(tiles: &[Option<frame::Video>], columns: u32, w: u32, h: u32) -> Result<frame::Video> {
    let rows = (tiles.len() as u32).div_ceil(columns);
    let mut sheet = frame::Video::new(format::Pixel::YUVJ420P, columns * w, rows * h);
    for plane in 0..3 {
        let fill = if plane == 0 { 0 } else { 128 };
        sheet.data_mut(plane).fill(fill);
    }
    for (k, tile) in tiles.iter().enumerate() {
        let Some(tile) = tile else { continue };
        let (col, row) = (k as u32 % columns, k as u32 / columns);
        for plane in 0..3 {
            let shift = u32::from(plane > 0);
            let (pw, ph) = ((w >> shift) as usize, (h >> shift) as usize);
            let (x0, y0) = (((col * w) >> shift) as usize, ((row * h) >> shift) as usize);
            let src_stride = tile.stride(plane);
            let dst_stride = sheet.stride(plane);
            let src = tile.data(plane).to_vec();
            let dst = sheet.data_mut(plane);
            for line in 0..ph {
                let s = line * src_stride;
                let d = (y0 + line) * dst_stride + x0;
                dst[d..d + pw].copy_from_slice(&src[s..s + pw]);
            }
        }
    }
    Ok(sheet)
}

/// Seeks and decodes single frames of the source video, upright.
struct Grabber {
    ictx: format::context::Input,
    decoder: ff::decoder::Video,
    index: usize,
    tb: Rational,
    origin: i64,
    rotation: u32,
    /// Seconds of the last decoded frame, to decide between decoding on and seeking.
    position: f64,
}

impl Grabber {
    fn open(source: &Path, video: &VideoInfo) -> Result<Self> {
        let ictx = format::input(&source).map_err(media_error("opening source"))?;
        let stream = ictx.stream(video.index).ok_or_else(|| Error::Internal("video stream vanished".into()))?;
        let tb = stream.time_base();
        let decoder = codec::context::Context::from_parameters(stream.parameters())
            .map_err(media_error("decoder"))?
            .decoder()
            .video()
            .map_err(media_error("opening decoder"))?;
        Ok(Self {
            ictx,
            decoder,
            index: video.index,
            tb,
            origin: video.start_pts,
            rotation: video.rotation,
            position: f64::INFINITY,
        })
    }

    fn seconds(&self, f: &frame::Video) -> Option<f64> {
        f.timestamp().or(f.pts()).map(|p| (p - self.origin) as f64 * f64::from(self.tb))
    }

    /// The first frame at or after `t` seconds (or the last frame before the end).
    fn frame_at(&mut self, t: f64) -> Result<Option<frame::Video>> {
        // Decoding forward is cheaper than seeking when the target is near.
        if t < self.position || t > self.position + 8.0 {
            let origin_s = self.origin as f64 * f64::from(self.tb);
            let ts = ((t + origin_s) * f64::from(ff::ffi::AV_TIME_BASE)) as i64;
            self.ictx.seek(ts, ..ts).map_err(media_error("seeking"))?;
            self.decoder.flush();
        }
        let mut last = None;
        let mut decoded = frame::Video::empty();
        loop {
            let packet = super::read_packet(&mut self.ictx).map_err(media_error("reading"))?;
            let eof = packet.is_none();
            match packet {
                None => {
                    let _ = self.decoder.send_eof();
                }
                Some(p) if p.stream() == self.index => {
                    let _ = self.decoder.send_packet(&p);
                }
                Some(_) => continue,
            }
            while self.decoder.receive_frame(&mut decoded).is_ok() {
                let s = self.seconds(&decoded).unwrap_or(0.0);
                self.position = s;
                if s >= t {
                    return Ok(Some(decoded));
                }
                last = Some(decoded.clone());
            }
            if eof {
                self.position = f64::INFINITY;
                return Ok(last);
            }
        }
    }

    fn scaled(&self, f: &frame::Video, w: u32, h: u32) -> Result<frame::Video> {
        let input = BufferSpec {
            name: "in",
            width: f.width(),
            height: f.height(),
            format: f.format(),
            time_base: Rational(1, 1000),
            aspect: f.aspect_ratio(),
        };
        let spec = format!(
            "[in]{}scale={w}:{h}:flags=bicubic,setsar=1,format=yuvj420p[out0]",
            rotation_filters(self.rotation)
        );
        let mut graph = VideoGraph::new(&[input], &spec, 1)?;
        let mut copy = f.clone();
        copy.set_pts(Some(0));
        graph.push("in", &copy)?;
        graph.close("in")?;
        let mut out = frame::Video::empty();
        if graph.pull(0, &mut out)? { Ok(out) } else { Err(Error::Internal("scaler produced no picture".into())) }
    }
}

/// JPEG bytes of a YUVJ420P picture.
fn encode_jpeg(picture: &frame::Video) -> Result<Vec<u8>> {
    let codec = ff::encoder::find(codec::Id::MJPEG).ok_or_else(|| Error::Internal("no JPEG encoder".into()))?;
    let mut enc = codec::context::Context::new_with_codec(codec).encoder().video().map_err(media_error("jpeg"))?;
    enc.set_width(picture.width());
    enc.set_height(picture.height());
    enc.set_format(format::Pixel::YUVJ420P);
    enc.set_time_base(Rational(1, 25));
    enc.set_flags(codec::Flags::QSCALE);
    // qscale 3: visually clean, a few tens of KB for a 720p poster.
    let lambda = 3 * 118;
    enc.set_global_quality(lambda);
    let mut encoder = enc.open().map_err(media_error("opening jpeg encoder"))?;
    let mut f = picture.clone();
    f.set_pts(Some(0));
    unsafe { (*f.as_mut_ptr()).quality = lambda };
    single_packet(&mut encoder, &f)
}

/// PNG bytes of an RGBA picture.
fn encode_png(picture: &frame::Video) -> Result<Vec<u8>> {
    let codec = ff::encoder::find(codec::Id::PNG).ok_or_else(|| Error::Internal("no PNG encoder".into()))?;
    let mut enc = codec::context::Context::new_with_codec(codec).encoder().video().map_err(media_error("png"))?;
    enc.set_width(picture.width());
    enc.set_height(picture.height());
    enc.set_format(format::Pixel::RGBA);
    enc.set_time_base(Rational(1, 25));
    let mut encoder = enc.open().map_err(media_error("opening png encoder"))?;
    let mut f = picture.clone();
    f.set_pts(Some(0));
    single_packet(&mut encoder, &f)
}

fn single_packet(encoder: &mut ff::encoder::Video, f: &frame::Video) -> Result<Vec<u8>> {
    encoder.send_frame(f).map_err(media_error("encoding picture"))?;
    encoder.send_eof().map_err(media_error("encoding picture"))?;
    let mut p = ff::Packet::empty();
    encoder.receive_packet(&mut p).map_err(media_error("encoding picture"))?;
    Ok(p.data().map(<[u8]>::to_vec).unwrap_or_default())
}

/// Decodes the first picture of an image file (PNG, JPEG, ...), converted to RGBA.
pub(super) fn load_png(path: &Path) -> Result<frame::Video> {
    let mut ictx =
        format::input(&path).map_err(|e| Error::Invalid(format!("cannot read image {}: {e}", path.display())))?;
    let stream = ictx.streams().next().ok_or_else(|| Error::Invalid(format!("{} has no picture", path.display())))?;
    let index = stream.index();
    let mut decoder = codec::context::Context::from_parameters(stream.parameters())
        .map_err(media_error("image decoder"))?
        .decoder()
        .video()
        .map_err(media_error("opening image decoder"))?;
    let mut decoded = frame::Video::empty();
    while let Ok(Some(packet)) = super::read_packet(&mut ictx) {
        if packet.stream() == index {
            let _ = decoder.send_packet(&packet);
            if decoder.receive_frame(&mut decoded).is_ok() {
                break;
            }
        }
    }
    if decoded.width() == 0 {
        let _ = decoder.send_eof();
        decoder
            .receive_frame(&mut decoded)
            .map_err(|e| Error::Invalid(format!("cannot decode image {}: {e}", path.display())))?;
    }
    if decoded.format() == format::Pixel::RGBA {
        return Ok(decoded);
    }
    let input = BufferSpec {
        name: "in",
        width: decoded.width(),
        height: decoded.height(),
        format: decoded.format(),
        time_base: Rational(1, 25),
        aspect: Rational(1, 1),
    };
    let mut graph = VideoGraph::new(&[input], "[in]format=rgba[out0]", 1)?;
    decoded.set_pts(Some(0));
    graph.push("in", &decoded)?;
    graph.close("in")?;
    let mut out = frame::Video::empty();
    graph.pull(0, &mut out)?;
    Ok(out)
}

/// Renders the watermark (text and/or image, with opacity) as an RGBA strip as wide as the
/// picture, and says where it goes.
pub(super) fn render_watermark(spec: &WatermarkSpec, video: &VideoInfo, store: &Store) -> Result<Option<Overlay>> {
    if spec.is_empty() {
        return Ok(None);
    }
    let (dw, dh) = video.display_size();
    let band_h = even(((spec.size * f64::from(dh)).round() as u32).max(8));
    let margin = (spec.margin * f64::from(dh)).round() as u32;
    let logo = spec.image.as_deref().map(load_png).transpose()?;
    let logo_w = logo.as_ref().map_or(0, |l| {
        even(((f64::from(band_h) * f64::from(l.width()) / f64::from(l.height().max(1))).round() as u32).max(2))
    });
    let text = spec.text.as_deref().filter(|t| !t.is_empty());
    let gap = if logo.is_some() && text.is_some() { band_h / 3 } else { 0 };
    let font_size = (band_h * 4 / 5).max(6);
    // Text width is only known after rendering; this estimate only centres a logo beside it.
    let text_guess = text.map_or(0, |t| t.chars().count() as u32 * font_size * 3 / 5);
    let (logo_x, text_x) = match spec.position {
        Corner::TopLeft | Corner::BottomLeft => (margin.to_string(), format!("{}", margin + logo_w + gap)),
        Corner::TopRight | Corner::BottomRight => {
            (format!("{}", dw.saturating_sub(margin + logo_w)), format!("w-text_w-{}", margin + logo_w + gap))
        }
        Corner::Center => {
            let total = logo_w + gap + text_guess;
            let left = dw.saturating_sub(total) / 2;
            (left.to_string(), if logo.is_some() { format!("{}", left + logo_w + gap) } else { "(w-text_w)/2".into() })
        }
    };
    let mut chain = String::from("[in]");
    if let Some(t) = text {
        let file = store.prepare("watermark/text.txt")?;
        std::fs::write(&file, t).map_err(Error::io("write", &file))?;
        let path = file.display().to_string();
        if path.contains(['\'', '\\', ':', ',', ';', '[', ']']) {
            return Err(Error::Invalid(format!("temporary path {path} cannot be passed to the text renderer")));
        }
        let _ = write!(
            chain,
            "drawtext=font=sans:textfile='{path}':expansion=none:fontsize={font_size}:fontcolor=white:borderw={b}:bordercolor=black@0.6:x={text_x}:y=(h-text_h)/2,",
            b = (font_size / 12).max(1)
        );
    }
    let mut inputs = vec![BufferSpec {
        name: "in",
        width: dw,
        height: band_h,
        format: format::Pixel::RGBA,
        time_base: Rational(1, 25),
        aspect: Rational(1, 1),
    }];
    if let Some(l) = &logo {
        inputs.push(BufferSpec {
            name: "logo",
            width: l.width(),
            height: l.height(),
            format: format::Pixel::RGBA,
            time_base: Rational(1, 25),
            aspect: Rational(1, 1),
        });
        let _ = write!(chain, "null[t];[logo]scale={logo_w}:{band_h}[l];[t][l]overlay=x={logo_x}:y=0:format=rgb,");
    }
    let _ = write!(chain, "format=rgba,colorchannelmixer=aa={:.3}[out0]", spec.opacity);
    let mut graph = VideoGraph::new(&inputs, &chain, 1)?;
    let mut canvas = frame::Video::new(format::Pixel::RGBA, dw, band_h);
    canvas.data_mut(0).fill(0);
    canvas.set_pts(Some(0));
    graph.push("in", &canvas)?;
    graph.close("in")?;
    if let Some(mut l) = logo {
        l.set_pts(Some(0));
        graph.push("logo", &l)?;
        graph.close("logo")?;
    }
    let mut out = frame::Video::empty();
    if !graph.pull(0, &mut out)? {
        return Err(Error::Internal("watermark renderer produced no picture".into()));
    }
    let key = "watermark/overlay.png".to_owned();
    store.write_atomic(&key, &encode_png(&out)?)?;
    let y = match spec.position {
        Corner::TopLeft | Corner::TopRight => margin,
        Corner::BottomLeft | Corner::BottomRight => dh.saturating_sub(band_h + margin),
        Corner::Center => dh.saturating_sub(band_h) / 2,
    };
    Ok(Some(Overlay { key, x: 0, y }))
}

#[cfg(test)]
mod tests {
    use super::poster_picks;

    #[test]
    fn poster_picks_are_the_most_detailed_tiles_spread_apart() {
        let scores = [Some(1.0), Some(9.0), Some(8.5), Some(2.0), None, Some(7.0), Some(3.0), Some(6.0)];
        // 8 tiles: picks at least 2 apart; 2 is next to 1, so 5 then 7 follow.
        assert_eq!(poster_picks(&scores, 3), [1, 5, 7]);
        assert_eq!(poster_picks(&[Some(1.0), Some(2.0)], 3), [1, 0], "short videos give what they have");
        assert_eq!(poster_picks(&[None, None], 3), [0]);
    }
}
