use super::*;

fn count(video: &str, minute: i64, requests: u64) -> (String, i64, u64) {
    (video.to_owned(), minute, requests)
}

/// `requests` in each of the minutes `from..=to`.
fn steady(video: &str, from: i64, to: i64, requests: u64) -> Vec<(String, i64, u64)> {
    (from..=to).map(|m| count(video, m, requests)).collect()
}

fn videos(picks: &[Pick]) -> Vec<(&str, bool)> {
    picks.iter().map(|p| (p.video.as_str(), p.rising)).collect()
}

#[test]
fn a_title_whose_demand_jumps_rises_over_a_steady_one() {
    // "steady" has drawn 60,000 a minute for an hour and still does; "jump" drew 3,000 a
    // minute and now draws 24,000: less than "steady", but eight times its own past.
    let mut counts = steady("steady", 40, 100, 60_000);
    counts.extend(steady("jump", 40, 98, 3_000));
    counts.extend([count("jump", 99, 24_000), count("jump", 100, 9_000)]);
    let d = demands(&counts, Clock::end_of(100));
    assert!(d["jump"].is_rising() && !d["steady"].is_rising(), "{d:?}");
    assert_eq!(d["jump"].recent, 24_000, "the fuller of the last two minutes");
    assert_eq!(videos(&choose(&counts, Clock::end_of(100), RISING_TITLES)), [("jump", true), ("steady", false)]);
    // Off, the decayed ranking alone, as before: "steady" first, nothing rises.
    assert_eq!(videos(&choose(&counts, Clock::end_of(100), 0)), [("steady", false), ("jump", false)]);
}

#[test]
fn what_rises_and_what_does_not() {
    // (history per minute over minutes 40..=98, the last two minutes, rising)
    let table: [(u64, [u64; 2], bool); 8] = [
        (0, [15_000, 0], true),            // new, with a crowd
        (0, [0, 15_000], true),            // the crowd came in the current minute
        (0, [RISING_FLOOR - 1, 0], false), // new but under the floor: noise
        (0, [RISING_FLOOR, 0], true),      // at the floor
        (30_000, [30_000, 30_000], false), // steady
        (30_000, [45_000, 12_000], false), // up by half: not a jump
        (10_000, [30_000, 1_000], true),   // three times its past
        (100_000, [5_000, 0], false),      // falling
    ];
    for (history, [previous, current], rising) in table {
        let mut counts = if history > 0 { steady("v", 40, 98, history) } else { Vec::new() };
        counts.extend([count("v", 99, previous), count("v", 100, current)]);
        let d = demands(&counts, Clock::end_of(100))["v"];
        assert_eq!(d.is_rising(), rising, "history {history}, last minutes {previous}/{current}: {d:?}");
    }
}

#[test]
fn the_current_minute_counts_at_its_pace_so_far() {
    let counts = [count("crowd", 100, 4_000)];
    // (seconds into the minute, requests a minute now)
    for (seconds, recent) in [(60.0, 4_000), (40.0, 6_000), (20.0, 12_000), (3.0, 12_000), (0.0, 12_000)] {
        let d = demands(&counts, Clock { minute: 100, seconds })["crowd"];
        assert_eq!(d.recent, recent, "{seconds} s into the minute");
        assert_eq!(d.is_rising(), recent >= RISING_FLOOR, "{seconds} s");
    }
    // A steady title does not rise at a minute's start: its previous minute stands.
    let mut steady = steady("steady", 40, 99, 30_000);
    steady.push(count("steady", 100, 1_500));
    assert!(!demands(&steady, Clock { minute: 100, seconds: 3.0 })["steady"].is_rising());
    assert_eq!(Clock::at(6_000_000 + 3_500), Clock { minute: 100, seconds: 3.5 });
}

