//! Adaptive steps in a run: the glue between the pure loop of `flow_adaptive`, the state
//! database (`adaptive_state.rs`), the algorithm process and the scheduler.
//!
//! The scheduler calls this module at two points (see `scheduler.rs`, marked `adaptive:`):
//! once at start ([`AdaptiveSteps::load`]: the tasks of every committed ask become slots
//! like any other, so recovery, retries and resume treat them as ordinary tasks), and once
//! per turn for each open adaptive step ([`AdaptiveSteps::advance`]: tell what finished, ask
//! for more, and hand back the new tasks). Evaluations are ordinary tasks of the step: the
//! machine's executor runs them with the step's resources, retries and timeouts.
//!
//! Order of effects, so that a `kill -9` anywhere is harmless: outcomes of evaluations are
//! committed before a tell that depends on them; a tell is committed before the algorithm
//! hears it; an ask is committed, with the tasks of its evaluations, before any launches.

use crate::compile::{Plan, PlannedTask};
use crate::layout::{write_atomic, Layout};
use crate::state::StateStore;
use crate::task_id::task_id;
use crate::task_state::TaskState;
use anyhow::{anyhow, bail, Context, Result};
use flow_adaptive::loop_state::ReplayStep;
use flow_adaptive::{
    protocol, Action, AdaptiveLoop, AdaptiveSettings, AlgorithmProcess, AlgorithmSpec, EvalKey,
    EvalState,
};
use flow_dsl::array::{ParamKind, ParamValue};
use flow_dsl::model::StepKind;
use std::collections::HashMap;
use std::time::Duration;

/// A task the scheduler must hold as a slot: (id, step index, task index).
#[derive(Debug, Clone, PartialEq)]
pub struct NewSlot {
    pub id: String,
    pub step: usize,
    pub index: u64,
}

/// One adaptive step's loop in this run.
struct StepLoop {
    step: usize,
    key: String,
    settings: AdaptiveSettings,
    state: AdaptiveLoop,
    /// Every evaluation with a task: its id and index.
    tasks: HashMap<EvalKey, (String, u64)>,
    process: Option<AlgorithmProcess>,
    done: bool,
}

/// Every adaptive step of the campaign.
#[derive(Default)]
pub struct AdaptiveSteps {
    loops: Vec<StepLoop>,
}

/// The id of an evaluation's task: the step's work digest, the parameter set and the
/// replicate (so a changed command or space reruns, a changed budget or resource does not
/// touch the ids of what was asked).
pub fn evaluation_task_id(step_digest: &blake3::Hash, param_id: &str, replicate: u32) -> String {
    task_id(
        step_digest,
        &[
            ("param_id".into(), text_param(param_id)),
            ("replicate".into(), ParamValue::int(replicate as i64)),
        ],
        // An evaluation's index is its place in the committed history, fixed once asked.
        None,
    )
}

fn text_param(s: &str) -> ParamValue {
    ParamValue {
        text: s.to_string(),
        kind: ParamKind::Str,
    }
}

fn param_value(v: &serde_json::Value) -> ParamValue {
    match v {
        serde_json::Value::String(s) => text_param(s),
        serde_json::Value::Bool(b) => ParamValue {
            text: b.to_string(),
            kind: ParamKind::Bool,
        },
        serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => ParamValue {
            text: n.to_string(),
            kind: ParamKind::Int,
        },
        other => ParamValue {
            text: other.to_string(),
            kind: ParamKind::Float,
        },
    }
}

