//! The live progress line, on a terminal only (a CI log gets the summary at the end).

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tokio::task::JoinHandle;

use crate::record::Recorder;
use crate::units::human_bits_per_second;

const TICK: Duration = Duration::from_millis(500);

/// A running progress line.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
    task: JoinHandle<()>,
}

impl Progress {
    /// Starts the line if stderr is a terminal.
    pub fn start(recorder: Arc<Recorder>, planned: Duration) -> Option<Self> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        let bar = ProgressBar::new(planned.as_secs().max(1));
        let style = ProgressStyle::with_template("{elapsed_precise} [{bar:24}] {msg}")
            .expect("a valid template")
            .progress_chars("=> ");
        bar.set_style(style);
        let line = bar.clone();
        let task = tokio::spawn(async move {
            let mut last = recorder.counters();
            let mut ticker = tokio::time::interval(TICK);
            loop {
                ticker.tick().await;
                let now = recorder.counters();
                let seconds = TICK.as_secs_f64();
                let hit = if now.judged > 0 {
                    format!("{:.1} %", now.hits as f64 / now.judged as f64 * 100.0)
                } else {
                    "-".into()
                };
                line.set_position(recorder.elapsed() as u64);
                line.set_message(format!(
                    "{} viewers  {:.0} req/s  {}  hit {hit}  errors {}{}",
                    now.viewers,
                    (now.requests - last.requests) as f64 / seconds,
                    human_bits_per_second((now.bytes - last.bytes) as f64 / seconds),
                    now.errors,
                    if now.uploads > 0 { format!("  uploads {}", now.uploads) } else { String::new() },
                ));
                last = now;
            }
        });
        Some(Self { bar, task })
    }

    /// Removes the line.
    pub fn finish(self) {
        self.task.abort();
        self.bar.finish_and_clear();
    }
}
