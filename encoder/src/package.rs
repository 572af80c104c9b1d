//! The package task: CMAF init and media segments for every rendition, HLS media and
//! multivariant playlists, a DASH manifest, and the pictures. Pure Rust: reads encoded parts
//! from temporary storage, writes the playable tree. Segments are cut once per rendition and
//! boxed for each tree the protection profile asks for (`trees`): the top level (clear or
//! HLS AES-128, `crypt`) and `cbcs/` (CENC 'cbcs', `cenc`, with the DASH manifest over it).
//! The multivariant playlist is written last, so its presence means the tree is complete.

pub mod bitstream;
pub mod cenc;
pub mod cmaf;
pub mod crypt;
pub mod dash;
pub mod fragment;
pub mod hls;
pub mod segmenter;
mod trees;

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::jit::{OVERLAY_FILE, OnDemandPlan, PLAN_FILE, PLAN_VERSION, PlannedRung};
use crate::ladder::Rung;
use crate::layout;
use crate::media::VIDEO_TIMESCALE;
use crate::pipeline::PackageSpec;
use crate::store::{self, Store};
use crate::task::{
    EncodedLadder, EncodedPart, Encryption, OnDemandInputs, PackageSummary, RenditionSummary, TaskContext, Thumbnails,
};
use segmenter::{CutRule, PartStream};
use trees::{RenditionWriter, Trees, write_file};

/// Inputs of one package run.
#[derive(Debug, Clone, Copy)]
pub struct PackageJob<'a> {
    /// Settings.
    pub spec: PackageSpec,
    /// Encoded video ladders.
    pub ladders: &'a [EncodedLadder],
    /// Encoded audio.
    pub audio: Option<&'a EncodedPart>,
    /// Pictures.
    pub thumbnails: Option<&'a Thumbnails>,
    /// Segment target in seconds.
    pub segment_seconds: f64,
    /// Destination.
    pub out_dir: &'a Path,
    /// Protection: which trees are written and with which key; `None` is clear output.
    pub encryption: Option<&'a Encryption>,
    /// What to leave for later encodes, when the job keeps an on-demand plan.
    pub on_demand: Option<&'a OnDemandInputs>,
}

/// Folder of the output that holds what later encodes need (not part of the playable tree).
pub const SOURCE_DIR: &str = "source";

/// What one rendition became.
#[derive(Debug, Clone)]
struct Packaged {
    name: String,
    codecs: String,
    width: u32,
    height: u32,
    frame_rate: f64,
    sample_rate: u32,
    channels: u32,
    timescale: u32,
    /// (start ticks, duration ticks, bytes) per segment: bytes of the top-level copy, or of
    /// the cbcs copy when only cbcs is written.
    segments: Vec<(i64, i64, u64)>,
    /// Bytes of each segment's cbcs copy, when the cbcs tree is written.
    cbcs_bytes: Vec<u64>,
    /// Not encoded yet: sizes are estimated from the rung's cap.
    on_demand: bool,
}

impl Packaged {
    /// This rendition as the cbcs tree has it (its segment sizes).
    fn in_cbcs_tree(&self) -> Self {
        let mut p = self.clone();
        for (s, &bytes) in p.segments.iter_mut().zip(&self.cbcs_bytes) {
            s.2 = bytes;
        }
        p
    }

    fn durations(&self) -> Vec<f64> {
        self.segments.iter().map(|s| s.1 as f64 / f64::from(self.timescale)).collect()
    }

    fn bitrates(&self) -> impl Iterator<Item = f64> + '_ {
        self.segments.iter().map(|s| s.2 as f64 * 8.0 * f64::from(self.timescale) / s.1.max(1) as f64)
    }

    fn peak(&self) -> u64 {
        self.bitrates().fold(0.0, f64::max).ceil() as u64
    }

    fn average(&self) -> u64 {
        let bytes: u64 = self.segments.iter().map(|s| s.2).sum();
        let ticks: i64 = self.segments.iter().map(|s| s.1).sum();
        (bytes as f64 * 8.0 * f64::from(self.timescale) / ticks.max(1) as f64).ceil() as u64
    }

    fn duration(&self) -> f64 {
        self.segments.iter().map(|s| s.1).sum::<i64>() as f64 / f64::from(self.timescale)
    }

    fn summary(&self) -> RenditionSummary {
        RenditionSummary {
            name: self.name.clone(),
            codecs: self.codecs.clone(),
            width: self.width,
            height: self.height,
            peak_bitrate: self.peak(),
            average_bitrate: self.average(),
            on_demand: self.on_demand,
        }
    }
}