/// The task of one evaluation, as `Plan::task` hands it out.
pub fn evaluation_task(
    plan: &Plan,
    step_index: usize,
    params: &flow_adaptive::ParamSet,
    key: &EvalKey,
    index: u64,
) -> PlannedTask {
    let campaign = plan.campaign;
    let step = &campaign.steps[step_index];
    let (param_id, replicate) = key;
    let mut p: Vec<(String, ParamValue)> = params
        .iter()
        .map(|(k, v)| (k.clone(), param_value(v)))
        .collect();
    p.push(("param_id".into(), text_param(param_id)));
    p.push(("replicate".into(), ParamValue::int(*replicate as i64)));
    PlannedTask {
        id: evaluation_task_id(&plan.steps[step_index].digest, param_id, *replicate),
        index,
        params: p,
        // `campaign.seed` salts every seed of the campaign, evaluations' too.
        seed: flow_adaptive::evaluation_seed(
            &match campaign.seed_salt.as_deref() {
                Some(salt) => format!("{}\0{salt}", campaign.name),
                None => campaign.name.clone(),
            },
            &step.name,
            param_id,
            *replicate,
        ),
    }
}

/// Indices of a loop's evaluations: ask batch `b`'s new evaluations take
/// `b * stride .. b * stride + k`, so every batch of the scheduler starts a fresh batch name.
fn assign_indices(state: &AdaptiveLoop, stride: u64) -> Vec<(EvalKey, u64, usize)> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    let mut batch = u64::MAX;
    let mut k = 0;
    for (ask_pos, a) in state.asks().iter().enumerate() {
        if a.batch != batch {
            batch = a.batch;
            k = 0;
        }
        for r in 0..state.config.replicates {
            let key = (a.param_id.clone(), r);
            if seen.insert(key.clone()) {
                out.push((key, a.batch * stride + k, ask_pos));
                k += 1;
            }
        }
    }
    out
}

fn trials_csv_path(plan: &Plan, step_index: usize) -> std::path::PathBuf {
    let adaptive = plan
        .campaign
        .steps
        .iter()
        .filter(|s| s.kind == StepKind::Adaptive)
        .count();
    let name = if adaptive <= 1 {
        "trials.csv".to_string()
    } else {
        format!("trials-{}.csv", plan.campaign.steps[step_index].name)
    };
    plan.campaign.campaign_dir.join(name)
}

impl AdaptiveSteps {
    /// The loops of every adaptive step from the committed history; their evaluations'
    /// tasks are registered with the plan and returned as slots for the scheduler.
    pub fn load(plan: &Plan, store: &StateStore) -> Result<(AdaptiveSteps, Vec<NewSlot>)> {
        let mut steps = AdaptiveSteps::default();
        let mut slots = Vec::new();
        for (i, step) in plan.campaign.steps.iter().enumerate() {
            let Some(settings) = step.adaptive.clone() else {
                continue;
            };
            let key = plan.steps[i].digest.to_hex()[..16].to_string();
            let h = store.adaptive_history(&step.name, &key)?;
            let state = AdaptiveLoop::new(settings.loop_config(), h.asks, h.tells, h.finished)
                .map_err(|e| {
                    anyhow!(
                        "step {}: the committed history is inconsistent: {e}",
                        step.name
                    )
                })?;
            let mut l = StepLoop {
                step: i,
                key,
                settings,
                state,
                tasks: HashMap::new(),
                process: None,
                done: false,
            };
            slots.extend(l.register_tasks(plan));
            steps.loops.push(l);
        }
        Ok((steps, slots))
    }

    /// Whether the step's task list may still grow (its loop is not done).
    pub fn open_ended(&self, step_index: usize) -> bool {
        self.loops.iter().any(|l| l.step == step_index && !l.done)
    }

    pub fn is_adaptive(&self, step_index: usize) -> bool {
        self.loops.iter().any(|l| l.step == step_index)
    }

