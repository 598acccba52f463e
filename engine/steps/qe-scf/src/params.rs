//! pw.x input parameters as data: which namelist a name belongs to, how a value is written
//! in Fortran namelist syntax, and the edits a recovery handler applies.
//!
//! Names are pw.x's own (`mixing_beta`, `degauss`). Common names are known and placed in
//! their namelist; any other parameter is written `namelist.name` (`system.lda_plus_u`).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

/// The parameters of one attempt: name → value (JSON scalars).
pub type Params = BTreeMap<String, Value>;

/// A pw.x namelist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Namelist {
    /// `&CONTROL`
    Control,
    /// `&SYSTEM`
    System,
    /// `&ELECTRONS`
    Electrons,
    /// Not in `pw.in`: an option on pw.x's command line (`npools` → `-nk`).
    CommandLine,
}

impl Namelist {
    /// `CONTROL`, `SYSTEM`, `ELECTRONS`.
    pub fn name(self) -> &'static str {
        match self {
            Namelist::Control => "CONTROL",
            Namelist::System => "SYSTEM",
            Namelist::Electrons => "ELECTRONS",
            Namelist::CommandLine => "command line",
        }
    }
}

const CONTROL: &[&str] = &[
    "restart_mode",
    "max_seconds",
    "disk_io",
    "verbosity",
    "iprint",
    "tprnfor",
    "tstress",
    "etot_conv_thr",
    "forc_conv_thr",
    "wf_collect",
];
const SYSTEM: &[&str] = &[
    "ecutwfc",
    "ecutrho",
    "occupations",
    "smearing",
    "degauss",
    "nbnd",
    "nspin",
    "input_dft",
    "nosym",
    "noinv",
    "tot_charge",
    "tot_magnetization",
    "vdw_corr",
    "lda_plus_u",
    "ecutfock",
    "nr1",
    "nr2",
    "nr3",
    "assume_isolated",
];
const ELECTRONS: &[&str] = &[
    "mixing_beta",
    "mixing_mode",
    "mixing_ndim",
    "diagonalization",
    "electron_maxstep",
    "conv_thr",
    "startingpot",
    "startingwfc",
    "diago_david_ndim",
    "scf_must_converge",
    "diago_full_acc",
];
/// pw.x command-line options a policy may change: `npools` is `-nk` (k-point pools).
const COMMAND_LINE: &[&str] = &["npools"];
/// Names flow sets itself and a user may not change (they define what the step is).
const RESERVED: &[&str] = &[
    "calculation",
    "prefix",
    "outdir",
    "pseudo_dir",
    "ibrav",
    "nat",
    "ntyp",
    "celldm",
];

/// A parameter name flow cannot place or will not accept.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamError {
    /// Not a known name and not `namelist.name`.
    #[error("unknown pw.x parameter `{0}`: use a known name (e.g. mixing_beta, degauss, electron_maxstep) or write it as namelist.name (control./system./electrons.)")]
    Unknown(String),
    /// A name flow sets itself.
    #[error("pw.x parameter `{0}` is set by flow and cannot be changed")]
    Reserved(String),
    /// A value that is not a string, number or boolean.
    #[error("pw.x parameter `{name}`: {message}")]
    BadValue {
        /// The parameter.
        name: String,
        /// What is wrong.
        message: String,
    },
}

/// One spelling per parameter: `electrons.mixing_beta` is `mixing_beta` (the namelist a
/// known name belongs to adds nothing), so a user's qualified value and a policy's bare one
/// are one entry and the later one wins, instead of two lines of which pw.x reads the
/// policy's. A qualified name flow does not know keeps its namelist.
pub fn canonical(key: &str) -> String {
    if let Some((_, name)) = key.split_once('.') {
        if let (Ok((qualified, _)), Ok((bare, _))) = (locate(key), locate(name)) {
            if qualified == bare {
                return name.to_string();
            }
        }
    }
    key.to_string()
}

