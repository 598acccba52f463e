//! JSON Schema validation of each file as the user wrote it, with errors mapped back to
//! file, line, column and field.
//!
//! The schemas live in `schemas/` (also for editors) and are embedded in the binary. Each
//! file is validated before merging, so an error points into the file that holds it.

use crate::diagnostic::{did_you_mean, Diagnostic, Diagnostics};
use crate::json_view::{YamlJson, YamlValue};
use crate::node::Node;
use jsonschema::error::ValidationErrorKind;
use jsonschema::{Registry, Validator};
use serde_json::Value as Json;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::OnceLock;

const BASE: &str = "https://flow.invalid/schemas/";

/// Every schema document, by file name under `schemas/`.
pub const SCHEMA_FILES: &[(&str, &str)] = &[
    (
        "common.schema.json",
        include_str!("../../schemas/common.schema.json"),
    ),
    (
        "machine.schema.json",
        include_str!("../../schemas/machine.schema.json"),
    ),
    (
        "campaign.schema.json",
        include_str!("../../schemas/campaign.schema.json"),
    ),
    (
        "steps/build-env.schema.json",
        include_str!("../../schemas/steps/build-env.schema.json"),
    ),
    (
        "steps/md-benchmark.schema.json",
        include_str!("../../schemas/steps/md-benchmark.schema.json"),
    ),
    (
        "steps/qe-scf.schema.json",
        include_str!("../../schemas/steps/qe-scf.schema.json"),
    ),
    (
        "steps/mock-generation.schema.json",
        include_str!("../../schemas/steps/mock-generation.schema.json"),
    ),
    (
        "steps/adaptive.schema.json",
        include_str!("../../schemas/steps/adaptive.schema.json"),
    ),
];

/// Which document a file must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKind {
    Campaign,
    Machine,
}

struct Schemas {
    docs: HashMap<String, Json>,
    campaign: Validator<YamlJson>,
    machine: Validator<YamlJson>,
}

fn schemas() -> &'static Schemas {
    static SCHEMAS: OnceLock<Schemas> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        // The schemas are part of the binary: failing to parse them is a bug in flow, caught
        // by the tests of this module, never a user error.
        let docs: HashMap<String, Json> = SCHEMA_FILES
            .iter()
            .map(|(name, text)| {
                let json: Json = serde_json::from_str(text)
                    .unwrap_or_else(|e| panic!("embedded schema {name} is not JSON: {e}"));
                (format!("{BASE}{name}"), json)
            })
            .collect();
        let registry: &'static Registry<'static> = Box::leak(Box::new(
            Registry::new()
                .extend(docs.iter().map(|(k, v)| (k.clone(), v.clone())))
                .and_then(|b| b.prepare())
                .unwrap_or_else(|e| panic!("embedded schemas do not form a registry: {e}")),
        ));
        let build = |name: &str| {
            let schema = &docs[&format!("{BASE}{name}")];
            // Documents are validated as node trees (`json_view`), never copied into JSON.
            jsonschema::options_for::<YamlJson>()
                .with_registry(registry)
                .build(schema)
                .unwrap_or_else(|e| panic!("embedded schema {name} does not compile: {e}"))
        };
        let campaign = build("campaign.schema.json");
        let machine = build("machine.schema.json");
        Schemas {
            docs,
            campaign,
            machine,
        }
    })
}

