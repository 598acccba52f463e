//! The events a run feeds the core: an attempt started, a launch or submission that
//! failed, an attempt ended or lost, a cancel.

use super::*;

impl CampaignCore {
    /// The executor started an attempt.
    pub fn started(
        &mut self,
        slot: usize,
        attempt: u32,
        job_id: String,
        pid: Option<u32>,
        at: f64,
    ) {
        let t = &self.tasks[slot];
        if t.attempts != attempt || t.state != TaskState::Running {
            return;
        }
        if !std::mem::replace(&mut self.started[slot], true) {
            let c = &mut self.state[t.step].counts;
            c.submitted = c.submitted.saturating_sub(1);
            c.running += 1;
        }
        self.changes.push(Change::Started {
            task_id: t.id.clone(),
            attempt,
            job_id,
            pid,
            at,
        });
    }

    /// An attempt could not be launched (its command or spec could not be built).
    pub fn launch_failed(&mut self, slot: usize, attempt: u32, message: String, now: f64) {
        let outcome = AttemptOutcome {
            exit_code: None,
            signal: None,
            error_class: Some(ErrorClass::LaunchFailed),
            message: Some(message),
            started_at: None,
            ended_at: Some(now),
            usage: None,
        };
        self.ended(slot, attempt, EndedAttempt::plain(outcome), now);
    }

    /// The backend refused a submission: each of its attempts ends with `class`.
    pub fn submit_failed(
        &mut self,
        tasks: &[(usize, u32)],
        class: ErrorClass,
        message: &str,
        now: f64,
    ) {
        for &(slot, attempt) in tasks {
            let outcome = AttemptOutcome::ended_without_exit(class, message, now);
            self.ended(slot, attempt, EndedAttempt::plain(outcome), now);
        }
    }