    /// Move a step's loop on: take in the evaluations that ended (`state_of` gives a task's
    /// state), tell, ask. The driver has committed the outcomes `state_of` reports before
    /// calling, so no tell committed here gets ahead of them. Returns the tasks of new
    /// evaluations.
    pub fn advance(
        &mut self,
        plan: &Plan,
        layout: &Layout,
        store: &mut StateStore,
        step_index: usize,
        state_of: &dyn Fn(&str) -> Option<TaskState>,
    ) -> Result<Vec<NewSlot>> {
        let Some(l) = self.loops.iter_mut().find(|l| l.step == step_index) else {
            return Ok(Vec::new());
        };
        if l.done {
            return Ok(Vec::new());
        }
        l.refresh(plan, state_of);
        let step_name = plan.campaign.steps[step_index].name.clone();
        let mut new_slots = Vec::new();
        loop {
            match l.state.next_action() {
                Action::Evaluate(_) => {
                    // Asked (committed) but without tasks: only after a crash inside
                    // `commit_ask` — which is one transaction, so this cannot happen.
                    bail!("step {step_name}: asked evaluations have no tasks");
                }
                Action::Wait => break,
                Action::Done => {
                    l.done = true;
                    if let Some(p) = l.process.take() {
                        p.close();
                    }
                    l.write_trials(plan);
                    break;
                }
                Action::Tell(results) => {
                    // Started (and caught up with the committed history) before this tell
                    // is committed: the replay must not contain it.
                    l.process(plan, layout)?;
                    store.commit_tells(
                        &step_name,
                        &l.key,
                        &results,
                        flow_executors::task_runner::now(),
                    )?;
                    l.state.push_tells(results.clone());
                    let process = l.process(plan, layout)?;
                    let reply = process.request(&protocol::tell(&results))?;
                    if let Some(e) = protocol::reply_error(&reply) {
                        bail!("step {step_name}: the algorithm refused a tell: {e}");
                    }
                    l.write_trials(plan);
                }
                Action::Ask { n, first_trial, .. } => {
                    let process = l.process(plan, layout)?;
                    let finished = protocol::is_finished(&process.request(&protocol::finished())?)
                        .map_err(|e| anyhow!("step {step_name}: finished?: {e}"))?;
                    if finished {
                        store.set_adaptive_finished(&step_name, &l.key)?;
                        l.state.mark_finished();
                        continue;
                    }
                    let reply = process.request(&protocol::ask(n, first_trial, None))?;
                    let proposed = protocol::asked_params(&reply, n)
                        .map_err(|e| anyhow!("step {step_name}: ask: {e}"))?;
                    let mut sets = Vec::with_capacity(proposed.len());
                    for p in &proposed {
                        sets.push(l.settings.space.canonicalize(p).map_err(|e| {
                            anyhow!("step {step_name}: the algorithm proposed {p}: {e}")
                        })?);
                    }
                    let asked = l.state.plan_asks(n, sets);
                    // The tasks of the evaluations this ask adds, committed with it.
                    let mut probe = l.state.clone();
                    probe.push_asks(asked.clone());
                    let stride = l.settings.batch * l.settings.replicates as u64;
                    let mut tasks = Vec::new();
                    for (key, index, pos) in assign_indices(&probe, stride) {
                        if l.tasks.contains_key(&key) {
                            continue;
                        }
                        let params = &probe.asks()[pos].params;
                        let t = evaluation_task(plan, step_index, params, &key, index);
                        let json: serde_json::Map<String, serde_json::Value> = t
                            .params
                            .iter()
                            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.text.clone())))
                            .collect();
                        tasks.push((
                            t.id.clone(),
                            index,
                            serde_json::Value::Object(json).to_string(),
                        ));
                    }
                    store.commit_ask(
                        &step_name,
                        &l.key,
                        &asked,
                        &tasks,
                        flow_executors::task_runner::now(),
                    )?;
                    l.state.push_asks(asked);
                    new_slots.extend(l.register_tasks(plan));
                    l.write_trials(plan);
                }
            }
        }
        Ok(new_slots)
    }

    /// Close every algorithm process.
    pub fn close(&mut self) {
        for l in &mut self.loops {
            if let Some(p) = l.process.take() {
                p.close();
            }
        }
    }
}

