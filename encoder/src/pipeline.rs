//! The pipeline file: a DAG of tasks written in TOML by a client programmer.
//!
//! Parsing keeps every value's position so that each problem (unknown kind, unknown
//! field, a reference to a task that does not exist, a cycle, a missing input) is
//! reported with the line that causes it, all problems at once.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::dag;
use crate::ladder::{LadderSpec, RateControl, VideoCodec};
use crate::task::TaskKind;

/// The pipeline used when none is given.
pub const DEFAULT_PIPELINE: &str = include_str!("pipeline/default.toml");

/// A validated pipeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pipeline {
    /// Display name.
    pub name: String,
    /// Target duration of every media segment, in seconds.
    pub segment_seconds: f64,
    /// How many times a task may run before the job fails.
    pub max_attempts: u32,
    /// First retry delay in milliseconds; doubled after each failure.
    pub retry_backoff_ms: u64,
    /// The tasks, in file order.
    pub nodes: Vec<Node>,
}

/// One task of the DAG.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Node {
    /// Unique id from the file.
    pub id: String,
    /// Indices of the nodes this one waits for.
    pub after: Vec<usize>,
    /// Line of the `[[task]]` header.
    pub line: usize,
    /// What the node does.
    pub spec: NodeSpec,
}

impl Node {
    /// The node's kind.
    pub fn kind(&self) -> TaskKind {
        match self.spec {
            NodeSpec::Inspect => TaskKind::Inspect,
            NodeSpec::Split(_) => TaskKind::Split,
            NodeSpec::Watermark(_) => TaskKind::Watermark,
            NodeSpec::Encode(_) => TaskKind::Encode,
            NodeSpec::Audio(_) => TaskKind::Audio,
            NodeSpec::Thumbnail(_) => TaskKind::Thumbnail,
            NodeSpec::Package(_) => TaskKind::Package,
        }
    }
}

/// Per-kind settings of a node.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NodeSpec {
    /// Probe and validate the source.
    Inspect,
    /// Cut the source into GOP-aligned chunks.
    Split(SplitSpec),
    /// Render the overlay that encode tasks burn in.
    Watermark(WatermarkSpec),
    /// Encode a ladder of one codec, chunk by chunk.
    Encode(LadderSpec),
    /// Encode the audio rendition.
    Audio(AudioSpec),
    /// Poster and storyboard.
    Thumbnail(ThumbnailSpec),
    /// CMAF segments, playlists, manifests, encryption.
    Package(PackageSpec),
}

/// Split settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SplitSpec {
    /// Minimum chunk duration; chunks end on the first GOP boundary after it.
    pub chunk_seconds: f64,
}

/// Audio codec of the audio rendition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AudioCodec {
    /// AAC-LC: plays everywhere.
    Aac,
    /// Opus.
    Opus,
}

/// Audio settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioSpec {
    /// Codec.
    pub codec: AudioCodec,
    /// Bitrate in kbit/s.
    pub bitrate_kbps: u32,
    /// Output channels (1 or 2).
    pub channels: u32,
}

/// Thumbnail settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ThumbnailSpec {
    /// Seconds between storyboard tiles; `None` picks one from the duration.
    pub storyboard_interval: Option<f64>,
    /// Width of one storyboard tile in pixels.
    pub tile_width: u32,
    /// Tiles per sprite row.
    pub columns: u32,
    /// Most tiles in the sprite.
    pub max_tiles: u32,
    /// Largest poster width in pixels.
    pub poster_width: u32,
}

/// Where the watermark sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Corner {
    /// Top left.
    TopLeft,
    /// Top right.
    TopRight,
    /// Bottom left.
    BottomLeft,
    /// Bottom right.
    BottomRight,
    /// Centre of the picture.
    Center,
}

impl Corner {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "top-left" => Self::TopLeft,
            "top-right" => Self::TopRight,
            "bottom-left" => Self::BottomLeft,
            "bottom-right" => Self::BottomRight,
            "center" | "centre" => Self::Center,
            _ => return None,
        })
    }
}

