use std::path::Path;

use super::*;
use crate::dag;

fn parse(text: &str) -> Result<Pipeline, PipelineError> {
    Pipeline::parse(text, "p.toml", Path::new("."))
}

fn issues(text: &str) -> Vec<(Option<usize>, String)> {
    parse(text).unwrap_err().issues.into_iter().map(|i| (i.line, i.message)).collect()
}

const HEAD: &str = "[[task]]\nid = \"inspect\"\nkind = \"inspect\"\n";

#[test]
fn builtin_pipeline_is_valid_and_staged() {
    let p = Pipeline::builtin();
    let stages: Vec<Vec<&str>> =
        dag::stages(&p.nodes).into_iter().map(|s| s.into_iter().map(|i| p.nodes[i].id.as_str()).collect()).collect();
    assert_eq!(
        stages,
        vec![vec!["inspect"], vec!["split", "watermark", "audio", "thumbnails"], vec!["video"], vec!["package"]]
    );
    assert_eq!(p.segment_seconds, 2.0);
}

#[test]
fn unknown_kind_reports_its_line() {
    let text = format!("{HEAD}\n[[task]]\nid = \"x\"\nkind = \"transmogrify\"\nafter = [\"inspect\"]\n");
    let got = issues(&text);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, Some(7));
    assert!(got[0].1.contains("unknown task kind `transmogrify`"), "{}", got[0].1);
}

#[test]
fn cycle_reports_a_member_line() {
    let text = "[[task]]\nid = \"inspect\"\nkind = \"inspect\"\n\n\
[[task]]\nid = \"a\"\nkind = \"split\"\nafter = [\"inspect\", \"b\"]\n\n\
[[task]]\nid = \"b\"\nkind = \"encode\"\nafter = [\"a\"]\n\n\
[[task]]\nid = \"p\"\nkind = \"package\"\nafter = [\"b\"]\n";
    let got = issues(text);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].1.contains("cycle"), "{}", got[0].1);
    assert!(matches!(got[0].0, Some(5) | Some(10)), "{got:?}");
}

#[test]
fn missing_inputs_are_named() {
    // `after` names a task that does not exist, and an encode with no split upstream.
    let text = format!(
        "{HEAD}\n[[task]]\nid = \"video\"\nkind = \"encode\"\nafter = [\"inspect\"]\n\n\
[[task]]\nid = \"package\"\nkind = \"package\"\nafter = [\"video\", \"nope\"]\n"
    );
    let got = issues(&text);
    assert!(got.iter().any(|(l, m)| *l == Some(13) && m.contains("`nope`, which is not defined")), "{got:?}");
    let text = format!(
        "{HEAD}\n[[task]]\nid = \"video\"\nkind = \"encode\"\nafter = [\"inspect\"]\n\n[[task]]\nid = \"package\"\nkind = \"package\"\nafter = [\"video\"]\n"
    );
    let got = issues(&text);
    assert!(got.iter().any(|(l, m)| *l == Some(5) && m.contains("needs a `split` task upstream")), "{got:?}");
}

#[test]
fn fields_of_another_kind_and_bad_values_are_all_reported() {
    let text = format!(
        "{HEAD}\n[[task]]\nid = \"split\"\nkind = \"split\"\nafter = [\"inspect\"]\ncrf = 20\nchunk_seconds = -1.0\n\n\
[[task]]\nid = \"v\"\nkind = \"encode\"\nafter = [\"split\"]\ncodec = \"mpeg1\"\n\n\
[[task]]\nid = \"p\"\nkind = \"package\"\nafter = [\"v\"]\n"
    );
    let got = issues(&text);
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(got.iter().any(|(l, m)| *l == Some(9) && m.contains("`crf` is not a setting of a `split` task")));
    assert!(got.iter().any(|(l, m)| *l == Some(10) && m.contains("chunk_seconds")));
    assert!(got.iter().any(|(l, m)| *l == Some(16) && m.contains("unknown video codec `mpeg1`")));
}

#[test]
fn unknown_field_and_syntax_errors_have_lines() {
    let got = issues(&format!("{HEAD}colour = \"red\"\n"));
    assert_eq!(got[0].0, Some(4), "{got:?}");
    assert!(got[0].1.contains("colour"), "{got:?}");
    let got = issues("[[task]\nid = 1\n");
    assert_eq!(got[0].0, Some(1));
}

#[test]
fn error_display_has_file_and_line() {
    let err = parse(&format!("{HEAD}\n[[task]]\nid = \"x\"\nkind = \"nope\"\nafter = [\"inspect\"]\n")).unwrap_err();
    assert!(err.to_string().starts_with("p.toml:7: unknown task kind `nope`"), "{err}");
}

#[test]
fn vp9_and_av1_rungs_selectable() {
    let text = format!(
        "{HEAD}\n[[task]]\nid = \"split\"\nkind = \"split\"\nafter = [\"inspect\"]\n\n\
[[task]]\nid = \"h264\"\nkind = \"encode\"\nafter = [\"split\"]\nrungs = [360, 720]\n\n\
[[task]]\nid = \"vp9\"\nkind = \"encode\"\nafter = [\"split\"]\ncodec = \"vp9\"\nrungs = [360]\n\n\
[[task]]\nid = \"av1\"\nkind = \"encode\"\nafter = [\"split\"]\ncodec = \"av1\"\nrungs = [360]\n\n\
[[task]]\nid = \"p\"\nkind = \"package\"\nafter = [\"h264\", \"vp9\", \"av1\"]\n"
    );
    let p = parse(&text).unwrap();
    let codecs: Vec<_> = p
        .nodes
        .iter()
        .filter_map(|n| match &n.spec {
            NodeSpec::Encode(l) => Some((l.codec, l.name_suffix.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        codecs,
        vec![(VideoCodec::H264, String::new()), (VideoCodec::Vp9, "-vp9".into()), (VideoCodec::Av1, "-av1".into())]
    );
}

#[test]
fn unused_watermark_is_an_error() {
    let text = format!(
        "{HEAD}\n[[task]]\nid = \"split\"\nkind = \"split\"\nafter = [\"inspect\"]\n\n\
[[task]]\nid = \"wm\"\nkind = \"watermark\"\nafter = [\"inspect\"]\ntext = \"hi\"\n\n\
[[task]]\nid = \"v\"\nkind = \"encode\"\nafter = [\"split\"]\n\n\
[[task]]\nid = \"p\"\nkind = \"package\"\nafter = [\"v\"]\n"
    );
    let got = issues(&text);
    assert!(got.iter().any(|(l, m)| *l == Some(10) && m.contains("not an input of any `encode`")), "{got:?}");
}
