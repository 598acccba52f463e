//! The core's rules as unit tests over data: no processes, no files, no clock.

use super::*;
use flow_dsl::model::{OnRetry, RetryBackoff};
use std::time::Duration;

fn execution(max_retries: u32) -> Execution {
    Execution {
        max_retries,
        retry_backoff: RetryBackoff {
            initial: Duration::from_secs(10),
            multiplier: 2.0,
            max: Duration::from_secs(60),
            jitter: false,
        },
        timeout: None,
        batch_size: None,
        max_running: None,
        max_infrastructure_retries: 2,
        on_retry: OnRetry::default(),
        max_log_bytes: None,
    }
}

fn step(name: &str, upstream: Vec<usize>) -> CoreStep {
    CoreStep {
        name: name.into(),
        upstream,
        condition: Condition::AllSucceeded,
        execution: execution(1),
        per_batch: usize::MAX,
        batch_size: 1,
        on_driver: false,
    }
}

fn ok() -> EndedAttempt {
    EndedAttempt {
        product: Some("p1".into()),
        ..EndedAttempt::plain(AttemptOutcome {
            exit_code: Some(0),
            signal: None,
            error_class: None,
            message: None,
            started_at: Some(0.0),
            ended_at: Some(1.0),
            usage: None,
        })
    }
}

fn failed(class: ErrorClass) -> EndedAttempt {
    EndedAttempt::plain(AttemptOutcome::ended_without_exit(class, "x", 1.0))
}

/// Two steps: `a` (2 tasks) -> `b` (1 task).
fn two_steps(tasks: Vec<CoreTask>) -> CampaignCore {
    CampaignCore::new(
        vec![step("a", vec![]), step("b", vec![0])],
        vec![0, 1],
        tasks,
        "test",
        0.0,
    )
}

fn fresh() -> Vec<CoreTask> {
    vec![
        CoreTask::new("a0", 0, 0),
        CoreTask::new("a1", 0, 1),
        CoreTask::new("b0", 1, 0),
    ]
}

/// Run every submission to success; returns how many attempts ran.
fn run_all_ok(core: &mut CampaignCore) -> usize {
    let mut ran = 0;
    for turn in 0..20 {
        let subs = core.tick(turn as f64, 100);
        if subs.is_empty() && core.finished() {
            break;
        }
        for s in subs {
            for (slot, attempt) in s.tasks {
                core.started(slot, attempt, "j".into(), None, turn as f64);
                core.ended(slot, attempt, ok(), turn as f64);
                ran += 1;
            }
        }
    }
    ran
}

#[test]
fn downstream_waits_for_upstream_and_counts_are_exact() {
    let mut core = two_steps(fresh());
    let subs = core.tick(0.0, 100);
    assert_eq!(subs.len(), 1, "only step a is open");
    assert_eq!(subs[0].tasks.len(), 2);
    assert_eq!(core.counts(0).submitted, 2);
    assert_eq!(core.counts(0).running, 0);
    core.started(0, 1, "j".into(), Some(1), 0.0);
    assert_eq!((core.counts(0).submitted, core.counts(0).running), (1, 1));
    core.ended(0, 1, ok(), 1.0);
    assert!(core.tick(1.0, 100).is_empty(), "b still waits for a1");
    core.ended(1, 1, ok(), 2.0);
    let subs = core.tick(2.0, 100);
    assert_eq!(subs[0].step, 1);
    assert_eq!(core.counts(0).succeeded, 2);
    assert_eq!(core.counts(0).running + core.counts(0).submitted, 0);
}

#[test]
fn a_launch_that_fails_ends_the_task_and_the_run() {
    let mut core = two_steps(fresh());
    let subs = core.tick(0.0, 100);
    for (slot, attempt) in &subs[0].tasks {
        core.launch_failed(*slot, *attempt, "unknown template variable".into(), 0.0);
    }
    assert_eq!(core.counts(0).failed, 2);
    assert_eq!(core.in_flight(), 0);
    // b is blocked, with the reason naming the failed step and task.
    assert!(core.tick(1.0, 100).is_empty());
    assert_eq!(core.counts(1).blocked, 1);
    assert!(core.finished());
    let changes = core.take_changes();
    let reason = changes.iter().find_map(|c| match c {
        Change::SetState {
            state: TaskState::Blocked,
            message,
            ..
        } => message.clone(),
        _ => None,
    });
    assert!(reason.unwrap().contains("upstream step a did not succeed"));
}

