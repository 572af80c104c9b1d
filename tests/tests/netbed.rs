//! The network test bed itself (`tests::netbed`, `scripts/netbed.py`): the delays it emulates
//! are the ones asked for, its loss rate is the one set, a TCP stream crosses it and is counted
//! on its own directed pair, a partition drops everything both ways until healed, and neither a
//! killed router nor a dropped bed leaves a namespace behind.
//!
//! Needs root (network namespaces, TUN devices), `ip` and Python 3. Without them the tests are
//! skipped locally, loudly, and fail under CI (`CI` set).
//!
//! Tolerances are measured, with margin, on a loaded 2-core machine: the router is Python, so
//! a hop costs it a few hundred microseconds more than asked; an RTT's median must lie within
//! [asked - jitter, asked + 3 ms + 20 %].

use std::process::Command;
use std::time::Duration;

use tests::netbed::{self, Link, NetBed, Probe, Spec};

/// Slack on an RTT's median: the router's own work and a busy machine's scheduling.
fn rtt_upper_bound(asked_ms: f64) -> f64 {
    asked_ms * 1.2 + 3.0
}

fn assert_rtt(bed: &NetBed, from: &str, to: &str, asked_ms: f64, jitter_ms: f64) -> Probe {
    let probe = bed.probe(from, to, 100).unwrap();
    let p50 = probe.rtt_p50_ms.unwrap_or_else(|| panic!("{from} -> {to}: no reply: {probe:?}"));
    eprintln!("{from} -> {to}: asked {asked_ms} ms, measured {probe:?}");
    assert_eq!(probe.received, probe.sent, "{from} -> {to} is lossless: {probe:?}");
    assert!(
        (asked_ms - jitter_ms..=rtt_upper_bound(asked_ms)).contains(&p50),
        "{from} -> {to}: median RTT {p50:.2} ms for {asked_ms} ms asked: {probe:?}"
    );
    probe
}

#[test]
fn the_built_in_link_table_is_the_scripts() {
    let out = Command::new("python3").arg(netbed::script()).arg("defaults").output().expect("python3 runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let script: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // The wrapper's table, as it sends it; rate_mbit null is the script's "absent".
    let ours = Spec::default().to_json();
    let strip = |rules: &serde_json::Value| -> Vec<serde_json::Value> {
        rules
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let mut r = r.clone();
                r.as_object_mut().unwrap().remove("rate_mbit");
                for key in ["rtt_ms", "jitter_ms", "loss"] {
                    r[key] = serde_json::json!(r[key].as_f64().unwrap());
                }
                r
            })
            .collect()
    };
    assert_eq!(strip(&ours["links"]), strip(&script["links"]));
    assert_eq!(strip(&serde_json::json!([ours["default"]])), strip(&serde_json::json!([script["default"]])));
}

