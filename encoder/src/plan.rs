//! The DAG scheduler's pure half: turns a pipeline node whose inputs are done into tasks,
//! and a node's finished tasks back into the node's output.

use crate::dag;
use crate::error::{Error, Result};
use crate::jit::Materialise;
use crate::ladder;
use crate::media::{Limits, MediaInfo, VIDEO_TIMESCALE};
use crate::pipeline::{Node, NodeSpec, Pipeline};
use crate::task::{
    ChunkIndex, DeferredRung, EncodedLadder, EncodedPart, Encryption, OnDemandInputs, Overlay, PackageSummary,
    TaskOutput, TaskSpec, Thumbnails, Work,
};

/// What a finished node hands to the nodes after it.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeOutput {
    /// Inspect.
    Media(MediaInfo),
    /// Split.
    Chunks(ChunkIndex),
    /// Watermark.
    Overlay(Option<Overlay>),
    /// Encode.
    Ladder(EncodedLadder),
    /// Audio.
    Audio(Option<EncodedPart>),
    /// Thumbnail.
    Thumbnails(Thumbnails),
    /// Package.
    Packaged(PackageSummary),
}

/// Job-wide facts the planner needs.
#[derive(Debug, Clone)]
pub struct JobContext {
    /// Job id.
    pub job: String,
    /// Source location.
    pub source: String,
    /// Root of the job's temporary storage.
    pub store: String,
    /// Output folder.
    pub out_dir: String,
    /// Accepted inputs.
    pub limits: Limits,
    /// AES-128 settings.
    pub encryption: Option<Encryption>,
    /// Which rungs are encoded now.
    pub materialise: Materialise,
    /// Whether the package task leaves an on-demand plan for later encodes.
    pub on_demand: bool,
}

/// Priorities: package as soon as it can, then encodes longest first, audio, then the
/// cheap tasks that fill idle cores at the end.
const PRIORITY_PACKAGE: i64 = 3_000_000_000;
const PRIORITY_PREPARE: i64 = 2_000_000_000;
const PRIORITY_ENCODE: i64 = 1_000_000_000;
const PRIORITY_AUDIO: i64 = 500_000_000;
const PRIORITY_FILLER: i64 = 0;

/// The tasks of node `i`, given the outputs of every finished node.
pub fn expand(
    pipeline: &Pipeline,
    i: usize,
    outputs: &[Option<NodeOutput>],
    ctx: &JobContext,
) -> Result<Vec<TaskSpec>> {
    let node = &pipeline.nodes[i];
    let up = Upstream { pipeline, i, outputs };
    let task = |id: String, priority: i64, work: Work| TaskSpec {
        job: ctx.job.clone(),
        id,
        node: node.id.clone(),
        attempt: 1,
        priority,
        store: ctx.store.clone(),
        work,
    };
    let one = |priority: i64, work: Work| vec![task(format!("{}/{}", node.kind().as_str(), node.id), priority, work)];
    Ok(match &node.spec {
        NodeSpec::Inspect => one(PRIORITY_PREPARE, Work::Inspect { source: ctx.source.clone(), limits: ctx.limits }),
        NodeSpec::Split(spec) => one(
            PRIORITY_PREPARE,
            Work::Split { source: ctx.source.clone(), media: up.media()?.clone(), chunk_seconds: spec.chunk_seconds },
        ),
        NodeSpec::Watermark(spec) if spec.is_empty() => Vec::new(),
        NodeSpec::Watermark(spec) => {
            one(PRIORITY_PREPARE, Work::Watermark { spec: spec.clone(), video: up.media()?.video.clone() })
        }
        NodeSpec::Encode(spec) => {
            let media = up.media()?;
            let chunks = up.chunks()?;
            let overlay = up.overlay();
            let (rungs, deferred) = ctx.materialise.split(ladder::derive(&media.video, spec));
            let pixels: u64 = rungs.iter().map(|r| u64::from(r.width) * u64::from(r.height)).sum();
            let total_ticks = (media.duration * f64::from(VIDEO_TIMESCALE)) as i64;
            chunks
                .chunks
                .iter()
                .map(|chunk| {
                    let ticks = chunk.end.unwrap_or(total_ticks).saturating_sub(chunk.start).max(1);
                    // Longest-processing-time first keeps both cores busy until the end.
                    let cost = (ticks as u64 / 900).saturating_mul(pixels / 1000);
                    let outputs =
                        rungs.iter().map(|r| format!("encoded/{}/{}/{:05}.es", node.id, r.name, chunk.index)).collect();
                    task(
                        format!("encode/{}/{:05}", node.id, chunk.index),
                        PRIORITY_ENCODE + (cost.min(900_000_000) as i64),
                        Work::Encode {
                            chunk: chunk.clone(),
                            timeline: chunks.timeline,
                            video: media.video.clone(),
                            rungs: rungs.clone(),
                            overlay: overlay.clone(),
                            segment_seconds: pipeline.segment_seconds,
                            outputs,
                            deferred: if chunk.index == 0 { deferred.clone() } else { Vec::new() },
                        },
                    )
                })
                .collect()
        }
        NodeSpec::Audio(spec) => {
            let media = up.media()?;
            if media.audio.is_none() {
                Vec::new()
            } else {
                one(
                    PRIORITY_AUDIO,
                    Work::Audio {
                        source: ctx.source.clone(),
                        media: media.clone(),
                        timeline: media.timeline(),
                        spec: *spec,
                        output: format!("encoded/{}/audio.es", node.id),
                    },
                )
            }
        }
        NodeSpec::Thumbnail(spec) => one(
            PRIORITY_FILLER,
            Work::Thumbnail { source: ctx.source.clone(), media: up.media()?.clone(), spec: *spec },
        ),
        NodeSpec::Package(spec) => one(
            PRIORITY_PACKAGE,
            Work::Package {
                spec: *spec,
                ladders: up.all(|o| match o {
                    NodeOutput::Ladder(l) => Some(l.clone()),
                    _ => None,
                }),
                audio: up
                    .all(|o| match o {
                        NodeOutput::Audio(a) => a.clone(),
                        _ => None,
                    })
                    .into_iter()
                    .next(),
                thumbnails: up
                    .all(|o| match o {
                        NodeOutput::Thumbnails(t) => Some(t.clone()),
                        _ => None,
                    })
                    .into_iter()
                    .next(),
                segment_seconds: pipeline.segment_seconds,
                out_dir: ctx.out_dir.clone(),
                encryption: ctx.encryption.clone(),
                on_demand: if ctx.on_demand {
                    Some(OnDemandInputs {
                        media: up.media()?.clone(),
                        keyframes: up.chunks_any().map(|c| c.keyframes).unwrap_or_default(),
                        overlay: up.overlay_any(),
                    })
                } else {
                    None
                },
            },
        ),
    })
}

