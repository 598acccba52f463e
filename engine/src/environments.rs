//! Which built environment each step uses, and where it lives (rule: one environment root).
//!
//! A build-env step *provides* an environment (the stem of its environment file) under its
//! root (`root:` on the step, else the machine's `root`). A step that *uses* an environment
//! (`environment:` on command and mock-generation steps, the model string of md-benchmark)
//! is bound at compile time to the build-env step among its `needs` (direct or transitive)
//! that provides it, and looks in that step's root — never elsewhere. Without a provider the
//! machine's root must already hold a build of it; otherwise compile reports the step,
//! located at its `environment:` (or `model:`).
//!
//! The binding's `digest` (the environment file's content hash for a provided environment)
//! is part of the using step's task ids: an edited environment file rebuilds the environment
//! and reruns what runs in it ("environment rebuilt").

use flow_dsl::diagnostic::{Diagnostic, Diagnostics};
use flow_dsl::model::{Campaign, Step, StepKind};
use std::path::{Path, PathBuf};

/// The environment a step runs in (or, for build-env, provides).
#[derive(Debug, Clone, PartialEq)]
pub struct EnvBinding {
    /// The environment's name (`mocks`, `mace`).
    pub name: String,
    /// The root its builds live under (`{root}/envs/{name}-{hash}`), if any is known.
    pub root: Option<PathBuf>,
    /// The build-env step that provides it (index into `campaign.steps`); `None` when the
    /// machine's root already holds a build and no step in `needs` provides it.
    pub provider: Option<usize>,
    /// Content hash of the environment file (provided), or of the found build's directory
    /// name (pre-built); empty when the file cannot be read at plan time.
    pub digest: String,
}

/// The root a build-env step builds into: its own `root:`, else the machine's.
pub fn build_root(campaign: &Campaign, step: &Step) -> Option<PathBuf> {
    let own = step
        .settings
        .get("root")
        .and_then(|v| v.as_str())
        .map(|r| flow_dsl::load::expand_home(r, &campaign.base_dir()));
    own.or_else(|| machine_root(campaign))
}

/// The machine's environment root, expanded.
pub fn machine_root(campaign: &Campaign) -> Option<PathBuf> {
    campaign
        .machine
        .root
        .as_deref()
        .map(|r| flow_dsl::load::expand_home(r, Path::new(".")))
}

/// What a build-env step provides: its environment's name and file digest.
fn provided(campaign: &Campaign, step: &Step, diags: &mut Diagnostics) -> Option<EnvBinding> {
    let settings: flow_mlip::build_env::Settings =
        serde_json::from_value(step.settings.clone()).ok()?;
    let root = build_root(campaign, step);
    let base = campaign.base_dir();
    let recipes = base.join("recipes");
    let env_root = flow_mlip::EnvRoot::new(root.clone().unwrap_or_else(|| base.clone()));
    let (name, digest) =
        match flow_mlip::resolve_environment_file(&settings, &env_root, Some(&recipes), &base) {
            Ok(file) => (
                file.name.clone(),
                blake3::hash(file.text.as_bytes()).to_hex()[..16].to_string(),
            ),
            Err(e) => {
                // A file the step names that cannot be read (a device, a FIFO, missing, not
                // UTF-8) is the campaign's error now, not the build's later.
                if let flow_mlip::MlipError::Io { path, source, .. } = &e {
                    if settings.environment_is_path() {
                        let span = step.node.get("environment").map_or(&step.span, |n| &n.span);
                        diags.push(Diagnostic::at(
                            span,
                            format!("steps.{}.environment", step.name),
                            format!(
                                "cannot read the environment file {}: {source}",
                                path.display()
                            ),
                        ));
                    }
                }
                (
                    Path::new(&settings.environment)
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_else(|| settings.environment.clone()),
                    String::new(),
                )
            }
        };
    Some(EnvBinding {
        name,
        root,
        provider: None,
        digest,
    })
}

/// The environment a using step asks for, and the field that names it.
fn wanted(step: &Step, providers: &[(usize, EnvBinding)]) -> Option<(String, &'static str)> {
    match step.kind {
        StepKind::Command | StepKind::MockGeneration | StepKind::Adaptive => step
            .uses_environment
            .clone()
            .map(|name| (name, "environment")),
        StepKind::MdBenchmark => {
            let model = step.settings.get("model").and_then(|v| v.as_str())?;
            let names: Vec<String> = providers.iter().map(|(_, b)| b.name.clone()).collect();
            let name = flow_mlip::parse_model_string(model, &names)
                .map(|m| m.environment)
                // No provider: the model string's first word names the environment.
                .unwrap_or_else(|_| model.split('-').next().unwrap_or(model).to_string());
            Some((name, "model"))
        }
        _ => None,
    }
}

/// The environments of every step: the one its tasks run in (or a build-env step provides),
/// and, for adaptive steps, the one its algorithm runs in (`algorithm.environment`).
#[derive(Debug, Default)]
pub struct Bindings {
    pub tasks: Vec<Option<EnvBinding>>,
    pub algorithm: Vec<Option<EnvBinding>>,
}