#[test]
fn retries_wait_for_their_backoff_and_cancel_ends_everything() {
    let mut core = two_steps(fresh());
    let subs = core.tick(0.0, 100);
    let (slot, attempt) = subs[0].tasks[0];
    let d = core.ended(slot, attempt, failed(ErrorClass::NonzeroExit), 0.0);
    assert!(matches!(d, Some(Decision::Retry { .. })));
    assert_eq!(core.next_due(), Some(10.0));
    assert!(core.tick(5.0, 100).is_empty());
    assert!(!core.finished());
    let subs = core.tick(10.0, 100);
    assert_eq!(subs[0].tasks, vec![(slot, 2)]);
    // A stale report of attempt 1 is ignored.
    assert_eq!(core.ended(slot, 1, ok(), 11.0), None);
    core.cancel();
    // The attempts in flight report their end; nothing is retried while stopping.
    assert_eq!(
        core.ended(slot, 2, failed(ErrorClass::Signal), 12.0),
        Some(Decision::Cancelled)
    );
    core.ended(1, 1, failed(ErrorClass::Cancelled), 12.0);
    assert!(core.finished());
    assert_eq!(core.counts(0).cancelled + core.counts(1).cancelled, 3);
}

#[test]
fn a_changed_upstream_product_makes_consumers_stale() {
    let mut core = two_steps(fresh());
    assert_eq!(run_all_ok(&mut core), 3);
    let consumed = core.task(2).consumed.clone().unwrap();
    // A new run: a0 redone (its output was deleted) with a new product.
    let mut tasks: Vec<CoreTask> = core.tasks().to_vec();
    tasks[0].state = TaskState::Pending;
    let mut core = two_steps(tasks.clone());
    let subs = core.tick(0.0, 100);
    assert_eq!(subs[0].tasks, vec![(0, 2)]);
    let mut redone = ok();
    redone.product = Some("p2".into());
    core.ended(0, 2, redone, 1.0);
    let subs = core.tick(1.0, 100);
    assert_eq!(subs.len(), 1, "b0 is stale and runs again");
    assert_eq!(subs[0].step, 1);
    assert!(core.take_notices().contains(&Notice::Stale {
        step: "b".into(),
        tasks: 1
    }));
    assert_ne!(core.task(2).consumed.clone().unwrap(), consumed);
    // Nothing changed upstream: b0 stays done.
    let mut core = two_steps(core_after(&tasks));
    assert!(core.tick(0.0, 100).is_empty());
    assert!(core.finished());
}

fn core_after(tasks: &[CoreTask]) -> Vec<CoreTask> {
    let mut t = tasks.to_vec();
    t[0].state = TaskState::Succeeded;
    t
}

#[test]
fn a_gate_decision_belongs_to_its_task_and_a_rerun_replaces_it() {
    let mut core = two_steps(fresh());
    let subs = core.tick(0.0, 100);
    let mut stop = ok();
    stop.gate = GateEffect::Stop("FAIL: overhead 30%".into());
    core.ended(subs[0].tasks[0].0, 1, stop, 1.0);
    core.ended(subs[0].tasks[1].0, 1, ok(), 1.0);
    assert!(core.tick(2.0, 100).is_empty());
    assert_eq!(core.counts(1).blocked, 1);
    assert!(core
        .blocking_reason(1)
        .unwrap()
        .contains("gate of step a (task a0)"));
    // Relaxed thresholds: a0 is a new attempt (rerun), and it passes.
    let mut tasks = core.tasks().to_vec();
    tasks[0].state = TaskState::Pending;
    let mut core = two_steps(tasks);
    assert!(
        core.blocking_reason(1).is_none(),
        "the old FAIL went with its rerun"
    );
    let subs = core.tick(0.0, 100);
    let mut pass = ok();
    pass.gate = GateEffect::Continue;
    core.ended(subs[0].tasks[0].0, subs[0].tasks[0].1, pass, 1.0);
    let subs = core.tick(1.0, 100);
    assert_eq!(subs[0].step, 1, "dependents are unblocked");
}

#[test]
fn the_window_caps_what_is_in_flight() {
    let tasks: Vec<CoreTask> = (0..10)
        .map(|i| CoreTask::new(format!("t{i}"), 0, i))
        .collect();
    let mut core = CampaignCore::new(vec![step("a", vec![])], vec![0], tasks, "test", 0.0);
    let subs = core.tick(0.0, 4);
    assert_eq!(subs.iter().map(|s| s.tasks.len()).sum::<usize>(), 4);
    assert_eq!(core.in_flight(), 4);
    // Refilled only once half the window is free.
    core.ended(0, 1, ok(), 1.0);
    assert!(core.tick(1.0, 4).is_empty());
    core.ended(1, 1, ok(), 1.0);
    assert_eq!(core.tick(1.0, 4)[0].tasks.len(), 2);
}

