//! Compile a resolved campaign into a plan: steps in dependency order, task counts, task
//! ids, batches. Pure apart from reading plan-time input files; nothing runs.

use crate::environments::{self, EnvBinding};
use crate::task_id::{self, task_seed};
use flow_dsl::array::{ParamKind, ParamValue};
use flow_dsl::diagnostic::{Diagnostic, Diagnostics};
use flow_dsl::model::{Campaign, ExecutorKind, Step, StepKind};
use petgraph::graph::DiGraph;
use std::path::{Path, PathBuf};

/// One step of the plan.
#[derive(Debug, Clone)]
pub struct PlannedStep {
    /// Index into `campaign.steps`.
    pub index: usize,
    /// Tasks known at plan time.
    pub task_count: u64,
    /// Its tasks are created while the campaign runs (adaptive: one per asked evaluation,
    /// registered in [`Plan::dynamic`]), after its `task_count` static ones (none).
    pub open_ended: bool,
    /// Indices of the steps it needs.
    pub upstream: Vec<usize>,
    /// Digest of the step's work (see [`task_id`]).
    pub digest: blake3::Hash,
    /// The step's templates use `{{index}}`: each task's index is part of its id.
    pub index_in_id: bool,
    /// Digest over all of this step's task ids, in order (feeds downstream ids); computed only
    /// for a step that another step needs (the empty digest otherwise).
    pub ids_digest: blake3::Hash,
    /// qe-scf: the structures found at plan time, by stable name (`file` or `file#frame`).
    pub structures: Vec<String>,
    /// qe-scf: the same structures as the step crate's references (path, frame, name).
    pub structure_refs: Vec<serde_json::Value>,
    /// qe-scf: a digest of each structure's file (part of its task's id).
    pub structure_digests: Vec<String>,
    /// Tasks per scheduler submission.
    pub batch_size: u64,
    /// The environment the step runs in (or, for build-env, builds), and its root.
    pub env: Option<EnvBinding>,
    /// adaptive: the environment its algorithm runs in (`algorithm.environment`).
    pub algorithm_env: Option<EnvBinding>,
    /// What the step's task ids are made of, digest by digest (stored with each task so a
    /// later plan can say which of them changed).
    pub components: WorkComponents,
}

/// The parts of a step's work digest, kept apart so that a rerun can be explained.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WorkComponents {
    /// Kind, templates and settings (`task_id::settings_digest`).
    pub settings: String,
    /// Contents of `inputs:` files (and qe-scf structures live in each task's parameters).
    pub inputs: String,
    /// Every upstream task id.
    pub upstream: String,
    /// The environment file's hash.
    pub environment: String,
}

impl PlannedStep {
    /// Parameters of task `i` of this step: its array element, or for qe-scf its structure
    /// (name and content digest).
    pub fn params(&self, step: &Step, i: u64) -> Vec<(String, ParamValue)> {
        let planned = self;
        if step.kind == StepKind::QeScf {
            let path = &planned.structures[i as usize];
            let digest = planned
                .structure_digests
                .get(i as usize)
                .cloned()
                .unwrap_or_default();
            return vec![
                (
                    "structure".to_string(),
                    ParamValue {
                        text: path.clone(),
                        kind: ParamKind::Str,
                    },
                ),
                (
                    "structure_digest".to_string(),
                    ParamValue {
                        text: digest,
                        kind: ParamKind::Str,
                    },
                ),
            ];
        }
        match &step.array {
            Some(array) => array.element(i),
            None => Vec::new(),
        }
    }

    pub fn batches(&self) -> u64 {
        self.task_count.div_ceil(self.batch_size.max(1))
    }
}

/// One task, computed on demand.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedTask {
    pub id: String,
    pub index: u64,
    pub params: Vec<(String, ParamValue)>,
    pub seed: u64,
}

