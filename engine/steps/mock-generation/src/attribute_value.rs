//! Attribute values read from a file, and whether they equal what the campaign expects.
//!
//! This is the pure part of attribute checking: reading happens in
//! [`crate::output_validation`], comparison here.

use crate::validation_spec::ExpectedValue;
use std::fmt;

/// A scalar (or one-element) attribute value as stored in an HDF5 file.
#[derive(Debug, Clone, PartialEq)]
pub enum StoredAttributeValue {
    /// Any signed integer type, widened.
    Integer(i64),
    /// Any unsigned integer type, widened.
    Unsigned(u64),
    /// A float, widened to `f64`; `bits` is the stored precision (32 or 64).
    Float { value: f64, bits: u8 },
    /// An HDF5 boolean (h5py's `bool` enum).
    Bool(bool),
    /// A fixed- or variable-length string.
    Text(String),
    /// A value flow does not compare (arrays, compounds, ...), described for messages.
    Unsupported(String),
}

impl StoredAttributeValue {
    /// Whether the stored value equals `expected`.
    ///
    /// Numbers compare by value, not by spelling: stored `1.0` matches expected `1`, `1.0`
    /// and the text `"1.000"` (templates render parameters as text). A stored float is
    /// compared at its stored precision, so a float32 `1.1` matches an expected `1.1`.
    /// Text compares exactly; booleans match `true`/`false` and the text `"true"`/`"false"`.
    /// NaN matches nothing; unsupported values match nothing.
    pub fn matches(&self, expected: &ExpectedValue) -> bool {
        match self {
            StoredAttributeValue::Integer(stored) => {
                expected_as_number(expected).is_some_and(|e| e.equals_integer(i128::from(*stored)))
            }
            StoredAttributeValue::Unsigned(stored) => {
                expected_as_number(expected).is_some_and(|e| e.equals_integer(i128::from(*stored)))
            }
            StoredAttributeValue::Float { value, bits } => {
                expected_as_number(expected).is_some_and(|e| e.equals_float(*value, *bits))
            }
            StoredAttributeValue::Bool(stored) => match expected {
                ExpectedValue::Bool(e) => e == stored,
                ExpectedValue::Text(text) => text.trim().parse::<bool>().ok() == Some(*stored),
                ExpectedValue::Number(_) => false,
            },
            StoredAttributeValue::Text(stored) => match expected {
                ExpectedValue::Text(text) => text == stored,
                ExpectedValue::Number(number) => {
                    number.to_string() == *stored
                        || match (stored.trim().parse::<f64>(), number.as_f64()) {
                            (Ok(s), Some(e)) => s == e,
                            _ => false,
                        }
                }
                ExpectedValue::Bool(e) => stored.trim().parse::<bool>().ok() == Some(*e),
            },
            StoredAttributeValue::Unsupported(_) => false,
        }
    }
}

impl fmt::Display for StoredAttributeValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoredAttributeValue::Integer(value) => write!(f, "{value}"),
            StoredAttributeValue::Unsigned(value) => write!(f, "{value}"),
            StoredAttributeValue::Float { value, bits: 32 } => {
                // Show the float32 the way it was written (1.1, not 1.100000023841858).
                write!(f, "{} (float32)", *value as f32)
            }
            StoredAttributeValue::Float { value, .. } => write!(f, "{value:?}"),
            StoredAttributeValue::Bool(value) => write!(f, "{value}"),
            StoredAttributeValue::Text(value) => write!(f, "{value:?}"),
            StoredAttributeValue::Unsupported(description) => f.write_str(description),
        }
    }
}

/// An expected value read as a number, keeping integers exact.
enum ExpectedNumber {
    Integer(i128),
    Float(f64),
}

impl ExpectedNumber {
    fn equals_integer(&self, stored: i128) -> bool {
        match *self {
            ExpectedNumber::Integer(e) => e == stored,
            // 7.0 matches 7; exact only where f64 represents the integer exactly.
            ExpectedNumber::Float(e) => {
                e.fract() == 0.0 && e.abs() < 9.007_199_254_740_992e15 && e as i128 == stored
            }
        }
    }

    fn equals_float(&self, stored: f64, bits: u8) -> bool {
        let expected = match *self {
            ExpectedNumber::Integer(e) => e as f64,
            ExpectedNumber::Float(e) => e,
        };
        if bits == 32 {
            (expected as f32) == (stored as f32)
        } else {
            expected == stored
        }
    }
}

