//! PEP 723 inline script metadata: the `# /// script` ... `# ///` comment block at the top of
//! an environment file, whose content is TOML (`requires-python`, `dependencies`).
//!
//! Pure: works on the file's text. Follows the reference reading of PEP 723: a block starts at a
//! line that is exactly `# /// TYPE`, continues over consecutive lines that are `#` or start with
//! `# `, and ends at the *last* `# ///` line of that run. Blocks of other types are ignored.

use serde::Deserialize;
use std::ops::Range;

/// The parsed `script` block of an environment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptMetadata {
    /// The block's TOML content, comment prefixes removed (hashed into the environment id).
    pub toml: String,
    /// 1-based line of `# /// script`.
    pub start_line: usize,
    /// The `requires-python` specifier and its 1-based line, if given.
    pub requires_python: Option<(String, usize)>,
    /// The PEP 508 dependency strings, in file order.
    pub dependencies: Vec<String>,
}

/// A malformed PEP 723 block. Every variant carries the 1-based line it refers to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Pep723Error {
    /// No `script` block at all.
    #[error("no PEP 723 `# /// script` block found (an environment file declares `requires-python` and `dependencies` in one)")]
    Missing,
    /// A `# /// script` line with no closing `# ///` in its comment run.
    #[error("line {line}: the `# /// script` block is never closed by a `# ///` line")]
    Unclosed {
        /// Line of the opening `# /// script`.
        line: usize,
    },
    /// Two `script` blocks.
    #[error("line {second}: a second `# /// script` block (the first starts at line {first}); PEP 723 allows one")]
    Duplicate {
        /// Line of the first block.
        first: usize,
        /// Line of the second block.
        second: usize,
    },
    /// The block's content is not valid TOML, or has fields of the wrong type.
    #[error("line {line}: invalid TOML in the `script` block: {message}")]
    BadToml {
        /// Line in the file where the TOML error is.
        line: usize,
        /// The TOML parser's message.
        message: String,
    },
}

#[derive(Deserialize)]
struct ScriptToml {
    #[serde(rename = "requires-python")]
    requires_python: Option<toml::Spanned<String>>,
    #[serde(default)]
    dependencies: Vec<String>,
}

struct RawBlock {
    kind: String,
    start_line: usize,
    content: String,
    /// For each content line, its 1-based line number in the file.
    content_lines: Vec<usize>,
}

/// Parses the `script` block of `text`.
///
/// Errors: [`Pep723Error::Missing`] when there is none, [`Pep723Error::Unclosed`],
/// [`Pep723Error::Duplicate`], [`Pep723Error::BadToml`] (also for a non-string
/// `requires-python` or non-list `dependencies`), each with its line.
pub fn parse_script_metadata(text: &str) -> Result<ScriptMetadata, Pep723Error> {
    let mut script: Option<RawBlock> = None;
    for block in raw_blocks(text)? {
        if block.kind != "script" {
            continue;
        }
        if let Some(first) = &script {
            return Err(Pep723Error::Duplicate {
                first: first.start_line,
                second: block.start_line,
            });
        }
        script = Some(block);
    }
    let block = script.ok_or(Pep723Error::Missing)?;
    let parsed: ScriptToml = toml::from_str(&block.content).map_err(|e| Pep723Error::BadToml {
        line: line_of_span(&block, e.span()),
        message: e.message().trim().to_string(),
    })?;
    let requires_python = parsed.requires_python.map(|s| {
        let line = line_of_span(&block, Some(s.span()));
        (s.into_inner(), line)
    });
    Ok(ScriptMetadata {
        toml: block.content,
        start_line: block.start_line,
        requires_python,
        dependencies: parsed.dependencies,
    })
}

fn line_of_span(block: &RawBlock, span: Option<Range<usize>>) -> usize {
    let Some(span) = span else {
        return block.start_line;
    };
    let index = block.content[..span.start.min(block.content.len())]
        .matches('\n')
        .count();
    block
        .content_lines
        .get(index)
        .copied()
        .unwrap_or(block.start_line)
}

fn block_type(line: &str) -> Option<&str> {
    let kind = line.strip_prefix("# /// ")?;
    let valid = !kind.is_empty() && kind.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    valid.then_some(kind)
}

