//! Hostile input, as a security review would try it: every file in `tests/hostile/` is
//! validated under a 1 GiB address-space limit and a 10 s deadline (setrlimit in the
//! child), and its exact error is a snapshot; campaigns are run with values that try to
//! execute code in every quoting context, with a symbolic link out of the campaign
//! directory, and with a corrupt state database. Long lists load within a small multiple of
//! their size, under an address-space cap the loader before #13's lean loading exceeded.

mod support;
use support::*;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

/// A named pipe at `path` (no writer: opening it for reading would wait).
fn make_fifo(path: &Path) -> PathBuf {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid path; mkfifo touches no memory of ours.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    path.to_path_buf()
}

/// `flow ARGS` with at most 1 GiB of address space and 10 s of CPU time.
fn flow_capped(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = flow_cmd(dir, args);
    // SAFETY: setrlimit is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            let mem = libc::rlimit {
                rlim_cur: 1 << 30,
                rlim_max: 1 << 30,
            };
            let cpu = libc::rlimit {
                rlim_cur: 10,
                rlim_max: 10,
            };
            libc::setrlimit(libc::RLIMIT_AS, &mem);
            libc::setrlimit(libc::RLIMIT_CPU, &cpu);
            Ok(())
        });
    }
    cmd.output().expect("the flow binary runs")
}

/// `flow run c.yaml` in `dir`, stopped after 60 s: a launch refused by flow currently
/// leaves the driver waiting (a scheduler issue, reported); what these tests check is what
/// happened on disk.
fn run_bounded(dir: &Path) -> Output {
    std::process::Command::new("timeout")
        .arg("60")
        .arg(env!("CARGO_BIN_EXE_flow"))
        .args(["run", "c.yaml"])
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("FLOW_RECIPES")
        .output()
        .expect("flow runs")
}

#[test]
fn every_hostile_campaign_has_its_exact_located_error() {
    let dir = root().join("tests/hostile");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 25, "the corpus shrank: {}", files.len());
    for file in files {
        let name = file.file_name().unwrap().to_str().unwrap().to_string();
        let started = Instant::now();
        let out = flow_capped(&dir, &["validate", &name]);
        let stderr = text(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{name}: exit code; stderr:\n{stderr}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{name} took {:?}",
            started.elapsed()
        );
        assert!(
            stderr.contains(&format!("{name}:")),
            "{name}: not located:\n{stderr}"
        );
        for secret in ["SECRETHASH", "ghp_SECRET"] {
            assert!(!stderr.contains(secret), "{name} leaks a secret:\n{stderr}");
        }
        insta::assert_snapshot!(
            format!("hostile_{}", name.trim_end_matches(".yaml")),
            stderr
        );
    }
}

