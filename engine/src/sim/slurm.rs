//! A simulated Slurm on a virtual clock, counted the way flow's Slurm executor counts.
//!
//! What it keeps from the real executor: a submission is split into arrays of at most
//! `array_size` elements with the executor's own [`flow_executors::batching`] functions (one `sbatch`
//! call per array), and an array is held back until it fits under `max_submitted` (elements
//! flow has in the queue, queued or running). What it simulates: each element waits in the
//! queue (a drawn wait), then for a free slot of the cluster (`slots`: how many of flow's
//! jobs may run at once), runs for a drawn time and ends succeeded, failed (exit 1) or
//! preempted part-way. The driver only learns about starts and ends when it polls
//! (`squeue`), as with the real executor.
//!
//! Time is virtual: integer microseconds in an event queue; nothing sleeps.

use super::rng::{Dist, SplitMix64};
use flow_dsl::error_class::ErrorClass;
use flow_executors::batching::{array_size, fits_window, split_into_arrays};
use flow_executors::AttemptOutcome;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// Virtual time in microseconds.
pub type Micros = u64;

pub fn micros(seconds: f64) -> Micros {
    (seconds.max(0.0) * 1e6).round() as Micros
}

pub fn seconds(t: Micros) -> f64 {
    t as f64 / 1e6
}

/// The cluster's behaviour.
#[derive(Debug, Clone)]
pub struct ClusterModel {
    /// `max_array_size`.
    pub array_size: u32,
    /// `max_submitted`: elements flow may have in the queue.
    pub max_submitted: Option<u32>,
    /// How many of flow's elements may run at once.
    pub slots: usize,
    pub queue_wait: Dist,
    pub run_time: Dist,
    /// Probability that an attempt exits 1.
    pub fail: f64,
    /// Probability that an attempt is preempted part-way.
    pub preempt: f64,
    /// Probability that an end is never reported (a fault: the driver cannot finish).
    pub lose_reports: f64,
}

/// One array element: the attempt of one task.
#[derive(Debug, Clone, PartialEq)]
pub struct Element {
    pub task_id: String,
    pub attempt: u32,
}

/// What the driver learns at a poll.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    Started {
        task_id: String,
        attempt: u32,
        job_id: String,
        at: f64,
    },
    Finished {
        task_id: String,
        attempt: u32,
        outcome: AttemptOutcome,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum End {
    Succeeded,
    Failed,
    Preempted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// The element's queue wait is over: it may start when a slot is free.
    Eligible { array: usize, element: u32 },
    Ended {
        array: usize,
        element: u32,
        end: End,
        started: Micros,
    },
}

struct LiveArray {
    job_id: u64,
    elements: Vec<Element>,
    remaining: u32,
}

/// Counters of what the simulated cluster was asked and did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlurmCounters {
    pub sbatch_calls: u64,
    pub squeue_calls: u64,
    pub elements_submitted: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub preempted: u64,
    /// Most elements in the queue at once.
    pub peak_in_queue: u64,
    /// Most arrays held back by the window at once.
    pub peak_held_arrays: u64,
    /// Ends never reported (`lose_reports`).
    pub lost_reports: u64,
}

pub struct SimSlurm {
    model: ClusterModel,
    rng: SplitMix64,
    now: Micros,
    seq: u64,
    events: BinaryHeap<Reverse<(Micros, u64, Event)>>,
    /// Arrays not submitted yet (the window holds them), oldest first.
    held: VecDeque<Vec<Element>>,
    /// Submitted arrays, by position; `None` once every element ended.
    arrays: Vec<Option<LiveArray>>,
    /// Elements whose queue wait is over, waiting for a slot.
    eligible: VecDeque<(usize, u32)>,
    running: usize,
    in_queue: u64,
    next_job: u64,
    reports: Vec<Report>,
    pub counters: SlurmCounters,
}

