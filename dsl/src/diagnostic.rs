//! Located, human errors: `file:line:col: field.path: what is wrong (expected ...)`.

use crate::source::Span;
use std::fmt;

/// One problem in the user's input.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    /// Where the problem is; `None` only when no file is involved (e.g. a missing file).
    pub span: Option<Span>,
    /// Dotted path of the field (`steps.mocks.execution.max_retries`), empty at the root.
    pub field: String,
    pub message: String,
    pub expected: Option<String>,
    /// A hint such as "did you mean `command`?".
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn new(span: Option<Span>, field: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            span,
            field: field.into(),
            message: message.into(),
            expected: None,
            help: None,
        }
    }

    pub fn at(span: &Span, field: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic::new(Some(span.clone()), field, message)
    }

    pub fn expected(mut self, expected: impl Into<String>) -> Self {
        self.expected = Some(expected.into());
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// The first line: `file:line:col: field: message (expected ...)`.
    pub fn headline(&self) -> String {
        let mut out = String::new();
        if let Some(span) = &self.span {
            out.push_str(&format!("{span}: "));
        }
        if !self.field.is_empty() {
            out.push_str(&self.field);
            out.push_str(": ");
        }
        out.push_str(&self.message);
        if let Some(expected) = &self.expected {
            out.push_str(&format!(" (expected {expected})"));
        }
        out
    }
}

/// Characters of the offending line an error shows.
const SHOWN_CHARS: usize = 200;

impl fmt::Display for Diagnostic {
    /// The headline, the offending source line with a caret, and the hint.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "error: {}", self.headline())?;
        if let Some(span) = &self.span {
            if let Some(line) = span.file.line_text(span.line) {
                let number = span.line.to_string();
                let pad = " ".repeat(number.len());
                // A long line (a list on one line) is shown around the column it points at.
                let col = span.col.saturating_sub(1);
                let (shown, caret_col) = if col < SHOWN_CHARS {
                    let shown: String = line.chars().take(SHOWN_CHARS).collect();
                    let caret = col.min(shown.chars().count());
                    (shown, caret)
                } else {
                    let start = col - SHOWN_CHARS / 2;
                    let mut shown: String = "...".to_string();
                    shown.extend(line.chars().skip(start).take(SHOWN_CHARS));
                    if line.chars().nth(start + SHOWN_CHARS).is_some() {
                        shown.push_str("...");
                    }
                    (shown, 3 + SHOWN_CHARS / 2)
                };
                writeln!(f, "{pad} |")?;
                writeln!(f, "{number} | {shown}")?;
                let lead: String = shown
                    .chars()
                    .take(caret_col)
                    .map(|c| if c == '\t' { '\t' } else { ' ' })
                    .collect();
                writeln!(f, "{pad} | {lead}^")?;
            }
        }
        if let Some(help) = &self.help {
            writeln!(f, "  = help: {help}")?;
        }
        Ok(())
    }
}

/// All problems found in one pass (flow reports every error, not only the first).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }
    /// Ok(()) when empty, Err(self) otherwise.
    pub fn into_result(self) -> Result<(), Diagnostics> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Diagnostics(vec![d])
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            write!(f, "{d}")?;
        }
        let n = self.0.len();
        write!(f, "{n} error{}", if n == 1 { "" } else { "s" })
    }
}

impl std::error::Error for Diagnostics {}

/// The closest candidate to `word` by edit distance, when close enough to be a likely typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        let score = strsim::jaro_winkler(word, c);
        if score > 0.8 && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| c.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_line_is_shown_around_the_column() {
        let line: String = (0..2000).map(|i| format!("{i}, ")).collect();
        let file = crate::source::SourceFile::new("c.yaml", format!("x: [{line}]\n"));
        let col = 4 + line.find("1500,").unwrap() + 1;
        let d = Diagnostic::at(&Span::new(&file, 1, col), "x[1500]", "bad");
        let text = d.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[2].starts_with("1 | ...") && lines[2].ends_with("..."),
            "{text}"
        );
        let caret = lines[3].find('^').unwrap();
        assert_eq!(&lines[2][caret..caret + 5], "1500,", "{text}");
        // A short line, or a column within the first 200 characters, shows the line's start.
        let d = Diagnostic::at(&Span::new(&file, 1, 5), "x[0]", "bad");
        let text = d.to_string();
        assert_eq!(
            text.lines().nth(2).unwrap().chars().count(),
            4 + 200,
            "{text}"
        );
        assert_eq!(
            text.lines().nth(3).unwrap(),
            format!("  | {}^", " ".repeat(4))
        );
    }

    #[test]
    fn suggests_close_words_only() {
        assert_eq!(
            did_you_mean("comand", ["command", "needs"]).as_deref(),
            Some("command")
        );
        assert_eq!(
            did_you_mean("qe_scf", ["qe-scf", "command"]).as_deref(),
            Some("qe-scf")
        );
        assert_eq!(did_you_mean("zzz", ["command", "needs"]), None);
    }
}