/// Watermark settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatermarkSpec {
    /// Text to draw, if any.
    pub text: Option<String>,
    /// PNG to draw, if any (resolved against the pipeline file's folder).
    pub image: Option<PathBuf>,
    /// Where.
    pub position: Corner,
    /// 0.0 (invisible) to 1.0 (opaque).
    pub opacity: f64,
    /// Distance from the edges, as a fraction of the picture height.
    pub margin: f64,
    /// Height of the mark, as a fraction of the picture height.
    pub size: f64,
}

impl WatermarkSpec {
    /// Whether anything is drawn at all.
    pub fn is_empty(&self) -> bool {
        self.text.as_deref().is_none_or(str::is_empty) && self.image.is_none()
    }
}

/// Packaging settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageSpec {
    /// Write HLS playlists.
    pub hls: bool,
    /// Write a DASH manifest (skipped for AES-128 output, which DASH cannot signal).
    pub dash: bool,
}

/// Every problem found in a pipeline file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PipelineError {
    /// The file name (or "<built-in>").
    pub source_name: String,
    /// The problems, in file order.
    pub issues: Vec<Issue>,
}

/// One problem, with the line that causes it when known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Issue {
    /// 1-based line number.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for PipelineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.issues.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            match issue.line {
                Some(line) => write!(f, "{}:{line}: {}", self.source_name, issue.message)?,
                None => write!(f, "{}: {}", self.source_name, issue.message)?,
            }
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    pipeline: Option<RawSettings>,
    #[serde(default)]
    task: Vec<Spanned<RawTask>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    name: Option<String>,
    segment_seconds: Option<Spanned<f64>>,
    max_attempts: Option<Spanned<u32>>,
    retry_backoff_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTask {
    id: Spanned<String>,
    kind: Spanned<String>,
    #[serde(default)]
    after: Vec<Spanned<String>>,
    chunk_seconds: Option<Spanned<f64>>,
    codec: Option<Spanned<String>>,
    rungs: Option<Spanned<Vec<u32>>>,
    max_height: Option<Spanned<u32>>,
    preset: Option<Spanned<String>>,
    crf: Option<Spanned<u32>>,
    rate_control: Option<Spanned<String>>,
    bitrate_scale: Option<Spanned<f64>>,
    name_suffix: Option<Spanned<String>>,
    bitrate_kbps: Option<Spanned<u32>>,
    channels: Option<Spanned<u32>>,
    storyboard_interval: Option<Spanned<f64>>,
    tile_width: Option<Spanned<u32>>,
    columns: Option<Spanned<u32>>,
    max_tiles: Option<Spanned<u32>>,
    poster_width: Option<Spanned<u32>>,
    text: Option<Spanned<String>>,
    image: Option<Spanned<String>>,
    position: Option<Spanned<String>>,
    opacity: Option<Spanned<f64>>,
    margin: Option<Spanned<f64>>,
    size: Option<Spanned<f64>>,
    hls: Option<Spanned<bool>>,
    dash: Option<Spanned<bool>>,
}

fn span<T>(v: &Option<Spanned<T>>) -> Option<Range<usize>> {
    v.as_ref().map(Spanned::span)
}