    /// An attempt ended. Stale reports (of an older attempt, or of a task no longer
    /// running) are ignored. Returns the decision taken, if the report counted.
    pub fn ended(
        &mut self,
        slot: usize,
        attempt: u32,
        ended: EndedAttempt,
        now: f64,
    ) -> Option<Decision> {
        let t = &self.tasks[slot];
        if t.attempts != attempt || t.state != TaskState::Running {
            return None;
        }
        let i = t.step;
        {
            let c = &mut self.state[i].counts;
            if std::mem::replace(&mut self.started[slot], false) {
                c.running = c.running.saturating_sub(1);
            } else {
                c.submitted = c.submitted.saturating_sub(1);
            }
            c.ran += 1;
        }
        let EndedAttempt {
            outcome,
            details,
            final_failure,
            cancelled_elsewhere,
            gate,
            product,
        } = ended;
        let t = &self.tasks[slot];
        let decision = if final_failure && !outcome.succeeded() {
            Decision::Failed
        } else {
            let class = if cancelled_elsewhere && !self.cancelling {
                Some(ErrorClass::Signal)
            } else {
                outcome.error_class
            };
            decide(
                class,
                t.counters,
                &self.steps[i].execution,
                jitter_unit(&t.id, t.attempts),
            )
        };
        // Nothing is retried while the run stops: the task is cancelled (a rerun resumes it).
        // An attempt our own stop killed is cancelled, not failed.
        let killed_by_stop = self.cancelling
            && matches!(
                outcome.error_class,
                Some(ErrorClass::Signal | ErrorClass::Cancelled)
            );
        let decision = match decision {
            Decision::Retry { .. } if self.cancelling => Decision::Cancelled,
            Decision::Failed if killed_by_stop => Decision::Cancelled,
            d => d,
        };
        let t = &mut self.tasks[slot];
        match outcome.error_class {
            Some(ErrorClass::Walltime) => t.escalation.0 += 1,
            Some(ErrorClass::OutOfMemory) => t.escalation.1 += 1,
            _ => {}
        }
        let mut not_before = None;
        let state = match &decision {
            Decision::Succeeded => TaskState::Succeeded,
            Decision::Failed => TaskState::Failed,
            Decision::Cancelled => TaskState::Cancelled,
            Decision::Retry { delay, counts } => {
                if *counts {
                    t.counters.retries += 1;
                } else {
                    t.counters.infrastructure_retries += 1;
                }
                not_before = Some(now + delay.as_secs_f64());
                TaskState::Pending
            }
        };
        t.state = state;
        t.not_before = not_before;
        if state == TaskState::Succeeded {
            t.product = product.clone();
        }
        let id = t.id.clone();
        // The gate belongs to this task: its new decision replaces its old one.
        if state == TaskState::Succeeded {
            let name = self.steps[i].name.clone();
            let s = &mut self.state[i];
            let had = s.gate.as_ref().is_some_and(|(g, _)| *g == slot);
            match &gate {
                GateEffect::Stop(m) => {
                    self.tasks[slot].gate_stop = Some(m.clone());
                    s.gate = Some((slot, m.clone()));
                    self.notices.push(Notice::GateStop {
                        step: name,
                        message: m.clone(),
                    });
                }
                other => {
                    self.tasks[slot].gate_stop = None;
                    if had {
                        s.gate = None;
                        self.notices
                            .push(Notice::GateCleared { step: name.clone() });
                    }
                    if let GateEffect::Warn(m) = other {
                        self.notices.push(Notice::GateWarn {
                            step: name,
                            message: m.clone(),
                        });
                    }
                }
            }
        }
        let t = &self.tasks[slot];
        self.changes.push(Change::Finished {
            task_id: id,
            attempt,
            outcome,
            state,
            retries: t.counters.retries,
            infra_retries: t.counters.infrastructure_retries,
            not_before,
            details,
            product: if state == TaskState::Succeeded {
                product
            } else {
                None
            },
        });
        let c = &mut self.state[i].counts;
        match &decision {
            Decision::Succeeded => c.succeeded += 1,
            Decision::Failed => c.failed += 1,
            Decision::Cancelled => c.cancelled += 1,
            Decision::Retry { delay, .. } => {
                self.waiting.push(Waiting(now + delay.as_secs_f64(), slot))
            }
        }
        Some(decision)
    }

    /// An attempt was lost with its driver (no result, no job, no process left): the task
    /// runs again without counting a retry.
    pub fn lost(&mut self, slot: usize, attempt: u32, message: &str) {
        let t = &mut self.tasks[slot];
        if t.attempts != attempt || t.state != TaskState::Running {
            return;
        }
        t.state = TaskState::Pending;
        t.adopted = false;
        let c = &mut self.state[t.step].counts;
        if std::mem::replace(&mut self.started[slot], false) {
            c.running = c.running.saturating_sub(1);
        } else {
            c.submitted = c.submitted.saturating_sub(1);
        }
        self.state[t.step].ready.push_back(slot);
        self.changes.push(Change::SetState {
            task_id: t.id.clone(),
            state: TaskState::Pending,
            message: Some(message.to_string()),
        });
    }

    /// Stop: nothing more is launched; tasks waiting to launch or for a retry are
    /// cancelled. Attempts in flight end through their own reports (the driver asks the
    /// executor to stop them).
    pub fn cancel(&mut self) {
        if self.cancelling {
            return;
        }
        self.cancelling = true;
        let mut slots: Vec<usize> = Vec::new();
        for s in self.state.iter_mut() {
            slots.extend(s.ready.drain(..));
        }
        while let Some(Waiting(_, n)) = self.waiting.pop() {
            slots.push(n);
        }
        for n in slots {
            let t = &mut self.tasks[n];
            t.state = TaskState::Cancelled;
            self.state[t.step].counts.cancelled += 1;
            self.changes.push(Change::SetState {
                task_id: t.id.clone(),
                state: TaskState::Cancelled,
                message: Some("cancelled".into()),
            });
        }
    }
}