/// Validate a parsed document; every violation becomes one located diagnostic.
pub fn validate(kind: DocumentKind, root: &Node) -> Result<(), Diagnostics> {
    let s = schemas();
    let validator = match kind {
        DocumentKind::Campaign => &s.campaign,
        DocumentKind::Machine => &s.machine,
    };
    let root_doc = match kind {
        DocumentKind::Campaign => "campaign.schema.json",
        DocumentKind::Machine => "machine.schema.json",
    };
    let mut out = Diagnostics::default();
    for error in validator.iter_errors(YamlValue::Node(root)) {
        let pointer = error.instance_path().as_str().to_string();
        let node = root.locate(&pointer).unwrap_or(Cow::Borrowed(root));
        let field = pointer_to_field(&pointer);
        let eval = error.evaluation_path().as_str().to_string();
        let trail = s.walk(root_doc, &eval);
        match error.kind() {
            ValidationErrorKind::AdditionalProperties { unexpected }
            | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
                let owner = trail.iter().rev().nth(1).copied();
                let mut known = Vec::new();
                if let Some(owner) = owner {
                    s.collect_properties(owner, &node, &mut known, 0);
                }
                for name in unexpected {
                    if known.contains(name) {
                        // A field of this kind, left "unevaluated" only because another
                        // rule of the same branch failed: that failure is reported.
                        continue;
                    }
                    let span = node.key(name).map_or(&node.span, |k| &k.span);
                    let full = join_field(&field, name);
                    let mut d = Diagnostic::at(span, full, format!("unknown field `{name}`"));
                    if let Some(best) = did_you_mean(name, known.iter().map(String::as_str)) {
                        d = d.help(format!("did you mean `{best}`?"));
                    } else if !known.is_empty() && known.len() <= 12 {
                        d = d.help(format!("known fields here: {}", known.join(", ")));
                    }
                    out.push(d);
                }
            }
            ValidationErrorKind::Required { property } => {
                let name = property.as_str().unwrap_or_default();
                out.push(Diagnostic::at(
                    &node.span,
                    field.clone(),
                    format!("missing required field `{name}`"),
                ));
            }
            ValidationErrorKind::Enum { options } => {
                let choices: Vec<String> = options
                    .as_array()
                    .map(|a| a.iter().map(render_json).collect())
                    .unwrap_or_default();
                let found = node
                    .scalar_text()
                    .unwrap_or_else(|| node.type_name().to_string());
                let mut d = Diagnostic::at(
                    &node.span,
                    field.clone(),
                    format!("`{found}` is not allowed"),
                )
                .expected(format!("one of {}", choices.join(", ")));
                let bare: Vec<String> = choices
                    .iter()
                    .map(|c| c.trim_matches('"').to_string())
                    .collect();
                if let Some(best) = did_you_mean(&found, bare.iter().map(String::as_str)) {
                    d = d.help(format!("did you mean `{best}`?"));
                }
                out.push(d);
            }
            ValidationErrorKind::Type { kind } => {
                out.push(
                    Diagnostic::at(
                        &node.span,
                        field.clone(),
                        format!("found {}", node.type_name()),
                    )
                    .expected(type_words(&format!("{kind:?}"))),
                );
            }
            ValidationErrorKind::AnyOf { .. }
            | ValidationErrorKind::OneOfNotValid { .. }
            | ValidationErrorKind::Pattern { .. } => {
                let found = node
                    .scalar_text()
                    .unwrap_or_else(|| node.type_name().to_string());
                let expected = trail
                    .iter()
                    .rev()
                    .skip(1)
                    .find_map(|n| n.get("description").and_then(Json::as_str))
                    .map(first_sentence);
                let mut d = Diagnostic::at(
                    &node.span,
                    field.clone(),
                    format!("`{found}` is not valid here"),
                );
                if let Some(e) = expected {
                    d = d.expected(e);
                } else if let ValidationErrorKind::Pattern { pattern } = error.kind() {
                    d = d.expected(format!("text matching `{pattern}`"));
                }
                out.push(d);
            }
            ValidationErrorKind::PropertyNames { .. } => {
                // The validator stops at the first bad name: report every one, at its key.
                let rule = trail
                    .iter()
                    .rev()
                    .find(|n| n.get("pattern").is_some())
                    .copied();
                let pattern = rule
                    .and_then(|r| r.get("pattern"))
                    .and_then(Json::as_str)
                    .and_then(|p| regex::Regex::new(p).ok());
                let what = rule
                    .and_then(|r| r.get("description"))
                    .and_then(Json::as_str)
                    .map(first_sentence);
                let mut reported = false;
                if let (Some(re), Some(entries)) = (&pattern, node.as_map()) {
                    for (k, _) in entries {
                        if !re.is_match(&k.name) {
                            let mut d = Diagnostic::at(
                                &k.span,
                                join_field(&field, &k.name),
                                format!("`{}` is not a valid name here", k.name.escape_debug()),
                            );
                            if let Some(w) = &what {
                                d = d.expected(w.clone());
                            }
                            out.push(d);
                            reported = true;
                        }
                    }
                }
                if !reported {
                    out.push(Diagnostic::at(&node.span, field.clone(), error.to_string()));
                }
            }
            _ => {
                out.push(Diagnostic::at(&node.span, field.clone(), error.to_string()));
            }
        }
    }
    out.0
        .sort_by_key(|d| d.span.as_ref().map(|s| (s.line, s.col)));
    out.0.dedup_by(|a, b| a.headline() == b.headline());
    out.into_result()
}