/// Runs the package task.
pub fn run(job: &PackageJob<'_>, store: &Store, ctx: &TaskContext) -> Result<PackageSummary> {
    fs::create_dir_all(job.out_dir).map_err(Error::io("create output folder", job.out_dir))?;
    let trees = Trees::for_job(job.encryption)?;
    let segment_ticks = (job.segment_seconds * f64::from(VIDEO_TIMESCALE)).round() as i64;
    let total: usize = job.ladders.iter().map(|l| l.parts.len()).sum::<usize>() + usize::from(job.audio.is_some());
    let mut files = Vec::new();
    let mut videos = Vec::new();
    for ladder in job.ladders {
        for (rung, part) in ladder.rungs.iter().zip(&ladder.parts) {
            ctx.check()?;
            let mut p =
                package_rendition(store, part, job.out_dir, CutRule::Keyframe { segment_ticks }, &trees, &mut files)?;
            p.width = rung.width;
            p.height = rung.height;
            videos.push(p);
            ctx.progress(videos.len() as u64, total as u64);
        }
    }
    let first = videos.first().ok_or_else(|| Error::Internal("nothing to package: no video rendition".into()))?;
    for v in &videos[1..] {
        let starts = |p: &Packaged| p.segments.iter().map(|s| s.0).collect::<Vec<_>>();
        if starts(v) != starts(first) {
            return Err(Error::Internal(format!(
                "segment boundaries of {} differ from {}: keyframes are not aligned",
                v.name, first.name
            )));
        }
    }
    let floor = videos[0].clone();
    for ladder in job.ladders {
        for d in &ladder.deferred {
            videos.push(deferred_rendition(store, &d.rung, &d.template, &floor, job.out_dir, &trees, &mut files)?);
        }
    }
    // Lowest rung first, whichever were encoded now: the order every reader of the summary sees.
    videos.sort_by_key(|p| (p.height, p.width));
    let audio = match job.audio {
        Some(part) => {
            let rule = audio_cuts(&floor, part, store)?;
            Some(package_rendition(store, part, job.out_dir, rule, &trees, &mut files)?)
        }
        None => None,
    };
    if let Some(t) = job.thumbnails {
        publish_pictures(store, t, job.out_dir, &mut files)?;
    }
    let source_files = match job.on_demand {
        Some(inputs) => write_plan(store, job, inputs, &floor)?,
        None => Vec::new(),
    };
    let mut summary = write_playlists(job, &trees, &videos, audio.as_ref(), &mut files)?;
    summary.source_files = source_files;
    Ok(summary)
}

/// A rung left for later: its init segment from the codec configuration the first chunk
/// recorded, and the floor's segment timeline (every rung cuts at the same frames), with
/// sizes at the rung's cap until it is measured.
fn deferred_rendition(
    store: &Store,
    rung: &Rung,
    template_key: &str,
    floor: &Packaged,
    out_dir: &Path,
    trees: &Trees,
    files: &mut Vec<String>,
) -> Result<Packaged> {
    let path = store.path(template_key)?;
    let hex = fs::read_to_string(&path).map_err(Error::io("read", &path))?;
    let template = crypt::hex_decode(hex.trim()).ok_or_else(|| Error::Internal("bad init template".into()))?;
    let track = cmaf::Track::from_template(&template, VIDEO_TIMESCALE)?;
    RenditionWriter::open(out_dir, &rung.name, &track, trees, files)?;
    let bytes_at_cap =
        |ticks: i64| (f64::from(rung.max_bitrate) / 8.0 * ticks as f64 / f64::from(VIDEO_TIMESCALE)) as u64;
    Ok(Packaged {
        name: rung.name.clone(),
        codecs: cmaf::codec_string(&track.codec)?,
        width: rung.width,
        height: rung.height,
        frame_rate: floor.frame_rate,
        sample_rate: 0,
        channels: 0,
        timescale: VIDEO_TIMESCALE,
        segments: floor.segments.iter().map(|&(t, d, _)| (t, d, bytes_at_cap(d))).collect(),
        cbcs_bytes: floor.segments.iter().map(|&(_, d, _)| bytes_at_cap(d)).collect(),
        on_demand: true,
    })
}