#[test]
fn non_regular_files_are_refused_without_reading() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = make_fifo(&tmp.path().join("fifo.yaml"));
    for target in ["/dev/zero", fifo.to_str().unwrap()] {
        let started = Instant::now();
        let out = flow_capped(tmp.path(), &["validate", target]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{target}: {stderr}");
        assert!(stderr.contains("not a regular file"), "{target}: {stderr}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}

/// Values that would run `touch` if any quoting context let them through.
const PAYLOADS: &[&str] = &[
    "$(touch PWNED_a)",
    "`touch PWNED_b`",
    "x\"; touch PWNED_c; echo \"",
    "x'; touch PWNED_d; echo '",
    "x\ntouch PWNED_e",
    "x; touch PWNED_f",
    "x' \"$(touch PWNED_g)\" '",
];

#[test]
fn no_quoting_context_runs_an_interpolated_value() {
    let tmp = tempfile::tempdir().unwrap();
    let list: Vec<String> = PAYLOADS
        .iter()
        .map(|p| serde_json::to_string(p).unwrap())
        .collect();
    let commands = [
        "echo {{p}} >> out.txt",
        "echo \"value={{p}}\" >> out.txt",
        "echo 'value={{p}}' >> out.txt",
        "echo \"$(echo \"{{p}}\")\" >> out.txt",
        "X={{p}}; echo \"$X\" >> out.txt",
        "cat >> out.txt <<EOF\nv={{p}}\nEOF",
        "cat >> out.txt <<'EOF'\nv={{p}}\nEOF",
        "echo x >> out.txt # {{p}}",
    ];
    let mut steps = String::new();
    for (i, c) in commands.iter().enumerate() {
        steps.push_str(&format!(
            "  s{i}:\n    kind: command\n    array: {{p: [{}]}}\n    command: {}\n",
            list.join(", "),
            serde_json::to_string(c).unwrap()
        ));
    }
    // `env:` values are no templates: they reach the task as variables, literally.
    let vars: Vec<String> = PAYLOADS
        .iter()
        .enumerate()
        .map(|(i, p)| format!("P{i}: {}", serde_json::to_string(p).unwrap()))
        .collect();
    let prints: Vec<String> = (0..PAYLOADS.len()).map(|i| format!("\"$P{i}\"")).collect();
    steps.push_str(&format!(
        "  env_values:\n    kind: command\n    env: {{{}}}\n    command: {}\n",
        vars.join(", "),
        serde_json::to_string(&format!("printf '%s\\n' {} >> out.txt", prints.join(" "))).unwrap()
    ));
    let yaml =
        format!("campaign: {{name: q, version: v1, machine: local, output: out}}\nsteps:\n{steps}");
    std::fs::write(tmp.path().join("c.yaml"), yaml).unwrap();
    let out = run_bounded(tmp.path());
    let stderr = text(&out.stderr);
    let mut created = Vec::new();
    for e in walk(tmp.path()) {
        if e.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("PWNED")
        {
            created.push(e);
        }
    }
    assert!(created.is_empty(), "code ran: {created:?}\n{stderr}");
    // The heredoc and comment steps refuse line breaks at launch; the others all succeed
    // and write each value back literally.
    let written = std::fs::read_to_string(tmp.path().join("out/v1_q/out.txt")).unwrap();
    for p in PAYLOADS.iter().filter(|p| !p.contains('\n')) {
        assert!(
            written.contains(p),
            "{p:?} not written literally:\n{written}"
        );
    }
    // The env step wrote every value, line breaks included, on lines of their own.
    for p in PAYLOADS {
        assert!(
            written.contains(&format!("{p}\n")),
            "env value {p:?} not passed literally:\n{written}"
        );
    }
}

#[test]
fn an_output_through_a_link_out_of_the_campaign_touches_nothing_outside() {
    let tmp = tempfile::tempdir().unwrap();
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("victim.txt"), "keep me").unwrap();
    let campaign_dir = tmp.path().join("out/v1_l");
    std::fs::create_dir_all(&campaign_dir).unwrap();
    std::os::unix::fs::symlink(&elsewhere, campaign_dir.join("link")).unwrap();
    std::fs::write(
        tmp.path().join("c.yaml"),
        "campaign: {name: l, version: v1, machine: local, output: out}\nsteps:\n  a:\n    kind: command\n    output: link/victim.txt\n    command: echo pwned > {{output}}\n",
    )
    .unwrap();
    let out = run_bounded(tmp.path());
    let stderr = text(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(elsewhere.join("victim.txt")).unwrap(),
        "keep me"
    );
    assert!(!campaign_dir.join("link").join("victim.txt.tmp").exists());
    let said = format!("{}{stderr}", text(&out.stdout));
    assert!(
        said.contains("c.yaml:5:13: steps.a.output: the output path `link/victim.txt` leaves the campaign directory"),
        "{said}"
    );

    // The same for the directories flow writes itself: logs, and a step's work directory.
    for (link, step) in [
        ("logs", "    command: echo hi\n"),
        ("work", "    workdir: work/x\n    command: echo hi > f\n"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let elsewhere = tmp.path().join("elsewhere");
        std::fs::create_dir_all(&elsewhere).unwrap();
        let campaign_dir = tmp.path().join("out/v1_l");
        std::fs::create_dir_all(&campaign_dir).unwrap();
        std::os::unix::fs::symlink(&elsewhere, campaign_dir.join(link)).unwrap();
        std::fs::write(
            tmp.path().join("c.yaml"),
            format!("campaign: {{name: l, version: v1, machine: local, output: out}}\nsteps:\n  a:\n    kind: command\n{step}"),
        )
        .unwrap();
        let out = run_bounded(tmp.path());
        let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert_ne!(out.status.code(), Some(0), "{link}: {said}");
        assert!(
            said.contains("which leaves the campaign directory"),
            "{link}: {said}"
        );
        assert_eq!(
            walk(&elsewhere),
            Vec::<PathBuf>::new(),
            "{link}: written outside"
        );
    }
}

#[test]
fn a_corrupt_state_database_is_named_and_kept_until_reset() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("c.yaml"),
        "campaign: {name: s, version: v1, machine: local, output: out}\nsteps:\n  a: {kind: command, command: echo hi}\n",
    )
    .unwrap();
    let db = tmp.path().join("out/v1_s/metadata/state.db");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    for bytes in [&b""[..], &b"this is not a database, not at all"[..]] {
        std::fs::write(&db, bytes).unwrap();
        for args in [&["status", "c.yaml"][..], &["run", "c.yaml"][..]] {
            let out = flow(tmp.path(), args);
            let stderr = text(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
            assert!(
                stderr.contains(&db.display().to_string()) && stderr.contains("--reset-state"),
                "{args:?}: {stderr}"
            );
            assert_eq!(
                std::fs::read(&db).unwrap(),
                bytes,
                "the database was replaced"
            );
        }
    }
    let out = flow(tmp.path(), &["run", "c.yaml", "--reset-state"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let aside: Vec<_> = walk(db.parent().unwrap())
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("state.db.corrupt-"))
        .collect();
    assert!(!aside.is_empty(), "the old database was not kept");
}

#[test]
fn status_works_on_a_read_only_campaign_and_logs_match_ids_literally() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("c.yaml"),
        "campaign: {name: r, version: v1, machine: local, output: out}\nsteps:\n  a:\n    kind: command\n    array: {i: [1, 2]}\n    command: echo {{i}}\n",
    )
    .unwrap();
    assert_eq!(flow(tmp.path(), &["run", "c.yaml"]).status.code(), Some(0));
    for wildcard in ["%", "_", "%%"] {
        let out = flow(tmp.path(), &["logs", "c.yaml", wildcard]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{wildcard}: {}",
            text(&out.stdout)
        );
    }
    // A read-only directory stands in for a read-only file system (root ignores modes, so
    // the read-only opening is forced by the directory's permission check only when not root).
    let metadata = tmp.path().join("out/v1_r/metadata");
    let mut perms = std::fs::metadata(&metadata).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o555);
    std::fs::set_permissions(&metadata, perms.clone()).unwrap();
    let out = flow(tmp.path(), &["status", "c.yaml"]);
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&metadata, perms).unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    // Root ignores those modes: there, the campaign directory is bind-mounted read-only on
    // itself in a mount namespace of its own, a real read-only file system.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    let dir = tmp.path().join("out/v1_r").display().to_string();
    let quoted = format!("'{}'", dir.replace('\'', "'\\''"));
    let mount = format!("mount --bind {quoted} {quoted} && mount -o remount,bind,ro {quoted}");
    let in_read_only = |then: &str| {
        std::process::Command::new("unshare")
            .args(["-m", "sh", "-c", &format!("{mount} && {then}")])
            .current_dir(tmp.path())
            .env("NO_COLOR", "1")
            .env_remove("FLOW_RECIPES")
            .output()
    };
    let probe = format!("! touch {quoted}/probe 2>/dev/null");
    if !in_read_only(&probe).is_ok_and(|o| o.status.success()) {
        eprintln!("note: no read-only bind mount here (unshare -m needs CAP_SYS_ADMIN); the read-only file system case was not tried");
        return;
    }
    let flow_bin = env!("CARGO_BIN_EXE_flow");
    let out = in_read_only(&format!("exec '{flow_bin}' status c.yaml")).unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("2/2 succeeded"),
        "{}",
        text(&out.stdout)
    );
    let out = in_read_only(&format!("exec '{flow_bin}' status c.yaml --output json")).unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

