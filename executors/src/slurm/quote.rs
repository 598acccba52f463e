//! Quoting of values that end up in an sbatch script: shell words for the script body and
//! `#SBATCH` option values (which sbatch parses itself, not the shell).

use std::fmt;

/// A value that cannot be written into an `#SBATCH` line safely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnquotableValue {
    pub option: String,
    pub value: String,
    pub reason: &'static str,
}

impl fmt::Display for UnquotableValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "value {:?} of #SBATCH {} cannot be written into a batch script: {}",
            self.value, self.option, self.reason
        )
    }
}

impl std::error::Error for UnquotableValue {}

/// Quote `value` as one POSIX shell word. Safe words are returned as they are; everything
/// else is wrapped in single quotes, with embedded single quotes written as `'\''`.
/// The result survives `sh`/`bash` word splitting, globbing and expansion unchanged.
pub fn shell_quote(value: &str) -> String {
    let safe = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b));
    if safe {
        return value.to_string();
    }
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('\'');
    for ch in value.chars() {
        if ch == '\'' {
            quoted.push_str("'\\''");
        } else {
            quoted.push(ch);
        }
    }
    quoted.push('\'');
    quoted
}

/// Format `value` for an `#SBATCH --option=VALUE` line. sbatch splits these lines on blanks
/// and strips double quotes, so a value with blanks or single quotes is double-quoted; values
/// with double quotes, backslashes or line breaks have no safe spelling there and are
/// refused (pass such values on the command line instead).
pub fn sbatch_value(option: &str, value: &str) -> Result<String, UnquotableValue> {
    let refuse = |reason| UnquotableValue {
        option: option.to_string(),
        value: value.to_string(),
        reason,
    };
    if value.contains(['\n', '\r', '\0']) {
        return Err(refuse("it contains a line break"));
    }
    if value.contains(['"', '\\']) {
        return Err(refuse("it contains a double quote or a backslash"));
    }
    if value.is_empty() {
        return Err(refuse("it is empty"));
    }
    if value.contains([' ', '\t', '\'', '#']) {
        Ok(format!("\"{value}\""))
    } else {
        Ok(value.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_words_stay_bare() {
        assert_eq!(shell_quote("abc-1.0/x_y"), "abc-1.0/x_y");
    }

    #[test]
    fn dangerous_words_are_single_quoted() {
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("$(rm -rf /)"), "'$(rm -rf /)'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote("*"), "'*'");
    }

    #[test]
    fn sbatch_values() {
        assert_eq!(sbatch_value("--partition", "cpu").unwrap(), "cpu");
        assert_eq!(
            sbatch_value("--output", "/a b/x.out").unwrap(),
            "\"/a b/x.out\""
        );
        assert_eq!(sbatch_value("--job-name", "it's").unwrap(), "\"it's\"");
        assert!(sbatch_value("--comment", "a\"b").is_err());
        assert!(sbatch_value("--comment", "a\nb").is_err());
        assert!(sbatch_value("--comment", "").is_err());
    }
}