impl Schemas {
    /// The schema nodes visited along an evaluation path (following `$ref`s).
    fn walk<'a>(&'a self, root_doc: &str, eval: &str) -> Vec<&'a Json> {
        let mut doc_uri = format!("{BASE}{root_doc}");
        let Some(mut node) = self.docs.get(&doc_uri) else {
            return Vec::new();
        };
        let mut trail = vec![node];
        for raw in eval.split('/').skip(1) {
            let seg = raw.replace("~1", "/").replace("~0", "~");
            let next = if seg == "$ref" {
                node.get("$ref")
                    .and_then(Json::as_str)
                    .and_then(|r| self.resolve(&mut doc_uri, r))
            } else {
                match node {
                    Json::Object(map) => map.get(&seg),
                    Json::Array(items) => seg.parse::<usize>().ok().and_then(|i| items.get(i)),
                    _ => None,
                }
            };
            match next {
                Some(n) => {
                    node = n;
                    trail.push(n);
                }
                None => break,
            }
        }
        trail
    }

    fn resolve(&self, doc_uri: &mut String, reference: &str) -> Option<&Json> {
        let (file, pointer) = reference.split_once('#').unwrap_or((reference, ""));
        if !file.is_empty() {
            let base = doc_uri.rsplit_once('/').map_or(BASE, |(b, _)| b);
            *doc_uri = format!("{base}/{file}");
        }
        self.docs.get(doc_uri.as_str())?.pointer(pointer)
    }

    /// Property names a schema node accepts for `instance` (following $ref, allOf, and the
    /// `then` of every `if` that matches the instance's discriminating constants).
    fn collect_properties(
        &self,
        schema: &Json,
        instance: &Node,
        out: &mut Vec<String>,
        depth: usize,
    ) {
        if depth > 16 {
            return;
        }
        if let Some(props) = schema.get("properties").and_then(Json::as_object) {
            for k in props.keys() {
                if !out.contains(k) {
                    out.push(k.clone());
                }
            }
        }
        if let Some(r) = schema.get("$ref").and_then(Json::as_str) {
            let mut uri = self.owner_uri(schema);
            if let Some(target) = self.resolve(&mut uri, r) {
                self.collect_properties(target, instance, out, depth + 1);
            }
        }
        for key in ["allOf", "anyOf", "oneOf"] {
            if let Some(items) = schema.get(key).and_then(Json::as_array) {
                for item in items {
                    self.collect_properties(item, instance, out, depth + 1);
                }
            }
        }
        if let (Some(cond), Some(then)) = (schema.get("if"), schema.get("then")) {
            let matches = cond
                .get("properties")
                .and_then(Json::as_object)
                .is_none_or(|props| {
                    props.iter().all(|(k, v)| match v.get("const") {
                        Some(c) => instance.get(k).is_some_and(|v| equals_const(v, c)),
                        None => true,
                    })
                });
            if matches {
                self.collect_properties(then, instance, out, depth + 1);
            }
        }
    }

    /// The document a schema node belongs to (by identity), for resolving its `$ref`.
    fn owner_uri(&self, node: &Json) -> String {
        for (uri, doc) in &self.docs {
            if contains_node(doc, node) {
                return uri.clone();
            }
        }
        format!("{BASE}campaign.schema.json")
    }
}

