//! Loading long lists (#13), run with `cargo bench -p flow-engine --bench long_lists`:
//! `flow validate` of a campaign whose one step's array is a 47 MB list, in three shapes
//! (file names in a block list, numbers in a flow list, `include:` elements as small maps),
//! as a user runs it: wall time and peak RSS from `wait4`, and the peak as a multiple of the
//! file's size. `FLOW_COMPARE=/path/to/an/older/flow` measures that binary beside this one
//! (how docs/BENCHMARKS.md got its "before" column). `FLOW_LIST_MB` changes the size.
//!
//! Results are printed; docs/BENCHMARKS.md records them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Wall time, peak RSS (bytes) and exit code of `BIN validate FILE`.
fn validate(bin: &Path, file: &Path) -> (Duration, u64, i32) {
    let t = Instant::now();
    let child = Command::new(bin)
        .arg("validate")
        .arg(file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 on our own child writes only into it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; the Child is forgotten, so nothing else reaps it.
    unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let elapsed = t.elapsed();
    std::mem::forget(child);
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -libc::WTERMSIG(status)
    };
    (elapsed, usage.ru_maxrss as u64 * 1024, code)
}

/// A campaign whose array is a list of about `bytes` bytes; the number of elements.
fn campaign(path: &Path, shape: &str, bytes: usize) -> usize {
    let mut text = String::from(
        "campaign: {name: big, version: v1, machine: local}\nsteps:\n  a:\n    kind: command\n",
    );
    let mut n = 0;
    match shape {
        "strings" => {
            text.push_str("    command: echo {{x}}\n    array:\n      x:\n");
            while text.len() < bytes {
                writeln!(text, "        - sample-{n:09}.extxyz").unwrap();
                n += 1;
            }
        }
        "ints" => {
            text.push_str("    command: echo {{x}}\n    array:\n      x: [0");
            while text.len() < bytes {
                n += 1;
                write!(text, ", {n}").unwrap();
            }
            text.push_str("]\n");
            n += 1;
        }
        _ => {
            text.push_str("    command: echo {{r}} {{z}}\n    array:\n      r: [0]\n      z: [0.5]\n      include:\n");
            while text.len() < bytes {
                writeln!(
                    text,
                    "        - {{r: {n}, z: {:.2}}}",
                    0.5 + (n % 20) as f64 * 0.05
                )
                .unwrap();
                n += 1;
            }
        }
    }
    std::fs::write(path, text).unwrap();
    n
}

fn main() {
    let flow = PathBuf::from(env!("CARGO_BIN_EXE_flow"));
    let compare = std::env::var_os("FLOW_COMPARE").map(PathBuf::from);
    let mb: usize = std::env::var("FLOW_LIST_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(47);
    let tmp = tempfile::tempdir().unwrap();
    let tiny = tmp.path().join("tiny.yaml");
    std::fs::write(
        &tiny,
        "campaign: {name: t, version: v1, machine: local}\nsteps:\n  a: {kind: command, command: \"echo {{x}}\", array: {x: [1, 2]}}\n",
    )
    .unwrap();
    let mut bins = vec![("this build", flow)];
    if let Some(c) = compare {
        bins.push(("FLOW_COMPARE", c));
    }
    for (label, bin) in &bins {
        let (t, rss, _) = validate(bin, &tiny);
        println!(
            "{label}: a two-task campaign: {:.3} s, {:.1} MB",
            t.as_secs_f64(),
            rss as f64 / 1e6
        );
    }
    for shape in ["strings", "ints", "maps"] {
        let path = tmp.path().join(format!("{shape}.yaml"));
        let n = campaign(&path, shape, mb * 1_000_000);
        let size = std::fs::metadata(&path).unwrap().len();
        for (label, bin) in &bins {
            // Best of three by time.
            let (t, rss, code) = (0..3)
                .map(|_| validate(bin, &path))
                .min_by_key(|(t, _, _)| *t)
                .unwrap();
            println!(
                "{label}: {shape}: {:.1} MB, {n} elements: exit {code}, {:.2} s, peak {:.1} MB ({:.2}x the file)",
                size as f64 / 1e6,
                t.as_secs_f64(),
                rss as f64 / 1e6,
                rss as f64 / size as f64
            );
        }
    }
}