impl StepLoop {
    /// Give every asked evaluation without a task entry its task (in the plan and here);
    /// returns them as slots.
    fn register_tasks(&mut self, plan: &Plan) -> Vec<NewSlot> {
        let stride = self.settings.batch * self.settings.replicates as u64;
        let mut out = Vec::new();
        let mut dynamic = plan
            .dynamic
            .write()
            .expect("the plan's task table is not poisoned");
        for (key, index, pos) in assign_indices(&self.state, stride) {
            if self.tasks.contains_key(&key) {
                continue;
            }
            let params = &self.state.asks()[pos].params;
            let t = evaluation_task(plan, self.step, params, &key, index);
            self.tasks.insert(key.clone(), (t.id.clone(), index));
            self.state.set_evaluation(key, EvalState::Open);
            out.push(NewSlot {
                id: t.id.clone(),
                step: self.step,
                index,
            });
            dynamic.insert((self.step, index), t);
        }
        out
    }

    /// Take in evaluations that ended since the last look.
    fn refresh(&mut self, plan: &Plan, state_of: &dyn Fn(&str) -> Option<TaskState>) {
        let key_field = self.settings.objective_key.clone();
        for (key, (id, index)) in &self.tasks {
            if !matches!(self.state.evaluation(key), Some(EvalState::Open) | None) {
                continue;
            }
            let new = match state_of(id) {
                Some(TaskState::Succeeded) => {
                    let task = plan.task(self.step, *index);
                    let data = crate::render::template_data(plan, self.step, &task);
                    match crate::render::output_for(plan, self.step, &task, &data, 1) {
                        Ok(Some((out, _))) => {
                            let path = plan.campaign.campaign_dir.join(out);
                            match flow_adaptive::read_objective(&path, &key_field) {
                                Ok(e) => EvalState::Succeeded(e.loss),
                                Err(e) => EvalState::Failed(format!("invalid-output: {e}")),
                            }
                        }
                        Ok(None) => EvalState::Failed("the step has no output".into()),
                        Err(e) => EvalState::Failed(e),
                    }
                }
                Some(TaskState::Failed) => EvalState::Failed(format!(
                    "task {id} failed for good (flow status, flow logs)"
                )),
                _ => continue,
            };
            self.state.set_evaluation(key.clone(), new);
        }
    }

    fn write_trials(&self, plan: &Plan) {
        let text = flow_adaptive::trials::trials_csv(&self.settings.space, &self.state);
        let _ = write_atomic(&trials_csv_path(plan, self.step), text.as_bytes());
    }

    /// The algorithm process, started (and caught up with the history) on first use.
    fn process(&mut self, plan: &Plan, layout: &Layout) -> Result<&mut AlgorithmProcess> {
        if self.process.is_none() {
            let step = &plan.campaign.steps[self.step];
            let places = AlgorithmPlaces {
                script_dir: layout.metadata().join("adaptive"),
                log: layout.logs().join(&step.name).join("algorithm.log"),
                reply_timeout: Duration::from_secs(self.settings.reply_timeout_s),
            };
            let p = start_algorithm(plan, &places, self.step, &self.settings, &self.state)?;
            self.process = Some(p);
        }
        Ok(self.process.as_mut().expect("just started"))
    }
}

/// Where an algorithm process keeps its adapter script and its log, and how long it may
/// take to answer.
struct AlgorithmPlaces {
    script_dir: std::path::PathBuf,
    log: std::path::PathBuf,
    reply_timeout: Duration,
}

