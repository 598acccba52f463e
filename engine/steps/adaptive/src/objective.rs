//! Reading an evaluation's objective from its output JSON, and aggregating replicates.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::Path;

/// Diagnostics kept per evaluation (the output document without the objective key), at most.
pub const DIAGNOSTICS_LIMIT: usize = 64 * 1024;

/// Outputs larger than this are refused rather than read (an objective file is small).
pub const OUTPUT_LIMIT: u64 = 16 * 1024 * 1024;

/// How replicates' objectives combine into the trial's loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Aggregate {
    #[default]
    Mean,
    Median,
    Min,
    Max,
}

impl Aggregate {
    pub fn parse(s: &str) -> Option<Aggregate> {
        match s {
            "mean" => Some(Aggregate::Mean),
            "median" => Some(Aggregate::Median),
            "min" => Some(Aggregate::Min),
            "max" => Some(Aggregate::Max),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Aggregate::Mean => "mean",
            Aggregate::Median => "median",
            Aggregate::Min => "min",
            Aggregate::Max => "max",
        }
    }
}

/// Combine finite values; `None` for an empty list.
pub fn aggregate(values: &[f64], how: Aggregate) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    Some(match how {
        Aggregate::Mean => values.iter().sum::<f64>() / values.len() as f64,
        Aggregate::Min => values.iter().copied().fold(f64::INFINITY, f64::min),
        Aggregate::Max => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        Aggregate::Median => {
            let mut v = values.to_vec();
            v.sort_by(f64::total_cmp);
            let n = v.len();
            if n % 2 == 1 {
                v[n / 2]
            } else {
                (v[n / 2 - 1] + v[n / 2]) / 2.0
            }
        }
    })
}

/// One evaluation's objective and what else its output said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub loss: f64,
    /// The output document without the objective, when it serialises under
    /// [`DIAGNOSTICS_LIMIT`]; otherwise a note saying it was dropped.
    pub diagnostics: Value,
}

/// Read `key` (a dotted path for nested objects: `metrics.loss`) from an output JSON. The key
/// must be present and a finite number; anything else is a message for `invalid-output`.
pub fn read_objective(path: &Path, key: &str) -> Result<Evaluation, String> {
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("the output {} cannot be read: {e}", path.display()))?;
    if meta.len() > OUTPUT_LIMIT {
        return Err(format!(
            "the output {} is {} bytes, more than the {} MiB an objective file may have",
            path.display(),
            meta.len(),
            OUTPUT_LIMIT >> 20
        ));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("the output {} cannot be read: {e}", path.display()))?;
    objective_from_text(&text, key).map_err(|e| format!("the output {}: {e}", path.display()))
}

/// [`read_objective`] on a document's text.
pub fn objective_from_text(text: &str, key: &str) -> Result<Evaluation, String> {
    let mut doc: Value = serde_json::from_str(text).map_err(|e| format!("is not JSON ({e})"))?;
    let parts: Vec<&str> = key.split('.').collect();
    let value = {
        let mut cur = &doc;
        for p in &parts {
            cur = cur
                .get(p)
                .ok_or_else(|| format!("has no objective key `{key}`"))?;
        }
        cur.clone()
    };
    let loss = match &value {
        Value::Number(n) => n.as_f64().filter(|x| x.is_finite()),
        _ => None,
    }
    .ok_or_else(|| format!("objective `{key}` is {value}, not a finite number"))?;
    // Diagnostics: the rest of the document.
    let mut cur = &mut doc;
    for p in &parts[..parts.len() - 1] {
        cur = cur.get_mut(*p).expect("walked above");
    }
    if let Some(o) = cur.as_object_mut() {
        o.remove(parts[parts.len() - 1]);
    }
    let size = doc.to_string().len();
    let diagnostics = if size <= DIAGNOSTICS_LIMIT {
        doc
    } else {
        serde_json::json!({"dropped": format!("{size} bytes of diagnostics, more than the {DIAGNOSTICS_LIMIT} kept")})
    };
    Ok(Evaluation { loss, diagnostics })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_must_be_a_finite_number() {
        let e = objective_from_text(r#"{"loss": 0.5, "peak": 12}"#, "loss").unwrap();
        assert_eq!(e.loss, 0.5);
        assert_eq!(e.diagnostics, serde_json::json!({"peak": 12}));
        assert_eq!(
            objective_from_text(r#"{"m": {"loss": 2}}"#, "m.loss")
                .unwrap()
                .loss,
            2.0
        );
        for bad in [
            r#"{"los": 1}"#,
            r#"{"loss": "1"}"#,
            r#"{"loss": null}"#,
            "[1]",
            "nope",
        ] {
            assert!(objective_from_text(bad, "loss").is_err(), "{bad}");
        }
        // serde_json refuses NaN/Infinity literals: they are not JSON.
        assert!(objective_from_text(r#"{"loss": NaN}"#, "loss").is_err());
        assert!(objective_from_text(r#"{"loss": 1e999}"#, "loss").is_err());
    }

    #[test]
    fn diagnostics_are_capped() {
        let big = "x".repeat(DIAGNOSTICS_LIMIT + 10);
        let e = objective_from_text(&format!(r#"{{"loss": 1, "log": "{big}"}}"#), "loss").unwrap();
        assert!(e.diagnostics.get("dropped").is_some());
        assert!(e.diagnostics.to_string().len() < 200);
    }

    #[test]
    fn aggregates() {
        let v = [3.0, 1.0, 2.0, 10.0];
        assert_eq!(aggregate(&v, Aggregate::Mean), Some(4.0));
        assert_eq!(aggregate(&v, Aggregate::Median), Some(2.5));
        assert_eq!(aggregate(&v[..3], Aggregate::Median), Some(2.0));
        assert_eq!(aggregate(&v, Aggregate::Min), Some(1.0));
        assert_eq!(aggregate(&v, Aggregate::Max), Some(10.0));
        assert_eq!(aggregate(&[], Aggregate::Mean), None);
    }
}