impl RawTask {
    /// The optional fields that are set, with where they are.
    fn set_fields(&self) -> Vec<(&'static str, Range<usize>)> {
        let all = [
            ("chunk_seconds", span(&self.chunk_seconds)),
            ("codec", span(&self.codec)),
            ("rungs", span(&self.rungs)),
            ("max_height", span(&self.max_height)),
            ("preset", span(&self.preset)),
            ("crf", span(&self.crf)),
            ("rate_control", span(&self.rate_control)),
            ("bitrate_scale", span(&self.bitrate_scale)),
            ("name_suffix", span(&self.name_suffix)),
            ("bitrate_kbps", span(&self.bitrate_kbps)),
            ("channels", span(&self.channels)),
            ("storyboard_interval", span(&self.storyboard_interval)),
            ("tile_width", span(&self.tile_width)),
            ("columns", span(&self.columns)),
            ("max_tiles", span(&self.max_tiles)),
            ("poster_width", span(&self.poster_width)),
            ("text", span(&self.text)),
            ("image", span(&self.image)),
            ("position", span(&self.position)),
            ("opacity", span(&self.opacity)),
            ("margin", span(&self.margin)),
            ("size", span(&self.size)),
            ("hls", span(&self.hls)),
            ("dash", span(&self.dash)),
        ];
        all.into_iter().filter_map(|(n, s)| s.map(|s| (n, s))).collect()
    }
}

/// Which optional fields each kind accepts.
fn allowed_fields(kind: TaskKind) -> &'static [&'static str] {
    match kind {
        TaskKind::Inspect => &[],
        TaskKind::Split => &["chunk_seconds"],
        TaskKind::Encode => {
            &["codec", "rungs", "max_height", "preset", "crf", "rate_control", "bitrate_scale", "name_suffix"]
        }
        TaskKind::Audio => &["codec", "bitrate_kbps", "channels"],
        TaskKind::Thumbnail => &["storyboard_interval", "tile_width", "columns", "max_tiles", "poster_width"],
        TaskKind::Watermark => &["text", "image", "position", "opacity", "margin", "size"],
        TaskKind::Package => &["hls", "dash"],
    }
}

/// Collects issues while the file is being checked.
struct Checker<'a> {
    text: &'a str,
    issues: Vec<Issue>,
}

impl Checker<'_> {
    fn line_of(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())].bytes().filter(|&b| b == b'\n').count() + 1
    }

    fn at(&mut self, span: Range<usize>, message: impl Into<String>) {
        let line = self.line_of(span.start);
        self.issues.push(Issue { line: Some(line), message: message.into() });
    }

    fn range<T: PartialOrd + Copy + fmt::Display>(
        &mut self,
        field: &str,
        value: &Option<Spanned<T>>,
        lo: T,
        hi: T,
        default: T,
    ) -> T {
        match value {
            None => default,
            Some(v) if *v.get_ref() >= lo && *v.get_ref() <= hi => *v.get_ref(),
            Some(v) => {
                self.at(v.span(), format!("`{field}` must be between {lo} and {hi}, got {}", v.get_ref()));
                default
            }
        }
    }
}

impl Pipeline {
    /// The built-in pipeline.
    pub fn builtin() -> Self {
        Self::parse(DEFAULT_PIPELINE, "<built-in>", Path::new(".")).expect("the built-in pipeline is valid")
    }

    /// Reads and validates a pipeline file.
    pub fn load(path: &Path) -> Result<Self, PipelineError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| PipelineError {
            source_name: name.clone(),
            issues: vec![Issue { line: None, message: format!("cannot read: {e}") }],
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, &name, base)
    }

    /// Validates pipeline text. `base` resolves relative file paths (watermark images).
    pub fn parse(text: &str, source_name: &str, base: &Path) -> Result<Self, PipelineError> {
        let fail = |issues: Vec<Issue>| PipelineError { source_name: source_name.to_owned(), issues };
        let mut checker = Checker { text, issues: Vec::new() };
        let raw: RawFile = match toml::from_str(text) {
            Ok(raw) => raw,
            Err(e) => {
                let line = e.span().map(|s| checker.line_of(s.start));
                return Err(fail(vec![Issue { line, message: e.message().trim().to_owned() }]));
            }
        };
        let settings = raw.pipeline;
        let name = settings.as_ref().and_then(|s| s.name.clone()).unwrap_or_else(|| "custom".into());
        let segment_seconds = checker.range(
            "segment_seconds",
            &settings.as_ref().and_then(|s| s.segment_seconds.clone()),
            0.5,
            20.0,
            2.0,
        );
        let max_attempts =
            checker.range("max_attempts", &settings.as_ref().and_then(|s| s.max_attempts.clone()), 1, 20, 3);
        let retry_backoff_ms = settings.as_ref().and_then(|s| s.retry_backoff_ms).unwrap_or(250);

        let nodes = build_nodes(&mut checker, &raw.task, base);
        if checker.issues.is_empty() {
            dag::check(&nodes, &mut |node: &Node, message: String| {
                checker.issues.push(Issue { line: Some(node.line), message })
            });
        }
        if !checker.issues.is_empty() {
            checker.issues.sort_by_key(|i| i.line);
            return Err(fail(checker.issues));
        }
        Ok(Self { name, segment_seconds, max_attempts, retry_backoff_ms, nodes })
    }

    /// The node with this id.
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }
}