impl SimSlurm {
    pub fn new(model: ClusterModel, seed: u64, start: Micros) -> SimSlurm {
        SimSlurm {
            model,
            rng: SplitMix64::new(seed),
            now: start,
            seq: 0,
            events: BinaryHeap::new(),
            held: VecDeque::new(),
            arrays: Vec::new(),
            eligible: VecDeque::new(),
            running: 0,
            in_queue: 0,
            next_job: 1000,
            reports: Vec::new(),
            counters: SlurmCounters::default(),
        }
    }

    /// Tasks per array, as the real executor computes it.
    pub fn elements_per_array(&self) -> u32 {
        array_size(None, self.model.array_size, self.model.max_submitted)
    }

    /// Elements queued or running.
    pub fn in_queue(&self) -> u64 {
        self.in_queue
    }

    /// Arrays held back by the window.
    pub fn held_arrays(&self) -> usize {
        self.held.len()
    }

    /// Nothing queued, held, running or unreported.
    pub fn idle(&self) -> bool {
        self.in_queue == 0 && self.held.is_empty() && self.reports.is_empty()
    }

    /// Accept a batch: split it into arrays and submit those the window admits.
    pub fn submit(&mut self, elements: Vec<Element>) {
        let size = self.elements_per_array();
        let mut elements = elements;
        let ranges = split_into_arrays(elements.len(), size);
        // Split from the back so each array takes its elements without copying.
        let mut arrays: Vec<Vec<Element>> = Vec::with_capacity(ranges.len());
        for range in ranges.iter().rev() {
            arrays.push(elements.split_off(range.start));
        }
        arrays.reverse();
        self.held.extend(arrays);
        self.release();
    }

    /// Submit held arrays, oldest first, while they fit under `max_submitted` (the real
    /// executor does this at every submit and every poll).
    fn release(&mut self) {
        let limit = self.model.max_submitted.map(u64::from);
        self.counters.peak_held_arrays = self.counters.peak_held_arrays.max(self.held.len() as u64);
        while let Some(front) = self.held.front() {
            if !fits_window(self.in_queue, front.len() as u64, limit) {
                break;
            }
            let elements = self.held.pop_front().unwrap_or_default();
            self.sbatch(elements);
        }
    }

    fn sbatch(&mut self, elements: Vec<Element>) {
        self.counters.sbatch_calls += 1;
        let n = elements.len() as u32;
        self.counters.elements_submitted += u64::from(n);
        self.in_queue += u64::from(n);
        self.counters.peak_in_queue = self.counters.peak_in_queue.max(self.in_queue);
        let array = self.arrays.len();
        for element in 0..n {
            let wait = micros(self.model.queue_wait.sample(&mut self.rng));
            self.push(self.now + wait, Event::Eligible { array, element });
        }
        self.arrays.push(Some(LiveArray {
            job_id: self.next_job,
            elements,
            remaining: n,
        }));
        self.next_job += 1;
    }

    fn push(&mut self, at: Micros, event: Event) {
        self.seq += 1;
        self.events.push(Reverse((at, self.seq, event)));
    }

    /// When the next thing happens in the cluster, if anything will.
    pub fn next_event(&self) -> Option<Micros> {
        self.events.peek().map(|Reverse((t, _, _))| *t)
    }

    /// Let the cluster run until `t`.
    pub fn advance_to(&mut self, t: Micros) {
        while let Some(&Reverse((at, _, event))) = self.events.peek() {
            if at > t {
                break;
            }
            self.events.pop();
            self.now = at;
            match event {
                Event::Eligible { array, element } => {
                    self.eligible.push_back((array, element));
                }
                Event::Ended {
                    array,
                    element,
                    end,
                    started,
                } => self.end(array, element, end, started),
            }
            self.start_eligible();
        }
        self.now = self.now.max(t);
    }

