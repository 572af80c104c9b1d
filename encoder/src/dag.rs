//! Pure graph logic over pipeline nodes: cycle and input checks, stages, upstream queries.

use crate::pipeline::Node;
use crate::task::TaskKind;

/// Checks the structure: no cycles, one inspect at the root, every kind has the inputs it
/// needs upstream, one package at the end. Problems go to `report` with the node to blame.
pub fn check(nodes: &[Node], report: &mut dyn FnMut(&Node, String)) {
    if let Some(cycle) = find_cycle(nodes) {
        let names: Vec<&str> = cycle.iter().map(|&i| nodes[i].id.as_str()).collect();
        let first = &nodes[cycle[0]];
        report(first, format!("tasks form a cycle: {} -> {}", names.join(" -> "), names[0]));
        return;
    }
    let inspects: Vec<&Node> = nodes.iter().filter(|n| n.kind() == TaskKind::Inspect).collect();
    match inspects.as_slice() {
        [] => report(&nodes[0], "the pipeline needs one `inspect` task as its root".into()),
        [only] if !only.after.is_empty() => report(only, "the `inspect` task is the root and waits for nothing".into()),
        [_, extra, ..] => report(extra, "only one `inspect` task is allowed".into()),
        _ => {}
    }
    let packages: Vec<&Node> = nodes.iter().filter(|n| n.kind() == TaskKind::Package).collect();
    match packages.as_slice() {
        [] => report(nodes.last().unwrap_or(&nodes[0]), "the pipeline needs one `package` task".into()),
        [_, extra, ..] => report(extra, "only one `package` task is allowed".into()),
        _ => {}
    }
    for (i, node) in nodes.iter().enumerate() {
        check_inputs(nodes, i, node, report);
    }
}

fn check_inputs(nodes: &[Node], i: usize, node: &Node, report: &mut dyn FnMut(&Node, String)) {
    let kind = node.kind();
    if kind != TaskKind::Inspect && node.after.is_empty() {
        report(
            node,
            format!("missing input: `{}` ({}) waits for no task; it needs `inspect` upstream", node.id, kind.as_str()),
        );
        return;
    }
    let count = |k: TaskKind| upstream(nodes, i).into_iter().filter(|&u| nodes[u].kind() == k).count();
    let need = |k: TaskKind, report: &mut dyn FnMut(&Node, String)| {
        if count(k) == 0 {
            report(
                node,
                format!("missing input: `{}` ({}) needs a `{}` task upstream", node.id, kind.as_str(), k.as_str()),
            );
        }
    };
    match kind {
        TaskKind::Inspect => {}
        TaskKind::Split | TaskKind::Audio | TaskKind::Thumbnail | TaskKind::Watermark => {
            need(TaskKind::Inspect, report);
        }
        TaskKind::Encode => {
            need(TaskKind::Split, report);
            if count(TaskKind::Split) > 1 {
                report(node, format!("`{}` has more than one `split` upstream", node.id));
            }
            if count(TaskKind::Watermark) > 1 {
                report(node, format!("`{}` has more than one `watermark` upstream", node.id));
            }
        }
        TaskKind::Package => need(TaskKind::Encode, report),
    }
    let downstream: Vec<usize> = (0..nodes.len()).filter(|&d| nodes[d].after.contains(&i)).collect();
    if kind == TaskKind::Package && !downstream.is_empty() {
        report(
            &nodes[downstream[0]],
            format!("`{}` waits for `package`, which is the last task", nodes[downstream[0]].id),
        );
    }
    if kind == TaskKind::Watermark && !downstream.iter().any(|&d| nodes[d].kind() == TaskKind::Encode) {
        report(node, format!("`{}` (watermark) is not an input of any `encode` task", node.id));
    }
    if matches!(kind, TaskKind::Encode | TaskKind::Audio | TaskKind::Thumbnail)
        && !reaches_kind(nodes, i, TaskKind::Package)
    {
        report(node, format!("the output of `{}` never reaches the `package` task", node.id));
    }
}

/// All nodes `i` depends on, directly or not.
pub fn upstream(nodes: &[Node], i: usize) -> Vec<usize> {
    let mut seen = vec![false; nodes.len()];
    let mut stack = nodes[i].after.clone();
    let mut out = Vec::new();
    while let Some(n) = stack.pop() {
        if !std::mem::replace(&mut seen[n], true) {
            out.push(n);
            stack.extend(nodes[n].after.iter().copied());
        }
    }
    out
}

fn reaches_kind(nodes: &[Node], from: usize, kind: TaskKind) -> bool {
    (0..nodes.len()).any(|d| nodes[d].kind() == kind && upstream(nodes, d).contains(&from))
}

/// Kahn layering: stage 0 holds the roots, stage k the nodes whose inputs are all in
/// earlier stages. Assumes no cycle (checked at parse time).
pub fn stages(nodes: &[Node]) -> Vec<Vec<usize>> {
    let mut level = vec![0usize; nodes.len()];
    for i in topological_order(nodes).unwrap_or_default() {
        level[i] = nodes[i].after.iter().map(|&d| level[d] + 1).max().unwrap_or(0);
    }
    let depth = level.iter().copied().max().map_or(0, |m| m + 1);
    let mut out = vec![Vec::new(); depth];
    for (i, &l) in level.iter().enumerate() {
        out[l].push(i);
    }
    out
}

/// Nodes ordered so each comes after its inputs, or `None` when there is a cycle.
pub fn topological_order(nodes: &[Node]) -> Option<Vec<usize>> {
    let mut indegree: Vec<usize> = nodes.iter().map(|n| n.after.len()).collect();
    let mut ready: Vec<usize> = (0..nodes.len()).filter(|&i| indegree[i] == 0).rev().collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(n) = ready.pop() {
        order.push(n);
        for (d, node) in nodes.iter().enumerate() {
            for _ in node.after.iter().filter(|&&a| a == n) {
                indegree[d] -= 1;
                if indegree[d] == 0 {
                    ready.push(d);
                }
            }
        }
    }
    (order.len() == nodes.len()).then_some(order)
}

/// One cycle, as node indices in dependency order, if any exists.
fn find_cycle(nodes: &[Node]) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    fn visit(nodes: &[Node], n: usize, marks: &mut [Mark], path: &mut Vec<usize>) -> Option<Vec<usize>> {
        marks[n] = Mark::Active;
        path.push(n);
        for &dep in &nodes[n].after {
            match marks[dep] {
                Mark::Active => {
                    let start = path.iter().position(|&p| p == dep).unwrap_or(0);
                    let mut cycle = path[start..].to_vec();
                    cycle.reverse();
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(c) = visit(nodes, dep, marks, path) {
                        return Some(c);
                    }
                }
                Mark::Done => {}
            }
        }
        path.pop();
        marks[n] = Mark::Done;
        None
    }
    let mut marks = vec![Mark::New; nodes.len()];
    (0..nodes.len()).find_map(
        |n| {
            if marks[n] == Mark::New { visit(nodes, n, &mut marks, &mut Vec::new()) } else { None }
        },
    )
}