#[test]
fn emulated_rtts_and_loss_are_what_was_asked() {
    let spec = Spec::regions(2, 2, true).seed(7);
    let Some(bed) = NetBed::require("emulated_rtts_and_loss_are_what_was_asked", &spec) else { return };
    assert_eq!(bed.hosts().count(), 11, "origin + 2 x (shield, 2 pops, viewer, creator)");

    // Each host's eth0 is the router's TUN, with the address the bed reports.
    let out = bed.command("r1-viewer", "ip").args(["-4", "-o", "addr", "show", "dev", "eth0"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("{}/16", bed.addr("r1-viewer"))));

    assert_rtt(&bed, "r1-viewer", "r1-pop-a", 5.0, 0.5);
    assert_rtt(&bed, "r2-creator", "r2-pop-b", 5.0, 0.5);
    assert_rtt(&bed, "r1-pop-a", "r1-shield", 10.0, 0.5);
    assert_rtt(&bed, "r1-pop-a", "origin", 40.0, 1.0);
    assert_rtt(&bed, "r2-shield", "origin", 40.0, 1.0);
    assert_rtt(&bed, "r1-viewer", "r2-pop-a", 90.0, 1.0);

    // 5 % loss each way: a ping comes back with (1 - 0.05)² = 0.9025. Over 1000 pings the
    // count of replies has a standard deviation of sqrt(1000 * 0.9025 * 0.0975) = 9.4; the
    // bound is 5 of them either side.
    let (loss, pings) = (0.05, 1000u32);
    bed.set_link("r1-viewer", "r1-pop-b", 1.0, 0.0, loss).unwrap();
    bed.reset_stats().unwrap();
    let probe = bed.probe_every("r1-viewer", "r1-pop-b", pings, Duration::from_millis(1)).unwrap();
    eprintln!("5 % loss each way over {pings} pings: {probe:?}");
    let expected = f64::from(pings) * (1.0 - loss) * (1.0 - loss);
    let sigma = (expected * (1.0 - (1.0 - loss) * (1.0 - loss))).sqrt();
    assert_eq!(probe.sent, u64::from(pings));
    assert!(
        (probe.received as f64 - expected).abs() <= 5.0 * sigma,
        "{} of {pings} replies with 5 % loss each way; expected {expected:.0} +- {:.0}",
        probe.received,
        5.0 * sigma
    );
    // The router dropped on both directions, and only those pings: what left the viewer was
    // either forwarded or dropped, what the pop answered is what reached it.
    let out = bed.pair_stats("r1-viewer", "r1-pop-b").unwrap();
    let back = bed.pair_stats("r1-pop-b", "r1-viewer").unwrap();
    eprintln!("router: {out:?}, {back:?}");
    assert_eq!(out.packets + out.dropped, u64::from(pings), "{out:?}");
    assert_eq!(back.packets + back.dropped, out.packets, "{back:?}");
    assert_eq!(back.packets, probe.received, "every reply forwarded arrived");
    let one_way_sigma = (f64::from(pings) * loss * (1.0 - loss)).sqrt();
    assert!((out.dropped as f64 - f64::from(pings) * loss).abs() <= 5.0 * one_way_sigma, "{out:?}");
}

#[test]
fn a_tcp_stream_crosses_and_is_counted_on_its_directed_pair() {
    let spec = Spec::regions(1, 1, false);
    let Some(bed) = NetBed::require("a_tcp_stream_crosses_and_is_counted_on_its_directed_pair", &spec) else { return };
    let size: u64 = 32 << 20;

    // A 0 ms link: what the router itself can carry.
    bed.set_link("r1-pop-a", "r1-viewer", 0.0, 0.0, 0.0).unwrap();
    bed.reset_stats().unwrap();
    let fast = bed.tcp_transfer("r1-pop-a", "r1-viewer", size).unwrap();
    assert_eq!(fast.bytes, size);
    let forward = bed.pair_stats("r1-pop-a", "r1-viewer").unwrap();
    let acks = bed.pair_stats("r1-viewer", "r1-pop-a").unwrap();
    eprintln!("{size} bytes over a 0 ms link: {:.0} MB/s; router: {forward:?}, {acks:?}", fast.mb_per_s());
    // Payload plus 40-52 bytes of headers a segment, and a few retransmissions at most.
    assert!((size..size + size / 4).contains(&forward.bytes), "{forward:?}");
    assert!(acks.bytes < forward.bytes / 10, "the reverse direction carries only ACKs: {acks:?}");
    assert!(acks.packets > 0);
    let others: Vec<_> = bed
        .stats()
        .unwrap()
        .into_iter()
        .filter(|p| ![("r1-pop-a", "r1-viewer"), ("r1-viewer", "r1-pop-a")].contains(&(&p.from[..], &p.to[..])))
        .collect();
    assert!(others.is_empty(), "no other pair carried anything: {others:?}");

    // At the emulated 5 ms and under a 40 Mbit/s limit: the limit is what the stream gets.
    bed.set_link("r1-pop-a", "r1-viewer", 5.0, 0.5, 0.0).unwrap();
    bed.set_rate("r1-pop-a", "r1-viewer", Some(40.0)).unwrap();
    let limited = bed.tcp_transfer("r1-pop-a", "r1-viewer", 4 << 20).unwrap();
    let mbit = limited.mb_per_s() * 8.0;
    eprintln!("4 MiB at 5 ms under 40 Mbit/s: {mbit:.1} Mbit/s");
    assert!((20.0..=42.0).contains(&mbit), "{mbit:.1} Mbit/s under a 40 Mbit/s limit");
}

