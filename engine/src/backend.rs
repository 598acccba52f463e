//! The one place that builds an executor from a campaign's machine: local capacity, the
//! Slurm executor (the machine's `slurm:` settings and set-up), the Kubernetes executor
//! (its `kubernetes:` settings; connects to the cluster).

use crate::compile::Plan;
use crate::layout::Layout;
use anyhow::Result;
use flow_dsl::model::ExecutorKind;
use flow_executors::local::{LocalCapacity, LocalExecutor};
use flow_executors::Executor;

/// Build the executor a run uses.
pub fn executor_for(plan: &Plan) -> Result<Box<dyn Executor>> {
    match plan.executor {
        ExecutorKind::Local => {
            let (cpus, gpus, mem_mb) = crate::compile::local_capacity(plan.campaign);
            let layout = Layout::new(&plan.campaign.campaign_dir);
            Ok(Box::new(LocalExecutor::with_result_journal(
                LocalCapacity { cpus, gpus, mem_mb },
                layout.result_journals(),
            )))
        }
        ExecutorKind::Slurm => slurm_executor(plan),
        ExecutorKind::Kubernetes => kubernetes_executor(plan),
    }
}

/// The Slurm executor of a plan: the machine's typed Slurm settings (set-up included), the
/// campaign's logs directory, and this very binary as the program each array element runs.
pub fn slurm_executor_for(plan: &Plan) -> Result<flow_executors::slurm::SlurmExecutor> {
    slurm_executor_with(plan, plan.campaign.machine.slurm.clone())
}

/// The Slurm executor whose scripts `flow plan` shows: the machine's secret-named
/// `setup.env` values are written as `***` (the real scripts carry them).
pub fn slurm_preview_executor(plan: &Plan) -> Result<flow_executors::slurm::SlurmExecutor> {
    let mut settings = plan.campaign.machine.slurm.clone();
    for (name, value) in settings.env.iter_mut() {
        if flow_dsl::secrets::is_secret_name(name) {
            *value = flow_dsl::secrets::MASK.to_string();
        }
    }
    slurm_executor_with(plan, settings)
}

fn slurm_executor_with(
    plan: &Plan,
    settings: flow_dsl::machine_settings::SlurmSettings,
) -> Result<flow_executors::slurm::SlurmExecutor> {
    let campaign = plan.campaign;
    let paths = flow_executors::slurm::SlurmPaths {
        logs_dir: campaign.campaign_dir.join("logs"),
        flow_binary: std::env::current_exe()?,
    };
    let tag = format!("{}_{}", campaign.version, campaign.name);
    Ok(flow_executors::slurm::SlurmExecutor::new(
        tag, settings, paths,
    )?)
}

/// The Slurm executor for this plan.
pub fn slurm_executor(plan: &Plan) -> Result<Box<dyn Executor>> {
    Ok(Box::new(slurm_executor_for(plan)?))
}

/// The machine's `kubernetes:` settings, with the machine named in the error.
pub fn kubernetes_config<'p>(
    plan: &Plan<'p>,
) -> Result<&'p flow_dsl::machine_settings::KubernetesSettings, String> {
    let machine = &plan.campaign.machine;
    machine.kubernetes.as_ref().ok_or_else(|| {
        format!(
            "machine {} has no `kubernetes:` block: the kubernetes executor needs at least `namespace` and `image` (see `flow recipes show generic-k8s`)",
            machine.name
        )
    })
}

/// Where batch manifests go: in the campaign directory, which pods see at the same path on
/// the machine's volume.
pub fn kubernetes_manifest_dir(layout: &Layout) -> std::path::PathBuf {
    layout.metadata().join("manifests")
}

/// The Kubernetes executor of a campaign (connects to the cluster).
pub fn kubernetes_executor(plan: &Plan) -> Result<Box<dyn Executor>> {
    Ok(Box::new(kubernetes_executor_for(plan)?))
}

/// The Kubernetes executor as its concrete type (`flow cancel`, `flow logs`).
pub fn kubernetes_executor_for(
    plan: &Plan,
) -> Result<flow_executors::kubernetes::KubernetesExecutor> {
    let campaign = plan.campaign;
    let settings = kubernetes_config(plan)
        .map_err(|e| anyhow::anyhow!(e))?
        .clone();
    let layout = Layout::new(&campaign.campaign_dir);
    let target = flow_executors::kubernetes::KubernetesCampaign {
        campaign_tag: format!("{}_{}", campaign.version, campaign.name),
        settings,
        manifest_dir: kubernetes_manifest_dir(&layout),
        step_job_types: campaign
            .steps
            .iter()
            .map(|s| (s.name.clone(), s.resources.job_type.clone()))
            .collect(),
    };
    Ok(flow_executors::kubernetes::KubernetesExecutor::connect(
        target,
    )?)
}