/// Whether a node is the JSON value `c` (a `const` of a schema), comparing collections only
/// when the constant is one.
fn equals_const(node: &Node, c: &Json) -> bool {
    if node.value.is_scalar() || c.is_array() || c.is_object() {
        node.to_json() == *c
    } else {
        false
    }
}

fn contains_node(haystack: &Json, needle: &Json) -> bool {
    if std::ptr::eq(haystack, needle) {
        return true;
    }
    match haystack {
        Json::Object(m) => m.values().any(|v| contains_node(v, needle)),
        Json::Array(a) => a.iter().any(|v| contains_node(v, needle)),
        _ => false,
    }
}

/// `/steps/mocks/execution` -> `steps.mocks.execution`.
pub fn pointer_to_field(pointer: &str) -> String {
    pointer
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect::<Vec<_>>()
        .join(".")
}

fn join_field(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}.{name}")
    }
}

fn render_json(v: &Json) -> String {
    match v {
        Json::String(s) => format!("\"{s}\""),
        other => other.to_string(),
    }
}

fn first_sentence(s: &str) -> String {
    let s = s.split(": `").next().unwrap_or(s);
    let s = s.split(". ").next().unwrap_or(s).trim_end_matches('.');
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().collect::<String>() + chars.as_str(),
        None => String::new(),
    }
}

