//! Batching shared by the cluster backends, free of I/O: how many tasks go in one backend
//! job (a Slurm array, a Kubernetes Indexed Job), how the step-wide `max_running` cap is
//! shared among a step's jobs in flight (a Slurm array's `%` throttle, a Job's
//! `parallelism`), and whether another job fits under `max_submitted` (the sliding window).

use std::ops::Range;

/// Tasks per array: `batch_size` (or `max_array_size` when unset), capped by
/// `max_array_size` and by `max_submitted` (an array larger than the window could never be
/// submitted), and at least 1.
pub fn array_size(batch_size: Option<u32>, max_array_size: u32, max_submitted: Option<u32>) -> u32 {
    let mut size = batch_size.unwrap_or(max_array_size).min(max_array_size);
    if let Some(window) = max_submitted {
        size = size.min(window);
    }
    size.max(1)
}

/// Split `task_count` tasks into consecutive arrays of at most `array_size` tasks.
/// The number of ranges is `ceil(task_count / array_size)`: the number of sbatch calls.
pub fn split_into_arrays(task_count: usize, array_size: u32) -> Vec<Range<usize>> {
    let size = array_size.max(1) as usize;
    (0..task_count)
        .step_by(size)
        .map(|start| start..(start + size).min(task_count))
        .collect()
}

/// One array of a step as the window sees it: its `%` throttle and how many of its
/// elements have not finished (queued or running).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArrayLoad {
    pub throttle: u32,
    pub remaining: u32,
}

impl ArrayLoad {
    /// Elements this array may run at once from now on.
    fn effective(self) -> u32 {
        self.throttle.min(self.remaining)
    }
}

/// Whether an array of `len` elements may be submitted now: the elements flow already has
/// in the queue plus `len` stay within `max_submitted` (no limit when `None`). An empty
/// queue always admits one array, so work never stalls.
pub fn fits_window(in_queue: u64, len: u64, max_submitted: Option<u64>) -> bool {
    match max_submitted {
        None => true,
        Some(limit) => in_queue == 0 || in_queue + len <= limit,
    }
}

/// What to do with a new array of a step whose running tasks are capped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleDecision {
    /// Submit it, with this `%` throttle (`None`: no cap).
    Submit(Option<u32>),
    /// The step's cap is taken by its arrays already queued; wait for them to drain.
    Wait,
}

/// The throttle of a new array of `len` elements, given the step-wide `cap` and the step's
/// arrays already in the queue. The invariant kept is `sum(min(throttle, remaining)) <=
/// cap` over the step's arrays: throttles never rise past it and remaining counts only
/// fall, so the step never runs more than `cap` tasks at once.
pub fn throttle_for_new_array(cap: Option<u32>, live: &[ArrayLoad], len: u32) -> ThrottleDecision {
    let Some(cap) = cap else {
        return ThrottleDecision::Submit(None);
    };
    let used: u32 = live.iter().map(|a| a.effective()).sum();
    let free = cap.saturating_sub(used);
    if free == 0 {
        ThrottleDecision::Wait
    } else {
        ThrottleDecision::Submit(Some(free.min(len.max(1))))
    }
}

/// New throttles for a step's live arrays once some have drained: the share the cap no
/// longer needs goes to the oldest arrays first, each raised at most to its remaining
/// count. Returns `(index, new_throttle)` for the arrays whose throttle rises (throttles are
/// never lowered). Call it only when no array of the step waits for submission: waiting
/// arrays take the free share first.
///
/// To spare slurmctld one `scontrol update` per drained element, nothing is raised until
/// the free share reaches a tenth of the cap (at least 1).
pub fn rebalance_throttles(cap: u32, live: &[ArrayLoad]) -> Vec<(usize, u32)> {
    let used: u32 = live.iter().map(|a| a.effective()).sum();
    if cap.saturating_sub(used) < (cap / 10).max(1) {
        return Vec::new();
    }
    raise_throttles(cap, live)
}

