//! Model strings of md-benchmark steps (`mace-medium`, `mace-/path/w.pt`, `chgnet`): which
//! environment provides the calculator, and what model argument its `setup()` receives. Pure.

use crate::error::MlipError;

/// A model string resolved against the available environments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    /// The environment name (`mace`).
    pub environment: String,
    /// The argument passed to `setup(model, device)` (`medium`, a path, or empty).
    pub model: String,
}

/// Resolves `text` against `available` environment names.
///
/// `NAME` → (`NAME`, ""); `NAME-REST` → (`NAME`, `REST`), where `NAME` is the longest available
/// name that fits (so `mace-off-small` picks `mace-off` when both `mace` and `mace-off` exist).
/// Errors: [`MlipError::UnknownModel`] listing the available names (sorted).
pub fn parse_model_string(text: &str, available: &[String]) -> Result<ModelSpec, MlipError> {
    let text = text.trim();
    let best = available
        .iter()
        .filter(|name| {
            text == name.as_str()
                || (text.starts_with(name.as_str()) && text[name.len()..].starts_with('-'))
        })
        .max_by_key(|name| name.len());
    match best {
        Some(name) => Ok(ModelSpec {
            environment: name.clone(),
            model: text.get(name.len() + 1..).unwrap_or("").to_string(),
        }),
        None => {
            let mut names = available.to_vec();
            names.sort();
            Err(MlipError::UnknownModel {
                model: text.to_string(),
                available: names,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envs() -> Vec<String> {
        ["mace", "chgnet", "emt", "mace-off"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    fn spec(e: &str, m: &str) -> ModelSpec {
        ModelSpec {
            environment: e.into(),
            model: m.into(),
        }
    }

    #[test]
    fn the_issue_examples() {
        assert_eq!(
            parse_model_string("mace-medium", &envs()).unwrap(),
            spec("mace", "medium")
        );
        assert_eq!(
            parse_model_string("mace-/path/to/w.pt", &envs()).unwrap(),
            spec("mace", "/path/to/w.pt")
        );
        assert_eq!(
            parse_model_string("chgnet", &envs()).unwrap(),
            spec("chgnet", "")
        );
        assert_eq!(parse_model_string("emt", &envs()).unwrap(), spec("emt", ""));
    }

    #[test]
    fn longest_environment_name_wins() {
        assert_eq!(
            parse_model_string("mace-off-small", &envs()).unwrap(),
            spec("mace-off", "small")
        );
        assert_eq!(
            parse_model_string("mace-offset", &envs()).unwrap(),
            spec("mace", "offset")
        );
    }

    #[test]
    fn unknown_lists_the_available_ones() {
        let err = parse_model_string("sevennet-0", &envs()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "model `sevennet-0` names no known environment; available: chgnet, emt, mace, mace-off"
        );
        assert!(parse_model_string("macemedium", &envs()).is_err());
        assert!(parse_model_string("x", &[])
            .unwrap_err()
            .to_string()
            .contains("none"));
    }
}