fn expected_as_number(expected: &ExpectedValue) -> Option<ExpectedNumber> {
    match expected {
        ExpectedValue::Number(number) => {
            if let Some(i) = number.as_i64() {
                Some(ExpectedNumber::Integer(i128::from(i)))
            } else if let Some(u) = number.as_u64() {
                Some(ExpectedNumber::Integer(i128::from(u)))
            } else {
                number.as_f64().map(ExpectedNumber::Float)
            }
        }
        ExpectedValue::Text(text) => {
            let text = text.trim();
            if let Ok(i) = text.parse::<i128>() {
                Some(ExpectedNumber::Integer(i))
            } else {
                text.parse::<f64>().ok().map(ExpectedNumber::Float)
            }
        }
        ExpectedValue::Bool(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(json: &str) -> ExpectedValue {
        ExpectedValue::Number(serde_json::from_str(json).unwrap())
    }
    fn text(s: &str) -> ExpectedValue {
        ExpectedValue::Text(s.into())
    }

    #[test]
    fn integers_match_by_value_whatever_the_spelling() {
        let stored = StoredAttributeValue::Integer(7);
        assert!(stored.matches(&number("7")));
        assert!(stored.matches(&number("7.0")));
        assert!(stored.matches(&text("7")));
        assert!(stored.matches(&text(" 7 ")));
        assert!(!stored.matches(&number("8")));
        assert!(!stored.matches(&number("7.5")));
        assert!(!stored.matches(&text("seven")));
        assert!(!stored.matches(&ExpectedValue::Bool(true)));
        assert!(StoredAttributeValue::Unsigned(u64::MAX).matches(&number("18446744073709551615")));
        assert!(!StoredAttributeValue::Unsigned(3).matches(&number("-3")));
        assert!(StoredAttributeValue::Integer(-3).matches(&number("-3")));
    }

    #[test]
    fn floats_match_at_their_stored_precision() {
        let z = StoredAttributeValue::Float {
            value: 1.0,
            bits: 64,
        };
        assert!(z.matches(&number("1.0")));
        assert!(z.matches(&number("1")));
        assert!(z.matches(&text("1.000")));
        assert!(!z.matches(&number("1.1")));
        let z32 = StoredAttributeValue::Float {
            value: f64::from(1.1f32),
            bits: 32,
        };
        assert!(z32.matches(&number("1.1")));
        assert!(z32.matches(&text("1.100")));
        assert!(!z32.matches(&number("1.2")));
        // A float64 1.1 is not the float32 1.1 widened.
        let z64 = StoredAttributeValue::Float {
            value: 1.1,
            bits: 64,
        };
        assert!(z64.matches(&number("1.1")));
        assert!(!z64.matches(&number(&f64::from(1.1f32).to_string())));
        let nan = StoredAttributeValue::Float {
            value: f64::NAN,
            bits: 64,
        };
        assert!(!nan.matches(&text("NaN")));
    }

    #[test]
    fn text_compares_exactly_and_numbers_by_value() {
        let units = StoredAttributeValue::Text("Mpc/h".into());
        assert!(units.matches(&text("Mpc/h")));
        assert!(!units.matches(&text("Mpc")));
        assert!(!units.matches(&number("1")));
        let label = StoredAttributeValue::Text("1.000".into());
        assert!(label.matches(&number("1.0")));
        assert!(label.matches(&text("1.000")));
        assert!(!label.matches(&text("1.0")));
    }

    #[test]
    fn booleans_and_unsupported_values() {
        assert!(StoredAttributeValue::Bool(true).matches(&ExpectedValue::Bool(true)));
        assert!(StoredAttributeValue::Bool(false).matches(&text("false")));
        assert!(!StoredAttributeValue::Bool(false).matches(&ExpectedValue::Bool(true)));
        assert!(!StoredAttributeValue::Bool(true).matches(&number("1")));
        let array = StoredAttributeValue::Unsupported("an array of shape [3]".into());
        assert!(!array.matches(&text("an array of shape [3]")));
    }

    #[test]
    fn stored_values_display_as_written() {
        assert_eq!(StoredAttributeValue::Integer(7).to_string(), "7");
        assert_eq!(
            StoredAttributeValue::Float {
                value: 1.0,
                bits: 64
            }
            .to_string(),
            "1.0"
        );
        assert_eq!(
            StoredAttributeValue::Float {
                value: f64::from(1.1f32),
                bits: 32
            }
            .to_string(),
            "1.1 (float32)"
        );
        assert_eq!(StoredAttributeValue::Text("a".into()).to_string(), "\"a\"");
    }
}