fn raw_blocks(text: &str) -> Result<Vec<RawBlock>, Pep723Error> {
    let lines: Vec<&str> = text.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(kind) = block_type(lines[i]) else {
            i += 1;
            continue;
        };
        // The comment run after the opening line.
        let mut end = i + 1;
        while end < lines.len() && (lines[end] == "#" || lines[end].starts_with("# ")) {
            end += 1;
        }
        let closing = (i + 1..end).rev().find(|&j| lines[j] == "# ///");
        let Some(closing) = closing else {
            return Err(Pep723Error::Unclosed { line: i + 1 });
        };
        let mut content = String::new();
        let mut content_lines = Vec::new();
        for (j, line) in lines.iter().enumerate().take(closing).skip(i + 1) {
            let stripped = line
                .strip_prefix("# ")
                .unwrap_or_else(|| line.strip_prefix('#').unwrap_or(line));
            content.push_str(stripped);
            content.push('\n');
            content_lines.push(j + 1);
        }
        blocks.push(RawBlock {
            kind: kind.to_string(),
            start_line: i + 1,
            content,
            content_lines,
        });
        i = closing + 1;
    }
    Ok(blocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
#!/usr/bin/env python
# /// script
# requires-python = \">=3.10\"
# dependencies = [
#   \"ase>=3.23\",
#   \"numpy\",
# ]
# ///
def setup(model, device):
    pass
";

    #[test]
    fn parses_requires_python_and_dependencies_with_lines() {
        let meta = parse_script_metadata(GOOD).unwrap();
        assert_eq!(meta.start_line, 2);
        assert_eq!(meta.requires_python, Some((">=3.10".to_string(), 3)));
        assert_eq!(meta.dependencies, vec!["ase>=3.23", "numpy"]);
        assert!(meta.toml.starts_with("requires-python"));
    }

    #[test]
    fn empty_comment_lines_and_other_block_types_are_accepted() {
        let text = "# /// other\n# x = 1\n# ///\n\n# /// script\n#\n# dependencies = []\n# ///\n";
        let meta = parse_script_metadata(text).unwrap();
        assert_eq!(meta.start_line, 5);
        assert!(meta.dependencies.is_empty());
        assert_eq!(meta.requires_python, None);
    }

    #[test]
    fn the_last_closing_line_of_the_run_ends_the_block() {
        // As in PEP 723's reference regex, an inner `# ///` is content (here invalid TOML):
        // the block did not stop at line 3.
        let text = "# /// script\n# dependencies = []\n# ///\n# note = 1\n# ///\nx = 1\n";
        assert!(matches!(
            parse_script_metadata(text),
            Err(Pep723Error::BadToml { line: 3, .. })
        ));
        let text = "# /// script\n# dependencies = []\n# note = \"# ///\"\n# ///\nx = 1\n";
        assert!(parse_script_metadata(text).unwrap().toml.contains("note"));
    }

    #[test]
    fn unclosed_block_is_located() {
        let text = "import os\n# /// script\n# dependencies = []\nx = 1\n# ///\n";
        assert_eq!(
            parse_script_metadata(text),
            Err(Pep723Error::Unclosed { line: 2 })
        );
        let msg = parse_script_metadata(text).unwrap_err().to_string();
        assert!(msg.starts_with("line 2:"), "{msg}");
    }

    #[test]
    fn two_script_blocks_are_located() {
        let text = "# /// script\n# dependencies = []\n# ///\n\n# /// script\n# dependencies = []\n# ///\n";
        assert_eq!(
            parse_script_metadata(text),
            Err(Pep723Error::Duplicate {
                first: 1,
                second: 5
            })
        );
    }

    #[test]
    fn bad_toml_is_located_on_the_file_line() {
        let text = "# comment\n# /// script\n# requires-python = \">=3.10\"\n# dependencies = [\"ase\"\n# ///\n";
        match parse_script_metadata(text) {
            Err(Pep723Error::BadToml { line, .. }) => {
                assert!((4..=5).contains(&line), "line {line}")
            }
            other => panic!("expected BadToml, got {other:?}"),
        }
        let wrong_type = "# /// script\n# requires-python = 3\n# ///\n";
        match parse_script_metadata(wrong_type) {
            Err(Pep723Error::BadToml { line, .. }) => assert_eq!(line, 2),
            other => panic!("expected BadToml, got {other:?}"),
        }
    }

    #[test]
    fn missing_block_is_an_error() {
        assert_eq!(parse_script_metadata("x = 1\n"), Err(Pep723Error::Missing));
    }
}