fn build_nodes(checker: &mut Checker<'_>, tasks: &[Spanned<RawTask>], base: &Path) -> Vec<Node> {
    if tasks.is_empty() {
        checker.issues.push(Issue { line: None, message: "no [[task]] defined".into() });
        return Vec::new();
    }
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, task) in tasks.iter().enumerate() {
        let id = task.get_ref().id.get_ref().as_str();
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            checker.at(
                task.get_ref().id.span(),
                format!("task id `{id}` must be non-empty ASCII letters, digits, `-` or `_`"),
            );
        }
        if index.insert(id, i).is_some() {
            checker.at(task.get_ref().id.span(), format!("duplicate task id `{id}`"));
        }
    }
    let mut nodes = Vec::with_capacity(tasks.len());
    for task in tasks {
        let line = checker.line_of(task.span().start);
        let raw = task.get_ref();
        let after = raw
            .after
            .iter()
            .filter_map(|dep| match index.get(dep.get_ref().as_str()) {
                Some(&i) => Some(i),
                None => {
                    checker.at(
                        dep.span(),
                        format!("task `{}` waits for `{}`, which is not defined", raw.id.get_ref(), dep.get_ref()),
                    );
                    None
                }
            })
            .collect();
        let Some(kind) = TaskKind::parse(raw.kind.get_ref()) else {
            checker.at(
                raw.kind.span(),
                format!(
                    "unknown task kind `{}` (known: {})",
                    raw.kind.get_ref(),
                    TaskKind::ALL.map(TaskKind::as_str).join(", ")
                ),
            );
            continue;
        };
        let allowed = allowed_fields(kind);
        for (field, at) in raw.set_fields() {
            if !allowed.contains(&field) {
                checker.at(at, format!("`{field}` is not a setting of a `{}` task", kind.as_str()));
            }
        }
        let spec = node_spec(checker, kind, raw, base);
        nodes.push(Node { id: raw.id.get_ref().clone(), after, line, spec });
    }
    nodes
}

fn node_spec(c: &mut Checker<'_>, kind: TaskKind, raw: &RawTask, base: &Path) -> NodeSpec {
    match kind {
        TaskKind::Inspect => NodeSpec::Inspect,
        TaskKind::Split => {
            NodeSpec::Split(SplitSpec { chunk_seconds: c.range("chunk_seconds", &raw.chunk_seconds, 0.5, 600.0, 2.0) })
        }
        TaskKind::Encode => NodeSpec::Encode(encode_spec(c, raw)),
        TaskKind::Audio => {
            let codec = match raw.codec.as_ref().map(|s| (s.get_ref().as_str(), s.span())) {
                None | Some(("aac", _)) => AudioCodec::Aac,
                Some(("opus", _)) => AudioCodec::Opus,
                Some((other, at)) => {
                    c.at(at, format!("unknown audio codec `{other}` (aac, opus)"));
                    AudioCodec::Aac
                }
            };
            NodeSpec::Audio(AudioSpec {
                codec,
                bitrate_kbps: c.range("bitrate_kbps", &raw.bitrate_kbps, 32, 512, 128),
                channels: c.range("channels", &raw.channels, 1, 2, 2),
            })
        }
        TaskKind::Thumbnail => NodeSpec::Thumbnail(ThumbnailSpec {
            storyboard_interval: raw
                .storyboard_interval
                .as_ref()
                .map(|_| c.range("storyboard_interval", &raw.storyboard_interval, 0.5, 3600.0, 2.0)),
            tile_width: c.range("tile_width", &raw.tile_width, 64, 640, 160),
            columns: c.range("columns", &raw.columns, 1, 20, 10),
            max_tiles: c.range("max_tiles", &raw.max_tiles, 1, 400, 100),
            poster_width: c.range("poster_width", &raw.poster_width, 160, 3840, 1280),
        }),
        TaskKind::Watermark => NodeSpec::Watermark(watermark_spec(c, raw, base)),
        TaskKind::Package => NodeSpec::Package(PackageSpec {
            hls: raw.hls.as_ref().is_none_or(|v| *v.get_ref()),
            dash: raw.dash.as_ref().is_none_or(|v| *v.get_ref()),
        }),
    }
}