    fn start_eligible(&mut self) {
        while self.running < self.model.slots.max(1) {
            let Some((array, element)) = self.eligible.pop_front() else {
                return;
            };
            self.running += 1;
            let run = micros(self.model.run_time.sample(&mut self.rng));
            let r = self.rng.unit();
            let (end, after) = if r < self.model.preempt {
                (End::Preempted, (run as f64 * self.rng.unit()) as Micros)
            } else if r < self.model.preempt + self.model.fail {
                (End::Failed, run)
            } else {
                (End::Succeeded, run)
            };
            let started = self.now;
            self.push(
                started + after,
                Event::Ended {
                    array,
                    element,
                    end,
                    started,
                },
            );
            if let Some(a) = &self.arrays[array] {
                let e = &a.elements[element as usize];
                self.reports.push(Report::Started {
                    task_id: e.task_id.clone(),
                    attempt: e.attempt,
                    job_id: format!("{}_{element}", a.job_id),
                    at: seconds(started),
                });
            }
        }
    }

    fn end(&mut self, array: usize, element: u32, end: End, started: Micros) {
        self.running -= 1;
        self.in_queue -= 1;
        let Some(a) = self.arrays[array].as_mut() else {
            return;
        };
        a.remaining -= 1;
        let e = std::mem::replace(
            &mut a.elements[element as usize],
            Element {
                task_id: String::new(),
                attempt: 0,
            },
        );
        let (exit_code, class, message) = match end {
            End::Succeeded => {
                self.counters.succeeded += 1;
                (Some(0), None, None)
            }
            End::Failed => {
                self.counters.failed += 1;
                (
                    Some(1),
                    Some(ErrorClass::NonzeroExit),
                    Some("exited with status 1".to_string()),
                )
            }
            End::Preempted => {
                self.counters.preempted += 1;
                (
                    None,
                    Some(ErrorClass::Preempted),
                    Some("Slurm state PREEMPTED".to_string()),
                )
            }
        };
        // Drawn only when asked for, so runs without the fault keep their sequence.
        if self.model.lose_reports > 0.0 && self.rng.unit() < self.model.lose_reports {
            self.counters.lost_reports += 1;
        } else {
            self.reports.push(Report::Finished {
                task_id: e.task_id,
                attempt: e.attempt,
                outcome: AttemptOutcome {
                    exit_code,
                    signal: None,
                    error_class: class,
                    message,
                    started_at: Some(seconds(started)),
                    ended_at: Some(seconds(self.now)),
                    usage: None,
                },
            });
        }
        if a.remaining == 0 {
            self.arrays[array] = None;
        }
    }

