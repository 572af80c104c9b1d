//! Filter graphs fed from buffer sources and drained from buffer sinks.

use ff::{Rational, filter, format, frame};
use ffmpeg_next as ff;

use super::{is_again, media_error};
use crate::error::Result;

/// A video buffer source's parameters.
#[derive(Debug, Clone, Copy)]
pub(super) struct BufferSpec<'a> {
    pub name: &'a str,
    pub width: u32,
    pub height: u32,
    pub format: format::Pixel,
    pub time_base: Rational,
    pub aspect: Rational,
}

impl BufferSpec<'_> {
    fn args(&self) -> String {
        let pix: ff::ffi::AVPixelFormat = self.format.into();
        let aspect = if self.aspect.numerator() > 0 { self.aspect } else { Rational(1, 1) };
        format!(
            "video_size={}x{}:pix_fmt={}:time_base={}/{}:pixel_aspect={}/{}",
            self.width,
            self.height,
            pix as i32,
            self.time_base.numerator(),
            self.time_base.denominator().max(1),
            aspect.numerator(),
            aspect.denominator()
        )
    }
}

/// A filter graph with named video inputs and sinks `out0..outN`.
pub(super) struct VideoGraph {
    graph: filter::Graph,
    outputs: Vec<String>,
}

impl VideoGraph {
    /// Builds `spec`, whose input labels are the buffer names and output labels `out0..`.
    pub(super) fn new(inputs: &[BufferSpec<'_>], spec: &str, outputs: usize) -> Result<Self> {
        let err = media_error("building filter graph");
        let mut graph = filter::Graph::new();
        let buffer = filter::find("buffer").expect("buffer filter");
        let sink = filter::find("buffersink").expect("buffersink filter");
        for i in inputs {
            graph.add(&buffer, i.name, &i.args()).map_err(media_error("adding buffer source"))?;
        }
        let names: Vec<String> = (0..outputs).map(|o| format!("out{o}")).collect();
        for n in &names {
            graph.add(&sink, n, "").map_err(media_error("adding buffer sink"))?;
        }
        // Single-threaded: parallelism comes from running many chunks, which is cheaper.
        unsafe { (*graph.as_mut_ptr()).nb_threads = 1 };
        {
            let mut parser = graph.output(inputs[0].name, 0).map_err(media_error("linking graph"))?;
            for i in &inputs[1..] {
                parser = parser.output(i.name, 0).map_err(media_error("linking graph"))?;
            }
            for n in &names {
                parser = parser.input(n, 0).map_err(media_error("linking graph"))?;
            }
            parser.parse(spec).map_err(err)?;
        }
        graph.validate().map_err(media_error("validating filter graph"))?;
        Ok(Self { graph, outputs: names })
    }

    /// Feeds a frame to an input.
    pub(super) fn push(&mut self, input: &str, frame: &frame::Video) -> Result<()> {
        let mut ctx = self.graph.get(input).expect("input exists");
        ctx.source().add(frame).map_err(media_error("feeding filter graph"))
    }

    /// Signals the end of an input.
    pub(super) fn close(&mut self, input: &str) -> Result<()> {
        let mut ctx = self.graph.get(input).expect("input exists");
        ctx.source().flush().map_err(media_error("flushing filter graph"))
    }

    /// Takes the next frame of output `index`, `false` when none is ready.
    pub(super) fn pull(&mut self, index: usize, out: &mut frame::Video) -> Result<bool> {
        let mut ctx = self.graph.get(&self.outputs[index]).expect("output exists");
        match ctx.sink().frame(out) {
            Ok(()) => Ok(true),
            Err(e) if is_again(&e) => Ok(false),
            Err(e) => Err(media_error("reading filter graph")(e)),
        }
    }

    /// Number of outputs.
    pub(super) fn outputs(&self) -> usize {
        self.outputs.len()
    }
}

/// The filters that turn a coded picture upright, given its clockwise display rotation.
pub(super) fn rotation_filters(rotation: u32) -> &'static str {
    match rotation {
        90 => "transpose=clock,",
        180 => "hflip,vflip,",
        270 => "transpose=cclock,",
        _ => "",
    }
}
