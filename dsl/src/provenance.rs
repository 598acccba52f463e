//! Where a resolved setting came from, for `flow plan --explain`.

use crate::source::Span;

/// One resolved setting and where it came from (for `flow plan --explain`).
#[derive(Debug, Clone, PartialEq)]
pub struct Provenance {
    pub path: String,
    pub value: String,
    /// None: a built-in default (`machine_settings::BUILTIN_DEFAULTS`), shown as "built-in".
    pub span: Option<Span>,
}
