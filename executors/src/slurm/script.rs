//! Rendering of the sbatch script of one array from the handlebars template
//! (`recipes/templates/slurm-array.sbatch.hbs`, replaceable per machine). Pure: the same
//! request always gives the same script, which is what `flow plan` shows.

use super::array_indices::array_spec;
use super::job_tag::JobTag;
use super::quote::{sbatch_value, shell_quote, UnquotableValue};
use super::time_format::format_slurm_time;
use crate::launch::Resources;
use flow_dsl::machine_settings::slurm::{GpuOption, SlurmSettings};
use handlebars::Handlebars;
use serde::Serialize;
use std::path::Path;

/// The template shipped with flow.
pub const DEFAULT_TEMPLATE: &str =
    include_str!("../../../recipes/templates/slurm-array.sbatch.hbs");

/// Why a script could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    #[error(transparent)]
    Unquotable(#[from] UnquotableValue),
    #[error("environment variable name {0:?} is not a valid shell identifier")]
    BadEnvName(String),
    #[error("extra Slurm option {0:?} must start with `-`")]
    BadExtraOption(String),
    #[error("path {0:?} is not valid UTF-8")]
    NonUtf8Path(String),
    #[error("sbatch template: {0}")]
    Template(String),
}

/// Everything one batch script depends on.
#[derive(Debug, Clone)]
pub struct ScriptRequest<'a> {
    pub tag: &'a JobTag,
    pub resources: &'a Resources,
    pub config: &'a SlurmSettings,
    pub task_count: usize,
    /// `%` throttle of the array; ignored for a single job.
    pub throttle: Option<u32>,
    /// Directory of this batch: Slurm's own stdout/stderr files go there.
    pub batch_dir: &'a Path,
    pub manifest: &'a Path,
    pub flow_binary: &'a Path,
}

impl ScriptRequest<'_> {
    /// A batch of one task is a plain job; more make an array.
    pub fn is_array(&self) -> bool {
        self.task_count > 1
    }
}

fn utf8(path: &Path) -> Result<&str, ScriptError> {
    path.to_str()
        .ok_or_else(|| ScriptError::NonUtf8Path(path.display().to_string()))
}

/// The `#SBATCH` options of a batch, each formatted and quoted (`--partition=cpu`).
/// Resources override the machine's defaults for partition, account and qos.
pub fn sbatch_options(request: &ScriptRequest<'_>) -> Result<Vec<String>, ScriptError> {
    let mut options = Vec::new();
    let mut push = |option: &str, value: &str| -> Result<(), ScriptError> {
        options.push(format!("{option}={}", sbatch_value(option, value)?));
        Ok(())
    };
    let r = request.resources;
    let c = request.config;
    push("--job-name", &request.tag.job_name())?;
    push("--comment", &request.tag.to_comment())?;
    let log_name = if request.is_array() {
        "slurm-%A_%a"
    } else {
        "slurm-%j"
    };
    let dir = utf8(request.batch_dir)?;
    push("--output", &format!("{dir}/{log_name}.out"))?;
    push("--error", &format!("{dir}/{log_name}.err"))?;
    push("--chdir", dir)?;
    if request.is_array() {
        push("--array", &array_spec(request.task_count, request.throttle))?;
    }
    if let Some(p) = r.partition.as_ref().or(c.partition.as_ref()) {
        push("--partition", p)?;
    }
    if let Some(a) = r.account.as_ref().or(c.account.as_ref()) {
        push("--account", a)?;
    }
    if let Some(q) = r.qos.as_ref().or(c.qos.as_ref()) {
        push("--qos", q)?;
    }
    if let Some(constraint) = &r.constraint {
        push("--constraint", constraint)?;
    }
    if let Some(nodes) = r.nodes {
        push("--nodes", &nodes.to_string())?;
    }
    if let Some(n) = r.tasks_per_node {
        push("--ntasks-per-node", &n.to_string())?;
    }
    if r.cpus > 0 {
        push("--cpus-per-task", &r.cpus.to_string())?;
    }
    if r.gpus > 0 {
        match c.gpu_option {
            GpuOption::Gres => push("--gres", &format!("gpu:{}", r.gpus))?,
            GpuOption::GpusPerNode => push("--gpus-per-node", &r.gpus.to_string())?,
        }
    }
    if r.mem_mb > 0 {
        push("--mem", &format!("{}M", r.mem_mb))?;
    }
    if let Some(limit) = r.time_limit {
        push("--time", &format_slurm_time(limit))?;
    }
    options.push("--no-requeue".to_string());
    for extra in &r.extra {
        if !extra.starts_with('-') {
            return Err(ScriptError::BadExtraOption(extra.clone()));
        }
        match extra.split_once('=') {
            Some((option, value)) => {
                options.push(format!("{option}={}", sbatch_value(option, value)?))
            }
            None => options.push(sbatch_value(extra, extra)?),
        }
    }
    Ok(options)
}