/// A campaign of one step whose array is a long list, of about `bytes` bytes: `shape` is
/// `strings` (a block list of file names), `ints` (a flow list of numbers) or `maps`
/// (`include:` elements, each a small map). Returns the number of elements.
fn long_list_campaign(path: &Path, shape: &str, bytes: usize) -> usize {
    use std::fmt::Write;
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
            n += 1;
        }
    }
    std::fs::write(path, text).unwrap();
    n
}

/// Start `flow validate FILE` with at most `cap` bytes of address space and 120 s of CPU.
fn spawn_capped(dir: &Path, file: &str, cap: u64) -> std::process::Child {
    let mut cmd = flow_cmd(dir, &["validate", file]);
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(move || {
            let mem = libc::rlimit {
                rlim_cur: cap,
                rlim_max: cap,
            };
            let cpu = libc::rlimit {
                rlim_cur: 120,
                rlim_max: 120,
            };
            libc::setrlimit(libc::RLIMIT_AS, &mem);
            libc::setrlimit(libc::RLIMIT_CPU, &cpu);
            Ok(())
        });
    }
    cmd.spawn().expect("the flow binary runs")
}

/// Wait for a child: its exit code, stdout, stderr and peak resident memory in bytes.
fn wait_with_peak(mut child: std::process::Child) -> (Option<i32>, String, String, u64) {
    use std::io::Read;
    let (mut out, mut err) = (String::new(), String::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid, and wait4 writes only into it and `status`.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, which nothing else reaps (the Child is forgotten).
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t);
    std::mem::forget(child);
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    (code, out, err, usage.ru_maxrss as u64 * 1024)
}