/// Bind every step to its environment(s). `upstream[i]` are the direct needs of step `i`.
pub fn bind(campaign: &Campaign, upstream: &[Vec<usize>], diags: &mut Diagnostics) -> Bindings {
    let n = campaign.steps.len();
    let provided: Vec<Option<EnvBinding>> = campaign
        .steps
        .iter()
        .map(|s| {
            (s.kind == StepKind::BuildEnv)
                .then(|| provided(campaign, s, diags))
                .flatten()
        })
        .collect();
    let mut out = vec![None; n];
    let mut algorithm = vec![None; n];
    for (i, step) in campaign.steps.iter().enumerate() {
        if let Some(p) = &provided[i] {
            out[i] = Some(EnvBinding {
                provider: Some(i),
                ..p.clone()
            });
            continue;
        }
        // Providers among the needs, nearest first (breadth-first over the needs graph).
        let mut providers: Vec<(usize, EnvBinding)> = Vec::new();
        let mut seen = vec![false; n];
        let mut queue: std::collections::VecDeque<usize> = upstream[i].iter().copied().collect();
        while let Some(u) = queue.pop_front() {
            if std::mem::replace(&mut seen[u], true) {
                continue;
            }
            if let Some(p) = &provided[u] {
                providers.push((u, p.clone()));
            }
            queue.extend(upstream[u].iter().copied());
        }
        if let Some(name) = step.adaptive.as_ref().and_then(|a| a.environment.clone()) {
            algorithm[i] = resolve(campaign, step, &name, "algorithm", &providers, diags);
        }
        if let Some((name, field)) = wanted(step, &providers) {
            out[i] = resolve(campaign, step, &name, field, &providers, diags);
        }
    }
    Bindings {
        tasks: out,
        algorithm,
    }
}

/// The binding of environment `name` that `step` asks for in `field`: the nearest provider
/// among its needs, else a build in the machine's root, else a located error.
fn resolve(
    campaign: &Campaign,
    step: &Step,
    name: &str,
    field: &str,
    providers: &[(usize, EnvBinding)],
    diags: &mut Diagnostics,
) -> Option<EnvBinding> {
    let name = name.to_string();
    {
        if let Some((u, p)) = providers.iter().find(|(_, p)| p.name == name) {
            return Some(EnvBinding {
                provider: Some(*u),
                ..p.clone()
            });
        }
        let root = machine_root(campaign);
        let built = root.as_ref().and_then(|r| {
            flow_mlip::locate_built_environment(&flow_mlip::EnvRoot::new(r.clone()), &name).ok()
        });
        match built {
            Some((dir, _)) => Some(EnvBinding {
                name,
                root,
                provider: None,
                digest: dir
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            }),
            None => {
                let span = step.node.get(field).map_or(&step.span, |n| &n.span);
                let others: Vec<String> = providers
                    .iter()
                    .map(|(u, p)| format!("`{}` (step {})", p.name, campaign.steps[*u].name))
                    .collect();
                let root_text = root
                    .as_ref()
                    .map_or("the machine has no `root`".to_string(), |r| {
                        format!("the machine's root {} holds no build of it", r.display())
                    });
                diags.push(
                    Diagnostic::at(
                        span,
                        format!("steps.{}.{field}", step.name),
                        format!(
                            "environment `{name}` is provided by no build-env step in this step's `needs`{}, and {root_text}",
                            if others.is_empty() {
                                String::new()
                            } else {
                                format!(" (they provide {})", others.join(", "))
                            }
                        ),
                    )
                    .help(format!(
                        "add the build-env step that builds `{name}` to `needs`, or build it once with `flow env warm`"
                    )),
                );
                None
            }
        }
    }
}

/// The variables of environment `name` as `binding` locates it (a step's own binding, or
/// an adaptive step's algorithm binding).
pub fn variables(
    campaign: &Campaign,
    binding: Option<&EnvBinding>,
    name: &str,
) -> Result<Vec<(String, String)>, String> {
    let machine = &campaign.machine;
    let root = binding
        .and_then(|b| b.root.clone())
        .map(flow_mlip::EnvRoot::new)
        .ok_or_else(|| {
            format!(
                "environment `{name}`: neither its build-env step nor machine `{}` has a `root` for environments",
                machine.name
            )
        })?;
    let provider = binding
        .and_then(|b| b.provider)
        .map(|p| format!("its build-env step `{}`", campaign.steps[p].name))
        .unwrap_or_else(|| "the machine's root".to_string());
    let (env_dir, _) = flow_mlip::locate_built_environment(&root, name).map_err(|e| {
        format!(
            "environment `{name}` is not built under {} ({provider}): {e}",
            root.path().display()
        )
    })?;
    let inherited = std::env::var("PATH").ok();
    Ok(flow_mlip::task_environment(
        &root,
        &env_dir,
        inherited.as_deref(),
    ))
}