/// The namelist and bare name of a parameter key. `starting_magnetization(1)` and the
/// like go to `&SYSTEM`.
pub fn locate(key: &str) -> Result<(Namelist, String), ParamError> {
    if let Some((nl, name)) = key.split_once('.') {
        let namelist = match nl.to_ascii_lowercase().as_str() {
            "control" => Namelist::Control,
            "system" => Namelist::System,
            "electrons" => Namelist::Electrons,
            _ => return Err(ParamError::Unknown(key.to_string())),
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_()".contains(c))
        {
            return Err(ParamError::Unknown(key.to_string()));
        }
        let bare = name.split('(').next().unwrap_or(name);
        if RESERVED.contains(&bare) {
            return Err(ParamError::Reserved(key.to_string()));
        }
        return Ok((namelist, name.to_string()));
    }
    let bare = key.split('(').next().unwrap_or(key);
    if RESERVED.contains(&bare) {
        return Err(ParamError::Reserved(key.to_string()));
    }
    let nl = if COMMAND_LINE.contains(&bare) {
        Namelist::CommandLine
    } else if CONTROL.contains(&bare) {
        Namelist::Control
    } else if SYSTEM.contains(&bare)
        || matches!(bare, "starting_magnetization" | "hubbard_u" | "Hubbard_U")
    {
        Namelist::System
    } else if ELECTRONS.contains(&bare) {
        Namelist::Electrons
    } else {
        return Err(ParamError::Unknown(key.to_string()));
    };
    Ok((nl, key.to_string()))
}

/// A value in Fortran namelist syntax: `'text'`, `.true.`, `0.3`, `1e-8`.
pub fn fortran_value(name: &str, v: &Value) -> Result<String, ParamError> {
    match v {
        Value::String(s) => {
            if s.chars().any(char::is_control) {
                return Err(ParamError::BadValue {
                    name: name.into(),
                    message: "strings cannot contain newlines or other control characters (they would end the namelist line)".into(),
                });
            }
            Ok(format!("'{}'", s.replace('\'', "''")))
        }
        Value::Bool(b) => Ok(if *b { ".true." } else { ".false." }.into()),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(i.to_string())
            } else {
                let f = n.as_f64().unwrap_or(0.0);
                if f != 0.0 && (f.abs() < 1e-3 || f.abs() >= 1e7) {
                    Ok(format!("{f:e}"))
                } else {
                    Ok(format!("{f}"))
                }
            }
        }
        _ => Err(ParamError::BadValue {
            name: name.into(),
            message: "expected a string, number or boolean".into(),
        }),
    }
}

/// How a handler changes one parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamEdit {
    /// An operation on the current value.
    Op(EditOp),
    /// Set this value.
    Set(Value),
}

/// An operation on a parameter's current value: one of `multiply`, `add`, `cycle`, or
/// only `default` (keep the current value; `default` when there is none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditOp {
    /// Multiply the current value (integers are rounded up: `nbnd`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiply: Option<f64>,
    /// Add to the current value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add: Option<f64>,
    /// Move to the next value of this list after the current one; exhausted at the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cycle: Option<Vec<Value>>,
    /// The current value when the parameter is not set and pw.x did not report it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// Upper bound of the result (`multiply`/`add`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