/// Writes the on-demand plan (and the watermark it needs) into `source/`.
fn write_plan(store: &Store, job: &PackageJob<'_>, inputs: &OnDemandInputs, floor: &Packaged) -> Result<Vec<String>> {
    let dir = job.out_dir.join(SOURCE_DIR);
    fs::create_dir_all(&dir).map_err(Error::io("create folder", &dir))?;
    let mut files = Vec::new();
    if let Some(o) = &inputs.overlay {
        let from = store.path(&o.key)?;
        fs::copy(&from, dir.join(OVERLAY_FILE)).map_err(Error::io("copy", &from))?;
        files.push(format!("{SOURCE_DIR}/{OVERLAY_FILE}"));
    }
    let rungs = job
        .ladders
        .iter()
        .flat_map(|l| {
            let now = l.rungs.iter().map(|r| PlannedRung { rung: r.clone(), floor: true });
            now.chain(l.deferred.iter().map(|d| PlannedRung { rung: d.rung.clone(), floor: false }))
        })
        .collect();
    let plan = OnDemandPlan {
        version: PLAN_VERSION,
        media: inputs.media.clone(),
        keyframes: inputs.keyframes.clone(),
        segment_seconds: job.segment_seconds,
        segments: floor.segments.iter().map(|&(t, d, _)| (t, d)).collect(),
        rungs,
        overlay: inputs.overlay.as_ref().map(|o| crate::task::Overlay { key: OVERLAY_FILE.to_owned(), ..o.clone() }),
    };
    let json = serde_json::to_vec_pretty(&plan).map_err(|e| Error::Internal(e.to_string()))?;
    store::write_atomic(&dir.join(PLAN_FILE), &json)?;
    files.push(format!("{SOURCE_DIR}/{PLAN_FILE}"));
    Ok(files)
}

fn package_rendition(
    store: &Store,
    part: &EncodedPart,
    out_dir: &Path,
    rule: CutRule,
    trees: &Trees,
    files: &mut Vec<String>,
) -> Result<Packaged> {
    let paths = part.keys.iter().map(|k| store.path(k)).collect::<Result<Vec<PathBuf>>>()?;
    let mut stream = PartStream::open(paths)?;
    let header = stream.header().clone();
    let template =
        crypt::hex_decode(&header.init_template).ok_or_else(|| Error::Internal("bad init template".into()))?;
    let track = cmaf::Track::from_template(&template, header.timescale)?;
    let mut writer = RenditionWriter::open(out_dir, &part.name, &track, trees, files)?;
    let mut segments = Vec::new();
    let mut cbcs_bytes = Vec::new();
    segmenter::segment(&mut stream, rule, |seg| {
        let written = writer.write(&seg, files)?;
        let bytes = written.top.or(written.cbcs).unwrap_or_default();
        segments.push((seg.start, seg.duration, bytes));
        cbcs_bytes.extend(written.cbcs);
        Ok(())
    })?;
    Ok(Packaged {
        name: part.name.clone(),
        codecs: cmaf::codec_string(&track.codec)?,
        width: header.width,
        height: header.height,
        frame_rate: header.frame_rate,
        sample_rate: header.sample_rate,
        channels: header.channels,
        timescale: header.timescale,
        segments,
        cbcs_bytes,
        on_demand: false,
    })
}

/// Audio segments start where video segments start, and audio stops where video stops.
fn audio_cuts(video: &Packaged, audio: &EncodedPart, store: &Store) -> Result<CutRule> {
    let first = audio.keys.first().ok_or_else(|| Error::Internal("audio has no part".into()))?;
    let rate = i64::from(crate::es::EsReader::open(&store.path(first)?)?.header().timescale);
    let to_audio = |t: i64| t * rate / i64::from(video.timescale);
    let cuts = video.segments.iter().skip(1).map(|s| to_audio(s.0)).collect();
    let end = video.segments.last().map_or(0, |s| to_audio(s.0 + s.1));
    Ok(CutRule::At { cuts, end })
}

