//! The shape of the code, checked (#16): inside each crate, the top-level modules import
//! each other without loops (a module is a file `src/x.rs` or a directory `src/x/`; an
//! edge is any `crate::x` in its code, comments left out). A loop is reported as the path
//! that closes it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

/// Top-level module -> the top-level modules its code names.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let crate_ref = regex::Regex::new(r"\bcrate::([a-z_][a-z0-9_]*)").unwrap();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in rust_files(src) {
        let rel = file.strip_prefix(src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_string();
        if module == "lib" || module == "main" || module == "bin" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let code: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .map(|l| l.split("//").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        let deps = graph.entry(module.clone()).or_default();
        let mut names: Vec<String> = crate_ref
            .captures_iter(&code)
            .map(|c| c[1].to_string())
            .collect();
        names.extend(grouped_names(&code));
        deps.extend(names.into_iter().filter(|d| *d != module));
    }
    graph
}

/// The first names of `use crate::{a, b::c, d::{e, f}}` groups: `a`, `b`, `d`.
fn grouped_names(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::{") {
        let body = &rest[at + "crate::{".len()..];
        let (mut depth, mut item) = (0usize, String::new());
        let mut end = body.len();
        for (i, ch) in body.char_indices() {
            match ch {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    end = i;
                    break;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    out.push(std::mem::take(&mut item));
                    continue;
                }
                _ => {}
            }
            if depth == 0 || ch != '{' {
                item.push(ch);
            }
        }
        out.push(item);
        rest = &body[end.min(body.len())..];
    }
    out.iter()
        .map(|i| i.trim().split("::").next().unwrap_or("").trim().to_string())
        .filter(|n| {
            !n.is_empty()
                && n.chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit())
        })
        .collect()
}

/// A loop in the graph, as the path of modules that closes it.
fn find_loop(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit(
        m: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        marks.insert(m.to_string(), Mark::Open);
        path.push(m.to_string());
        for d in graph.get(m).into_iter().flatten() {
            if !graph.contains_key(d) {
                continue; // a name that is not a module of this crate (e.g. a macro)
            }
            match marks.get(d).copied().unwrap_or(Mark::New) {
                Mark::Open => {
                    let start = path.iter().position(|p| p == d).unwrap();
                    let mut cycle = path[start..].to_vec();
                    cycle.push(d.clone());
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(c) = visit(d, graph, marks, path) {
                        return Some(c);
                    }
                }
                Mark::Done => {}
            }
        }
        path.pop();
        marks.insert(m.to_string(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for m in graph.keys() {
        if marks.get(m).copied().unwrap_or(Mark::New) == Mark::New {
            if let Some(c) = visit(m, graph, &mut marks, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn the_finder_finds_a_loop_and_accepts_a_dag() {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.insert("a".into(), ["b".to_string()].into());
    g.insert("b".into(), ["c".to_string()].into());
    g.insert("c".into(), BTreeSet::new());
    assert_eq!(find_loop(&g), None);
    g.get_mut("c").unwrap().insert("a".into());
    assert_eq!(
        find_loop(&g),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
}

#[test]
fn no_crate_has_an_import_loop_between_its_modules() {
    for krate in [
        "dsl/src",
        "executors/src",
        "engine/src",
        "engine/steps/qe-scf/src",
        "engine/steps/mlip/src",
        "engine/steps/mock-generation/src",
        "engine/steps/adaptive/src",
    ] {
        let graph = module_graph(&root().join(krate));
        assert!(graph.len() > 1, "{krate}: no modules found");
        if let Some(cycle) = find_loop(&graph) {
            panic!(
                "{krate}: modules import each other in a loop: {}",
                cycle.join(" -> ")
            );
        }
    }
}

/// The lines of a source file before its unit tests (`#[cfg(test)]` at the start of a line).
fn code_lines(text: &str) -> usize {
    text.lines()
        .position(|l| l.starts_with("#[cfg(test)]"))
        .unwrap_or_else(|| text.lines().count())
}

#[test]
fn code_lines_stop_at_the_tests() {
    assert_eq!(code_lines("a\nb\n#[cfg(test)]\nmod tests {}\n"), 2);
    assert_eq!(code_lines("a\nb\n"), 2);
}

/// #16: one concern per file. A file past this many lines of code (its tests apart) holds
/// more than one; split it along its concerns.
const MAX_CODE_LINES: usize = 800;

#[test]
fn no_source_file_is_longer_than_800_lines_before_its_tests() {
    let mut long = Vec::new();
    for krate in ["dsl/src", "executors/src", "engine/src"] {
        for file in rust_files(&root().join(krate)) {
            let n = code_lines(&std::fs::read_to_string(&file).unwrap());
            if n > MAX_CODE_LINES {
                long.push(format!(
                    "{} ({n} lines)",
                    file.strip_prefix(root()).unwrap().display()
                ));
            }
        }
    }
    assert!(
        long.is_empty(),
        "longer than {MAX_CODE_LINES} lines before their tests: {}",
        long.join(", ")
    );
}
