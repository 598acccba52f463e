//! Context-aware quoting of values interpolated into shell text.
//!
//! A command template is rendered with every interpolated value replaced by a marker; this
//! module then lexes the result as POSIX `sh` does (quotes, backslashes, `$(...)`, backticks,
//! `${...}`, arithmetic, comments, here-documents) and writes each value in the form that
//! makes it literal data *in the place where the marker stands*:
//!
//! | context | spelling of the value |
//! |---|---|
//! | unquoted (also inside `$(...)`) | one single-quoted word, `'` as `'\''` |
//! | inside the author's `"..."` | `\` before `$`, `` ` ``, `"`, `\` |
//! | inside the author's `'...'` | `'` as `'\''` (close, escaped quote, reopen) |
//! | here-document body (`<<EOF`) | `\` before `$`, `` ` ``, `\`; no line breaks |
//! | quoted here-document (`<<'EOF'`) | as is; no line breaks |
//! | comment | as is; no line breaks |
//! | arithmetic `$((...))`, `((...))` | integers only |
//!
//! Places with no safe spelling are refused with an error that shows the safe way to write
//! the command: backticks, `${...}`, `$'...'`, a here-document delimiter, right after a
//! backslash, code that is run a second time (`crate::shell_reevaluation`: `eval`, `sh -c`,
//! a pipeline into a shell, ...), and anything after a `case` inside `$(...)` (where this
//! lexer cannot follow `)`).
//! A value holding NUL is refused everywhere (no shell can receive it).

use crate::shell_reevaluation::{
    check_reevaluation, reevaluates, runs_stdin_as_code, PIPED_INTO_SHELL,
};

/// Opens a marker; followed by the value's decimal index and [`MARK_END`].
pub const MARK_START: char = '\u{E000}';
/// Closes a marker.
pub const MARK_END: char = '\u{E001}';

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frame {
    /// Top level or the inside of `$(...)` (`subst`), with the `( )` depth of subshells.
    Code {
        subst: bool,
        parens: u32,
    },
    Double,
    Single,
    /// `$'...'` (bash ANSI-C quoting; dash reads it differently).
    DollarSingle,
    Backtick,
    /// `${...}` with its brace depth.
    Brace(u32),
    /// `$((...))` or `((...))`, with its paren depth.
    Arith(u32),
}

struct Heredoc {
    delimiter: String,
    strip_tabs: bool,
    expanding: bool,
    /// The body is read as code by the command it feeds (`sh <<EOF`, `. /dev/stdin <<EOF`,
    /// or a pipeline into a shell): no value may stand in it.
    code: bool,
}

/// Quote `value` as one unquoted shell word.
pub fn quote_word(value: &str) -> String {
    let safe = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.,/:=+@%".contains(c));
    if safe {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\'', "'\\''"))
    }
}