#[test]
fn a_partition_drops_everything_both_ways_until_healed() {
    let spec = Spec::regions(1, 1, false).link("viewer", "pop", Some(true), Link::rtt(2.0, 0.0));
    let Some(bed) = NetBed::require("a_partition_drops_everything_both_ways_until_healed", &spec) else { return };
    let pings = 50;
    let before = bed.probe("r1-viewer", "r1-pop-a", pings).unwrap();
    assert_eq!(before.received, u64::from(pings), "{before:?}");

    bed.partition("r1-viewer", "r1-pop-a").unwrap();
    bed.reset_stats().unwrap();
    let there = bed.probe("r1-viewer", "r1-pop-a", pings).unwrap();
    let back = bed.probe("r1-pop-a", "r1-viewer", pings).unwrap();
    assert_eq!((there.received, back.received), (0, 0), "{there:?} {back:?}");
    let out = bed.pair_stats("r1-viewer", "r1-pop-a").unwrap();
    let ret = bed.pair_stats("r1-pop-a", "r1-viewer").unwrap();
    assert_eq!((out.packets, out.dropped), (0, u64::from(pings)), "{out:?}");
    assert_eq!((ret.packets, ret.dropped), (0, u64::from(pings)), "{ret:?}");
    // Only that pair: the pop still reaches the origin.
    let origin = bed.probe("r1-pop-a", "origin", 10).unwrap();
    assert_eq!(origin.received, 10, "{origin:?}");

    bed.heal("r1-viewer", "r1-pop-a").unwrap();
    let healed = bed.probe("r1-viewer", "r1-pop-a", pings).unwrap();
    assert_eq!(healed.received, u64::from(pings), "{healed:?}");
    let p50 = healed.rtt_p50_ms.unwrap();
    assert!((2.0..=rtt_upper_bound(2.0)).contains(&p50), "healed at the link's own 2 ms: {healed:?}");
}

#[test]
fn a_killed_router_is_cleaned_up_by_the_next_bed_and_a_dropped_bed_leaves_nothing() {
    // A prefix of its own: a bed of another test coming up meanwhile cleans only its prefix,
    // so the stale namespaces stay until this test's next bed removes them.
    let spec = Spec::default().prefix("nbcrash").host("a", "r1", "pop").host("b", "r1", "viewer");
    let test = "a_killed_router_is_cleaned_up_by_the_next_bed_and_a_dropped_bed_leaves_nothing";
    let Some(crashed) = NetBed::require(test, &spec) else { return };
    let dead = crashed.pid();
    assert_eq!(netbed::namespaces_of(dead).len(), 2);

    // A SIGKILL gives the router no chance to tear down: its namespaces stay.
    assert!(Command::new("kill").args(["-KILL", &dead.to_string()]).status().unwrap().success());
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(netbed::namespaces_of(dead).len(), 2, "a killed router leaves its namespaces");

    let next = NetBed::up(&spec).unwrap();
    assert_eq!(netbed::namespaces_of(dead), Vec::<String>::new(), "the next bed removed the stale namespaces");
    assert_eq!(next.probe("b", "a", 5).unwrap().received, 5, "and works");

    let alive = next.pid();
    assert_eq!(netbed::namespaces_of(alive).len(), 2);
    drop(next);
    assert_eq!(netbed::namespaces_of(alive), Vec::<String>::new(), "a dropped bed leaves no namespace");
    // Dropping the bed of the killed router only reaps its process.
    drop(crashed);
    assert_eq!(netbed::namespaces_of(dead), Vec::<String>::new());
}
