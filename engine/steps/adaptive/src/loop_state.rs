//! The ask/tell loop as a pure state machine.
//!
//! Input: what is committed (the asks, in ask order, with their parameter sets and ids; the
//! tells, a prefix of the asks) and what the engine knows of each evaluation
//! `(param_id, replicate)` (unknown, not finished, succeeded with a loss, failed for good).
//! Output: the next [`Action`]. The engine commits the effect of an action before it acts
//! (an ask is committed before its evaluations exist; a tell is committed before the
//! algorithm hears it), so a driver killed at any moment rebuilds this state from the
//! database and [`AdaptiveLoop::next_action`] continues exactly where it stopped.
//!
//! The rules, each a unit test below:
//! - batches are synchronous: ask `min(batch, budget left)` only when every asked trial is told;
//! - every asked `(param_id, replicate)` is evaluated once; a parameter set asked twice
//!   shares its evaluations;
//! - a trial is told once, in ask order, when all its replicates are final: complete with
//!   the aggregated loss, or failed if any replicate failed for good;
//! - the loop is done when the budget is spent (or the algorithm said it is finished, or
//!   proposed nothing) and every trial is told.

use crate::objective::{aggregate, Aggregate};
use crate::param_id::param_id;
use crate::protocol::{Direction, TrialResult, TrialState};
use crate::space::ParamSet;
use std::collections::BTreeMap;

/// The loop's fixed settings.
#[derive(Debug, Clone, PartialEq)]
pub struct LoopConfig {
    /// Parameter sets in all (the budget).
    pub trials: u64,
    /// Parameter sets per ask.
    pub batch: u64,
    /// Evaluations per parameter set (seeds 0..replicates).
    pub replicates: u32,
    pub aggregate: Aggregate,
    pub direction: Direction,
}

/// One committed ask.
#[derive(Debug, Clone, PartialEq)]
pub struct Asked {
    /// 0-based position in ask order.
    pub trial: u64,
    /// 0-based batch number.
    pub batch: u64,
    /// How many parameter sets that batch's ask requested.
    pub asked_n: u64,
    pub param_id: String,
    pub params: ParamSet,
}

/// An evaluation: (param_id, replicate).
pub type EvalKey = (String, u32);

/// What the engine knows of an evaluation it has created.
#[derive(Debug, Clone, PartialEq)]
pub enum EvalState {
    /// Created, not finished (pending, running, waiting for a retry).
    Open,
    Succeeded(f64),
    /// Failed for good; the reason (class and message).
    Failed(String),
}

/// A committed tell.
pub type TellRecord = TrialResult;

/// What to do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Create these evaluations (asked, unknown to the engine), in ask and replicate order.
    Evaluate(Vec<EvalKey>),
    /// Commit, then tell, these results, in ask order.
    Tell(Vec<TrialResult>),
    /// Ask the algorithm (after asking whether it is finished) for up to `n` parameter sets.
    Ask {
        n: u64,
        first_trial: u64,
        batch: u64,
    },
    /// Evaluations are open: nothing to do until one ends.
    Wait,
    /// Every trial is told, and the budget is spent or the algorithm is finished.
    Done,
}

/// One message of the history replayed to a fresh algorithm process on resume.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplayStep {
    Ask {
        n: u64,
        first_trial: u64,
        params: Vec<ParamSet>,
    },
    Tell(Vec<TrialResult>),
}

/// The loop's state.
#[derive(Debug, Clone)]
pub struct AdaptiveLoop {
    pub config: LoopConfig,
    asks: Vec<Asked>,
    evaluations: BTreeMap<EvalKey, EvalState>,
    tells: Vec<TrialResult>,
    finished: bool,
}