#[derive(Serialize)]
struct EnvVar {
    name: String,
    value: String,
}

#[derive(Serialize)]
struct TemplateContext {
    campaign: String,
    step: String,
    batch_key: String,
    task_count: usize,
    sbatch_options: Vec<String>,
    modules: Vec<String>,
    setup: Vec<String>,
    env: Vec<EnvVar>,
    flow_binary: String,
    manifest: String,
}

fn comment_safe(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// Render the batch script with `template` (handlebars, strict mode, no HTML escaping).
pub fn render_script(template: &str, request: &ScriptRequest<'_>) -> Result<String, ScriptError> {
    let mut env = Vec::new();
    for (name, value) in &request.config.env {
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(ScriptError::BadEnvName(name.clone()));
        }
        env.push(EnvVar {
            name: name.clone(),
            value: shell_quote(value),
        });
    }
    let context = TemplateContext {
        campaign: comment_safe(&request.tag.campaign),
        step: comment_safe(&request.tag.step),
        batch_key: comment_safe(&request.tag.batch_key),
        task_count: request.task_count,
        sbatch_options: sbatch_options(request)?,
        modules: request
            .config
            .modules
            .iter()
            .map(|m| shell_quote(m))
            .collect(),
        setup: request.config.setup.clone(),
        env,
        flow_binary: shell_quote(utf8(request.flow_binary)?),
        manifest: shell_quote(utf8(request.manifest)?),
    };
    let mut handlebars = Handlebars::new();
    handlebars.set_strict_mode(true);
    handlebars.register_escape_fn(handlebars::no_escape);
    handlebars
        .render_template(template, &context)
        .map_err(|e| ScriptError::Template(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::path::PathBuf;
    use std::time::Duration;

    fn tag() -> JobTag {
        JobTag {
            campaign: "v1.0_mocks".into(),
            step: "mocks".into(),
            batch_key: "mocks-b0001".into(),
            manifest_hash: "abcdef0123456789".into(),
        }
    }

    fn resources() -> Resources {
        Resources {
            cpus: 8,
            gpus: 1,
            mem_mb: 32 * 1024,
            time_limit: Some(Duration::from_secs(2 * 3600)),
            nodes: Some(1),
            tasks_per_node: Some(4),
            partition: Some("gpu".into()),
            account: None,
            qos: Some("regular".into()),
            constraint: Some("gpu&hbm80g".into()),
            extra: vec!["--exclusive".into(), "--mail-user=a b@x".into()],
        }
    }

    fn config() -> SlurmSettings {
        SlurmSettings {
            account: Some("m4943".into()),
            modules: vec!["gcc/12".into(), "python 3.11".into()],
            setup: vec!["source /opt/site/env.sh".into()],
            env: BTreeMap::from([
                ("OMP_NUM_THREADS".into(), "8".into()),
                ("LABEL".into(), "it's $(x)".into()),
            ]),
            ..SlurmSettings::default()
        }
    }

    #[test]
    fn renders_the_default_template() {
        let (tag, resources, config) = (tag(), resources(), config());
        let dir = PathBuf::from("/scratch/camp aign/logs/mocks/mocks-b0001");
        let manifest = dir.join("manifest-abcdef0123456789.jsonl");
        let request = ScriptRequest {
            tag: &tag,
            resources: &resources,
            config: &config,
            task_count: 1000,
            throttle: Some(200),
            batch_dir: &dir,
            manifest: &manifest,
            flow_binary: Path::new("/opt/flow/bin/flow"),
        };
        let script = render_script(DEFAULT_TEMPLATE, &request).unwrap();
        let expected = "#!/bin/bash
# flow campaign v1.0_mocks, step mocks, batch mocks-b0001: 1000 task(s)
#SBATCH --job-name=v1.0_mocks.mocks-b0001
#SBATCH --comment=flow1:v1.0_mocks:mocks:mocks-b0001:abcdef0123456789
#SBATCH --output=\"/scratch/camp aign/logs/mocks/mocks-b0001/slurm-%A_%a.out\"
#SBATCH --error=\"/scratch/camp aign/logs/mocks/mocks-b0001/slurm-%A_%a.err\"
#SBATCH --chdir=\"/scratch/camp aign/logs/mocks/mocks-b0001\"
#SBATCH --array=0-999%200
#SBATCH --partition=gpu
#SBATCH --account=m4943
#SBATCH --qos=regular
#SBATCH --constraint=gpu&hbm80g
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=4
#SBATCH --cpus-per-task=8
#SBATCH --gres=gpu:1
#SBATCH --mem=32768M
#SBATCH --time=02:00:00
#SBATCH --no-requeue
#SBATCH --exclusive
#SBATCH --mail-user=\"a b@x\"
set -eo pipefail
module load gcc/12
module load 'python 3.11'
source /opt/site/env.sh
export LABEL='it'\\''s $(x)'
export OMP_NUM_THREADS=8
exec /opt/flow/bin/flow task run-manifest '/scratch/camp aign/logs/mocks/mocks-b0001/manifest-abcdef0123456789.jsonl' \"${SLURM_ARRAY_TASK_ID:-0}\"
";
        assert_eq!(script, expected);
    }

    #[test]
    fn single_task_is_a_plain_job() {
        let (tag, config) = (tag(), SlurmSettings::default());
        let resources = Resources::default();
        let dir = PathBuf::from("/c/logs/s/b");
        let request = ScriptRequest {
            tag: &tag,
            resources: &resources,
            config: &config,
            task_count: 1,
            throttle: Some(3),
            batch_dir: &dir,
            manifest: &dir.join("m.jsonl"),
            flow_binary: Path::new("flow"),
        };
        let options = sbatch_options(&request).unwrap();
        assert!(options.iter().all(|o| !o.starts_with("--array")));
        assert!(options.contains(&"--output=/c/logs/s/b/slurm-%j.out".to_string()));
        assert!(options.contains(&"--no-requeue".to_string()));
    }

    #[test]
    fn refuses_what_cannot_be_quoted() {
        let (tag, config) = (tag(), SlurmSettings::default());
        let resources = Resources {
            partition: Some("a\"b".into()),
            ..Resources::default()
        };
        let dir = PathBuf::from("/c");
        let request = ScriptRequest {
            tag: &tag,
            resources: &resources,
            config: &config,
            task_count: 2,
            throttle: None,
            batch_dir: &dir,
            manifest: &dir,
            flow_binary: Path::new("flow"),
        };
        assert!(matches!(
            render_script(DEFAULT_TEMPLATE, &request),
            Err(ScriptError::Unquotable(_))
        ));
        let mut config = SlurmSettings::default();
        config.env.insert("BAD NAME".into(), "x".into());
        let resources = Resources::default();
        let request = ScriptRequest {
            config: &config,
            resources: &resources,
            ..request
        };
        assert!(matches!(
            render_script(DEFAULT_TEMPLATE, &request),
            Err(ScriptError::BadEnvName(_))
        ));
    }

    #[test]
    fn strict_mode_rejects_unknown_variables() {
        let (tag, config, resources) = (tag(), SlurmSettings::default(), Resources::default());
        let dir = PathBuf::from("/c");
        let request = ScriptRequest {
            tag: &tag,
            resources: &resources,
            config: &config,
            task_count: 2,
            throttle: None,
            batch_dir: &dir,
            manifest: &dir,
            flow_binary: Path::new("flow"),
        };
        assert!(matches!(
            render_script("{{no_such_thing}}", &request),
            Err(ScriptError::Template(_))
        ));
    }
}