/// Start the algorithm, say hello, and replay the committed history.
fn start_algorithm(
    plan: &Plan,
    places: &AlgorithmPlaces,
    step_index: usize,
    settings: &AdaptiveSettings,
    state: &AdaptiveLoop,
) -> Result<AlgorithmProcess> {
    let campaign = plan.campaign;
    let step = &campaign.steps[step_index];
    let env = match &settings.environment {
        Some(name) => crate::environments::variables(
            plan.campaign,
            plan.steps[step_index].algorithm_env.as_ref(),
            name,
        )
        .map_err(|e| anyhow!("step {}: algorithm: {e}", step.name))?,
        None => Vec::new(),
    };
    let argv: Vec<String> = match &settings.algorithm {
        AlgorithmSpec::Optuna { .. } => {
            let venv = env
                .iter()
                .find(|(k, _)| k == "VIRTUAL_ENV")
                .map(|(_, v)| v.clone())
                .ok_or_else(|| {
                    anyhow!(
                        "step {}: the algorithm's environment has no python",
                        step.name
                    )
                })?;
            let script = places.script_dir.join("optuna_adapter.py");
            if let Some(dir) = script.parent() {
                std::fs::create_dir_all(dir)?;
            }
            write_atomic(&script, flow_adaptive::OPTUNA_ADAPTER.as_bytes())
                .with_context(|| format!("cannot write {}", script.display()))?;
            vec![format!("{venv}/bin/python"), script.display().to_string()]
        }
        AlgorithmSpec::Command { command } => {
            vec!["/bin/sh".into(), "-c".into(), command.clone()]
        }
    };
    let mut p = AlgorithmProcess::spawn(
        &argv,
        &env,
        &campaign.base_dir(),
        &places.log,
        places.reply_timeout,
    )
    .map_err(|e| anyhow!("step {}: {e}", step.name))?;
    let hello = protocol::hello(
        &settings.space.to_protocol(),
        settings.direction,
        &settings.options,
    );
    let reply = p
        .request(&hello)
        .map_err(|e| anyhow!("step {}: hello: {e}", step.name))?;
    if let Some(e) = protocol::reply_error(&reply) {
        bail!("step {}: the algorithm refused hello: {e}", step.name);
    }
    let mut diverged = false;
    for message in state.replay() {
        match message {
            ReplayStep::Ask {
                n,
                first_trial,
                params,
            } => {
                let reply = p.request(&protocol::ask(n, first_trial, Some(&params)))?;
                let proposed = protocol::asked_params(&reply, n)
                    .map_err(|e| anyhow!("step {}: replaying an ask: {e}", step.name))?;
                let same = proposed.len() == params.len()
                    && proposed
                        .iter()
                        .zip(&params)
                        .all(|(a, b)| settings.space.canonicalize(a).ok().as_ref() == Some(b));
                diverged |= !same;
            }
            ReplayStep::Tell(results) => {
                let reply = p.request(&protocol::tell(&results))?;
                if let Some(e) = protocol::reply_error(&reply) {
                    bail!("step {}: replaying a tell: {e}", step.name);
                }
            }
        }
    }
    if diverged {
        eprintln!(
            "note: step {}: on resume the algorithm did not re-derive the committed parameter sets; it was given them (later asks may differ from an uninterrupted run)",
            step.name
        );
    }
    Ok(p)
}

