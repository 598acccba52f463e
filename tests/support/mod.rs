//! What the integration tests share: the repository root, the `flow` binary, output text,
//! copies of example directories.
#![allow(dead_code)] // each test binary uses its own subset

use flow_engine::state::{StateStore, TaskRow};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `flow ARGS` in `dir`, as a user would run it (no recipe directory from the environment).
pub fn flow_cmd(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_flow"));
    c.args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("FLOW_RECIPES");
    c
}

/// Run `flow ARGS` in `dir` to completion.
pub fn flow(dir: &Path, args: &[&str]) -> Output {
    flow_cmd(dir, args).output().expect("the flow binary runs")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Copy a directory tree, leaving out `campaigns/` (state of earlier runs).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap();
        if name == "campaigns" {
            continue;
        }
        if p.is_dir() {
            copy_dir(&p, &to.join(name));
        } else {
            std::fs::copy(&p, to.join(name)).unwrap();
        }
    }
}

/// Every file under `dir`, recursively.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Fail with both outputs unless a `flow` call exited 0.
/// Write a script and make it executable (a stand-in for a program a step runs).
pub fn write_executable(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

pub fn assert_ok(out: &Output) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// The state database of a campaign directory, and its tasks by id.
pub fn campaign_state(campaign_dir: &Path) -> (StateStore, HashMap<String, TaskRow>) {
    let store = StateStore::open_readonly(&campaign_dir.join("metadata/state.db")).unwrap();
    let rows = store.load_tasks().unwrap();
    (store, rows)
}

/// A seeded xorshift for tests that must replay (fuzz mutations, kill moments): the same
/// seed gives the same sequence.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}
