//! Per-task rendering of command and output templates (at run time, one task at a time:
//! `flow plan` never renders all 40,000 commands).

use crate::compile::{Plan, PlannedTask};
use flow_dsl::load::is_confined;
use flow_dsl::model::StepKind;
use flow_dsl::template::{render, TemplateKind};

/// A task's command and output, rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedTask {
    /// The shell command (every interpolated value quoted).
    pub command: String,
    /// Final output path, relative to the campaign directory.
    pub output: Option<String>,
    /// Where the command writes (`{{output}}`): for mock-generation a temporary name in the
    /// output's directory, renamed after validation; otherwise the final path.
    pub output_tmp: Option<String>,
}

/// The template variables of a task.
pub fn template_data(
    plan: &Plan,
    step_index: usize,
    task: &PlannedTask,
) -> serde_json::Map<String, serde_json::Value> {
    let step = &plan.campaign.steps[step_index];
    let mut data = serde_json::Map::new();
    data.insert("task_id".into(), task.id.clone().into());
    data.insert("seed".into(), task.seed.into());
    data.insert("index".into(), task.index.into());
    data.insert("step".into(), step.name.clone().into());
    data.insert(
        "campaign_dir".into(),
        plan.campaign.campaign_dir.display().to_string().into(),
    );
    data.insert(
        "base_dir".into(),
        plan.campaign.base_dir().display().to_string().into(),
    );
    for (k, v) in &task.params {
        data.insert(k.clone(), v.to_json());
    }
    data
}

/// A task's output: (final path, where the command writes), both relative to the campaign
/// directory; `None` when the step declares no output. Renders only the output template,
/// so post-processing does not pay for the command again.
pub fn output_for(
    plan: &Plan,
    step_index: usize,
    task: &PlannedTask,
    data: &serde_json::Map<String, serde_json::Value>,
    attempt: u32,
) -> Result<Option<(String, String)>, String> {
    let step = &plan.campaign.steps[step_index];
    let Some(t) = &step.output else {
        return Ok(None);
    };
    let rendered = render(
        TemplateKind::Path,
        &t.text,
        &serde_json::Value::Object(data.clone()),
    )
    .map_err(|e| format!("{}: {e}", t.field))?;
    if !is_confined(&rendered) {
        return Err(format!(
            "{}: the output path `{rendered}` leaves the campaign directory",
            t.field
        ));
    }
    let tmp = if step.kind == StepKind::MockGeneration {
        flow_mock_generation::temporary_output_path(
            std::path::Path::new(&rendered),
            &task.id,
            attempt,
        )
        .to_string_lossy()
        .into_owned()
    } else {
        rendered.clone()
    };
    Ok(Some((rendered, tmp)))
}

/// Render a task's command and output for attempt `attempt` (temporary outputs differ per
/// attempt, so a late writer of an old attempt never clobbers a new one).
pub fn command_for(
    plan: &Plan,
    step_index: usize,
    task: &PlannedTask,
    attempt: u32,
) -> Result<RenderedTask, String> {
    let step = &plan.campaign.steps[step_index];
    let mut data = template_data(plan, step_index, task);
    let outputs = output_for(plan, step_index, task, &data, attempt)?;
    if let Some((_, tmp)) = &outputs {
        let abs = plan.campaign.campaign_dir.join(tmp);
        data.insert("output".into(), abs.display().to_string().into());
    }
    let command = match &step.command {
        Some(t) => render(
            TemplateKind::Command,
            &t.text,
            &serde_json::Value::Object(data),
        )
        .map_err(|e| format!("{}: {e}", t.field))?,
        None => String::new(),
    };
    let (output, output_tmp) = match outputs {
        Some((o, t)) => (Some(o), Some(t)),
        None => (None, None),
    };
    Ok(RenderedTask {
        command,
        output,
        output_tmp,
    })
}