fn publish_pictures(store: &Store, t: &Thumbnails, out_dir: &Path, files: &mut Vec<String>) -> Result<()> {
    for (key, name) in [(&t.poster, layout::POSTER), (&t.sprite, layout::STORYBOARD), (&t.vtt, layout::STORYBOARD_VTT)]
    {
        let from = store.path(key)?;
        fs::copy(&from, out_dir.join(name)).map_err(Error::io("copy", &from))?;
        files.push(name.to_owned());
    }
    for (n, key) in t.choices.iter().enumerate() {
        let (from, name) = (store.path(key)?, layout::poster_choice(n + 1));
        fs::copy(&from, out_dir.join(&name)).map_err(Error::io("copy", &from))?;
        files.push(name);
    }
    Ok(())
}

fn write_playlists(
    job: &PackageJob<'_>,
    trees: &Trees,
    videos: &[Packaged],
    audio: Option<&Packaged>,
    files: &mut Vec<String>,
) -> Result<PackageSummary> {
    let cbcs_videos: Vec<Packaged> = videos.iter().map(Packaged::in_cbcs_tree).collect();
    let cbcs_audio = audio.map(Packaged::in_cbcs_tree);
    if job.spec.hls {
        if trees.top.is_some() {
            let key = trees::top_key(job.encryption);
            write_media_playlists(job.out_dir, "", videos, audio, key, files)?;
        }
        if trees.cbcs.is_some() {
            write_cbcs_playlists(job, &cbcs_videos, cbcs_audio.as_ref(), files)?;
        }
    }
    let duration = videos[0].duration();
    // AES-128 whole-segment encryption is HLS-only: DASH is written over clear segments,
    // or over the cbcs tree whenever there is one.
    let dash = job.spec.dash && (trees.cbcs.is_some() || job.encryption.is_none());
    if dash {
        let mpd = match &trees.cbcs {
            Some(key) => protected_dash_manifest(duration, &cbcs_videos, cbcs_audio.as_ref(), key, job.encryption),
            None => dash_manifest(duration, videos, audio, &dash::ManifestOptions::default()),
        };
        write_file(&job.out_dir.join(layout::DASH_MANIFEST), mpd.as_bytes())?;
        files.push(layout::DASH_MANIFEST.to_owned());
    }
    if job.spec.hls {
        // Last and atomically: its presence means the output is complete. With cbcs only,
        // it is the cbcs tree's, its URIs reaching into `cbcs/`.
        let master = match trees.top {
            Some(_) => master_playlist(videos, audio, ""),
            None => master_playlist(&cbcs_videos, cbcs_audio.as_ref(), &format!("{}/", layout::CBCS_TREE)),
        };
        store::write_atomic(&job.out_dir.join(layout::MASTER_PLAYLIST), master.as_bytes())?;
        files.push(layout::MASTER_PLAYLIST.to_owned());
    }
    Ok(PackageSummary {
        renditions: videos.iter().chain(audio).map(Packaged::summary).collect(),
        segments: videos[0].segments.len(),
        duration,
        files: files.clone(),
        dash,
        source_files: Vec::new(),
    })
}

/// The media playlists of the renditions in the tree at `root` ("" or "cbcs/").
fn write_media_playlists(
    out_dir: &Path,
    root: &str,
    videos: &[Packaged],
    audio: Option<&Packaged>,
    key: Option<hls::Key<'_>>,
    files: &mut Vec<String>,
) -> Result<()> {
    for p in videos.iter().chain(audio) {
        let text = hls::MediaPlaylist { durations: &p.durations(), key }.render();
        let path = format!("{root}{}/{}", p.name, layout::MEDIA_PLAYLIST);
        write_file(&out_dir.join(&path), text.as_bytes())?;
        files.push(path);
    }
    Ok(())
}

/// The cbcs tree's media playlists (`METHOD=SAMPLE-AES`) and its own multivariant playlist.
fn write_cbcs_playlists(
    job: &PackageJob<'_>,
    videos: &[Packaged],
    audio: Option<&Packaged>,
    files: &mut Vec<String>,
) -> Result<()> {
    let uri = job.encryption.map(|e| trees::cbcs_key_uri(&e.key_uri)).unwrap_or_default();
    let root = format!("{}/", layout::CBCS_TREE);
    write_media_playlists(job.out_dir, &root, videos, audio, Some(hls::Key::SampleAes { uri: &uri }), files)?;
    let path = layout::cbcs_path(layout::MASTER_PLAYLIST);
    store::write_atomic(&job.out_dir.join(&path), master_playlist(videos, audio, "").as_bytes())?;
    files.push(path);
    Ok(())
}