/// Combines the outputs of a node's tasks (in task order) into the node's output.
pub fn aggregate(node: &Node, tasks: &[TaskSpec], outputs: Vec<TaskOutput>) -> Result<NodeOutput> {
    let mismatch = || Error::Internal(format!("node `{}` got an output of the wrong kind", node.id));
    Ok(match &node.spec {
        NodeSpec::Watermark(_) if outputs.is_empty() => NodeOutput::Overlay(None),
        NodeSpec::Audio(_) if outputs.is_empty() => NodeOutput::Audio(None),
        NodeSpec::Encode(_) => {
            let (rungs, later) = match tasks.first().map(|t| &t.work) {
                Some(Work::Encode { rungs, deferred, .. }) => (rungs.clone(), deferred.clone()),
                _ => return Err(Error::Internal(format!("encode node `{}` has no chunks", node.id))),
            };
            let mut parts: Vec<EncodedPart> =
                rungs.iter().map(|r| EncodedPart { name: r.name.clone(), keys: Vec::new() }).collect();
            let mut deferred = Vec::new();
            for (i, out) in outputs.into_iter().enumerate() {
                let TaskOutput::Encoded(keys) = out else { return Err(mismatch()) };
                let (encoded, templates) = keys.split_at(rungs.len().min(keys.len()));
                for (part, key) in parts.iter_mut().zip(encoded) {
                    part.keys.push(key.clone());
                }
                if i == 0 {
                    deferred = later
                        .iter()
                        .zip(templates)
                        .map(|(rung, t)| DeferredRung { rung: rung.clone(), template: t.clone() })
                        .collect();
                }
            }
            NodeOutput::Ladder(EncodedLadder { rungs, parts, deferred })
        }
        _ => {
            let Some(out) = outputs.into_iter().next() else { return Err(mismatch()) };
            match (out, &node.spec) {
                (TaskOutput::Inspected(m), NodeSpec::Inspect) => NodeOutput::Media(m),
                (TaskOutput::Split(c), NodeSpec::Split(_)) => NodeOutput::Chunks(c),
                (TaskOutput::Watermark(o), NodeSpec::Watermark(_)) => NodeOutput::Overlay(o),
                (TaskOutput::Audio(key), NodeSpec::Audio(_)) => {
                    NodeOutput::Audio(key.map(|k| EncodedPart { name: "audio".into(), keys: vec![k] }))
                }
                (TaskOutput::Thumbnails(t), NodeSpec::Thumbnail(_)) => NodeOutput::Thumbnails(t),
                (TaskOutput::Packaged(p), NodeSpec::Package(_)) => NodeOutput::Packaged(p),
                _ => return Err(mismatch()),
            }
        }
    })
}

/// Read access to the outputs of a node's upstream nodes.
struct Upstream<'a> {
    pipeline: &'a Pipeline,
    i: usize,
    outputs: &'a [Option<NodeOutput>],
}

impl Upstream<'_> {
    fn all<T>(&self, pick: impl Fn(&NodeOutput) -> Option<T>) -> Vec<T> {
        let mut up = dag::upstream(&self.pipeline.nodes, self.i);
        up.sort_unstable();
        up.into_iter().filter_map(|u| self.outputs[u].as_ref().and_then(&pick)).collect()
    }

    fn media(&self) -> Result<&MediaInfo> {
        self.outputs
            .iter()
            .flatten()
            .find_map(|o| match o {
                NodeOutput::Media(m) => Some(m),
                _ => None,
            })
            .ok_or_else(|| Error::Internal("inspect output missing".into()))
    }

    fn chunks(&self) -> Result<ChunkIndex> {
        self.all(|o| match o {
            NodeOutput::Chunks(c) => Some(c.clone()),
            _ => None,
        })
        .into_iter()
        .next()
        .ok_or_else(|| Error::Internal("split output missing".into()))
    }

    /// The split output of any finished node (not only direct inputs).
    fn chunks_any(&self) -> Option<ChunkIndex> {
        self.outputs.iter().flatten().find_map(|o| match o {
            NodeOutput::Chunks(c) => Some(c.clone()),
            _ => None,
        })
    }

    /// The watermark of any finished node (not only direct inputs).
    fn overlay_any(&self) -> Option<Overlay> {
        self.outputs.iter().flatten().find_map(|o| match o {
            NodeOutput::Overlay(o) => o.clone(),
            _ => None,
        })
    }

    fn overlay(&self) -> Option<Overlay> {
        self.all(|o| match o {
            NodeOutput::Overlay(o) => o.clone(),
            _ => None,
        })
        .into_iter()
        .next()
    }
}
