//! Source files and positions: every value a user wrote remembers where it came from.

use std::fmt;
use std::sync::{Arc, OnceLock};

/// A file flow read (a campaign, a machine recipe), kept for rendering errors.
#[derive(Debug)]
pub struct SourceFile {
    /// The name shown to users: the path as given, or `recipe:machines/della.yaml` for
    /// recipes embedded in the binary.
    pub name: String,
    pub text: String,
    /// Where each line starts, found the first time a line is asked for (errors quote the
    /// line they point at; a file may have millions).
    line_starts: OnceLock<Vec<u32>>,
}

impl SourceFile {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Arc<SourceFile> {
        Arc::new(SourceFile {
            name: name.into(),
            text: text.into(),
            line_starts: OnceLock::new(),
        })
    }

    /// The text of 1-based line `line`, without its newline (as `str::lines` splits).
    pub fn line_text(&self, line: usize) -> Option<&str> {
        if line == 0 {
            return None;
        }
        if u32::try_from(self.text.len()).is_err() {
            return self.text.lines().nth(line - 1);
        }
        let starts = self.line_starts.get_or_init(|| {
            std::iter::once(0)
                .chain(self.text.match_indices('\n').map(|(i, _)| i as u32 + 1))
                .collect()
        });
        let start = *starts.get(line - 1)? as usize;
        if start >= self.text.len() {
            return None;
        }
        let text = match starts.get(line) {
            // Up to its `\n`, and a `\r` before it.
            Some(next) => {
                let l = &self.text[start..*next as usize - 1];
                l.strip_suffix('\r').unwrap_or(l)
            }
            None => &self.text[start..],
        };
        Some(text)
    }
}

/// A position in a source file: 1-based line and column.
#[derive(Clone)]
pub struct Span {
    pub file: Arc<SourceFile>,
    pub line: usize,
    pub col: usize,
}

impl Span {
    pub fn new(file: &Arc<SourceFile>, line: usize, col: usize) -> Span {
        Span {
            file: Arc::clone(file),
            line,
            col,
        }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.name, self.line, self.col)
    }
}

impl fmt::Debug for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl PartialEq for Span {
    fn eq(&self, other: &Span) -> bool {
        Arc::ptr_eq(&self.file, &other.file) && self.line == other.line && self.col == other.col
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_what_str_lines_gives() {
        for text in [
            "",
            "a",
            "a\n",
            "a\n\n",
            "\n",
            "a\r\nb",
            "a\r\n",
            "a\rb\n",
            "a\r",
            "\r\n\r\n",
            "é\nü\r\nx",
        ] {
            let file = SourceFile::new("t", text);
            for line in 0..6 {
                let expected = if line == 0 {
                    None
                } else {
                    text.lines().nth(line - 1)
                };
                assert_eq!(file.line_text(line), expected, "{text:?} line {line}");
            }
        }
    }
}
