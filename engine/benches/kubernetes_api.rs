//! API traffic and wall time of a campaign on the Kubernetes executor, against the
//! in-process API double (`flow-kube-double`: pods are local processes). Run with
//! `cargo bench -p flow-engine --bench kubernetes_api` (release build of `flow`).
//!
//! The figure that matters is the number of API requests per campaign: one create per Job,
//! one LIST and a few WATCH requests for the whole campaign, a PATCH when freed capacity
//! raises a Job's parallelism, and nothing per task. Wall time here is dominated by starting
//! 1,000 local processes on this machine, not by the API.
//!
//! Results are printed; docs/BENCHMARKS.md records them.

use flow_kube_double::{ApiDouble, Options};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

const NS: &str = "bench";
const TASKS: usize = 1000;
const BATCH: usize = 100;
const MAX_RUNNING: usize = 50;

/// The `flow` binary Cargo built for this bench (bench profile: optimised).
fn flow_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_flow"))
}

fn main() {
    let flow = flow_bin();
    let double = ApiDouble::start(Options {
        namespace: NS.into(),
        ..Options::default()
    })
    .expect("the API double starts");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    double.write_kubeconfig(&d.join("kubeconfig")).unwrap();
    std::fs::write(
        d.join("machine.yaml"),
        format!(
            "machine:\n  name: bench-k8s\n  executor: kubernetes\n  root: {}\n  launcher: none\n  kubernetes:\n    namespace: {NS}\n    image: registry.invalid/flow:bench\n    flow_binary: {}\n  job_types:\n    small: {{cpus_per_task: 1, mem: 100M, time: 10m}}\n  defaults:\n    resources: {{job_type: small}}\n",
            d.join("root").display(),
            flow.display()
        ),
    )
    .unwrap();
    std::fs::write(
        d.join("c.yaml"),
        format!("campaign: {{name: kbench, version: v1, machine: machine.yaml, output: out}}\nsteps:\n  work:\n    kind: command\n    array: {{i: {{range: [0, {TASKS}]}}}}\n    command: 'true'\n    execution: {{batch_size: {BATCH}, max_running: {MAX_RUNNING}}}\n"),
    )
    .unwrap();
    let start = Instant::now();
    let log = std::fs::File::create(d.join("driver.log")).unwrap();
    let child = Command::new(&flow)
        .args(["run", "c.yaml"])
        .current_dir(d)
        .env("KUBECONFIG", d.join("kubeconfig"))
        .env("NO_COLOR", "1")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("flow runs");
    // The driver's own CPU time and memory (the pods are the double's children, not its).
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child; usage is a valid out-pointer.
    unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    std::mem::forget(child);
    let wall = start.elapsed();
    assert!(
        status == 0,
        "{}",
        std::fs::read_to_string(d.join("driver.log")).unwrap_or_default()
    );
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let cpu = seconds(usage.ru_utime) + seconds(usage.ru_stime);
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    let requests = double.requests();
    for r in &requests {
        let resource = r
            .path
            .split('/')
            .skip_while(|p| *p != "namespaces")
            .nth(2)
            .unwrap_or(r.path.as_str())
            .to_string();
        // `.../namespaces/NS/pods/NAME/log` -> `pods/<name>/log`: names are not kinds.
        let named = r.path.split('/').skip_while(|p| *p != "namespaces").count() > 3;
        let sub = match (named, r.path.rsplit('/').next()) {
            (true, Some("log")) => "/<name>/log".to_string(),
            (true, _) => "/<name>".to_string(),
            _ => String::new(),
        };
        let verb = if r.is_watch() {
            "WATCH"
        } else if r.is_list() {
            "LIST"
        } else {
            r.method.as_str()
        };
        *kinds.entry(format!("{verb} {resource}{sub}")).or_default() += 1;
    }
    let jobs = double.jobs(NS).len();
    println!("kubernetes_api: {TASKS} tasks, batch_size {BATCH}, max_running {MAX_RUNNING}");
    println!("  flow run wall time: {:.2} s", wall.as_secs_f64());
    println!(
        "  driver CPU (user + sys): {cpu:.2} s, peak RSS {:.1} MB",
        usage.ru_maxrss as f64 / 1024.0
    );
    println!("  Jobs created: {jobs}");
    println!("  API requests: {} in all", requests.len());
    for (kind, n) in &kinds {
        println!("    {kind}: {n}");
    }
    println!(
        "  requests per task: {:.3}",
        requests.len() as f64 / TASKS as f64
    );
}
