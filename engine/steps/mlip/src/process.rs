//! Running external programs (uv, python) and turning failures into [`MlipError`]s.

use std::process::{Command, Output};

use crate::error::MlipError;

/// How many trailing lines of standard error an error message quotes.
const STDERR_TAIL_LINES: usize = 25;

/// Runs `command` to completion, capturing its output. A non-zero exit becomes
/// [`MlipError::CommandFailed`] quoting the command line and the end of standard error; a
/// program that cannot start becomes [`MlipError::Launch`].
pub fn run_checked(command: &mut Command) -> Result<Output, MlipError> {
    let output = command.output().map_err(|source| MlipError::Launch {
        program: command.get_program().to_string_lossy().into_owned(),
        source,
    })?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(MlipError::CommandFailed {
            command: render_command(command),
            status: output.status.to_string(),
            stderr_tail: tail(&String::from_utf8_lossy(&output.stderr), STDERR_TAIL_LINES),
        })
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The command line as a user could paste it into a shell (arguments quoted when needed).
pub fn render_command(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|a| shell_quote(&a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Quotes `s` for a POSIX shell when it contains anything but safe characters.
pub fn shell_quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("ase>=3.23"), "'ase>=3.23'");
        assert_eq!(shell_quote("/a/b-c"), "/a/b-c");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn failures_quote_command_and_stderr() {
        let err =
            run_checked(Command::new("sh").args(["-c", "echo boom >&2; exit 3"])).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("sh -c 'echo boom >&2; exit 3'") && text.contains("boom"),
            "{text}"
        );
        let err = run_checked(&mut Command::new("/nonexistent/program")).unwrap_err();
        assert!(matches!(err, MlipError::Launch { .. }));
    }
}
