//! `flow init --machine M -o FILE`: a starter campaign for a machine recipe.

use super::{CommandResult, FlowError};
use flow_dsl::recipes;
use std::path::Path;

pub fn init(machine: &str, output: &Path) -> CommandResult {
    let Some(found) = recipes::find_machine(machine, std::env::current_dir().ok().as_deref())
    else {
        let names = recipes::machine_names(None);
        return Err(FlowError::msg(format!(
            "no machine recipe named `{machine}` (known: {})",
            names.join(", ")
        )));
    };
    if output.exists() {
        return Err(FlowError::msg(format!(
            "{} already exists; choose another name with -o",
            output.display()
        )));
    }
    let template = r#"# yaml-language-server: $schema=https://flow.invalid/schemas/campaign.schema.json
# A starter campaign for machine `MACHINE` (SOURCE).
# `flow validate FILE` checks it, `flow plan FILE` shows what would run, `flow run FILE` runs it.
campaign:
  name: my-campaign
  version: v1.0
  machine: MACHINE
  output: campaigns          # -> campaigns/v1.0_my-campaign/

# Settings every step starts from (the machine's defaults apply underneath).
defaults:
  execution: {max_retries: 2, retry_backoff: {initial: 30s, multiplier: 2}, timeout: 1h}

steps:
  # An array: one task per realization x redshift; values are shell-quoted in commands.
  hello:
    kind: command
    array: {realization: {range: [0, 4]}, redshift: [1.0, 0.5]}
    command: echo realization {{realization}} at z={{fixed redshift 3}} seed {{seed}} > {{output}}
    output: hello/r{{pad realization 4}}_z{{fixed redshift 3}}.txt
  # Runs once every hello task has succeeded.
  summary:
    kind: command
    needs: [hello]
    command: cat hello/*.txt | wc -l > qa/hello-count.txt
"#;
    let text = template
        .replace("MACHINE", machine)
        .replace("SOURCE", &found.source)
        .replace("FILE", &output.display().to_string());
    std::fs::write(output, text)
        .map_err(|e| FlowError::msg(format!("cannot write {}: {e}", output.display())))?;
    println!(
        "wrote {}; next: flow plan {}",
        output.display(),
        output.display()
    );
    Ok(0)
}