/// `flow plan`: the space, the budget, and the commands of the first batch's first
/// parameter set (an example set from the space: the algorithm asks when the loop starts).
pub fn plan_text(plan: &Plan, step_index: usize, a: &AdaptiveSettings) -> String {
    let step = &plan.campaign.steps[step_index];
    let mut out = format!(
        "\nstep {} (adaptive): {}\n  budget: {} trials in {} batches of {}, {} replicate(s) each: at most {} evaluations\n  objective: {} of `{}` from each output\n  space:\n",
        step.name,
        a.describe_algorithm(),
        a.trials,
        a.batches(),
        a.batch,
        a.replicates,
        a.trials * a.replicates as u64,
        a.aggregate.as_str(),
        a.objective_key,
    );
    for line in a.space.describe() {
        out.push_str(&format!("    {line}\n"));
    }
    let asked = plan.task_total(step_index);
    let sets = if asked > 0 {
        out.push_str(&format!(
            "  {asked} evaluation(s) asked so far (`flow status` shows the trials); the next batch is asked when the loop resumes\n"
        ));
        return out;
    } else {
        match preview_first_batch(plan, step_index, a) {
            Ok(sets) => {
                out.push_str(&format!(
                    "  first batch, as the algorithm proposes it now ({} parameter set(s); a seeded algorithm proposes the same when the loop starts):\n",
                    sets.len()
                ));
                sets
            }
            Err(why) => {
                let example = a.space.example();
                out.push_str(&format!(
                    "  first batch: {} parameter set(s) asked when the loop starts ({why}); for an example set from the space (param_id {}) its evaluations run:\n",
                    a.batch,
                    flow_adaptive::param_id(&example)
                ));
                vec![example]
            }
        }
    };
    for set in &sets {
        let pid = flow_adaptive::param_id(set);
        if sets.len() > 1 {
            out.push_str(&format!(
                "  param_id {pid}: {}\n",
                serde_json::Value::Object(set.clone())
            ));
        }
        out.push_str(&evaluation_lines(plan, step_index, a, set));
    }
    out
}

/// The first batch the algorithm proposes, asked without committing anything: only for the
/// built-in Optuna adapter (a custom algorithm's command is the user's program, which plan
/// never runs) and only once its environment is built. The process runs with its script and
/// log in a private temporary directory and is closed at once.
fn preview_first_batch(
    plan: &Plan,
    step_index: usize,
    a: &AdaptiveSettings,
) -> Result<Vec<flow_adaptive::ParamSet>, String> {
    if !matches!(a.algorithm, AlgorithmSpec::Optuna { .. }) {
        return Err("plan does not start a custom algorithm".into());
    }
    if let Some(name) = &a.environment {
        crate::environments::variables(
            plan.campaign,
            plan.steps[step_index].algorithm_env.as_ref(),
            name,
        )
        .map_err(|_| format!("its environment `{name}` is not built yet"))?;
    }
    let tmp = tempfile::tempdir().map_err(|e| format!("no temporary directory: {e}"))?;
    let places = AlgorithmPlaces {
        script_dir: tmp.path().to_path_buf(),
        log: tmp.path().join("algorithm.log"),
        reply_timeout: Duration::from_secs(a.reply_timeout_s.min(60)),
    };
    let state = AdaptiveLoop::new(a.loop_config(), Vec::new(), Vec::new(), false)
        .map_err(|e| e.to_string())?;
    let Action::Ask { n, first_trial, .. } = state.next_action() else {
        return Err("the loop has nothing to ask".into());
    };
    let mut process = start_algorithm(plan, &places, step_index, a, &state)
        .map_err(|e| format!("the algorithm did not start: {e}"))?;
    let proposed = process
        .request(&protocol::ask(n, first_trial, None))
        .map_err(|e| e.to_string())
        .and_then(|reply| protocol::asked_params(&reply, n).map_err(|e| e.to_string()));
    process.close();
    proposed?
        .iter()
        .map(|p| a.space.canonicalize(p).map_err(|e| e.to_string()))
        .collect()
}

/// `flow plan --format manifests`: register the first batch's evaluations in the plan so
/// their Job can be rendered like any step's: the sets the seeded algorithm proposes now
/// when it can be asked, else one example set from the space. Nothing is committed.
pub fn register_first_batch(plan: &Plan, step_index: usize, a: &AdaptiveSettings) {
    if plan.task_total(step_index) > 0 {
        return;
    }
    let sets = preview_first_batch(plan, step_index, a).unwrap_or_else(|_| vec![a.space.example()]);
    let Ok(mut dynamic) = plan.dynamic.write() else {
        return;
    };
    let mut index = 0u64;
    let mut seen = std::collections::HashSet::new();
    for set in &sets {
        let pid = flow_adaptive::param_id(set);
        if !seen.insert(pid.clone()) {
            continue;
        }
        for r in 0..a.replicates {
            let key = (pid.clone(), r);
            let t = evaluation_task(plan, step_index, set, &key, index);
            dynamic.insert((step_index, index), t);
            index += 1;
        }
    }
}

