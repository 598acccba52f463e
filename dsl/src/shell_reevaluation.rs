//! Where a value interpolated into a shell command would be run as code a second time,
//! where no quoting protects it (`shell_context` refuses it there): the arguments of
//! `eval`, `ssh`, `trap`, `alias`, `source` and their like as the program (also behind
//! wrappers such as `timeout 5` or `sudo -u x`), the code operand of a shell's `-c`
//! (wherever the shell stands: `xargs sh -c`, `find -exec sh -c`, `busybox sh -c`), `su -c`
//! and its like, and what a shell reads on its standard input (`... | sh`, `sh <<EOF`).

/// Commands that run their later arguments as shell code again, wherever they stand in the
/// command (`timeout 5 ssh ...`, `find -exec ...`).
const REEVALUATING: &[&str] = &[
    "eval", "ssh", "trap", "alias", "watch", "parallel", ".", "source",
];
/// Shells: `sh -c CODE`, `sh -c -- CODE`, `bash -o pipefail -c CODE` run CODE; `sh` alone
/// (or `sh -s`) runs what it reads on standard input.
const SHELLS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ksh", "ash", "mksh", "yash", "posh", "fish", "csh", "tcsh",
];
/// Programs whose `-c CODE` (or `--command CODE`) hands CODE to a shell.
const DASH_C_RUNNERS: &[&str] = &["su", "runuser", "script", "flock"];
/// Shell options that take the next word as their argument.
const SHELL_OPTIONS_WITH_ARGUMENT: &[&str] = &["-o", "+o", "-O", "+O", "--rcfile", "--init-file"];

pub(crate) const PIPED_INTO_SHELL: &str = "a value is interpolated into a pipeline whose output a shell runs as code (`... | sh`), where no quoting can protect it; pass the value as an argument: `sh -c 'echo \"$1\"' sh {{p}}`";

/// A word as a program name: its quotes trimmed, its directory dropped (`/bin/sh` is `sh`).
fn base_name(word: &str) -> &str {
    let w = word.trim_matches(['"', '\'']);
    w.rsplit('/').next().unwrap_or(w)
}

/// Whether any word is a command that re-evaluates its later arguments.
pub(crate) fn reevaluates(words: &[String]) -> bool {
    words.iter().any(|w| REEVALUATING.contains(&base_name(w)))
}

/// Whether this command runs its standard input as shell code: a shell without `-c`
/// (`sh`, `bash -s`, `sudo bash`), or `.`/`source` of `/dev/stdin`, `-` or fd 0.
pub(crate) fn runs_stdin_as_code(words: &[String]) -> bool {
    words.iter().enumerate().any(|(k, w)| {
        let base = base_name(w);
        if SHELLS.contains(&base) {
            let rest = &words[k + 1..];
            let has_c = rest
                .iter()
                .take_while(|w| w.starts_with(['-', '+']))
                .any(|w| !w.starts_with("--") && w.contains('c'));
            let has_script = rest
                .iter()
                .map(|w| w.trim_matches(['"', '\'']))
                .find(|w| !w.starts_with(['-', '+']))
                .is_some_and(|w| {
                    !matches!(w, "/dev/stdin" | "-" | "/proc/self/fd/0" | "/dev/fd/0")
                });
            return !has_c && !has_script;
        }
        if base == "." || base == "source" {
            return words.get(k + 1).is_some_and(|a| {
                matches!(
                    a.trim_matches(['"', '\'']),
                    "/dev/stdin" | "-" | "/proc/self/fd/0" | "/dev/fd/0"
                )
            });
        }
        false
    })
}