impl AdaptiveLoop {
    /// A loop from its committed history. Tells must be a prefix of the asks, in order.
    pub fn new(
        config: LoopConfig,
        asks: Vec<Asked>,
        tells: Vec<TrialResult>,
        finished: bool,
    ) -> Result<AdaptiveLoop, String> {
        for (i, a) in asks.iter().enumerate() {
            if a.trial != i as u64 {
                return Err(format!("ask {i} is recorded as trial {}", a.trial));
            }
        }
        for (i, t) in tells.iter().enumerate() {
            match asks.get(i) {
                Some(a) if a.trial == t.trial && a.param_id == t.param_id => {}
                _ => {
                    return Err(format!(
                        "tell {i} (trial {}) does not follow ask order",
                        t.trial
                    ))
                }
            }
        }
        Ok(AdaptiveLoop {
            config,
            asks,
            evaluations: BTreeMap::new(),
            tells,
            finished,
        })
    }

    pub fn asks(&self) -> &[Asked] {
        &self.asks
    }
    pub fn tells(&self) -> &[TrialResult] {
        &self.tells
    }
    pub fn evaluation(&self, key: &EvalKey) -> Option<&EvalState> {
        self.evaluations.get(key)
    }
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Record what the engine knows of an evaluation.
    pub fn set_evaluation(&mut self, key: EvalKey, state: EvalState) {
        self.evaluations.insert(key, state);
    }

    /// The asks to commit for the parameter sets an algorithm proposed (already checked
    /// against the space) in answer to [`Action::Ask`].
    pub fn plan_asks(&self, n: u64, sets: Vec<ParamSet>) -> Vec<Asked> {
        let first = self.asks.len() as u64;
        let batch = self.asks.last().map_or(0, |a| a.batch + 1);
        sets.into_iter()
            .enumerate()
            .map(|(i, params)| Asked {
                trial: first + i as u64,
                batch,
                asked_n: n,
                param_id: param_id(&params),
                params,
            })
            .collect()
    }

    /// Take committed asks into the state. An ask that returned nothing ends the loop
    /// (the algorithm has nothing more to propose).
    pub fn push_asks(&mut self, asked: Vec<Asked>) {
        if asked.is_empty() {
            self.finished = true;
        }
        self.asks.extend(asked);
    }

    /// Take committed tells into the state.
    pub fn push_tells(&mut self, told: Vec<TrialResult>) {
        self.tells.extend(told);
    }

    /// The algorithm said it is finished.
    pub fn mark_finished(&mut self) {
        self.finished = true;
    }

