//! A player's forward buffer, simulated in wall-clock time, for playback pace: media drains
//! in real time once playing, downloads add to it, and when it runs dry the viewer would see
//! a stall. The rebuffer ratio is stalled time over stalled plus played time. The first
//! fill (startup) and the refill after a seek are waits the viewer expects, not stalls.

/// The buffer. Times are seconds on any monotonic clock the caller picks.
#[derive(Debug, Clone, Default)]
pub struct Buffer {
    level: f64,
    playing: bool,
    in_stall: bool,
    last: f64,
    /// Seconds of media played.
    pub played: f64,
    /// Seconds stalled while playing.
    pub stalled: f64,
    /// Number of stalls.
    pub stalls: u32,
}

impl Buffer {
    /// A new, empty buffer that is not playing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Seconds of media buffered ahead of the playhead at `now`.
    pub fn level(&mut self, now: f64) -> f64 {
        self.advance(now);
        self.level
    }

    /// Moves the playhead to `now`.
    pub fn advance(&mut self, now: f64) {
        let elapsed = (now - self.last).max(0.0);
        self.last = now;
        if !self.playing {
            return;
        }
        if elapsed <= self.level {
            self.level -= elapsed;
            self.played += elapsed;
        } else {
            // Dry time that continues an earlier stall extends it rather than adding one.
            if !self.in_stall {
                self.stalls += 1;
                self.in_stall = true;
            }
            self.played += self.level;
            self.stalled += elapsed - self.level;
            self.level = 0.0;
        }
    }

    /// A download of `seconds` of media finished at `now`; playback starts with the first.
    pub fn add(&mut self, now: f64, seconds: f64) {
        self.advance(now);
        self.level += seconds;
        self.playing = true;
        self.in_stall = false;
    }

    /// How long to wait at `now` before there is room for `next` more seconds under `max`.
    pub fn wait_for_room(&mut self, now: f64, next: f64, max: f64) -> f64 {
        let level = self.level(now);
        if !self.playing { 0.0 } else { (level + next - max).max(0.0) }
    }

    /// A seek: the buffer is flushed and playback pauses until the next download.
    pub fn seek(&mut self, now: f64) {
        self.advance(now);
        self.level = 0.0;
        self.playing = false;
    }

    /// The viewer leaves at `now`, after its last download. Running dry after the last
    /// download is the end of the video, not a stall; what is still buffered at `now` was
    /// never played.
    pub fn finish(&mut self, now: f64) {
        let elapsed = (now - self.last).max(0.0);
        self.last = now;
        if self.playing {
            self.played += self.level.min(elapsed);
        }
        self.level = 0.0;
        self.playing = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_enough_downloads_never_stall() {
        let mut b = Buffer::new();
        // 2 s segments arriving every second: the level grows, nothing stalls.
        for i in 1..=10 {
            b.add(i as f64, 2.0);
        }
        assert_eq!(b.stalled, 0.0);
        assert!((b.played - 9.0).abs() < 1e-9);
        assert!((b.level(10.0) - 11.0).abs() < 1e-9);
    }

    #[test]
    fn slow_downloads_stall_for_the_shortfall() {
        let mut b = Buffer::new();
        b.add(1.0, 2.0); // startup: not a stall
        b.add(4.0, 2.0); // 3 s later with 2 s buffered: 1 s stall
        b.add(7.0, 2.0); // again
        assert!((b.stalled - 2.0).abs() < 1e-9, "{}", b.stalled);
        assert_eq!(b.stalls, 2);
        assert!((b.played - 4.0).abs() < 1e-9);
        // The last 2 s play out; overshooting the end is not a stall.
        b.finish(9.5);
        assert!((b.played - 6.0).abs() < 1e-9);
        assert!((b.stalled - 2.0).abs() < 1e-9 && b.stalls == 2);
        let ratio = b.stalled / (b.stalled + b.played);
        assert!((ratio - 0.25).abs() < 1e-9);
    }

    #[test]
    fn a_full_buffer_makes_the_player_wait() {
        let mut b = Buffer::new();
        assert_eq!(b.wait_for_room(0.0, 2.0, 10.0), 0.0, "not playing: fetch at once");
        for _ in 0..5 {
            b.add(0.0, 2.0);
        }
        // 10 s buffered, max 10: the next 2 s segment fits after 2 s of playback.
        assert!((b.wait_for_room(0.0, 2.0, 10.0) - 2.0).abs() < 1e-9);
        assert_eq!(b.wait_for_room(2.0, 2.0, 10.0), 0.0);
    }

    #[test]
    fn a_seek_flushes_without_counting_a_stall() {
        let mut b = Buffer::new();
        b.add(0.0, 10.0);
        b.seek(1.0);
        assert_eq!(b.level(5.0), 0.0);
        b.add(5.0, 2.0);
        assert_eq!(b.stalled, 0.0);
        assert!((b.played - 1.0).abs() < 1e-9);
    }
}