/// The compiled campaign.
#[derive(Debug)]
pub struct Plan<'c> {
    pub campaign: &'c Campaign,
    pub executor: ExecutorKind,
    /// Step indices in topological order (ties in file order).
    pub order: Vec<usize>,
    /// Indexed like `campaign.steps`.
    pub steps: Vec<PlannedStep>,
    /// Tasks created while the campaign runs (adaptive steps: one per asked evaluation),
    /// by (step index, task index). Static steps never have any.
    pub dynamic: std::sync::RwLock<std::collections::HashMap<(usize, u64), PlannedTask>>,
}

impl<'c> Plan<'c> {
    pub fn step(&self, index: usize) -> (&'c Step, &PlannedStep) {
        (&self.campaign.steps[index], &self.steps[index])
    }

    pub fn step_index(&self, name: &str) -> Option<usize> {
        self.campaign.steps.iter().position(|s| s.name == name)
    }

    /// Tasks of every step now: planned, and registered by adaptive steps so far.
    pub fn total_tasks(&self) -> u64 {
        (0..self.steps.len()).map(|i| self.task_total(i)).sum()
    }

    /// Parameters of task `i` of a step.
    pub fn params(&self, step_index: usize, i: u64) -> Vec<(String, ParamValue)> {
        let (step, planned) = self.step(step_index);
        planned.params(step, i)
    }

    /// Task `i` of a step, with its id and seed.
    pub fn task(&self, step_index: usize, i: u64) -> PlannedTask {
        if self.steps[step_index].open_ended {
            if let Some(t) = self
                .dynamic
                .read()
                .ok()
                .and_then(|d| d.get(&(step_index, i)).cloned())
            {
                return t;
            }
        }
        let params = self.params(step_index, i);
        let planned = &self.steps[step_index];
        let id = task_id::task_id(&planned.digest, &params, planned.index_in_id.then_some(i));
        let seed = task_seed(
            &self.campaign.name,
            &self.campaign.steps[step_index].name,
            &params,
            self.campaign.seed_salt.as_deref(),
        );
        PlannedTask {
            id,
            index: i,
            params,
            seed,
        }
    }

    /// Every task of a step, in order.
    /// Every task of a step: the planned ones, then those registered while it runs (an
    /// adaptive step's evaluations, in index order).
    pub fn tasks(&self, step_index: usize) -> impl Iterator<Item = PlannedTask> + '_ {
        let registered = self.registered(step_index);
        (0..self.steps[step_index].task_count)
            .chain(registered)
            .map(move |i| self.task(step_index, i))
    }

    /// How many tasks a step has now (planned and registered).
    pub fn task_total(&self, step_index: usize) -> u64 {
        self.steps[step_index].task_count + self.registered(step_index).len() as u64
    }

    /// Indices of the tasks registered for an open-ended step, in order.
    fn registered(&self, step_index: usize) -> Vec<u64> {
        if !self.steps[step_index].open_ended {
            return Vec::new();
        }
        let mut out: Vec<u64> = self
            .dynamic
            .read()
            .map(|d| {
                d.keys()
                    .filter(|(s, _)| *s == step_index)
                    .map(|(_, i)| *i)
                    .collect()
            })
            .unwrap_or_default();
        out.sort_unstable();
        out
    }
}

/// Compile. `executor` overrides the machine's executor (`flow run --executor`).
pub fn compile(
    campaign: &Campaign,
    executor: Option<ExecutorKind>,
) -> Result<Plan<'_>, Diagnostics> {
    compile_with(campaign, executor, true)
}

/// Compile for checking only (`flow validate`): the same diagnostics, but no step's task ids
/// are folded for its consumers, so the cost does not grow with the task count. The plan's
/// task ids below a needed step are not the campaign's: never run or compare them.
pub fn compile_for_checks(campaign: &Campaign) -> Result<Plan<'_>, Diagnostics> {
    compile_with(campaign, None, false)
}

