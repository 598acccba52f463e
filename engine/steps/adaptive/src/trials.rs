//! The trials table (`trials.csv` in the campaign directory): one row per trial in ask
//! order, with its parameters, state, loss and replicates.

use crate::loop_state::{AdaptiveLoop, EvalState};
use crate::space::{display_value, Space};

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The table's text. States: `complete`, `failed` (told), `running` (asked, not told).
/// `replicates_done` counts the trial's evaluations that are final.
pub fn trials_csv(space: &Space, l: &AdaptiveLoop) -> String {
    let mut out = String::from("trial,param_id");
    for (name, _) in &space.params {
        out.push(',');
        out.push_str(&csv_field(name));
    }
    out.push_str(",state,loss,replicates_done,replicates,losses\n");
    let replicates = l.config.replicates;
    for a in l.asks() {
        let told = l.tells().get(a.trial as usize);
        let done = (0..replicates)
            .filter(|r| {
                matches!(
                    l.evaluation(&(a.param_id.clone(), *r)),
                    Some(EvalState::Succeeded(_) | EvalState::Failed(_))
                )
            })
            .count();
        let (state, loss, losses) = match told {
            Some(t) => (
                t.state.as_str(),
                t.loss.map(|x| x.to_string()).unwrap_or_default(),
                t.losses
                    .iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join(";"),
            ),
            None => ("running", String::new(), String::new()),
        };
        out.push_str(&format!("{},{}", a.trial, a.param_id));
        for (name, _) in &space.params {
            out.push(',');
            out.push_str(&csv_field(
                &a.params.get(name).map(display_value).unwrap_or_default(),
            ));
        }
        out.push_str(&format!(",{state},{loss},{done},{replicates},{losses}\n"));
    }
    out
}