    /// Every evaluation the asks call for, in ask and replicate order, each once.
    pub fn wanted_evaluations(&self) -> Vec<EvalKey> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for a in &self.asks {
            for r in 0..self.config.replicates {
                let key = (a.param_id.clone(), r);
                if seen.insert(key.clone()) {
                    out.push(key);
                }
            }
        }
        out
    }

    /// The result of a trial, if all its replicates are final.
    fn result_of(&self, a: &Asked) -> Option<TrialResult> {
        let mut losses = Vec::new();
        let mut failures = Vec::new();
        for r in 0..self.config.replicates {
            match self.evaluations.get(&(a.param_id.clone(), r))? {
                EvalState::Open => return None,
                EvalState::Succeeded(l) => losses.push(*l),
                EvalState::Failed(why) => failures.push(format!("replicate {r}: {why}")),
            }
        }
        let (state, loss, reason) = if failures.is_empty() {
            (
                TrialState::Complete,
                aggregate(&losses, self.config.aggregate),
                None,
            )
        } else {
            (TrialState::Failed, None, Some(failures.join("; ")))
        };
        Some(TrialResult {
            trial: a.trial,
            param_id: a.param_id.clone(),
            params: a.params.clone(),
            state,
            loss,
            losses: if failures.is_empty() {
                losses
            } else {
                Vec::new()
            },
            reason,
        })
    }

    /// What happens next.
    pub fn next_action(&self) -> Action {
        let missing: Vec<EvalKey> = self
            .wanted_evaluations()
            .into_iter()
            .filter(|k| !self.evaluations.contains_key(k))
            .collect();
        if !missing.is_empty() {
            return Action::Evaluate(missing);
        }
        let mut tellable = Vec::new();
        for a in &self.asks[self.tells.len()..] {
            match self.result_of(a) {
                Some(r) => tellable.push(r),
                None => break,
            }
        }
        if !tellable.is_empty() {
            return Action::Tell(tellable);
        }
        if self.tells.len() < self.asks.len() {
            return Action::Wait;
        }
        let asked = self.asks.len() as u64;
        if self.finished || asked >= self.config.trials {
            return Action::Done;
        }
        Action::Ask {
            n: self.config.batch.min(self.config.trials - asked),
            first_trial: asked,
            batch: self.asks.last().map_or(0, |a| a.batch + 1),
        }
    }

    /// The history to replay to a fresh algorithm process: each committed ask (with the
    /// parameter sets committed then) followed by the committed tells of its batch.
    pub fn replay(&self) -> Vec<ReplayStep> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.asks.len() {
            let batch = self.asks[i].batch;
            let start = i;
            while i < self.asks.len() && self.asks[i].batch == batch {
                i += 1;
            }
            out.push(ReplayStep::Ask {
                n: self.asks[start].asked_n,
                first_trial: start as u64,
                params: self.asks[start..i]
                    .iter()
                    .map(|a| a.params.clone())
                    .collect(),
            });
            let told: Vec<TrialResult> = self
                .tells
                .iter()
                .filter(|t| (start as u64..i as u64).contains(&t.trial))
                .cloned()
                .collect();
            if !told.is_empty() {
                out.push(ReplayStep::Tell(told));
            }
        }
        out
    }

    /// The best complete trial told so far (the first of equals).
    pub fn best(&self) -> Option<&TrialResult> {
        let mut best: Option<&TrialResult> = None;
        for t in &self.tells {
            let Some(l) = t.loss.filter(|_| t.state == TrialState::Complete) else {
                continue;
            };
            if best.is_none_or(|b| self.config.direction.better(l, b.loss.unwrap_or(f64::NAN))) {
                best = Some(t);
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(trials: u64, batch: u64, replicates: u32) -> LoopConfig {
        LoopConfig {
            trials,
            batch,
            replicates,
            aggregate: Aggregate::Mean,
            direction: Direction::Minimize,
        }
    }

    fn set(x: f64) -> ParamSet {
        json!({"x": x}).as_object().unwrap().clone()
    }

    /// Ask as the engine would: plan, commit (here: push), create evaluations.
    fn ask(l: &mut AdaptiveLoop, xs: &[f64]) -> Vec<EvalKey> {
        let Action::Ask { n, .. } = l.next_action() else {
            panic!("expected an ask, got {:?}", l.next_action())
        };
        let asked = l.plan_asks(n, xs.iter().map(|x| set(*x)).collect());
        l.push_asks(asked);
        let Action::Evaluate(keys) = l.next_action() else {
            panic!("expected evaluations")
        };
        for k in &keys {
            l.set_evaluation(k.clone(), EvalState::Open);
        }
        keys
    }

    fn tell_all(l: &mut AdaptiveLoop) -> Vec<TrialResult> {
        let Action::Tell(t) = l.next_action() else {
            panic!("expected a tell, got {:?}", l.next_action())
        };
        l.push_tells(t.clone());
        t
    }

    #[test]
    fn batches_are_synchronous_and_the_budget_ends_the_loop() {
        let mut l = AdaptiveLoop::new(config(5, 2, 1), vec![], vec![], false).unwrap();
        assert_eq!(
            l.next_action(),
            Action::Ask {
                n: 2,
                first_trial: 0,
                batch: 0
            }
        );
        let keys = ask(&mut l, &[1.0, 2.0]);
        assert_eq!(keys.len(), 2);
        assert_eq!(l.next_action(), Action::Wait);
        l.set_evaluation(keys[0].clone(), EvalState::Succeeded(1.0));
        // Trial 0 is final: told at once; trial 1 is not yet.
        assert_eq!(tell_all(&mut l).len(), 1);
        assert_eq!(
            l.next_action(),
            Action::Wait,
            "no ask before the batch is told"
        );
        l.set_evaluation(keys[1].clone(), EvalState::Succeeded(0.5));
        tell_all(&mut l);
        ask(&mut l, &[3.0, 4.0]);
        for k in l.wanted_evaluations() {
            if l.evaluation(&k) == Some(&EvalState::Open) {
                l.set_evaluation(k, EvalState::Succeeded(2.0));
            }
        }
        tell_all(&mut l);
        // The last batch asks only for what is left of the budget.
        assert_eq!(
            l.next_action(),
            Action::Ask {
                n: 1,
                first_trial: 4,
                batch: 2
            }
        );
        let k = ask(&mut l, &[5.0]);
        l.set_evaluation(k[0].clone(), EvalState::Succeeded(9.0));
        tell_all(&mut l);
        assert_eq!(l.next_action(), Action::Done);
        assert_eq!(l.tells().len(), 5);
        assert_eq!(l.best().unwrap().params, set(2.0));
    }

    #[test]
    fn tells_go_in_ask_order_once_each() {
        let mut l = AdaptiveLoop::new(config(3, 3, 1), vec![], vec![], false).unwrap();
        let keys = ask(&mut l, &[1.0, 2.0, 3.0]);
        // Trials 1 and 2 end first: nothing can be told before trial 0.
        l.set_evaluation(keys[2].clone(), EvalState::Succeeded(3.0));
        l.set_evaluation(keys[1].clone(), EvalState::Succeeded(2.0));
        assert_eq!(l.next_action(), Action::Wait);
        l.set_evaluation(keys[0].clone(), EvalState::Succeeded(1.0));
        let told = tell_all(&mut l);
        assert_eq!(told.iter().map(|t| t.trial).collect::<Vec<_>>(), [0, 1, 2]);
        // Nothing is told twice.
        assert_eq!(l.next_action(), Action::Done);
    }

    #[test]
    fn replicates_aggregate_and_a_failed_replicate_fails_the_trial() {
        let mut l = AdaptiveLoop::new(config(2, 2, 3), vec![], vec![], false).unwrap();
        let keys = ask(&mut l, &[1.0, 2.0]);
        assert_eq!(keys.len(), 6);
        assert_eq!(keys[1], (param_id(&set(1.0)), 1));
        for (i, k) in keys.iter().enumerate() {
            let state = if i == 4 {
                EvalState::Failed("nonzero-exit: exit 1".into())
            } else {
                EvalState::Succeeded(i as f64)
            };
            l.set_evaluation(k.clone(), state);
        }
        let told = tell_all(&mut l);
        assert_eq!(told[0].state, TrialState::Complete);
        assert_eq!(told[0].loss, Some(1.0));
        assert_eq!(told[0].losses, [0.0, 1.0, 2.0]);
        assert_eq!(told[1].state, TrialState::Failed);
        assert_eq!(told[1].loss, None);
        assert!(told[1].reason.as_deref().unwrap().contains("replicate 1"));
        assert_eq!(l.next_action(), Action::Done);
        assert_eq!(l.best().unwrap().trial, 0);
    }

    #[test]
    fn a_repeated_parameter_set_shares_its_evaluations() {
        let mut l = AdaptiveLoop::new(config(2, 2, 2), vec![], vec![], false).unwrap();
        let keys = ask(&mut l, &[1.0, 1.0]);
        assert_eq!(keys.len(), 2, "one parameter set, two replicates");
        for k in keys {
            l.set_evaluation(k, EvalState::Succeeded(4.0));
        }
        let told = tell_all(&mut l);
        assert_eq!(told.len(), 2);
        assert_eq!(told[0].param_id, told[1].param_id);
    }

    #[test]
    fn finished_or_empty_asks_end_the_loop() {
        let mut l = AdaptiveLoop::new(config(10, 2, 1), vec![], vec![], false).unwrap();
        l.mark_finished();
        assert_eq!(l.next_action(), Action::Done);
        let mut l = AdaptiveLoop::new(config(10, 2, 1), vec![], vec![], false).unwrap();
        l.push_asks(vec![]);
        assert_eq!(l.next_action(), Action::Done);
    }

    /// Resume: rebuild from what was committed, with some evaluations finished and some not,
    /// and a tell committed for part of the batch.
    #[test]
    fn resume_evaluates_nothing_twice_and_tells_nothing_twice() {
        let mut l = AdaptiveLoop::new(config(4, 2, 2), vec![], vec![], false).unwrap();
        let keys = ask(&mut l, &[1.0, 2.0]);
        l.set_evaluation(keys[0].clone(), EvalState::Succeeded(1.0));
        l.set_evaluation(keys[1].clone(), EvalState::Succeeded(3.0));
        tell_all(&mut l); // trial 0 told
        l.set_evaluation(keys[2].clone(), EvalState::Succeeded(5.0));
        // The driver dies here. A new one rebuilds from the committed asks and tells...
        let mut r = AdaptiveLoop::new(
            l.config.clone(),
            l.asks().to_vec(),
            l.tells().to_vec(),
            false,
        )
        .unwrap();
        // ...and from the tasks table: three finished evaluations, one lost.
        assert_eq!(
            r.next_action(),
            Action::Evaluate(keys.clone()),
            "the engine registers its tasks"
        );
        r.set_evaluation(keys[0].clone(), EvalState::Succeeded(1.0));
        r.set_evaluation(keys[1].clone(), EvalState::Succeeded(3.0));
        r.set_evaluation(keys[2].clone(), EvalState::Succeeded(5.0));
        r.set_evaluation(keys[3].clone(), EvalState::Open);
        assert_eq!(r.next_action(), Action::Wait, "trial 0 is not told again");
        r.set_evaluation(keys[3].clone(), EvalState::Succeeded(7.0));
        let told = tell_all(&mut r);
        assert_eq!(told.iter().map(|t| t.trial).collect::<Vec<_>>(), [1]);
        assert_eq!(told[0].loss, Some(6.0));
        // The replay for a fresh algorithm: the ask with its committed sets, then both tells.
        match &r.replay()[..] {
            [ReplayStep::Ask {
                n,
                first_trial,
                params,
            }, ReplayStep::Tell(t)] => {
                assert_eq!((*n, *first_trial), (2, 0));
                assert_eq!(params, &vec![set(1.0), set(2.0)]);
                assert_eq!(t.len(), 2);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_history_out_of_order_is_refused() {
        let l = AdaptiveLoop::new(config(4, 2, 1), vec![], vec![], false).unwrap();
        let asks = l.plan_asks(2, vec![set(1.0), set(2.0)]);
        let tell = TrialResult {
            trial: 1,
            param_id: asks[1].param_id.clone(),
            params: set(2.0),
            state: TrialState::Complete,
            loss: Some(1.0),
            losses: vec![1.0],
            reason: None,
        };
        assert!(AdaptiveLoop::new(config(4, 2, 1), asks, vec![tell], false).is_err());
    }

    #[test]
    fn maximize_picks_the_largest() {
        let mut c = config(2, 2, 1);
        c.direction = Direction::Maximize;
        let mut l = AdaptiveLoop::new(c, vec![], vec![], false).unwrap();
        let keys = ask(&mut l, &[1.0, 2.0]);
        l.set_evaluation(keys[0].clone(), EvalState::Succeeded(1.0));
        l.set_evaluation(keys[1].clone(), EvalState::Succeeded(2.0));
        tell_all(&mut l);
        assert_eq!(l.best().unwrap().trial, 1);
    }
}
