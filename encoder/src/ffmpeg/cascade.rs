//! The scaling tree of a ladder: each rung is scaled from the smallest picture already made
//! that is exactly twice its size (a clean 2:1 reduction loses almost nothing against scaling
//! from the source), otherwise from the next larger rung. That costs far less than scaling
//! every rung from the source and, unlike a plain chain, keeps small rungs sharp.

use super::graph::rotation_filters;
use crate::ladder::Rung;
use crate::task::Overlay;

/// For rungs sorted largest first, the picture each is scaled from (the smallest one about
/// twice its size, else the next larger): 0 is the (rotated,
/// watermarked) source, `k + 1` is the k-th rung of `sizes`.
pub(super) fn parents(source: (u32, u32), sizes: &[(u32, u32)]) -> Vec<usize> {
    let mut made = vec![source];
    let mut parents = Vec::with_capacity(sizes.len());
    for &(w, h) in sizes {
        let half = made.iter().rposition(|&(pw, ph)| about_twice(pw, w) && about_twice(ph, h));
        parents.push(half.unwrap_or(made.len() - 1));
        made.push((w, h));
    }
    parents
}

/// Whether `big` is 2x `small` up to the rounding of even sizes (854 vs 426).
fn about_twice(big: u32, small: u32) -> bool {
    big.abs_diff(2 * small) * 100 <= 2 * small
}

/// The filter graph from `[in]` (and `[wm]` with an overlay) to `[out{i}]` for each rung `i`.
/// `source` is the upright picture size, or `(0, 0)` when its pixels are not square.
pub(super) fn ladder_filter(rotation: u32, overlay: Option<&Overlay>, rungs: &[Rung], source: (u32, u32)) -> String {
    let mut order: Vec<usize> = (0..rungs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(u64::from(rungs[i].width) * u64::from(rungs[i].height)));
    let sizes: Vec<(u32, u32)> = order.iter().map(|&i| (rungs[i].width, rungs[i].height)).collect();
    let parents = parents(source, &sizes);
    // Consumers of each picture: its own output (rungs only) and its children.
    let mut consumers: Vec<Vec<String>> = vec![Vec::new(); sizes.len() + 1];
    for (k, &i) in order.iter().enumerate() {
        consumers[k + 1].push(format!("out{i}"));
    }
    for (k, &p) in parents.iter().enumerate() {
        consumers[p].push(format!("in{k}"));
    }
    let mut spec = format!("[in]{}format=yuv420p", rotation_filters(rotation));
    if let Some(o) = overlay {
        spec.push_str(&format!("[pre];[pre][wm]overlay=x={}:y={}:eof_action=repeat:format=yuv420", o.x, o.y));
    }
    fan_out(&mut spec, &consumers[0]);
    for (k, &(w, h)) in sizes.iter().enumerate() {
        let parent = if parents[k] == 0 { source } else { sizes[parents[k] - 1] };
        spec.push_str(&format!(";[in{k}]"));
        // A rung at its parent's size needs no scaler pass, not even a copy.
        if parent != (w, h) {
            spec.push_str(&format!("scale={w}:{h}:flags=bicubic,"));
        }
        spec.push_str("setsar=1");
        fan_out(&mut spec, &consumers[k + 1]);
    }
    spec
}

/// Ends the current chain by labelling it, splitting it first when it feeds several.
fn fan_out(spec: &mut String, labels: &[String]) {
    match labels {
        [one] => spec.push_str(&format!("[{one}]")),
        many => {
            spec.push_str(&format!(",split={}", many.len()));
            for l in many {
                spec.push_str(&format!("[{l}]"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ladder::{LadderSpec, VideoCodec, derive};
    use crate::media::VideoInfo;

    fn rungs(classes: &[u32]) -> Vec<Rung> {
        let video = VideoInfo::sample(3840, 2160);
        let mut spec = LadderSpec::for_codec(VideoCodec::H264);
        spec.classes = Some(classes.to_vec());
        derive(&video, &spec)
    }

    #[test]
    fn exact_halves_are_preferred_over_the_next_rung() {
        let sizes = [(3840, 2160), (2560, 1440), (1920, 1080), (1280, 720), (854, 480), (640, 360), (426, 240)];
        // 2160 is the source; 1440 from it; 1080 from 2160 (2:1); 720 from 1440 (2:1);
        // 480 from 720 (no half); 360 from 720 (2:1); 240 from 480 (854 is 2 x 426 but for rounding).
        assert_eq!(parents((3840, 2160), &sizes), vec![0, 1, 1, 2, 4, 4, 5]);
    }

    #[test]
    fn graph_for_the_benchmark_ladder() {
        let r = rungs(&[360, 1080, 720, 480]);
        let f = ladder_filter(0, None, &r, (1920, 1080));
        assert_eq!(
            f,
            "[in]format=yuv420p[in0];[in0]setsar=1,split=2[out3][in1];\
[in1]scale=1280:720:flags=bicubic,setsar=1,split=3[out2][in2][in3];\
[in2]scale=854:480:flags=bicubic,setsar=1[out1];[in3]scale=640:360:flags=bicubic,setsar=1[out0]"
        );
    }

    #[test]
    fn rotation_and_overlay_come_before_scaling() {
        let r = rungs(&[360]);
        let overlay = Overlay { key: "k".into(), x: 0, y: 10 };
        let f = ladder_filter(90, Some(&overlay), &r, (1080, 1920));
        assert!(f.starts_with("[in]transpose=clock,format=yuv420p[pre];[pre][wm]overlay=x=0:y=10"), "{f}");
        assert!(f.ends_with("[in0]scale=640:360:flags=bicubic,setsar=1[out0]"), "{f}");
    }
}