/// The 47 MB list, as file names; and numbers and small maps at 6 MB (at 47 MB
/// these take 25-30 s each in the debug build the tests run; at 47 MB, in a release build,
/// they are in docs/BENCHMARKS.md: 3.6x and 3.7x). Each loads under a 256 MiB address-space
/// cap, which the loader before the lean one exceeded (it needed 1 GiB for the 47 MB list,
/// 384 MiB and 768 MiB for the 6 MB ones), and its peak memory beyond that of a two-task
/// campaign is at most four times its size.
#[test]
fn long_lists_load_within_a_small_multiple_of_their_size() {
    const CAP: u64 = 256 << 20;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("tiny.yaml"),
        "campaign: {name: t, version: v1, machine: local}\nsteps:\n  a: {kind: command, command: \"echo {{x}}\", array: {x: [1, 2]}}\n",
    )
    .unwrap();
    let (code, _, err, base) = wait_with_peak(spawn_capped(tmp.path(), "tiny.yaml", CAP));
    assert_eq!(code, Some(0), "{err}");
    let shapes = [
        ("strings", 47_000_000),
        ("ints", 6_000_000),
        ("maps", 6_000_000),
    ];
    let started = Instant::now();
    let mut running = Vec::new();
    for (shape, bytes) in shapes {
        let name = format!("{shape}.yaml");
        let n = long_list_campaign(&tmp.path().join(&name), shape, bytes);
        running.push((shape, n, spawn_capped(tmp.path(), &name, CAP)));
    }
    for (shape, n, child) in running {
        let (code, out, err, peak) = wait_with_peak(child);
        let size = std::fs::metadata(tmp.path().join(format!("{shape}.yaml")))
            .unwrap()
            .len();
        assert_eq!(code, Some(0), "{shape}: {err}");
        assert!(
            out.contains(&format!("ok (1 steps, {n} tasks")),
            "{shape}: {out}"
        );
        let ratio = peak.saturating_sub(base) as f64 / size as f64;
        eprintln!(
            "{shape}: {size} bytes, {n} elements: peak {} MB ({} MB beyond a two-task campaign, {ratio:.2}x), {:?} after the first",
            peak >> 20,
            peak.saturating_sub(base) >> 20,
            started.elapsed()
        );
        assert!(ratio <= 4.0, "{shape}: {ratio:.2}x its size");
    }
}