fn encode_spec(c: &mut Checker<'_>, raw: &RawTask) -> LadderSpec {
    let codec = match &raw.codec {
        None => VideoCodec::H264,
        Some(s) => VideoCodec::parse(s.get_ref()).unwrap_or_else(|| {
            c.at(s.span(), format!("unknown video codec `{}` (h264, vp9, av1)", s.get_ref()));
            VideoCodec::H264
        }),
    };
    let mut spec = LadderSpec::for_codec(codec);
    if let Some(rungs) = &raw.rungs {
        if rungs.get_ref().is_empty() || rungs.get_ref().iter().any(|&r| !(16..=4320).contains(&r)) {
            c.at(rungs.span(), "`rungs` must list picture heights between 16 and 4320");
        }
        spec.classes = Some(rungs.get_ref().clone());
    }
    spec.max_class = c.range("max_height", &raw.max_height, 16, 4320, 2160);
    if let Some(p) = &raw.preset {
        spec.preset = p.get_ref().clone();
    }
    let crf_max = if codec == VideoCodec::H264 { 51 } else { 63 };
    spec.crf = c.range("crf", &raw.crf, 0, crf_max, spec.crf);
    if let Some(rc) = &raw.rate_control {
        spec.rate_control = match rc.get_ref().as_str() {
            "crf" => RateControl::Crf,
            "abr" => RateControl::Abr,
            other => {
                c.at(rc.span(), format!("unknown rate_control `{other}` (crf, abr)"));
                RateControl::Crf
            }
        };
    }
    spec.bitrate_scale = c.range("bitrate_scale", &raw.bitrate_scale, 0.1, 10.0, 1.0);
    if let Some(s) = &raw.name_suffix {
        spec.name_suffix = s.get_ref().clone();
    }
    spec
}

fn watermark_spec(c: &mut Checker<'_>, raw: &RawTask, base: &Path) -> WatermarkSpec {
    let position = match &raw.position {
        None => Corner::TopRight,
        Some(p) => Corner::parse(p.get_ref()).unwrap_or_else(|| {
            c.at(
                p.span(),
                format!("unknown position `{}` (top-left, top-right, bottom-left, bottom-right, center)", p.get_ref()),
            );
            Corner::TopRight
        }),
    };
    let image = raw.image.as_ref().map(|img| {
        let path = base.join(img.get_ref());
        if !path.is_file() {
            c.at(img.span(), format!("watermark image `{}` not found", path.display()));
        }
        path
    });
    WatermarkSpec {
        text: raw.text.as_ref().map(|t| t.get_ref().clone()),
        image,
        position,
        opacity: c.range("opacity", &raw.opacity, 0.0, 1.0, 0.7),
        margin: c.range("margin", &raw.margin, 0.0, 0.4, 0.03),
        size: c.range("size", &raw.size, 0.02, 0.5, 0.06),
    }
}

#[cfg(test)]
mod tests;