/// A multivariant playlist whose media playlist URIs start with `root`.
fn master_playlist(videos: &[Packaged], audio: Option<&Packaged>, root: &str) -> String {
    hls::master_playlist(
        &variants(videos, audio, root),
        audio
            .map(|a| hls::AudioGroup {
                uri: format!("{root}{}/{}", a.name, layout::MEDIA_PLAYLIST),
                channels: a.channels,
            })
            .as_ref(),
    )
}

fn variants(videos: &[Packaged], audio: Option<&Packaged>, root: &str) -> Vec<hls::Variant> {
    let mut sorted: Vec<&Packaged> = videos.iter().collect();
    sorted.sort_by_key(|p| p.average());
    sorted
        .into_iter()
        .map(|v| {
            let (peak, avg, codecs) = match audio {
                // Peak of the sum per aligned segment, not the sum of peaks.
                Some(a) => {
                    let peak = v
                        .bitrates()
                        .zip(a.bitrates().chain(std::iter::repeat(0.0)))
                        .map(|(x, y)| x + y)
                        .fold(0.0, f64::max);
                    (peak.ceil() as u64, v.average() + a.average(), format!("{},{}", v.codecs, a.codecs))
                }
                None => (v.peak(), v.average(), v.codecs.clone()),
            };
            hls::Variant {
                uri: format!("{root}{}/{}", v.name, layout::MEDIA_PLAYLIST),
                bandwidth: peak,
                average_bandwidth: avg,
                width: v.width,
                height: v.height,
                codecs,
                frame_rate: v.frame_rate,
            }
        })
        .collect()
}

/// The MPD over the cbcs tree, naming the KID, the ClearKey licence URL and the pssh.
fn protected_dash_manifest(
    duration: f64,
    videos: &[Packaged],
    audio: Option<&Packaged>,
    key: &cenc::CencKey,
    encryption: Option<&Encryption>,
) -> String {
    let protection = dash::ContentProtection {
        scheme: "cbcs",
        default_kid: key.kid_uuid(),
        pssh_base64: cenc::base64(&cenc::boxes::pssh(key)),
        licence_uri: encryption.map(|e| e.licence_uri.clone()).unwrap_or_default(),
    };
    let root = format!("{}/", layout::CBCS_TREE);
    dash_manifest(duration, videos, audio, &dash::ManifestOptions { media_root: &root, protection: Some(&protection) })
}

fn dash_manifest(
    duration: f64,
    videos: &[Packaged],
    audio: Option<&Packaged>,
    options: &dash::ManifestOptions<'_>,
) -> String {
    let rep = |p: &Packaged| dash::Representation {
        id: p.name.clone(),
        bandwidth: p.peak(),
        codecs: p.codecs.clone(),
        width: p.width,
        height: p.height,
        frame_rate: p.frame_rate,
        sample_rate: p.sample_rate,
        channels: p.channels,
    };
    let timeline = |p: &Packaged| dash::Timeline {
        timescale: p.timescale,
        segments: p.segments.iter().map(|s| (s.0, s.1)).collect(),
    };
    // One adaptation set per codec family: players switch within a set only.
    let mut sets: Vec<dash::AdaptationSet> = Vec::new();
    for v in videos {
        let family = v.codecs.split('.').next().unwrap_or_default();
        match sets.iter_mut().find(|s| s.representations[0].codecs.split('.').next() == Some(family)) {
            Some(set) => set.representations.push(rep(v)),
            None => sets.push(dash::AdaptationSet {
                content_type: "video",
                representations: vec![rep(v)],
                timeline: timeline(v),
            }),
        }
    }
    if let Some(a) = audio {
        sets.push(dash::AdaptationSet { content_type: "audio", representations: vec![rep(a)], timeline: timeline(a) });
    }
    dash::manifest_with(duration, &sets, options)
}