#[test]
fn at_most_three_rising_titles_lead_and_the_ranking_fills_up_to_ten() {
    let mut counts: Vec<_> = (0..12).map(|i| count(&format!("old{i:02}"), 60, 100_000 - i)).collect();
    counts.extend((0..5).map(|i| count(&format!("new{i}"), 100, 10_000 + 1_000 * i)));
    let picks = choose(&counts, Clock::end_of(100), RISING_TITLES);
    assert_eq!(picks.len(), PREFETCH_VIDEOS);
    assert_eq!(videos(&picks[..3]), [("new4", true), ("new3", true), ("new2", true)]);
    assert!(picks[3..].iter().all(|p| !p.rising), "{picks:?}");
    // 100,000 forty minutes ago weigh about 15,700, more than any new title's 14,000 now.
    assert_eq!(picks[3].video, "old00");
}

#[test]
fn recent_requests_outweigh_old_ones_and_ties_go_by_id() {
    // 100 requests 30 minutes ago weigh 25; 30 now weigh 30 (all under the floor: none rises).
    let counts = [count("old", 70, 100), count("new", 100, 30), count("b", 100, 5), count("a", 100, 5)];
    assert_eq!(
        videos(&choose(&counts, Clock::end_of(100), RISING_TITLES)),
        [("new", false), ("old", false), ("a", false), ("b", false)]
    );
    let counts = [count("x", 100, 10), count("x", 100, 10), count("y", 100, 15)];
    assert_eq!(
        videos(&choose(&counts, Clock::end_of(100), RISING_TITLES)),
        [("x", false), ("y", false)],
        "rows add up"
    );
    assert!(choose(&[], Clock::end_of(100), RISING_TITLES).is_empty());
}

#[test]
fn the_opening_covers_its_seconds_and_stops_at_the_last_segment() {
    // (segment seconds, opening seconds, segments in the video, segments in the opening)
    let table = [
        (2.0, 60, 300, 30),
        (4.0, 60, 300, 15),
        (6.0, 60, 300, 10),
        (2.5, 60, 300, 24),
        (7.0, 60, 300, 9), // 8.57 rounds up: the opening is covered
        (2.0, 60, 20, 20), // a 40 s video: all of it, no further
        (2.0, 60, 1, 1),
        (60.0 / 30.000_000_1, 60, 300, 30), // float noise does not cost a segment
        (2.0, 0, 300, 0),                   // off
        (0.0, 60, 300, 0),                  // no duration known: no opening
        (f64::NAN, 60, 300, 0),
    ];
    for (seconds, opening, segments, expected) in table {
        assert_eq!(
            opening_segments(seconds, opening, segments),
            expected,
            "{seconds} s segments, {opening} s, {segments}"
        );
    }
}

#[test]
fn the_segment_duration_is_the_plans_or_the_duration_over_the_count() {
    assert_eq!(segment_seconds(Some(2.0), Some(61.0), 31), Some(2.0));
    // Without a plan: 61 s in 31 segments is 1.97 s, so the opening errs by one segment long.
    let derived = segment_seconds(None, Some(61.0), 31).unwrap();
    assert_eq!(opening_segments(derived, 60, 31), 31);
    assert_eq!(segment_seconds(None, None, 31), None);
    assert_eq!(segment_seconds(None, Some(0.0), 31), None);
    assert_eq!(segment_seconds(None, Some(10.0), 0), None, "no segments");
}