fn type_words(debug: &str) -> String {
    let lower = debug.to_lowercase();
    let words: Vec<&str> = [
        "object", "array", "string", "integer", "number", "boolean", "null",
    ]
    .into_iter()
    .filter(|w| lower.contains(w))
    .collect();
    let named: Vec<&str> = words
        .iter()
        .map(|w| match *w {
            "object" => "a map",
            "array" => "a list",
            "string" => "a string",
            "integer" => "an integer",
            "number" => "a number",
            "boolean" => "true or false",
            _ => "null",
        })
        .collect();
    if named.is_empty() {
        debug.to_string()
    } else {
        named.join(" or ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceFile;
    use crate::yaml_loader::parse;

    fn check(text: &str) -> Vec<String> {
        let node = parse(&SourceFile::new("c.yaml", text)).unwrap();
        match validate(DocumentKind::Campaign, &node) {
            Ok(()) => vec![],
            Err(d) => {
                d.0.iter()
                    .map(|d| format!("{} | {:?}", d.headline(), d.help))
                    .collect()
            }
        }
    }

    #[test]
    fn embedded_schemas_compile() {
        let _ = schemas();
    }

    /// The same schemas, compiled for serde_json documents (how flow validated before it
    /// read node trees in place).
    fn serde_validators() -> (Validator, Validator) {
        let docs: Vec<(String, Json)> = SCHEMA_FILES
            .iter()
            .map(|(name, text)| (format!("{BASE}{name}"), serde_json::from_str(text).unwrap()))
            .collect();
        let registry: &'static Registry<'static> = Box::leak(Box::new(
            Registry::new()
                .extend(docs.clone())
                .and_then(|b| b.prepare())
                .unwrap(),
        ));
        let build = |name: &str| {
            let schema = &docs.iter().find(|(k, _)| k.ends_with(name)).unwrap().1;
            jsonschema::options()
                .with_registry(registry)
                .build(schema)
                .unwrap()
        };
        (
            build("/campaign.schema.json"),
            build("/machine.schema.json"),
        )
    }

    /// Every error of a validation, all it says (where, by which rule, what, in words).
    fn described<'i>(errors: impl Iterator<Item = jsonschema::ValidationError<'i>>) -> Vec<String> {
        errors
            .map(|e| {
                format!(
                    "{} | {} | {:?} | {}",
                    e.instance_path().as_str(),
                    e.evaluation_path().as_str(),
                    e.kind(),
                    e
                )
            })
            .collect()
    }

    #[test]
    fn validating_the_tree_in_place_says_what_validating_its_json_says() {
        let (campaign, machine) = serde_validators();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut files = Vec::new();
        for dir in [
            "examples",
            "tests/invalid",
            "tests/hostile",
            "recipes/machines",
            "tests/invalid/machines",
        ] {
            for e in std::fs::read_dir(root.join(dir)).into_iter().flatten() {
                let p = e.unwrap().path();
                if p.extension().is_some_and(|x| x == "yaml") {
                    files.push(p);
                }
            }
        }
        assert!(files.len() > 60, "{}", files.len());
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        let (mut compared, mut errors) = (0, 0);
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            // The file, and variants with one line's value replaced by a value of another kind.
            let mut variants = vec![text.clone()];
            let lines: Vec<&str> = text.lines().collect();
            for _ in 0..20 {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let Some(line) = lines.get(rng as usize % lines.len().max(1)) else {
                    break;
                };
                let Some((head, _)) = line.split_once(": ") else {
                    continue;
                };
                let value = [
                    "~",
                    "[1, x, ~]",
                    "{a: 1}",
                    "-3",
                    "1.5",
                    ".nan",
                    "''",
                    "true",
                    "[]",
                ][(rng >> 32) as usize % 9];
                let mut changed: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
                changed[lines.iter().position(|l| l == line).unwrap()] = format!("{head}: {value}");
                variants.push(changed.join("\n"));
            }
            for variant in variants {
                let Ok(node) = parse(&SourceFile::new("c.yaml", variant)) else {
                    continue;
                };
                let json = node.to_json();
                let is_machine = node.get("machine").is_some();
                let (theirs, ours) = if is_machine {
                    (&machine, &schemas().machine)
                } else {
                    (&campaign, &schemas().campaign)
                };
                let expected = described(theirs.iter_errors(&json));
                assert_eq!(
                    described(ours.iter_errors(YamlValue::Node(&node))),
                    expected,
                    "{}",
                    file.display()
                );
                compared += 1;
                errors += expected.len();
            }
        }
        assert!(
            compared > 500 && errors > 500,
            "{compared} documents, {errors} errors"
        );
    }

    #[test]
    fn minimal_campaign_is_valid() {
        let ok = "campaign: {name: c, version: v1, machine: local}\nsteps:\n  a: {kind: command, command: echo hi}\n";
        assert_eq!(check(ok), Vec::<String>::new());
    }

    #[test]
    fn misspelt_field_is_located_with_suggestion() {
        let bad = "campaign: {name: c, version: v1, machine: local}\nsteps:\n  a:\n    kind: command\n    comand: echo hi\n";
        let errs = check(bad);
        assert!(
            errs.iter().any(|e| e
                .starts_with("c.yaml:5:5: steps.a.comand: unknown field `comand`")
                && e.contains("did you mean `command`")),
            "{errs:?}"
        );
    }

    #[test]
    fn misspelt_kind_suggests() {
        let bad = "campaign: {name: c, version: v1, machine: local}\nsteps:\n  a: {kind: qe_scf}\n";
        let errs = check(bad);
        assert!(
            errs.iter()
                .any(|e| e.contains("`qe_scf` is not allowed") && e.contains("qe-scf")),
            "{errs:?}"
        );
    }

    #[test]
    fn bad_duration_names_expectation() {
        let bad = "campaign: {name: c, version: v1, machine: local}\nsteps:\n  a: {kind: command, command: x, execution: {timeout: soon}}\n";
        let errs = check(bad);
        assert!(
            errs.iter()
                .any(|e| e.contains("steps.a.execution.timeout")
                    && e.contains("expected a duration")),
            "{errs:?}"
        );
    }
}
