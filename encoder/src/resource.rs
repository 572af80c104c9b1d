//! The resource manager: a priority task queue, a worker queue (free workers by the kinds
//! they accept) and a running queue (task to worker), and the rule that picks the next
//! task/worker pair. Pure bookkeeping; the job runner does the IO.

use std::cmp::Ordering;
use std::collections::{BTreeSet, BinaryHeap, HashMap};

use crate::task::{TaskKind, TaskSpec};

/// A worker slot as the executor describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerSlot {
    /// Executor-defined id, unique per executor.
    pub id: usize,
    /// Human name for progress output.
    pub name: String,
    /// Kinds it accepts.
    pub kinds: Vec<TaskKind>,
}

#[derive(Debug)]
struct Queued {
    priority: i64,
    seq: u64,
    task: TaskSpec,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        self.priority == other.priority && self.seq == other.seq
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    /// Highest priority first; among equals, first submitted first.
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority.cmp(&other.priority).then_with(|| other.seq.cmp(&self.seq))
    }
}

/// Queues and the pairing rule.
#[derive(Debug)]
pub struct ResourceManager {
    workers: Vec<WorkerSlot>,
    tasks: BinaryHeap<Queued>,
    free: HashMap<TaskKind, BTreeSet<usize>>,
    running: HashMap<String, usize>,
    seq: u64,
}

impl ResourceManager {
    /// All workers start free.
    pub fn new(workers: Vec<WorkerSlot>) -> Self {
        let mut free: HashMap<TaskKind, BTreeSet<usize>> = HashMap::new();
        for (slot, w) in workers.iter().enumerate() {
            for &k in &w.kinds {
                free.entry(k).or_default().insert(slot);
            }
        }
        Self { workers, tasks: BinaryHeap::new(), free, running: HashMap::new(), seq: 0 }
    }

    /// Adds a task to the task queue.
    pub fn submit(&mut self, task: TaskSpec) {
        self.seq += 1;
        self.tasks.push(Queued { priority: task.priority, seq: self.seq, task });
    }

    /// Whether some worker accepts this kind at all.
    pub fn can_run(&self, kind: TaskKind) -> bool {
        self.workers.iter().any(|w| w.kinds.contains(&kind))
    }

    /// Picks the highest-priority task that has a free worker, and the most specialised
    /// free worker for it (so generalists stay free for work only they can do).
    pub fn next_assignment(&mut self) -> Option<(TaskSpec, WorkerSlot)> {
        let mut skipped = Vec::new();
        let mut found = None;
        while let Some(q) = self.tasks.pop() {
            match self.pick_worker(q.task.kind()) {
                Some(slot) => {
                    found = Some((q.task, slot));
                    break;
                }
                None => skipped.push(q),
            }
        }
        self.tasks.extend(skipped);
        let (task, slot) = found?;
        self.set_busy(slot);
        self.running.insert(task.id.clone(), slot);
        Some((task, self.workers[slot].clone()))
    }

    fn pick_worker(&self, kind: TaskKind) -> Option<usize> {
        self.free.get(&kind)?.iter().copied().min_by_key(|&slot| (self.workers[slot].kinds.len(), slot))
    }

    fn set_busy(&mut self, slot: usize) {
        for k in &self.workers[slot].kinds {
            if let Some(set) = self.free.get_mut(k) {
                set.remove(&slot);
            }
        }
    }

    /// Marks a running task finished and frees its worker.
    pub fn finish(&mut self, task_id: &str) {
        if let Some(slot) = self.running.remove(task_id) {
            for &k in &self.workers[slot].kinds {
                self.free.entry(k).or_default().insert(slot);
            }
        }
    }

    /// Tasks waiting.
    pub fn queued(&self) -> usize {
        self.tasks.len()
    }

    /// Tasks running.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Drops every queued task (the job is stopping).
    pub fn clear_queue(&mut self) {
        self.tasks.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::Limits;
    use crate::task::Work;

    fn task(id: &str, priority: i64, kind: TaskKind) -> TaskSpec {
        let work = match kind {
            TaskKind::Inspect => Work::Inspect {
                source: String::new(),
                limits: Limits::default(),
            },
            _ => Work::Watermark {
                spec: crate::pipeline::Pipeline::builtin()
                    .nodes
                    .iter()
                    .find_map(|n| match &n.spec {
                        crate::pipeline::NodeSpec::Watermark(w) => Some(w.clone()),
                        _ => None,
                    })
                    .unwrap(),
                video: serde_json::from_value(serde_json::json!({
                    "index":0,"codec":"h264","width":2,"height":2,"sample_aspect":[1,1],"rotation":0,
                    "frame_rate":[1,1],"variable_frame_rate":false,"pixel_format":"yuv420p","bit_depth":8,"time_base":[1,1],"start_pts":0
                }))
                .unwrap(),
            },
        };
        TaskSpec { job: "j".into(), id: id.into(), node: "n".into(), attempt: 1, priority, store: String::new(), work }
    }

    fn slot(id: usize, kinds: &[TaskKind]) -> WorkerSlot {
        WorkerSlot { id, name: format!("w{id}"), kinds: kinds.to_vec() }
    }

    #[test]
    fn highest_priority_first_then_fifo() {
        let mut rm = ResourceManager::new(vec![slot(0, &[TaskKind::Inspect])]);
        rm.submit(task("low", 1, TaskKind::Inspect));
        rm.submit(task("high-a", 5, TaskKind::Inspect));
        rm.submit(task("high-b", 5, TaskKind::Inspect));
        let order: Vec<String> = (0..3)
            .map(|_| {
                let (t, _) = rm.next_assignment().unwrap();
                rm.finish(&t.id);
                t.id
            })
            .collect();
        assert_eq!(order, ["high-a", "high-b", "low"]);
    }

    #[test]
    fn busy_worker_is_not_reused_and_other_kinds_pass_ahead() {
        let mut rm = ResourceManager::new(vec![slot(0, &[TaskKind::Inspect]), slot(1, &[TaskKind::Watermark])]);
        rm.submit(task("i1", 9, TaskKind::Inspect));
        rm.submit(task("i2", 8, TaskKind::Inspect));
        rm.submit(task("w1", 1, TaskKind::Watermark));
        assert_eq!(rm.next_assignment().unwrap().0.id, "i1");
        // i2 has no free worker, so the lower-priority task with a free worker goes.
        assert_eq!(rm.next_assignment().unwrap().0.id, "w1");
        assert!(rm.next_assignment().is_none());
        assert_eq!((rm.running(), rm.queued()), (2, 1));
        rm.finish("i1");
        assert_eq!(rm.next_assignment().unwrap().0.id, "i2");
    }

    #[test]
    fn specialised_worker_preferred() {
        let mut rm = ResourceManager::new(vec![
            slot(0, &[TaskKind::Inspect, TaskKind::Watermark]),
            slot(1, &[TaskKind::Inspect]),
        ]);
        rm.submit(task("i1", 1, TaskKind::Inspect));
        let (_, w) = rm.next_assignment().unwrap();
        assert_eq!(w.id, 1);
    }
}