fn shape(renditions: &[(&str, Stored)], trees: &[&'static str], opening: u64) -> Shape {
    Shape {
        trees: trees.to_vec(),
        renditions: renditions.iter().map(|(r, s)| ((*r).to_owned(), s.clone())).collect(),
        opening,
    }
}

#[test]
fn an_opening_lists_every_rendition_past_the_short_list_and_on_demand_rungs_only_stored() {
    let stored = Stored::Only([0, 3, 9, 40].into());
    let s = shape(&[("360p", Stored::All), ("720p", stored), ("audio", Stored::All)], &[""], 30);
    let (keys, next) = s.page("v", SHORT_SEGMENTS, usize::MAX);
    assert_eq!(next, 30);
    assert!(s.done(next));
    assert_eq!(keys.len(), 28 + 2 + 28, "360p and audio 2..30; 720p only 3 and 9 (0 is short, 40 past the opening)");
    assert_eq!(
        &keys[..4],
        ["v/360p/seg_00002.m4s", "v/audio/seg_00002.m4s", "v/360p/seg_00003.m4s", "v/720p/seg_00003.m4s"]
    );
    let on_demand: Vec<_> = keys.iter().filter(|k| k.contains("720p")).collect();
    assert_eq!(on_demand, ["v/720p/seg_00003.m4s", "v/720p/seg_00009.m4s"]);
    assert!(keys.iter().all(|k| !k.contains("seg_00030")), "never past the opening");
}

#[test]
fn an_opening_is_paged_time_first_within_the_budget_in_every_tree() {
    let s = shape(&[("360p", Stored::All), ("audio", Stored::All)], &["", "cbcs/"], 6);
    // Four keys a segment: a budget of 10 takes two whole segments.
    let (keys, next) = s.page("v", 2, 10);
    assert_eq!(
        keys,
        [
            "v/360p/seg_00002.m4s",
            "v/audio/seg_00002.m4s",
            "v/cbcs/360p/seg_00002.m4s",
            "v/cbcs/audio/seg_00002.m4s",
            "v/360p/seg_00003.m4s",
            "v/audio/seg_00003.m4s",
            "v/cbcs/360p/seg_00003.m4s",
            "v/cbcs/audio/seg_00003.m4s",
        ]
    );
    assert_eq!(next, 4);
    let (rest, next) = s.page("v", next, 10);
    assert_eq!((rest.len(), next), (8, 6));
    assert_eq!(s.page("v", next, 10), (Vec::new(), 6), "done");
    assert_eq!(s.page("v", 2, 3), (Vec::new(), 2), "not even one segment fits");
    let short = shape(&[("360p", Stored::All)], &[""], 2);
    assert!(short.page("v", SHORT_SEGMENTS, 100).0.is_empty() && short.done(SHORT_SEGMENTS), "a 4 s video");
}

#[test]
fn a_pop_is_sent_an_opening_once_until_it_is_due_again() {
    let mut memo = Openings::default();
    let t0 = Instant::now();
    assert_eq!(memo.from("pop", "v", t0), SHORT_SEGMENTS, "never sent");
    memo.record("pop", "v", SHORT_SEGMENTS, 10, t0);
    assert_eq!(memo.from("pop", "v", t0 + Duration::from_secs(3)), 10, "the next beat goes on");
    assert_eq!(memo.from("other", "v", t0), SHORT_SEGMENTS, "per PoP");
    memo.record("pop", "v", 10, 30, t0 + Duration::from_secs(3));
    assert_eq!(memo.from("pop", "v", t0 + RESEND_AFTER - Duration::from_secs(1)), 30, "sent whole: nothing more");
    assert_eq!(memo.from("pop", "v", t0 + RESEND_AFTER), SHORT_SEGMENTS, "due again, timed from its first page");
    memo.record("pop", "v", SHORT_SEGMENTS, 30, t0 + RESEND_AFTER);
    assert_eq!(memo.from("pop", "v", t0 + RESEND_AFTER + Duration::from_secs(3)), 30);
}

#[test]
fn shapes_are_reused_for_a_while() {
    let mut memo = Openings::default();
    let t0 = Instant::now();
    assert_eq!(memo.shape("v", t0), None);
    let s = Arc::new(shape(&[("360p", Stored::All)], &[""], 30));
    memo.keep_shape("v", Some(s.clone()), t0);
    memo.keep_shape("none", None, t0);
    assert_eq!(memo.shape("v", t0 + SHAPE_TTL - Duration::from_secs(1)), Some(Some(s)));
    assert_eq!(memo.shape("none", t0), Some(None), "no opening is remembered too");
    assert_eq!(memo.shape("v", t0 + SHAPE_TTL), None, "looked up again");
}