/// Refuse a value that a command would run as shell code once more: anything after `eval`,
/// `ssh`, `trap`, `alias`, ... wherever they stand (`timeout 5 ssh`, `find -exec`), the code
/// operand of a shell's `-c` (`sh -c CODE`, `sh -c -- CODE`, `xargs bash -o pipefail -c
/// CODE`, `busybox sh -c CODE`) or an option word of a shell, and `su -c CODE`.
pub(crate) fn check_reevaluation(words: &[String], current: &str) -> Result<(), String> {
    let mut all: Vec<&str> = words.iter().map(String::as_str).collect();
    if !current.is_empty() {
        all.push(current);
    }
    // The word the value lands in.
    let at = if current.is_empty() {
        all.len()
    } else {
        all.len() - 1
    };
    let landing = all
        .get(at)
        .map(|w| w.trim_matches(['"', '\'']))
        .unwrap_or("");
    let program = command_position(&all);
    for (k, word) in all.iter().enumerate().take(at) {
        let base = base_name(word);
        let reruns = if REEVALUATING.contains(&base) {
            // Only as the program or among the wrappers before it (`timeout 5 eval`,
            // `sudo -E eval`): `find . -name {{p}}` or `grep eval {{p}}` name them as data.
            k <= program.unwrap_or(usize::MAX)
        } else if SHELLS.contains(&base) {
            shell_code_operand(&all[k + 1..at], landing)
        } else if DASH_C_RUNNERS.contains(&base) {
            let previous = all[at - 1].trim_matches(['"', '\'']);
            (k + 1 < at
                && previous.starts_with('-')
                && !previous.starts_with("--")
                && previous.contains('c'))
                || previous == "--command"
                || landing.starts_with("--command=")
                || (landing.starts_with("-c") && k + 1 == at)
        } else {
            false
        };
        if reruns {
            let safe = if SHELLS.contains(&base) {
                format!("pass it as an argument after the script and use \"$1\" there: `{base} -c 'echo \"$1\"' {base} {{{{p}}}}`")
            } else {
                "run the command directly, without it".to_string()
            };
            return Err(format!(
                "a value is interpolated into code that `{base}` runs a second time, where no quoting can protect it; {safe}"
            ));
        }
    }
    Ok(())
}

/// Programs that run the rest of their words as a command: the program a command runs is
/// the first word after them (and their options and numeric arguments).
const WRAPPERS: &[&str] = &[
    "env", "exec", "command", "builtin", "nohup", "time", "sudo", "doas", "srun", "mpirun",
    "mpiexec", "nice", "ionice", "chrt", "taskset", "numactl", "stdbuf", "setsid", "timeout",
    "xargs", "unbuffer",
];

/// The index of the word the command runs as its program: the first that is not an
/// assignment, a wrapper, an option, an option's argument (`sudo -u x`) or a number or
/// duration (`timeout 5s`, `nice -n 10`), once a wrapper was seen.
fn command_position(words: &[&str]) -> Option<usize> {
    let mut in_wrapper = false;
    let mut after_option = false;
    for (i, w) in words.iter().enumerate() {
        let w = w.trim_matches(['"', '\'']);
        let assignment = w.split_once('=').is_some_and(|(name, _)| {
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
        let number = !w.is_empty()
            && w.trim_end_matches(['s', 'm', 'h', 'd'])
                .chars()
                .all(|c| c.is_ascii_digit() || c == '.');
        let option = w.starts_with('-') && w.len() > 1;
        if assignment && !in_wrapper {
            continue;
        }
        if WRAPPERS.contains(&base_name(w)) {
            in_wrapper = true;
            after_option = false;
            continue;
        }
        if in_wrapper && (option || number || assignment || after_option) {
            after_option = option && !w.contains('=');
            continue;
        }
        return Some(i);
    }
    None
}

/// `between` are the words after a shell up to the one the value lands in (`landing`):
/// whether that word is an option (`sh -{{p}}`) or the code operand of `-c`.
fn shell_code_operand(between: &[&str], landing: &str) -> bool {
    let mut saw_c = false;
    let mut j = 0;
    while j < between.len() {
        let w = between[j].trim_matches(['"', '\'']);
        if w == "--" {
            // The next word is the first operand: is it where the value lands?
            return saw_c && j + 1 == between.len();
        }
        if !w.starts_with(['-', '+']) || w.len() < 2 {
            // An operand before the value: the script (or code), and the value is an argument.
            return false;
        }
        if !w.starts_with("--") && w.contains('c') {
            saw_c = true;
        }
        if SHELL_OPTIONS_WITH_ARGUMENT.contains(&w) {
            j += 1;
        }
        j += 1;
    }
    // The value lands in the first word after the options.
    saw_c || landing.starts_with(['-', '+'])
}