impl EditOp {
    /// Checks that at most one operation is given, and a `default` when none is.
    pub fn validate(&self) -> Result<(), String> {
        let n = [
            self.multiply.is_some(),
            self.add.is_some(),
            self.cycle.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if n > 1 || (n == 0 && self.default.is_none()) {
            return Err(
                "an edit needs exactly one of `multiply`, `add`, `cycle`, or only a `default`"
                    .into(),
            );
        }
        if let Some(c) = &self.cycle {
            if c.is_empty() {
                return Err("`cycle` needs at least one value".into());
            }
        }
        Ok(())
    }
}

/// The result of applying an edit.
#[derive(Debug, Clone, PartialEq)]
pub enum EditResult {
    /// The new value.
    Value(Value),
    /// A `cycle` that has no value left after the current one.
    Exhausted,
    /// An arithmetic edit with no current value, no reported value and no default.
    NoBase,
}

impl ParamEdit {
    /// Applies the edit to `current` (the parameter's value in the last attempt), falling
    /// back on `observed` (what pw.x reported, e.g. its `nbnd`) and then `default`.
    pub fn apply(&self, current: Option<&Value>, observed: Option<&Value>) -> EditResult {
        let op = match self {
            ParamEdit::Set(v) => return EditResult::Value(v.clone()),
            ParamEdit::Op(op) => op,
        };
        let base = current.or(observed).or(op.default.as_ref());
        if op.multiply.is_none() && op.add.is_none() && op.cycle.is_none() {
            // keep-or-default: the current value stays, the default fills a gap
            return base.cloned().map_or(EditResult::NoBase, EditResult::Value);
        }
        if let Some(list) = &op.cycle {
            let pos = base.and_then(|b| list.iter().position(|x| x == b));
            return match pos {
                Some(i) if i + 1 < list.len() => EditResult::Value(list[i + 1].clone()),
                Some(_) => EditResult::Exhausted,
                None => EditResult::Value(list[0].clone()),
            };
        }
        let Some(b) = base.and_then(Value::as_f64) else {
            return EditResult::NoBase;
        };
        let integer = base.is_some_and(|v| v.is_i64() || v.is_u64());
        let mut x = match (op.multiply, op.add) {
            (Some(m), _) => b * m,
            (_, Some(a)) => b + a,
            _ => b,
        };
        if let Some(max) = op.max {
            x = x.min(max);
        }
        if integer {
            EditResult::Value(Value::from(x.ceil() as i64))
        } else {
            EditResult::Value(
                serde_json::Number::from_f64(x)
                    .map(Value::Number)
                    .unwrap_or(Value::Null),
            )
        }
    }
}

impl fmt::Display for ParamEdit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamEdit::Set(v) => write!(f, "{v}"),
            ParamEdit::Op(op) => {
                if let Some(m) = op.multiply {
                    write!(f, "×{m}")?;
                } else if let Some(a) = op.add {
                    write!(f, "+{a}")?;
                } else if let Some(c) = &op.cycle {
                    let items: Vec<String> = c
                        .iter()
                        .map(|v| {
                            v.as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| v.to_string())
                        })
                        .collect();
                    write!(f, "next of [{}]", items.join(", "))?;
                } else {
                    write!(f, "kept")?;
                }
                if let Some(d) = &op.default {
                    write!(f, " (from {d} if unset)")?;
                }
                if let Some(m) = op.max {
                    write!(f, " (at most {m})")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn locate_known_and_qualified() {
        assert_eq!(locate("mixing_beta").unwrap().0, Namelist::Electrons);
        assert_eq!(locate("degauss").unwrap().0, Namelist::System);
        assert_eq!(locate("max_seconds").unwrap().0, Namelist::Control);
        assert_eq!(
            locate("system.lda_plus_u").unwrap(),
            (Namelist::System, "lda_plus_u".into())
        );
        assert_eq!(
            locate("starting_magnetization(2)").unwrap().0,
            Namelist::System
        );
        assert_eq!(locate("npools").unwrap().0, Namelist::CommandLine);
        assert!(matches!(
            locate("mixing_betta"),
            Err(ParamError::Unknown(_))
        ));
        assert!(matches!(
            locate("calculation"),
            Err(ParamError::Reserved(_))
        ));
        assert!(matches!(
            locate("control.outdir"),
            Err(ParamError::Reserved(_))
        ));
    }

    #[test]
    fn fortran_values() {
        assert_eq!(
            fortran_value("x", &json!("local-TF")).unwrap(),
            "'local-TF'"
        );
        assert_eq!(fortran_value("x", &json!("it's")).unwrap(), "'it''s'");
        assert_eq!(fortran_value("x", &json!(true)).unwrap(), ".true.");
        assert_eq!(fortran_value("x", &json!(0.3)).unwrap(), "0.3");
        assert_eq!(fortran_value("x", &json!(30)).unwrap(), "30");
        assert_eq!(fortran_value("x", &json!(1e-8)).unwrap(), "1e-8");
        assert!(fortran_value("x", &json!([1])).is_err());
    }

    #[test]
    fn edits() {
        let set: ParamEdit = serde_json::from_value(json!(0.3)).unwrap();
        assert_eq!(
            set.apply(Some(&json!(0.7)), None),
            EditResult::Value(json!(0.3))
        );
        let mul: ParamEdit = serde_json::from_value(json!({"multiply": 1.5})).unwrap();
        assert_eq!(
            mul.apply(None, Some(&json!(8))),
            EditResult::Value(json!(12))
        );
        assert_eq!(mul.apply(None, None), EditResult::NoBase);
        let dg: ParamEdit =
            serde_json::from_value(json!({"multiply": 2, "default": 0.01, "max": 0.03})).unwrap();
        assert_eq!(dg.apply(None, None), EditResult::Value(json!(0.02)));
        assert_eq!(
            dg.apply(Some(&json!(0.02)), None),
            EditResult::Value(json!(0.03))
        );
        let cyc: ParamEdit = serde_json::from_value(
            json!({"cycle": ["david", "ppcg", "paro", "cg"], "default": "david"}),
        )
        .unwrap();
        assert_eq!(cyc.apply(None, None), EditResult::Value(json!("ppcg")));
        assert_eq!(
            cyc.apply(Some(&json!("paro")), None),
            EditResult::Value(json!("cg"))
        );
        assert_eq!(cyc.apply(Some(&json!("cg")), None), EditResult::Exhausted);
        let keep: ParamEdit = serde_json::from_value(json!({"default": "mv"})).unwrap();
        assert_eq!(keep.apply(None, None), EditResult::Value(json!("mv")));
        assert_eq!(
            keep.apply(Some(&json!("gaussian")), None),
            EditResult::Value(json!("gaussian"))
        );
        assert_eq!(keep.to_string(), "kept (from \"mv\" if unset)");
        let halve: ParamEdit = serde_json::from_value(json!({"multiply": 0.5})).unwrap();
        assert_eq!(
            halve.apply(None, Some(&json!(4))),
            EditResult::Value(json!(2))
        );
        assert_eq!(
            halve.apply(Some(&json!(1)), None),
            EditResult::Value(json!(1)),
            "pools stop at 1"
        );
        assert_eq!(
            cyc.to_string(),
            "next of [david, ppcg, paro, cg] (from \"david\" if unset)"
        );
    }

    #[test]
    fn op_validation() {
        let op: EditOp = serde_json::from_value(json!({"multiply": 2, "add": 1})).unwrap();
        assert!(op.validate().is_err());
    }
}