fn compile_with(
    campaign: &Campaign,
    executor: Option<ExecutorKind>,
    fold_ids: bool,
) -> Result<Plan<'_>, Diagnostics> {
    let executor = executor.unwrap_or(campaign.machine.executor);
    let mut diags = Diagnostics::default();
    let n = campaign.steps.len();
    let mut graph = DiGraph::<usize, ()>::new();
    let nodes: Vec<_> = (0..n).map(|i| graph.add_node(i)).collect();
    let mut upstream = vec![Vec::new(); n];
    for (i, step) in campaign.steps.iter().enumerate() {
        for (need, _) in &step.needs {
            if let Some(j) = campaign.steps.iter().position(|s| &s.name == need) {
                graph.add_edge(nodes[j], nodes[i], ());
                upstream[i].push(j);
            }
        }
    }
    // The loader already rejected cycles; a stable topological order that keeps file
    // order among independent steps.
    let mut order = Vec::with_capacity(n);
    let mut done = vec![false; n];
    while order.len() < n {
        let before = order.len();
        for i in 0..n {
            if !done[i] && upstream[i].iter().all(|u| done[*u]) {
                done[i] = true;
                order.push(i);
            }
        }
        if order.len() == before {
            return Err(Diagnostic::at(
                &campaign.steps[0].span,
                "steps",
                "steps depend on each other in a cycle",
            )
            .into());
        }
    }

    let base = campaign.base_dir();
    let bindings = environments::bind(campaign, &upstream, &mut diags);
    let mut planned: Vec<Option<PlannedStep>> = vec![None; n];
    for &i in &order {
        let step = &campaign.steps[i];
        let mut input_digest = blake3::Hasher::new();
        for input in &step.inputs {
            let path = base.join(input);
            match flow_dsl::user_file::hash_regular_file(&path) {
                Ok(digest) => {
                    input_digest.update(input.as_bytes());
                    input_digest.update(digest.as_bytes());
                }
                Err(e) => diags.push(Diagnostic::at(
                    step.node.get("inputs").map_or(&step.span, |n| &n.span),
                    format!("steps.{}.inputs", step.name),
                    format!("cannot read input file {}: {e}", path.display()),
                )),
            }
        }
        let mut structures = Vec::new();
        let mut structure_refs = Vec::new();
        let mut structure_digests = Vec::new();
        if step.kind == StepKind::QeScf {
            match qe_structures(step, &base) {
                Ok(found) => {
                    for (name, path, reference) in found {
                        // Each structure's content counts in its own task's id only, so
                        // adding a structure leaves the other ids (and their work) alone.
                        let digest = flow_dsl::user_file::hash_regular_file(&path)
                            .map(|hash| hash.to_hex()[..16].to_string())
                            .unwrap_or_default();
                        structure_digests.push(digest);
                        structures.push(name);
                        structure_refs.push(reference);
                    }
                }
                Err(d) => diags.push(d),
            }
        }
        let mut up = blake3::Hasher::new();
        for u in &upstream[i] {
            if let Some(p) = &planned[*u] {
                up.update(campaign.steps[*u].name.as_bytes());
                up.update(p.ids_digest.as_bytes());
            }
        }
        let components = WorkComponents {
            settings: task_id::settings_digest(step),
            inputs: input_digest.finalize().to_hex()[..16].to_string(),
            upstream: up.finalize().to_hex()[..16].to_string(),
            environment: bindings.tasks[i]
                .as_ref()
                .map(|b| b.digest.clone())
                .unwrap_or_default(),
        };
        let uses = task_id::template_uses(step);
        let digest = task_id::step_work_digest(
            step,
            &components.inputs,
            &components.upstream,
            &components.environment,
            &campaign.name,
            campaign.seed_salt.as_deref(),
            uses,
        );
        let task_count = match step.kind {
            StepKind::QeScf => structures.len() as u64,
            // Created as the algorithm asks (`adaptive_step`).
            StepKind::Adaptive => 0,
            _ => step.array.as_ref().map_or(1, |a| a.len()),
        };
        // The most tasks one submission holds: a Slurm array, an Indexed Job.
        let max_array = match executor {
            ExecutorKind::Kubernetes => campaign
                .machine
                .kubernetes
                .as_ref()
                .map_or(1000, |k| u64::from(k.max_job_size)),
            _ => u64::from(campaign.machine.slurm.max_array_size),
        }
        .max(1);
        let batch_size = match executor {
            ExecutorKind::Local => step.execution.batch_size.unwrap_or(1),
            _ => step
                .execution
                .batch_size
                .unwrap_or(max_array)
                .min(max_array),
        }
        .max(1);
        // Adaptive: one submission per ask (its evaluations), capped like any array.
        let batch_size = match &step.adaptive {
            Some(a) if executor != ExecutorKind::Local => {
                (a.batch * a.replicates as u64).min(max_array).max(1)
            }
            _ => batch_size,
        };
        planned[i] = Some(PlannedStep {
            index: i,
            task_count,
            open_ended: step.kind == StepKind::Adaptive,
            upstream: upstream[i].clone(),
            digest,
            index_in_id: uses.index,
            ids_digest: blake3::hash(b""),
            structures,
            structure_refs,
            structure_digests,
            batch_size,
            env: bindings.tasks[i].clone(),
            algorithm_env: bindings.algorithm[i].clone(),
            components,
        });
        // The digest over all task ids (streamed: no per-task memory). Only a consumer's
        // ids read it, so a step nothing needs costs validate and plan nothing per task.
        let consumed = fold_ids && upstream.iter().any(|ups| ups.contains(&i));
        if let Some(p) = planned[i].as_mut().filter(|_| consumed) {
            let mut ids = blake3::Hasher::new();
            for t in 0..task_count {
                let index = p.index_in_id.then_some(t);
                ids.update(task_id::task_id(&p.digest, &p.params(step, t), index).as_bytes());
            }
            p.ids_digest = ids.finalize();
        }
        check_resources(campaign, step, executor, &mut diags);
    }
    diags.into_result()?;
    Ok(Plan {
        campaign,
        executor,
        order,
        steps: planned
            .into_iter()
            .map(|p| p.expect("every step is planned in topological order"))
            .collect(),
        dynamic: Default::default(),
    })
}

