//! The campaign scenarios of the Kubernetes executor against a real Kubernetes control plane
//! (`scripts/k8s-dev.sh up`: Kubernetes 1.34 built from source, a real kubelet on containerd +
//! runc), through the `flow` binary, as `real::<scenario>`: the same scenarios as
//! `tests/kubernetes_campaign.rs` runs on the API double (one harness:
//! `tests/support/kubernetes/`). The pods are real containers of an image made from this
//! build's `flow` (`scripts/k8s-dev.sh image`); the driver runs under the service-account token
//! of the example RBAC (`examples/kubernetes/driver-in-cluster.yaml`), and its requests are
//! counted in the API server's audit log.
//!
//! A create answered 500 comes from an admission webhook of the test's that refuses it; the
//! fault a real server cannot be made to produce on demand (`410 Gone` on an open watch) is
//! the double's only; `docs/kubernetes.md` lists what stays with the double.
//!
//! The node has two CPUs and every pod requests one, so at most two pods run at once: the
//! `max_running` cap is therefore tested at 1 (below the node's capacity) and `flow cancel`
//! with two of four pods running. The tests run one at a time.
//!
//! Without a control plane the tests say SKIPPED and pass, except under CI (`CI=true`) or with
//! `FLOW_K8S_REAL=1`, where they fail.

#[path = "support/kubernetes/mod.rs"]
mod kubernetes;
mod support;
use kubernetes::real::RealCluster;
use kubernetes::{campaign, k8s, output, tasks, Cluster};
use support::assert_ok;

use flow_engine::task_state::TaskState;
use std::process::Command;

kubernetes::scenario_tests!(real, crate::kubernetes::real::RealCluster);

/// Real only: the double does not enforce memory limits. The kernel's OOM killer ends the
/// task's process inside the container's memory cgroup (limit = the job type's `mem`); the
/// kubelet reports the container `OOMKilled`, and flow's own result says `out-of-memory`
/// (the task's shell exited 137). The retry gets four times the memory and succeeds.
#[test]
fn real_a_task_over_its_memory_limit_is_out_of_memory_and_succeeds_with_escalated_memory() {
    let Some(c) = RealCluster::start("oom") else {
        return;
    };
    let dir = c.tempdir();
    let d = dir.path();
    // dd holds one 150 MB block: over the 100M limit, under the escalated 400M.
    campaign(
        &c,
        d,
        "k8s-oom",
        "  hog:\n    kind: command\n    command: 'dd if=/dev/zero of=/dev/null bs=150M count=1 && echo done > {{output}}'\n    output: hog.txt\n    resources: {mem: 100M}\n    execution: {max_retries: 1, retry_backoff: {initial: 1s}, on_retry: {mem: x4, max_mem: 1G}}\n",
    );
    let out = k8s(&c, d, &["run", "c.yaml"]);
    assert_ok(&out);
    assert_eq!(output(d, "k8s-oom", "hog.txt").trim(), "done");
    let (store, rows) = tasks(d, "k8s-oom");
    let task = rows.values().next().unwrap();
    assert_eq!((task.state, task.attempts), (TaskState::Succeeded, 2));
    let attempts = store.attempts(&task.id).unwrap();
    assert_eq!(
        attempts[0].error_class.as_deref(),
        Some("out-of-memory"),
        "{attempts:?}"
    );
    let mut limits: Vec<String> = c
        .jobs()
        .iter()
        .filter_map(|j| {
            j.pointer("/spec/template/spec/containers/0/resources/limits/memory")?
                .as_str()
                .map(str::to_string)
        })
        .collect();
    limits.sort();
    assert_eq!(limits, ["100Mi", "400Mi"]);
    // The kernel, not flow, ended the first attempt: the kubelet saw the cgroup's OOM kill.
    assert!(
        c.pods().iter().any(
            |p| p.pointer("/status/containerStatuses/0/state/terminated/reason")
                == Some(&"OOMKilled".into())
        ),
        "{:#?}",
        c.pods()
    );
}

/// The 1,000-task campaign of `engine/benches/kubernetes_api.rs` against the real control
/// plane: API requests (from the audit log) and the driver's CPU time. Not a test (it takes
/// minutes: the node runs two pods at once); run it with
/// `cargo test -p flow-engine --test kubernetes_real -- --ignored --nocapture real_bench`.
/// `FLOW_K8S_BENCH_FLOW` names the driver binary to measure (default: this build's `flow`).
#[test]
#[ignore]
fn real_bench_api_traffic_of_a_1000_task_campaign() {
    const TASKS: usize = 1000;
    const BATCH: usize = 100;
    const MAX_RUNNING: usize = 50;
    let Some(c) = RealCluster::start("bench") else {
        return;
    };
    let dir = c.tempdir();
    let d = dir.path();
    campaign(
        &c,
        d,
        "kbench",
        &format!("  work:\n    kind: command\n    array: {{i: {{range: [0, {TASKS}]}}}}\n    command: 'true'\n    execution: {{batch_size: {BATCH}, max_running: {MAX_RUNNING}}}\n"),
    );
    let driver = std::env::var("FLOW_K8S_BENCH_FLOW")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_flow").to_string());
    let start = std::time::Instant::now();
    let log = std::fs::File::create(d.join("driver.log")).unwrap();
    let child = Command::new("/bin/sh")
        .arg("-c")
        .arg("umask 0 && exec \"$0\" \"$@\"")
        .arg(&driver)
        .args(["run", "c.yaml"])
        .current_dir(d)
        .env("KUBECONFIG", d.join("kubeconfig"))
        .env("NO_COLOR", "1")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut status = 0;
    // SAFETY: wait4 on our own child; usage is a valid out-pointer.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    std::mem::forget(child);
    let wall = start.elapsed();
    assert_eq!(
        status,
        0,
        "{}",
        std::fs::read_to_string(d.join("driver.log")).unwrap_or_default()
    );
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let cpu = seconds(usage.ru_utime) + seconds(usage.ru_stime);
    let requests = c.requests();
    let mut kinds: std::collections::BTreeMap<String, usize> = Default::default();
    for r in &requests {
        let after_ns: Vec<&str> = r
            .path
            .split('/')
            .skip_while(|p| *p != "namespaces")
            .collect();
        let resource = after_ns.get(2).copied().unwrap_or(r.path.as_str());
        let sub = match (after_ns.len() > 3, r.path.rsplit('/').next()) {
            (true, Some("log")) => "/<name>/log",
            (true, _) => "/<name>",
            _ => "",
        };
        let verb = match r.verb.as_str() {
            "watch" => "WATCH",
            "list" => "LIST",
            _ => r.method.as_str(),
        };
        *kinds
            .entry(format!("{verb} {resource}{sub} ({})", r.code))
            .or_default() += 1;
    }
    println!("real kubernetes: {TASKS} tasks, batch_size {BATCH}, max_running {MAX_RUNNING}");
    println!("  driver: {driver}");
    println!("  flow run wall time: {:.1} s", wall.as_secs_f64());
    println!(
        "  driver CPU (user + sys): {cpu:.2} s, peak RSS {:.1} MB",
        usage.ru_maxrss as f64 / 1024.0
    );
    println!("  Jobs created: {}", c.jobs().len());
    println!("  API requests: {} in all", requests.len());
    for (kind, n) in &kinds {
        println!("    {kind}: {n}");
    }
    println!(
        "  requests per task: {:.3}",
        requests.len() as f64 / TASKS as f64
    );
    let (_, rows) = tasks(d, "kbench");
    assert_eq!(rows.len(), TASKS);
    assert!(rows.values().all(|r| r.state == TaskState::Succeeded));
}