/// Files larger than the 64 MiB cap are refused from their size, before a byte is read,
/// as a campaign and as its machine file (sparse files: nothing is written).
#[test]
fn inputs_past_the_size_cap_are_refused_unread() {
    let tmp = tempfile::tempdir().unwrap();
    let big = std::fs::File::create(tmp.path().join("big.yaml")).unwrap();
    big.set_len(65 << 20).unwrap();
    let started = Instant::now();
    let out = flow_capped(tmp.path(), &["validate", "big.yaml"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot read big.yaml: it is 68 MB, larger than flow reads (67 MB)"),
        "{stderr}"
    );
    std::fs::write(
        tmp.path().join("c.yaml"),
        "campaign: {name: b, version: v1, machine: ./big.yaml}\nsteps:\n  a: {kind: command, command: echo}\n",
    )
    .unwrap();
    let out = flow_capped(tmp.path(), &["validate", "c.yaml"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("c.yaml:1:")
            && stderr.contains("cannot read machine file `./big.yaml`")
            && stderr.contains("larger than flow reads"),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// A task printing more than its step's `execution.max_log_size` has its log rotated
/// (the log and the one rotation before it are kept, not everything it printed); and
/// `flow logs` streams a log larger than its own memory cap.
#[test]
fn task_logs_are_capped_per_step_and_streamed() {
    let tmp = tempfile::tempdir().unwrap();
    // 8 MB in 40 writes, past a 1 MB limit; and one 160 MB log below a 200 MB limit.
    std::fs::write(
        tmp.path().join("c.yaml"),
        concat!(
            "campaign: {name: g, version: v1, machine: local, output: out}\n",
            "steps:\n",
            "  chatty:\n    kind: command\n    execution: {max_log_size: 1M}\n",
            "    command: \"for i in $(seq 40); do head -c 200000 /dev/zero | tr '\\\\0' x; sleep 0.05; done\"\n",
            "  big:\n    kind: command\n    execution: {max_log_size: 200M}\n",
            "    command: \"head -c 160000000 /dev/zero | tr '\\\\0' y\"\n",
        ),
    )
    .unwrap();
    let out = flow(tmp.path(), &["run", "c.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let (_, rows) = campaign_state(&tmp.path().join("out/v1_g"));
    let id = |step: &str| rows.values().find(|r| r.step == step).unwrap().id.clone();

    let chatty = id("chatty");
    let logs = flow(tmp.path(), &["logs", "c.yaml", &chatty]);
    let shown = text(&logs.stdout);
    assert_eq!(logs.status.code(), Some(0), "{}", text(&logs.stderr));
    assert!(
        shown.contains("(the log was rotated: the part before is in "),
        "{}",
        &shown[..shown.len().min(2000)]
    );
    let kept: u64 = walk(&tmp.path().join("out/v1_g"))
        .iter()
        .filter(|p| {
            p.to_string_lossy().contains(&chatty[..8]) && p.to_string_lossy().contains(".out")
        })
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert!(
        (1_000_000..4_000_000).contains(&kept),
        "{kept} bytes of the 8 MB printed kept"
    );

    // 160 MB through a process limited to 128 MiB of address space.
    let big = id("big");
    let sink = std::fs::File::create(tmp.path().join("big.log")).unwrap();
    let mut cmd = flow_cmd(tmp.path(), &["logs", "c.yaml", &big]);
    cmd.stdout(sink);
    // SAFETY: setrlimit is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            let mem = libc::rlimit {
                rlim_cur: 128 << 20,
                rlim_max: 128 << 20,
            };
            libc::setrlimit(libc::RLIMIT_AS, &mem);
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let streamed = std::fs::metadata(tmp.path().join("big.log")).unwrap().len();
    assert!(streamed > 160_000_000, "{streamed} bytes");
}

/// A run stopped by a full disk (here: a file-size limit, the same failed writes) ends with
/// an error naming the state database; `flow status` then says the driver is not running
/// and counts no task as running, or, when the database's set-up was cut short, says so
/// instead of an SQL error; and the next run, with room again, finishes the campaign.
#[test]
fn a_run_stopped_by_a_full_disk_leaves_a_truthful_status() {
    for limit in [60_000u64, 400_000] {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(
            tmp.path().join("c.yaml"),
            "campaign: {name: d, version: v1, machine: local, output: out}\nsteps:\n  a:\n    kind: command\n    array: {i: {range: [0, 100]}}\n    command: sleep 0.1; echo {{i}}\n",
        )
        .unwrap();
        let mut cmd = flow_cmd(tmp.path(), &["run", "c.yaml"]);
        // SAFETY: setrlimit and signal are async-signal-safe and touch no memory of the
        // parent.
        unsafe {
            cmd.pre_exec(move || {
                let size = libc::rlimit {
                    rlim_cur: limit,
                    rlim_max: limit,
                };
                libc::setrlimit(libc::RLIMIT_FSIZE, &size);
                // A write past the limit fails (EFBIG) instead of killing the writer.
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                Ok(())
            });
        }
        let out = cmd.output().unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{limit}: {stderr}");
        assert!(stderr.contains("state.db"), "{limit}: {stderr}");

        let status = flow(tmp.path(), &["status", "c.yaml"]);
        let (stdout, stderr) = (text(&status.stdout), text(&status.stderr));
        assert!(!stderr.contains("no such"), "{limit}: {stderr}");
        match status.status.code() {
            Some(0) => {
                assert!(stdout.contains("driver: not running"), "{limit}: {stdout}");
                let counted: Vec<&str> = stdout
                    .lines()
                    .filter(|l| !l.starts_with("driver:") && l.contains("running"))
                    .collect();
                assert!(counted.is_empty(), "{limit}: tasks still running: {stdout}");
            }
            // The state is created whole or not at all (#12): a disk full before it was
            // complete leaves none, and status says the campaign has not run.
            _ => assert!(
                stderr.contains("state.db")
                    && (stderr.contains("`flow run FILE` brings it up to date")
                        || stderr.contains("has not run yet (no state at")),
                "{limit}: {stderr}"
            ),
        }
        let out = flow(tmp.path(), &["run", "c.yaml"]);
        assert_eq!(out.status.code(), Some(0), "{limit}: {}", text(&out.stderr));
        let status = text(&flow(tmp.path(), &["status", "c.yaml"]).stdout);
        assert!(status.contains("100/100 succeeded"), "{limit}: {status}");
    }
}

/// Values a machine file writes into `#SBATCH` lines (its account, a job type's partition,
/// constraint) are checked like a step's: a line break or a control character is a
/// located error at validate and at plan, in the machine file.
#[test]
fn sbatch_values_of_a_machine_are_refused_located() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("m.yaml"),
        concat!(
            "machine:\n  name: evil\n  executor: slurm\n  slurm:\n",
            "    account: \"proj\\n#SBATCH --uid=0\"\n    max_array_size: 1000\n",
            "  job_types:\n    cpu: {partition: \"cpu\\r\", constraint: \"a\\u0007b\", nodes: 1, mem: 2G, time: 1h}\n",
        ),
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("c.yaml"),
        "campaign: {name: h, version: v1, machine: m.yaml}\nsteps:\n  a: {kind: command, command: echo, resources: {job_type: cpu}}\n",
    )
    .unwrap();
    for command in ["validate", "plan"] {
        let out = flow_capped(tmp.path(), &[command, "c.yaml"]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{command}: {stderr}");
        for expected in [
            "m.yaml:5:14: machine.slurm.account: the value `proj\\n#SBATCH --uid=0` holds a line break",
            "m.yaml:8:22: machine.job_types.cpu.partition: the value `cpu\\r` holds a carriage return",
            "machine.job_types.cpu.constraint: the value `a\\u{7}b` holds the control character U+0007",
        ] {
            assert!(stderr.contains(expected), "{command}: {expected}\n{stderr}");
        }
        assert!(!text(&out.stdout).contains("#SBATCH"), "{command}");
    }
}

/// A machine's `slurm.template` is read only when it is a regular file, is compiled at
/// validate, and a broken one is reported by line and column without showing its text.
#[test]
fn sbatch_templates_are_checked_at_validate_without_quoting_them() {
    let tmp = tempfile::tempdir().unwrap();
    make_fifo(&tmp.path().join("fifo.hbs"));
    std::fs::write(
        tmp.path().join("broken.hbs"),
        "#!/bin/bash\n#SBATCH --job-name={{job_name\nTOKEN=ghp_SECRETxyz {{#if}}\n",
    )
    .unwrap();
    for (template, expected) in [
        ("/dev/zero", "it is a device, not a regular file"),
        ("fifo.hbs", "it is a FIFO (named pipe), not a regular file"),
        ("broken.hbs", "is not a valid handlebars template at line"),
    ] {
        std::fs::write(
            tmp.path().join("m.yaml"),
            format!("machine:\n  name: t\n  executor: slurm\n  slurm:\n    template: {template}\n"),
        )
        .unwrap();
        std::fs::write(
            tmp.path().join("c.yaml"),
            "campaign: {name: h, version: v1, machine: m.yaml}\nsteps:\n  a: {kind: command, command: echo}\n",
        )
        .unwrap();
        for command in ["validate", "plan"] {
            let started = Instant::now();
            let out = flow_capped(tmp.path(), &[command, "c.yaml"]);
            let stderr = text(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{command} {template}: {stderr}");
            assert!(
                stderr.contains("m.yaml:5:15: machine.slurm.template"),
                "{stderr}"
            );
            assert!(stderr.contains(expected), "{template}: {stderr}");
            assert!(
                !stderr.contains("SECRET") && !stderr.contains("job_name"),
                "{stderr}"
            );
            assert!(started.elapsed() < Duration::from_secs(5));
        }
    }
}

/// A `metadata`, `logs` or `qa` link out of the campaign directory: `flow run` and `flow
/// report` refuse before writing anything through it (the state database and the report
/// went outside before).
#[test]
fn flow_directories_linked_outside_are_refused() {
    for dir in ["metadata", "logs", "qa"] {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let outside = d.join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(
            d.join("c.yaml"),
            "campaign: {name: t, version: v1, machine: local, output: out}\nsteps:\n  a: {kind: command, command: echo hi}\n",
        )
        .unwrap();
        let campaign = d.join("out/v1_t");
        if dir == "qa" {
            let out = flow(d, &["run", "c.yaml"]);
            assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
            std::fs::remove_dir_all(campaign.join("qa")).unwrap();
        } else {
            std::fs::create_dir_all(&campaign).unwrap();
        }
        std::os::unix::fs::symlink(&outside, campaign.join(dir)).unwrap();
        let command: &[&str] = if dir == "qa" {
            &["report", "c.yaml"]
        } else {
            &["run", "c.yaml"]
        };
        let out = flow(d, command);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{dir}: {stderr}");
        assert!(
            stderr.contains("leaves the campaign directory"),
            "{dir}: {stderr}"
        );
        assert_eq!(
            std::fs::read_dir(&outside).unwrap().count(),
            0,
            "{dir}: wrote outside"
        );
    }
}
