//! `flow env list|warm|doctor|bootstrap`: the environments under a machine's root.

use super::common::print_json;
use super::{CommandResult, FlowError};
use crate::cli::{EnvAction, EnvTarget, OutputFormat};

fn env_root_of(target: &EnvTarget) -> Result<flow_mlip::EnvRoot, FlowError> {
    if let Some(root) = &target.root {
        return Ok(flow_mlip::EnvRoot::new(root.clone()));
    }
    let machine = flow_dsl::load::load_machine_recipe(&target.machine)?;
    crate::step_kind::build_env::env_root(None, machine.root.as_deref()).ok_or_else(|| {
        FlowError::msg(format!(
            "machine `{}` has no `root`; pass --root DIR",
            machine.name
        ))
    })
}

pub fn env(action: EnvAction) -> CommandResult {
    match action {
        EnvAction::List(t) => {
            let root = env_root_of(&t)?;
            let listing = flow_mlip::list_environments(&root);
            if t.output == OutputFormat::Json {
                let envs: Vec<serde_json::Value> = listing
                    .iter()
                    .map(|env| {
                        serde_json::json!({
                            "name": env.name,
                            "file": env.file.display().to_string(),
                            "requires_python": env.requires_python.as_ref().ok(),
                            "error": env.requires_python.as_ref().err(),
                            "dependencies": env.dependencies,
                            "builds": env.builds.iter().map(|(dir, marker)| serde_json::json!({
                                "dir": dir.display().to_string(),
                                "complete": marker.is_some(),
                            })).collect::<Vec<_>>(),
                        })
                    })
                    .collect();
                print_json(&serde_json::json!({
                    "root": root.path().display().to_string(),
                    "environments": envs,
                }));
                return Ok(0);
            }
            println!("root {}", root.path().display());
            if listing.is_empty() {
                println!(
                    "no environment files in {}/environments",
                    root.path().display()
                );
            }
            for env in listing {
                let python = env
                    .requires_python
                    .unwrap_or_else(|e| format!("unreadable: {e}"));
                println!(
                    "{:<12} requires-python {python}; {}",
                    env.name,
                    env.dependencies.join(", ")
                );
                for (dir, marker) in env.builds {
                    println!(
                        "    {} ({})",
                        dir.display(),
                        if marker.is_some() {
                            "complete"
                        } else {
                            "half-built: will be rebuilt"
                        }
                    );
                }
            }
            Ok(0)
        }
        EnvAction::Warm(t) => {
            let root = env_root_of(&t)?;
            let mut code = 0;
            for (name, result) in flow_mlip::warm_all(&root, &flow_mlip::BuildOptions::default()) {
                match result {
                    Ok(b) => println!(
                        "{name}: {:?} {} ({:.1} s)",
                        b.action,
                        b.env_dir.display(),
                        b.seconds
                    ),
                    Err(e) => {
                        eprintln!("{name}: {e}");
                        code = 1;
                    }
                }
            }
            Ok(code)
        }
        EnvAction::Doctor(t) => {
            let root = env_root_of(&t)?;
            let checks = flow_mlip::doctor(&root);
            let failed = checks
                .iter()
                .any(|c| matches!(c.status, flow_mlip::env_catalog::CheckStatus::Fail));
            match t.output {
                OutputFormat::Text => print!("{}", flow_mlip::render_doctor(&checks)),
                OutputFormat::Json => print_json(&serde_json::json!({
                    "root": root.path().display().to_string(),
                    "ok": !failed,
                    "checks": checks,
                })),
            }
            Ok(i32::from(failed))
        }
        EnvAction::Bootstrap(t) => {
            let root = env_root_of(&t)?;
            let uv = flow_mlip::bootstrap_uv(&root, "python3").map_err(FlowError::msg)?;
            println!("uv ready at {}", uv.display());
            Ok(0)
        }
    }
}