fn escape_double(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 4);
    for c in value.chars() {
        if matches!(c, '$' | '`' | '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn escape_heredoc(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 4);
    for c in value.chars() {
        if matches!(c, '$' | '`' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

const SAFE_WAY: &str = "write the value as a bare `{{name}}` (flow quotes it as one word), e.g. `echo value={{p}}` instead of `echo \"value=$(...)\"`";

fn no_line_breaks(value: &str, place: &str) -> Result<(), String> {
    if value.contains(['\n', '\r']) {
        Err(format!(
            "the value {} is interpolated into {place}, where a line break would end it and run the rest as commands",
            shown(value)
        ))
    } else {
        Ok(())
    }
}

/// A value as error messages show it: quoted, escaped, at most 60 characters.
fn shown(value: &str) -> String {
    let cut: String = value.chars().take(60).collect();
    let more = if cut.len() < value.len() { "..." } else { "" };
    format!("{:?}{more}", cut)
}

/// A backslash escapes the first character of whatever flow writes for the value (its
/// opening quote, or the backslash of an escape), which would undo the quoting.
const BACKSLASH_BEFORE_VALUE: &str = "a value is interpolated right after a backslash, which would escape the quoting flow writes for it; remove the backslash, or write a literal backslash inside single quotes ('\\')";

/// Replace every marker in `rendered` by `values[i]` spelled for its shell context.
/// Errors are plain sentences (the caller adds the location).
pub fn substitute(rendered: &str, values: &[String]) -> Result<String, String> {
    let chars: Vec<char> = rendered.chars().collect();
    let mut out = String::with_capacity(rendered.len() + 16);
    let mut stack = vec![Frame::Code {
        subst: false,
        parens: 0,
    }];
    // Once the lexer cannot follow the text, no later value may be interpolated.
    let mut lost: Option<&'static str> = None;
    let mut pending: Vec<Heredoc> = Vec::new();
    // Words of the current simple command so far (for `eval` / `sh -c`).
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    // The outer command's words while a `$(...)` is read.
    let mut saved: Vec<(Vec<String>, String)> = Vec::new();
    // Whether a value was interpolated in the current pipeline, and whether the command now
    // being read follows a `|` (its standard input is the pipeline's output).
    let mut pipeline_has_value = false;
    let mut after_pipe = false;
    let mut i = 0;

    macro_rules! end_word {
        () => {
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
        };
    }
    // A simple command ends (at `|`, `;`, `&`, a newline or the end): if it follows a `|` and
    // runs its input as code, no value may have been interpolated earlier in the pipeline.
    macro_rules! end_command {
        ($separator:expr) => {
            end_word!();
            if after_pipe && runs_stdin_as_code(&words) {
                if pipeline_has_value {
                    return Err(PIPED_INTO_SHELL.to_string());
                }
                for doc in pending.iter_mut() {
                    doc.code = true;
                }
            }
            after_pipe = $separator == '|';
            if $separator != '|' {
                pipeline_has_value = false;
            }
            words.clear();
        };
    }

    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let top = *stack.last().unwrap_or(&Frame::Code {
            subst: false,
            parens: 0,
        });

        if c == '\\' && next == Some(MARK_START) && !matches!(top, Frame::Single) {
            return Err(BACKSLASH_BEFORE_VALUE.to_string());
        }
        if c == MARK_START {
            let (index, after) = read_marker(&chars, i)?;
            let value = values
                .get(index)
                .ok_or_else(|| "internal: a template marker without a value".to_string())?;
            if value.contains('\0') {
                return Err(format!(
                    "the value {} contains a NUL character, which no command can receive",
                    shown(value)
                ));
            }
            if let Some(why) = lost {
                return Err(format!(
                    "a value is interpolated after {why}, where flow cannot tell how the shell will read it; {SAFE_WAY}"
                ));
            }
            pipeline_has_value = true;
            let spelled = match top {
                Frame::Code { .. } => {
                    check_reevaluation(&words, &word)?;
                    word.push('x');
                    quote_word(value)
                }
                Frame::Double => {
                    check_reevaluation(&words, &word)?;
                    word.push('x');
                    escape_double(value)
                }
                Frame::Single => {
                    check_reevaluation(&words, &word)?;
                    word.push('x');
                    value.replace('\'', "'\\''")
                }
                Frame::Arith(_) => {
                    let integer = value.strip_prefix('-').unwrap_or(value);
                    if integer.is_empty() || !integer.chars().all(|c| c.is_ascii_digit()) {
                        return Err(format!(
                            "the value {} is interpolated into shell arithmetic, which only takes integers",
                            shown(value)
                        ));
                    }
                    value.clone()
                }
                Frame::Backtick => {
                    return Err(format!(
                        "a value is interpolated inside backticks, where quoting cannot protect it; use `$(...)` instead of backticks, or {SAFE_WAY}"
                    ))
                }
                Frame::Brace(_) => {
                    return Err(format!(
                        "a value is interpolated inside `${{...}}`, where quoting cannot protect it; {SAFE_WAY}"
                    ))
                }
                Frame::DollarSingle => {
                    return Err(format!(
                        "a value is interpolated inside `$'...'`, where quoting cannot protect it; {SAFE_WAY}"
                    ))
                }
            };
            out.push_str(&spelled);
            i = after;
            continue;
        }

        match top {
            Frame::Code { subst, parens } => {
                match c {
                    '\'' => {
                        stack.push(Frame::Single);
                        word.push(c);
                    }
                    '"' => {
                        stack.push(Frame::Double);
                        word.push(c);
                    }
                    '\\' => {
                        out.push(c);
                        if let Some(n) = next {
                            out.push(n);
                            if n != '\n' {
                                word.push(n);
                            }
                        }
                        i += 2;
                        continue;
                    }
                    '`' => {
                        stack.push(Frame::Backtick);
                        word.push(c);
                    }
                    '$' if next == Some('\'') => {
                        stack.push(Frame::DollarSingle);
                        out.push_str("$'");
                        word.push_str("$'");
                        i += 2;
                        continue;
                    }
                    '$' if next == Some('(') && chars.get(i + 2) == Some(&'(') => {
                        stack.push(Frame::Arith(0));
                        out.push_str("$((");
                        word.push('$');
                        i += 3;
                        continue;
                    }
                    '$' if next == Some('(') => {
                        stack.push(Frame::Code {
                            subst: true,
                            parens: 0,
                        });
                        out.push_str("$(");
                        word.push('$');
                        saved.push((std::mem::take(&mut words), std::mem::take(&mut word)));
                        i += 2;
                        continue;
                    }
                    '$' if next == Some('{') => {
                        stack.push(Frame::Brace(0));
                        out.push_str("${");
                        word.push('$');
                        i += 2;
                        continue;
                    }
                    '(' if next == Some('(') && word.is_empty() && words.is_empty() => {
                        stack.push(Frame::Arith(0));
                        out.push_str("((");
                        i += 2;
                        continue;
                    }
                    '#' if word.is_empty() => {
                        // A comment runs to the end of the line.
                        let end = chars[i..]
                            .iter()
                            .position(|c| *c == '\n')
                            .map_or(chars.len(), |p| i + p);
                        for j in i..end {
                            if chars[j] == MARK_START {
                                let (index, _) = read_marker(&chars, j)?;
                                let value = values.get(index).cloned().unwrap_or_default();
                                no_line_breaks(&value, "a shell comment")?;
                            }
                        }
                        let mut j = i;
                        while j < end {
                            if chars[j] == MARK_START {
                                let (index, after) = read_marker(&chars, j)?;
                                out.push_str(values.get(index).map_or("", String::as_str));
                                j = after;
                            } else {
                                out.push(chars[j]);
                                j += 1;
                            }
                        }
                        i = end;
                        continue;
                    }
                    '<' if next == Some('<') && chars.get(i + 2) != Some(&'<') => {
                        let (mut heredoc, after) = read_heredoc_operator(&chars, i + 2)?;
                        out.extend(&chars[i..after]);
                        end_word!();
                        heredoc.code = runs_stdin_as_code(&words);
                        pending.push(heredoc);
                        i = after;
                        continue;
                    }
                    '(' => {
                        end_word!();
                        words.clear();
                        if let Some(Frame::Code { parens, .. }) = stack.last_mut() {
                            *parens += 1;
                        }
                    }
                    ')' => {
                        end_word!();
                        words.clear();
                        if subst && parens == 0 {
                            stack.pop();
                            if let Some((w, cur)) = saved.pop() {
                                words = w;
                                word = cur;
                            }
                        } else if let Some(Frame::Code { parens, .. }) = stack.last_mut() {
                            *parens = parens.saturating_sub(1);
                        }
                    }
                    '\n' => {
                        end_command!('\n');
                        out.push(c);
                        i += 1;
                        if !pending.is_empty() {
                            i = copy_heredocs(&chars, i, &mut pending, values, &mut out)?;
                        }
                        continue;
                    }
                    '&' if i > 0 && chars[i - 1] == '|' => {
                        // `|&` (bash): still a pipe.
                    }
                    ';' | '&' | '|' => {
                        // `|` (not `||`) joins a pipeline; anything else ends it.
                        let previous = i.checked_sub(1).map(|p| chars[p]);
                        let pipe = c == '|' && next != Some('|') && previous != Some('|');
                        end_command!(if pipe { '|' } else { ';' });
                    }
                    '<' | '>' if next == Some('(') => {
                        // Process substitution: `bash <(...)` or `source <(...)` runs the
                        // output of the inner command as code.
                        end_word!();
                        if runs_stdin_as_code(&words) || reevaluates(&words) {
                            lost = lost.or(Some("a process substitution read by a shell"));
                        }
                        words.clear();
                    }
                    ' ' | '\t' | '<' | '>' => {
                        end_word!();
                        if word_is_case(&words) && subst {
                            lost = Some("a `case` inside `$(...)`");
                        }
                    }
                    _ => word.push(c),
                }
                out.push(c);
                i += 1;
            }
            Frame::Double => {
                match c {
                    '"' => {
                        stack.pop();
                    }
                    '\\' => {
                        out.push(c);
                        if let Some(n) = next {
                            out.push(n);
                        }
                        i += 2;
                        continue;
                    }
                    '`' => stack.push(Frame::Backtick),
                    '$' if next == Some('(') && chars.get(i + 2) == Some(&'(') => {
                        stack.push(Frame::Arith(0));
                        out.push_str("$((");
                        i += 3;
                        continue;
                    }
                    '$' if next == Some('(') => {
                        stack.push(Frame::Code {
                            subst: true,
                            parens: 0,
                        });
                        out.push_str("$(");
                        saved.push((std::mem::take(&mut words), std::mem::take(&mut word)));
                        i += 2;
                        continue;
                    }
                    '$' if next == Some('{') => {
                        stack.push(Frame::Brace(0));
                        out.push_str("${");
                        i += 2;
                        continue;
                    }
                    _ => {}
                }
                word.push(c);
                out.push(c);
                i += 1;
            }
            Frame::Single => {
                if c == '\'' {
                    stack.pop();
                }
                word.push(c);
                out.push(c);
                i += 1;
            }
            Frame::DollarSingle => {
                if c == '\\' {
                    out.push(c);
                    if let Some(n) = next {
                        out.push(n);
                    }
                    i += 2;
                    continue;
                }
                if c == '\'' {
                    stack.pop();
                }
                out.push(c);
                i += 1;
            }
            Frame::Backtick => {
                if c == '\\' {
                    out.push(c);
                    if let Some(n) = next {
                        out.push(n);
                    }
                    i += 2;
                    continue;
                }
                if c == '`' {
                    stack.pop();
                }
                out.push(c);
                i += 1;
            }
            Frame::Brace(depth) => {
                match c {
                    '\\' => {
                        out.push(c);
                        if let Some(n) = next {
                            out.push(n);
                        }
                        i += 2;
                        continue;
                    }
                    '{' => {
                        if let Some(Frame::Brace(d)) = stack.last_mut() {
                            *d += 1;
                        }
                    }
                    '}' if depth == 0 => {
                        stack.pop();
                    }
                    '}' => {
                        if let Some(Frame::Brace(d)) = stack.last_mut() {
                            *d -= 1;
                        }
                    }
                    '\'' => lost = lost.or(Some("quotes inside `${...}`")),
                    '"' => stack.push(Frame::Double),
                    _ => {}
                }
                out.push(c);
                i += 1;
            }
            Frame::Arith(depth) => {
                match c {
                    '(' => {
                        if let Some(Frame::Arith(d)) = stack.last_mut() {
                            *d += 1;
                        }
                    }
                    ')' if depth == 0 && next == Some(')') => {
                        stack.pop();
                        out.push_str("))");
                        i += 2;
                        continue;
                    }
                    ')' => {
                        if let Some(Frame::Arith(d)) = stack.last_mut() {
                            *d = d.saturating_sub(1);
                        }
                    }
                    '$' | '`' | '"' | '\'' => {
                        lost = lost.or(Some("an expansion inside shell arithmetic"));
                    }
                    _ => {}
                }
                out.push(c);
                i += 1;
            }
        }
    }
    end_word!();
    if after_pipe && pipeline_has_value && runs_stdin_as_code(&words) {
        return Err(PIPED_INTO_SHELL.to_string());
    }
    if !pending.is_empty() {
        // A here-document operator on the last line: its body would be empty.
        pending.clear();
    }
    Ok(out)
}

fn word_is_case(words: &[String]) -> bool {
    words.last().is_some_and(|w| w == "case")
}

fn read_marker(chars: &[char], at: usize) -> Result<(usize, usize), String> {
    let mut j = at + 1;
    let mut index = 0usize;
    while j < chars.len() && chars[j] != MARK_END {
        index = index * 10 + chars[j].to_digit(10).unwrap_or(0) as usize;
        j += 1;
    }
    Ok((index, j + 1))
}

/// After `<<`: optional `-`, blanks, the delimiter word (quoted means no expansion).
fn read_heredoc_operator(chars: &[char], mut i: usize) -> Result<(Heredoc, usize), String> {
    let strip_tabs = chars.get(i) == Some(&'-');
    if strip_tabs {
        i += 1;
    }
    while matches!(chars.get(i), Some(' ' | '\t')) {
        i += 1;
    }
    let mut delimiter = String::new();
    let mut expanding = true;
    let mut quote: Option<char> = None;
    while let Some(&c) = chars.get(i) {
        if c == MARK_START {
            return Err(format!(
                "a value is interpolated into a here-document delimiter; write the delimiter literally (`<<EOF`), {SAFE_WAY}"
            ));
        }
        match quote {
            Some(q) if c == q => {
                quote = None;
            }
            Some(_) => delimiter.push(c),
            None => match c {
                '\'' | '"' => {
                    quote = Some(c);
                    expanding = false;
                }
                '\\' => {
                    expanding = false;
                    if let Some(&n) = chars.get(i + 1) {
                        delimiter.push(n);
                        i += 1;
                    }
                }
                ' ' | '\t' | '\n' | ';' | '&' | '|' | '<' | '>' | '(' | ')' => break,
                _ => delimiter.push(c),
            },
        }
        i += 1;
    }
    Ok((
        Heredoc {
            delimiter,
            strip_tabs,
            expanding,
            code: false,
        },
        i,
    ))
}

/// Copy the bodies of the pending here-documents, which start at `i` (after a newline).
fn copy_heredocs(
    chars: &[char],
    mut i: usize,
    pending: &mut Vec<Heredoc>,
    values: &[String],
    out: &mut String,
) -> Result<usize, String> {
    for doc in pending.drain(..) {
        loop {
            if i >= chars.len() {
                return Ok(i);
            }
            let end = chars[i..]
                .iter()
                .position(|c| *c == '\n')
                .map_or(chars.len(), |p| i + p);
            let line: String = chars[i..end].iter().collect();
            let bare = if doc.strip_tabs {
                line.trim_start_matches('\t')
            } else {
                line.as_str()
            };
            let done = bare == doc.delimiter;
            let mut j = i;
            let mut expansion_before = false;
            while j < end {
                let c = chars[j];
                if c == MARK_START {
                    let (index, after) = read_marker(chars, j)?;
                    let value = values.get(index).map_or("", String::as_str);
                    if value.contains('\0') {
                        return Err(format!(
                            "the value {} contains a NUL character, which no command can receive",
                            shown(value)
                        ));
                    }
                    if doc.code {
                        return Err(format!(
                            "a value is interpolated into a here-document that a shell runs as code, where no quoting can protect it; {SAFE_WAY}"
                        ));
                    }
                    no_line_breaks(value, "a here-document")?;
                    if doc.expanding {
                        if expansion_before {
                            return Err(format!(
                                "a value is interpolated inside an expansion in a here-document; {SAFE_WAY}"
                            ));
                        }
                        out.push_str(&escape_heredoc(value));
                    } else {
                        out.push_str(value);
                    }
                    j = after;
                    continue;
                }
                if doc.expanding && c == '\\' && chars.get(j + 1) == Some(&MARK_START) {
                    return Err(BACKSLASH_BEFORE_VALUE.to_string());
                }
                if doc.expanding && c == '\\' {
                    out.push(c);
                    if j + 1 < end {
                        out.push(chars[j + 1]);
                    }
                    j += 2;
                    continue;
                }
                if doc.expanding
                    && (c == '`' || (c == '$' && matches!(chars.get(j + 1), Some('(' | '{'))))
                {
                    expansion_before = true;
                }
                out.push(c);
                j += 1;
            }
            if end < chars.len() {
                out.push('\n');
            }
            i = (end + 1).min(chars.len());
            if done {
                break;
            }
        }
    }
    Ok(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(template: &str, value: &str) -> Result<String, String> {
        let rendered = template.replace("{}", &format!("{MARK_START}0{MARK_END}"));
        substitute(&rendered, &[value.to_string()])
    }

    #[test]
    fn every_way_to_run_a_value_a_second_time_is_refused() {
        for t in [
            "sh -c {}",
            "sh -c -- {}",
            "sh -ec {}",
            "sh -c -e {}",
            "bash -o pipefail -c {}",
            "sh -{}",
            "timeout 5 sh -c {}",
            "echo a | xargs sh -c {}",
            "find . -exec sh -c {} \\;",
            "busybox sh -c {}",
            "nice -n 5 bash -c \"{}\"",
            "sudo -u x bash -lc '{}'",
            "trap {} EXIT",
            "alias zz={}",
            "timeout 5 ssh host {}",
            "sudo -u x timeout 10s eval {}",
            "timeout -s KILL 5 trap {} EXIT",
            "sudo -E eval {}",
            "FOO=1 env BAR=2 trap {} EXIT",
            "su -c {} user",
            "su user -c {}",
            "flock /tmp/l -c {}",
            "script -q -c {} /dev/null",
            "eval \"x={}\"",
            ". /dev/stdin <<EOF\necho {}\nEOF\n",
            "sh <<EOF\necho {}\nEOF\n",
            "bash -s <<'EOF'\necho {}\nEOF\n",
            "cat <<EOF | sh\necho {}\nEOF\n",
            "echo {} | sh",
            "echo {} | tee log |& bash -s",
            "printf '%s' {} | sudo bash",
            "bash <(echo {})",
            "source <(echo {})",
            "source /dev/stdin <<< {}",
        ] {
            assert!(sub(t, "x").is_err(), "not refused: {t}");
        }
        for t in [
            "sh -c 'echo \"$1\"' sh {}",
            "bash -o pipefail -c 'echo \"$1\"' sh {}",
            "sh script.sh {}",
            "echo {} | grep x",
            "echo {} || sh -c 'true'",
            "echo {}; echo a | sh",
            "cat <<EOF | grep x\n{}\nEOF\n",
            "python run.py {} | tee log",
            "sh -c 'echo hi' && echo {}",
            "find . -name {}",
            "grep eval {}",
            "ls -la . {}",
            "echo source {}",
            "cp {} .",
        ] {
            assert!(sub(t, "x").is_ok(), "refused: {t}: {:?}", sub(t, "x"));
        }
    }

    #[test]
    fn a_backslash_before_a_value_is_refused() {
        for t in ["echo \\{}", "echo \"\\{}\"", "cat <<EOF\n\\{}\nEOF\n"] {
            assert!(sub(t, "a b").unwrap_err().contains("backslash"), "{t}");
        }
        assert_eq!(sub("echo '\\{}'", "a b").unwrap(), "echo '\\a b'");
        assert_eq!(sub("echo \\\\{}", "a").unwrap(), "echo \\\\a");
    }

    #[test]
    fn each_context_has_its_spelling() {
        let v = "a'b\"c$d`e\\f";
        assert_eq!(sub("echo {}", v).unwrap(), "echo 'a'\\''b\"c$d`e\\f'");
        assert_eq!(
            sub("echo \"x={}\"", v).unwrap(),
            "echo \"x=a'b\\\"c\\$d\\`e\\\\f\""
        );
        assert_eq!(sub("echo 'x={}'", v).unwrap(), "echo 'x=a'\\''b\"c$d`e\\f'");
        assert_eq!(
            sub("cat <<EOF\n{}\nEOF\n", v).unwrap(),
            "cat <<EOF\na'b\"c\\$d\\`e\\\\f\nEOF\n"
        );
        assert_eq!(
            sub("cat <<'EOF'\n{}\nEOF\n", v).unwrap(),
            "cat <<'EOF'\na'b\"c$d`e\\f\nEOF\n"
        );
        assert_eq!(sub("echo $(echo {})", "x y").unwrap(), "echo $(echo 'x y')");
        assert_eq!(
            sub("echo \"$(echo \"{}\")\"", "$(x)").unwrap(),
            "echo \"$(echo \"\\$(x)\")\""
        );
        assert_eq!(
            sub("echo $(( {} + 1 ))", "-3").unwrap(),
            "echo $(( -3 + 1 ))"
        );
    }

    #[test]
    fn unsafe_places_are_refused() {
        assert!(sub("echo `echo {}`", "x").is_err());
        assert!(sub("echo ${X:-{}}", "x").is_err());
        assert!(sub("echo $(( {} ))", "1; x").is_err());
        assert!(sub("cat <<EOF\n{}\nEOF\n", "a\nEOF\ntouch x").is_err());
        assert!(sub("cat <<{}\nx\n", "EOF").is_err());
        assert!(sub("echo x # {}", "a\ntouch x").is_err());
        assert!(sub("eval echo {}", "x").is_err());
        assert!(sub("sh -c \"echo {}\"", "x").is_err());
        assert!(sub("bash -lc 'echo {}'", "x").is_err());
        assert!(sub("echo {}", "a\0b").is_err());
        assert!(sub("echo $(case x in a) echo;; esac) {}", "x").is_err());
        // Not a shell: `sh script.sh {}` passes an argument.
        assert!(sub("sh script.sh {}", "x").is_ok());
        assert!(sub("a=1 sh -c 'echo \"$1\"' _ {}", "x").is_ok());
    }
}