    /// One `squeue` (and the executor's `submit_waiting` after it): what started and
    /// ended since the last poll, in the order it happened.
    pub fn poll(&mut self) -> Vec<Report> {
        self.counters.squeue_calls += 1;
        self.release();
        std::mem::take(&mut self.reports)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(array_size: u32, max_submitted: Option<u32>) -> ClusterModel {
        ClusterModel {
            array_size,
            max_submitted,
            slots: 1_000_000,
            queue_wait: Dist::Fixed(10.0),
            run_time: Dist::Fixed(100.0),
            fail: 0.0,
            preempt: 0.0,
            lose_reports: 0.0,
        }
    }

    fn elements(n: usize) -> Vec<Element> {
        (0..n)
            .map(|i| Element {
                task_id: format!("t{i}"),
                attempt: 1,
            })
            .collect()
    }

    #[test]
    fn a_submission_becomes_arrays_of_at_most_array_size() {
        let mut s = SimSlurm::new(model(100, None), 1, 0);
        s.submit(elements(250));
        assert_eq!(s.counters.sbatch_calls, 3);
        assert_eq!(s.in_queue(), 250);
        let sizes: Vec<usize> = s
            .arrays
            .iter()
            .map(|a| a.as_ref().map_or(0, |a| a.elements.len()))
            .collect();
        assert_eq!(sizes, vec![100, 100, 50]);
        // Elements keep their order across arrays.
        let ids: Vec<&str> = s
            .arrays
            .iter()
            .flat_map(|a| a.as_ref().unwrap().elements.iter())
            .map(|e| e.task_id.as_str())
            .collect();
        assert_eq!(ids, (0..250).map(|i| format!("t{i}")).collect::<Vec<_>>());
    }

    #[test]
    fn max_submitted_caps_the_array_size_and_holds_arrays_back() {
        // An array never exceeds the window (the executor's `array_size`).
        let s = SimSlurm::new(model(1000, Some(300)), 1, 0);
        assert_eq!(s.elements_per_array(), 300);

        let mut s = SimSlurm::new(model(100, Some(250)), 1, 0);
        s.submit(elements(500));
        // 100 + 100 fit, the third would make 300 > 250.
        assert_eq!(s.counters.sbatch_calls, 2);
        assert_eq!(s.held_arrays(), 3);
        assert_eq!(s.in_queue(), 200);
        // Nothing ends before 110 s: a poll submits nothing more.
        s.advance_to(micros(50.0));
        s.poll();
        assert_eq!(s.counters.sbatch_calls, 2);
        // Both arrays end at 110 s; the next poll releases the rest (two fit, then one).
        s.advance_to(micros(111.0));
        let reports = s.poll();
        let finished = reports
            .iter()
            .filter(|r| matches!(r, Report::Finished { .. }))
            .count();
        assert_eq!(finished, 200);
        assert_eq!(s.counters.sbatch_calls, 4);
        assert_eq!(s.held_arrays(), 1);
        s.advance_to(micros(300.0));
        s.poll();
        assert_eq!(s.counters.sbatch_calls, 5);
        assert_eq!(s.counters.peak_in_queue, 200);
        s.advance_to(micros(1000.0));
        s.poll();
        assert!(s.idle());
        assert_eq!(s.counters.succeeded, 500);
    }

    #[test]
    fn an_empty_queue_admits_an_array_larger_than_the_window() {
        let mut s = SimSlurm::new(model(100, Some(50)), 1, 0);
        // The executor never builds such an array, but the window must not stall on one.
        s.held.push_back(elements(80));
        s.release();
        assert_eq!(s.counters.sbatch_calls, 1);
    }

    #[test]
    fn slots_limit_what_runs_and_reports_come_at_polls_in_order() {
        let mut m = model(10, None);
        m.slots = 2;
        let mut s = SimSlurm::new(m, 1, 0);
        s.submit(elements(4));
        s.advance_to(micros(10.0));
        let r = s.poll();
        // Two started at 10 s, two wait for a slot.
        assert_eq!(r.len(), 2);
        assert!(r
            .iter()
            .all(|r| matches!(r, Report::Started { at, .. } if *at == 10.0)));
        s.advance_to(micros(110.0));
        let r = s.poll();
        // Two ended at 110 s and the other two started then.
        let kinds: Vec<(&str, &str)> = r
            .iter()
            .map(|r| match r {
                Report::Started { task_id, .. } => ("started", task_id.as_str()),
                Report::Finished { task_id, .. } => ("finished", task_id.as_str()),
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("finished", "t0"),
                ("started", "t2"),
                ("finished", "t1"),
                ("started", "t3")
            ]
        );
        assert_eq!(s.counters.squeue_calls, 2);
    }

    #[test]
    fn failures_and_preemptions_follow_their_probabilities_and_the_seed() {
        let run = |seed: u64| {
            let mut m = model(1000, None);
            m.fail = 0.1;
            m.preempt = 0.05;
            m.run_time = Dist::Exponential { mean: 100.0 };
            let mut s = SimSlurm::new(m, seed, 0);
            s.submit(elements(20_000));
            s.advance_to(micros(1e7));
            let reports = s.poll();
            assert!(reports.iter().all(|r| match r {
                Report::Finished { outcome, .. } => outcome.ended_at >= outcome.started_at,
                Report::Started { .. } => true,
            }));
            s.counters
        };
        let a = run(3);
        assert_eq!(a, run(3));
        assert_ne!(a, run(4));
        assert_eq!(a.succeeded + a.failed + a.preempted, 20_000);
        assert!((1700..2300).contains(&a.failed), "{a:?}");
        assert!((800..1200).contains(&a.preempted), "{a:?}");
    }
}
