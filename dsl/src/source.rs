//! Source files and positions: every value a user wrote remembers where it came from.

use std::fmt;
use std::sync::Arc;

/// A file flow read (a campaign, a machine recipe), kept for rendering errors.
#[derive(Debug)]
pub struct SourceFile {
    /// The name shown to users: the path as given, or `recipe:machines/della.yaml` for
    /// recipes embedded in the binary.
    pub name: String,
    pub text: String,
}

impl SourceFile {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Arc<SourceFile> {
        Arc::new(SourceFile {
            name: name.into(),
            text: text.into(),
        })
    }

    /// The text of 1-based line `line`, without its newline.
    pub fn line_text(&self, line: usize) -> Option<&str> {
        if line == 0 {
            return None;
        }
        self.text.lines().nth(line - 1)
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