fn raise_throttles(cap: u32, live: &[ArrayLoad]) -> Vec<(usize, u32)> {
    let used: u32 = live.iter().map(|a| a.effective()).sum();
    let mut free = cap.saturating_sub(used);
    let mut raised = Vec::new();
    for (index, array) in live.iter().enumerate() {
        if free == 0 {
            break;
        }
        if array.throttle < array.remaining {
            let extra = free.min(array.remaining - array.throttle);
            free -= extra;
            raised.push((index, array.throttle + extra));
        }
    }
    raised
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_size_is_capped() {
        assert_eq!(array_size(None, 1000, None), 1000);
        assert_eq!(array_size(Some(200), 1000, None), 200);
        assert_eq!(array_size(Some(5000), 1000, None), 1000);
        assert_eq!(array_size(Some(5000), 1000, Some(300)), 300);
        assert_eq!(array_size(Some(0), 1000, None), 1);
    }

    #[test]
    fn forty_thousand_tasks_make_forty_arrays() {
        let arrays = split_into_arrays(40_000, array_size(None, 1000, Some(5000)));
        assert_eq!(arrays.len(), 40);
        assert_eq!(arrays[39], 39_000..40_000);
        let arrays = split_into_arrays(1001, 500);
        assert_eq!(arrays, vec![0..500, 500..1000, 1000..1001]);
        assert!(split_into_arrays(0, 10).is_empty());
    }

    #[test]
    fn window_slides() {
        // 40,000 tasks through a 5,000-element limit in arrays of 1,000.
        let limit = Some(5000);
        let mut in_queue = 0u64;
        let mut submitted = 0;
        while fits_window(in_queue, 1000, limit) && submitted < 40 {
            in_queue += 1000;
            submitted += 1;
        }
        assert_eq!(submitted, 5);
        in_queue -= 999; // most of the first array finished: not yet room for 1,000 more
        assert!(!fits_window(in_queue, 1000, limit));
        in_queue -= 1; // all of it
        assert!(fits_window(in_queue, 1000, limit));
        assert!(!fits_window(4500, 1000, limit));
        assert!(fits_window(0, 9000, limit));
        assert!(fits_window(1_000_000, 1000, None));
    }

    #[test]
    fn step_cap_is_shared_across_arrays() {
        let cap = Some(200);
        assert_eq!(
            throttle_for_new_array(cap, &[], 1000),
            ThrottleDecision::Submit(Some(200))
        );
        let live = [ArrayLoad {
            throttle: 200,
            remaining: 1000,
        }];
        assert_eq!(
            throttle_for_new_array(cap, &live, 1000),
            ThrottleDecision::Wait
        );
        // The first array drained to 150 elements: 50 free for the next one.
        let live = [ArrayLoad {
            throttle: 200,
            remaining: 150,
        }];
        assert_eq!(
            throttle_for_new_array(cap, &live, 1000),
            ThrottleDecision::Submit(Some(50))
        );
        assert_eq!(
            throttle_for_new_array(cap, &[], 30),
            ThrottleDecision::Submit(Some(30))
        );
        assert_eq!(
            throttle_for_new_array(None, &live, 1000),
            ThrottleDecision::Submit(None)
        );
    }

    #[test]
    fn drained_share_goes_back_to_live_arrays() {
        let live = [
            ArrayLoad {
                throttle: 200,
                remaining: 20,
            },
            ArrayLoad {
                throttle: 50,
                remaining: 1000,
            },
            ArrayLoad {
                throttle: 10,
                remaining: 15,
            },
        ];
        // used = 20 + 50 + 10 = 80; 120 free: the second array takes it all.
        assert_eq!(rebalance_throttles(200, &live), vec![(1, 170)]);
        let live = [
            ArrayLoad {
                throttle: 5,
                remaining: 8,
            },
            ArrayLoad {
                throttle: 5,
                remaining: 100,
            },
        ];
        assert_eq!(rebalance_throttles(20, &live), vec![(0, 8), (1, 12)]);
        assert!(rebalance_throttles(10, &live).is_empty());
        // A free share under a tenth of the cap waits for more.
        let live = [
            ArrayLoad {
                throttle: 100,
                remaining: 95,
            },
            ArrayLoad {
                throttle: 100,
                remaining: 1000,
            },
        ];
        assert!(rebalance_throttles(200, &live).is_empty());
        let live = [
            ArrayLoad {
                throttle: 100,
                remaining: 80,
            },
            ArrayLoad {
                throttle: 100,
                remaining: 1000,
            },
        ];
        assert_eq!(rebalance_throttles(200, &live), vec![(1, 120)]);
    }
}