#[test]
fn recovery_events_lost_and_adopted() {
    let mut tasks = fresh();
    tasks[0].state = TaskState::Running;
    tasks[0].attempts = 1;
    tasks[0].adopted = true;
    tasks[1].state = TaskState::Running;
    tasks[1].attempts = 1;
    tasks[1].adopted = true;
    let mut core = two_steps(tasks);
    assert_eq!(core.in_flight(), 2);
    core.lost(1, 1, "re-queued: its driver stopped");
    core.ended(0, 1, ok(), 1.0);
    let subs = core.tick(1.0, 100);
    // a1 runs again as attempt 2 without a retry counted.
    assert_eq!(subs[0].tasks, vec![(1, 2)]);
    assert_eq!(core.task(1).counters, RetryCounters::default());
}

#[test]
fn an_open_ended_step_grows_holds_its_dependents_and_keeps_the_run_alive() {
    // `a` (adaptive, no tasks yet) -> `b`; tasks given in any order (b's first).
    let mut core = two_steps(vec![CoreTask::new("b0", 1, 0)]);
    core.set_open_ended(0, true);
    assert!(core.growing(0));
    assert!(!core.upstream_open(1), "an open-ended step is not complete");
    assert!(!core.finished(), "the loop may still ask");
    assert!(core.tick(0.0, 10).is_empty());
    // The loop asks: two evaluations, launched at once.
    let e0 = core.add_task(CoreTask::new("a-e0", 0, 0));
    let e1 = core.add_task(CoreTask::new("a-e1", 0, 1));
    assert_eq!(core.step_slots(0), [e0, e1]);
    assert_eq!(core.counts(0).total, 2);
    let subs = core.tick(1.0, 10);
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0].tasks, vec![(e0, 1), (e1, 1)]);
    core.ended(e0, 1, ok(), 2.0);
    core.ended(e1, 1, ok(), 2.0);
    // Both succeeded, but the loop is not done: b waits.
    assert!(core.tick(3.0, 10).is_empty());
    assert!(!core.finished());
    core.set_open_ended(0, false);
    let subs = core.tick(4.0, 10);
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0].step, 1);
    core.ended(subs[0].tasks[0].0, 1, ok(), 5.0);
    assert!(core.finished());
    assert_eq!(core.counts(1).succeeded, 1);
}

#[test]
fn an_open_ended_step_that_cannot_run_blocks_its_dependents_and_the_run_ends() {
    // `a` -> `b` (open-ended) -> `c`; a fails for good.
    let mut core = CampaignCore::new(
        vec![
            step("a", vec![]),
            step("b", vec![0]),
            CoreStep {
                execution: execution(0),
                ..step("c", vec![1])
            },
        ],
        vec![0, 1, 2],
        vec![CoreTask::new("a0", 0, 0), CoreTask::new("c0", 2, 0)],
        "test",
        0.0,
    );
    core.set_open_ended(1, true);
    let subs = core.tick(0.0, 10);
    core.ended(subs[0].tasks[0].0, 1, failed(ErrorClass::NonzeroExit), 1.0);
    let subs = core.tick(100.0, 10);
    core.ended(
        subs[0].tasks[0].0,
        2,
        failed(ErrorClass::NonzeroExit),
        101.0,
    );
    assert_eq!(core.counts(0).failed, 1);
    assert!(!core.growing(1));
    core.tick(200.0, 10);
    assert_eq!(core.counts(2).blocked, 1);
    assert!(core
        .blocking_reason(2)
        .unwrap()
        .contains("upstream step b cannot run"));
    assert!(core.finished());
}

#[test]
fn slots_are_found_by_id_including_added_tasks_and_hash_collisions() {
    let mut core = two_steps(fresh());
    assert_eq!(core.slot_of("a1"), Some(1));
    assert_eq!(core.slot_of("b0"), Some(2));
    assert_eq!(core.slot_of("nope"), None);
    let n = core.add_task(CoreTask::new("late", 0, 9));
    assert_eq!(core.slot_of("late"), Some(n));
    // A hash another id already took: the id is kept whole and still found, and the
    // first owner of the hash is not disturbed.
    let tasks = vec![CoreTask::new("x", 0, 0), CoreTask::new("y", 0, 1)];
    let mut index = SlotIndex::default();
    index.by_hash.insert(id_hash("y"), 0); // pretend "y" hashes like "x"'s slot
    index.insert("y", 1, &tasks);
    assert_eq!(index.get("y", &tasks), Some(1));
    index.insert("x", 0, &tasks);
    assert_eq!(index.get("x", &tasks), Some(0));
    assert_eq!(index.get("y", &tasks), Some(1));
    assert_eq!(index.get("z", &tasks), None);
}
