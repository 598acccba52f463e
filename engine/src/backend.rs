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

/// The Slurm executor of a plan: the machine's `slurm:` block and set-up, the campaign's
/// logs directory, and this very binary as the program each array element runs.
pub fn slurm_executor_for(plan: &Plan) -> Result<flow_executors::slurm::SlurmExecutor> {
    let campaign = plan.campaign;
    let block = campaign
        .snapshot
        .pointer("/machine/machine/slurm")
        .cloned()
        .unwrap_or_else(|| serde_json::json!({}));
    let mut config: flow_executors::slurm::SlurmConfig = serde_json::from_value(block)
        .map_err(|e| anyhow::anyhow!("machine {}: slurm settings: {e}", campaign.machine.name))?;
    let setup = &campaign.machine.setup;
    config.modules.extend(setup.modules.iter().cloned());
    config.setup.extend(setup.commands.iter().cloned());
    for (k, v) in &setup.env {
        config.env.insert(k.clone(), v.clone());
    }
    if let Some(t) = &campaign.machine.slurm.template {
        config.template = Some(campaign.base_dir().join(t));
    }
    let paths = flow_executors::slurm::SlurmPaths {
        logs_dir: campaign.campaign_dir.join("logs"),
        flow_binary: std::env::current_exe()?,
    };
    let tag = format!("{}_{}", campaign.version, campaign.name);
    Ok(flow_executors::slurm::SlurmExecutor::new(
        tag, config, paths,
    )?)
}

/// The Slurm executor for this plan.
pub fn slurm_executor(plan: &Plan) -> Result<Box<dyn Executor>> {
    Ok(Box::new(slurm_executor_for(plan)?))
}

/// The machine's `kubernetes:` block, with the machine named in the error.
pub fn kubernetes_config(
    plan: &Plan,
) -> Result<flow_executors::kubernetes::KubernetesConfig, String> {
    let campaign = plan.campaign;
    if campaign.machine.kubernetes.is_null() {
        return Err(format!(
            "machine {} has no `kubernetes:` block: the kubernetes executor needs at least `namespace` and `image` (see `flow recipes show generic-k8s`)",
            campaign.machine.name
        ));
    }
    flow_executors::kubernetes::KubernetesConfig::from_json(&campaign.machine.kubernetes).map_err(
        |e| {
            format!(
                "machine {}: kubernetes settings: {e}",
                campaign.machine.name
            )
        },
    )
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
    let config = kubernetes_config(plan).map_err(|e| anyhow::anyhow!(e))?;
    let layout = Layout::new(&campaign.campaign_dir);
    let settings = flow_executors::kubernetes::KubernetesSettings {
        campaign_tag: format!("{}_{}", campaign.version, campaign.name),
        config,
        manifest_dir: kubernetes_manifest_dir(&layout),
        step_job_types: campaign
            .steps
            .iter()
            .map(|s| (s.name.clone(), s.resources.job_type.clone()))
            .collect(),
    };
    Ok(flow_executors::kubernetes::KubernetesExecutor::connect(
        settings,
    )?)
}