/// The machine's local slots: configured, else this computer's.
pub fn local_capacity(campaign: &Campaign) -> (u32, u32, Option<u64>) {
    let cpus = campaign
        .machine
        .local_cpus
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u32));
    let gpus = campaign.machine.local_gpus.unwrap_or_else(|| {
        std::env::var("CUDA_VISIBLE_DEVICES")
            .ok()
            .map(|v| v.split(',').filter(|s| !s.trim().is_empty()).count() as u32)
            .unwrap_or(0)
    });
    (cpus, gpus, campaign.machine.local_mem_mb)
}

fn check_resources(
    campaign: &Campaign,
    step: &Step,
    executor: ExecutorKind,
    diags: &mut Diagnostics,
) {
    if executor != ExecutorKind::Local {
        return;
    }
    let (cpus, gpus, mem) = local_capacity(campaign);
    let r = &step.resources;
    let field = format!("steps.{}.resources", step.name);
    let span = step.node.get("resources").map_or(&step.span, |n| &n.span);
    if r.total_cpus() > cpus as u64 {
        diags.push(
            Diagnostic::at(
                span,
                &field,
                format!(
                    "each task asks for {} CPUs, but the local executor has {cpus}",
                    r.total_cpus()
                ),
            )
            .help("lower cpus_per_task/tasks_per_node, or set machine.local.cpus"),
        );
    }
    if r.total_gpus() > gpus as u64 {
        diags.push(
            Diagnostic::at(
                span,
                &field,
                format!(
                    "each task asks for {} GPUs, but the local executor has {gpus}",
                    r.total_gpus()
                ),
            )
            .help("set CUDA_VISIBLE_DEVICES or machine.local.gpus, or use a CPU job type"),
        );
    }
    if let (Some(need), Some(have)) = (r.mem_mb, mem) {
        if need > have {
            diags.push(Diagnostic::at(span, &field, format!("each task asks for {need} MiB of memory, but the local executor has {have} MiB")));
        }
    }
}