/// The commands of a parameter set's evaluations (at most three replicates shown).
fn evaluation_lines(
    plan: &Plan,
    step_index: usize,
    a: &AdaptiveSettings,
    set: &flow_adaptive::ParamSet,
) -> String {
    let mut out = String::new();
    let pid = flow_adaptive::param_id(set);
    for r in 0..a.replicates.min(3) {
        let key = (pid.clone(), r);
        let task = evaluation_task(plan, step_index, set, &key, r as u64);
        match crate::render::command_for(plan, step_index, &task, 1) {
            Ok(rendered) => out.push_str(&format!(
                "    {}\n      -> {}\n",
                rendered.command,
                rendered.output.unwrap_or_default()
            )),
            Err(e) => out.push_str(&format!("    cannot render: {e}\n")),
        }
    }
    out
}

/// `flow status`: `{trials_asked, trials_done, trials_failed, trials_running, best:
/// {param_id, params, loss}}` of a step's latest loop, from the committed tells.
pub fn status_summary(
    store: &StateStore,
    step: &flow_dsl::model::Step,
) -> Option<serde_json::Value> {
    let settings = step.adaptive.as_ref()?;
    let key = store.adaptive_latest_key(&step.name).ok()??;
    let h = store.adaptive_history(&step.name, &key).ok()?;
    let state = AdaptiveLoop::new(settings.loop_config(), h.asks, h.tells, h.finished).ok()?;
    let done = state
        .tells()
        .iter()
        .filter(|t| t.state == flow_adaptive::TrialState::Complete)
        .count();
    let failed = state.tells().len() - done;
    let best = state
        .best()
        .map(|b| serde_json::json!({"param_id": b.param_id, "params": b.params, "loss": b.loss}));
    Some(serde_json::json!({
        "trials_asked": state.asks().len(),
        "trials_done": done,
        "trials_failed": failed,
        "trials_running": state.asks().len() - state.tells().len(),
        "budget": settings.trials,
        "best": best,
    }))
}

/// The status text line of a [`status_summary`].
pub fn status_line(a: &serde_json::Value) -> String {
    format!(
        "  trials: {} done, {} running, {} failed of {} (budget {}){}\n",
        a["trials_done"],
        a["trials_running"],
        a["trials_failed"],
        a["trials_asked"],
        a["budget"],
        match a.get("best").filter(|b| !b.is_null()) {
            Some(b) => format!(
                "; best loss {} at {} ({})",
                b["loss"],
                b["params"],
                b["param_id"].as_str().unwrap_or("")
            ),
            None => String::new(),
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use flow_adaptive::{Aggregate, Direction, LoopConfig};
    use serde_json::json;

    #[test]
    fn indices_start_a_fresh_range_per_ask_and_repeated_sets_share_tasks() {
        let config = LoopConfig {
            trials: 4,
            batch: 2,
            replicates: 2,
            aggregate: Aggregate::Mean,
            direction: Direction::Minimize,
        };
        let mut l = AdaptiveLoop::new(config, vec![], vec![], false).unwrap();
        let a = |x: f64| json!({"x": x}).as_object().unwrap().clone();
        let asked = l.plan_asks(2, vec![a(1.0), a(1.0)]);
        l.push_asks(asked);
        let asked = l.plan_asks(2, vec![a(2.0), a(1.0)]);
        l.push_asks(asked);
        let idx: Vec<u64> = assign_indices(&l, 4)
            .into_iter()
            .map(|(_, i, _)| i)
            .collect();
        assert_eq!(idx, [0, 1, 4, 5]);
    }
}