/// qe-scf `structures:` through the step's crate: (name, file, serialised reference).
fn qe_structures(
    step: &Step,
    base: &Path,
) -> Result<Vec<(String, PathBuf, serde_json::Value)>, Diagnostic> {
    let field = format!("steps.{}", step.name);
    let settings = flow_qe_scf::Settings::from_json(&step.settings).map_err(|e| {
        let span = step
            .node
            .get(e.field.split('.').next().unwrap_or(""))
            .map_or(&step.span, |n| &n.span);
        Diagnostic::at(span, format!("{field}.{}", e.field), e.message)
    })?;
    let family = flow_qe_scf::plan::check_pseudopotentials(&settings, base).map_err(|e| {
        let span = step
            .node
            .get("pseudopotentials")
            .map_or(&step.span, |n| &n.span);
        Diagnostic::at(span, format!("{field}.pseudopotentials"), e.to_string())
    })?;
    let at = |key: &str| step.node.get(key).map_or(&step.span, |n| &n.span);
    // Paths inside the campaign directory are shown relative to it, as the user wrote them.
    let prefix = format!("{}/", base.display());
    let shown = |e: flow_qe_scf::QeError| e.to_string().replace(&prefix, "");
    flow_qe_scf::plan::effective_policy(&settings, base)
        .map_err(|e| Diagnostic::at(at("recovery"), format!("{field}.recovery"), shown(e)))?;
    let found = flow_qe_scf::plan::expand_structures(&settings, base)
        .map_err(|e| Diagnostic::at(at("structures"), format!("{field}.structures"), shown(e)))?;
    flow_qe_scf::plan::check_elements(&settings, base, &family, found.iter().map(|(_, s)| s))
        .map_err(|e| {
            Diagnostic::at(
                at("pseudopotentials"),
                format!("{field}.pseudopotentials"),
                shown(e),
            )
        })?;
    Ok(found
        .into_iter()
        .map(|(r, _)| {
            let json = serde_json::to_value(&r).unwrap_or_default();
            (r.name.clone(), r.path.clone(), json)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch_sizes(machine: &str) -> Vec<u64> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("m.yaml"), machine).unwrap();
        let text = "campaign: {name: b, version: v1, machine: m.yaml}\nsteps:\n  s:\n    kind: command\n    command: echo {{i}}\n    array: {i: {range: [0, 1000]}}\n";
        let campaign =
            flow_dsl::load::load_campaign_text("b.yaml", text, dir.path()).expect("loads");
        let plan = compile(&campaign, None).expect("compiles");
        plan.steps.iter().map(|s| s.batch_size).collect()
    }

    #[test]
    fn a_batch_is_capped_by_its_own_backends_setting() {
        // Kubernetes: its own `max_job_size`, whatever the Slurm block says.
        let k8s = "machine:\n  name: k\n  executor: kubernetes\n  kubernetes: {namespace: n, image: i, max_job_size: 250}\n  slurm: {max_array_size: 10}\n";
        assert_eq!(batch_sizes(k8s), [250]);
        let k8s_default = "machine:\n  name: k\n  executor: kubernetes\n  kubernetes: {namespace: n, image: i}\n  slurm: {max_array_size: 10}\n";
        assert_eq!(batch_sizes(k8s_default), [1000]);
        // Slurm: `max_array_size`.
        let slurm = "machine:\n  name: s\n  executor: slurm\n  slurm: {max_array_size: 300}\n";
        assert_eq!(batch_sizes(slurm), [300]);
    }
}
