//! `flow report`, `flow trace`, resource usage and notifications against real runs: the
//! report of a campaign with retries, failures, a gate and qe-scf results opened in a real
//! headless Chromium (`scripts/deps/chromium.sh` installs it; these tests fail, not skip,
//! without it), trace rows against what ran, and webhook notifications received by a
//! server on 127.0.0.1 started here.

mod support;
use support::*;

use flow_engine::state::{Change, StateStore};
use flow_engine::task_state::TaskState;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn machine(dir: &Path) {
    std::fs::write(
        dir.join("machine.yaml"),
        format!(
            "machine:\n  name: sandbox\n  executor: local\n  root: {}\n  local: {{cpus: 2}}\n  job_types:\n    cpu_intensive: {{cpus_per_task: 1, mem: 2G, time: 1h}}\n  defaults:\n    resources: {{job_type: cpu_intensive}}\n",
            dir.join("rootstock").display()
        ),
    )
    .unwrap();
}

/// Every step kind that has something to show: retries and failures with stderr
/// (`prepare`), qe-scf results with real pw.x (`scf`), an md-benchmark gate that stops
/// (`sanity`) and the step it blocks (`production`).
const SHOWCASE: &str = r#"campaign: {name: showcase, version: v1, machine: machine.yaml, output: campaigns}
defaults:
  execution: {max_retries: 1, retry_backoff: {initial: 0.1s, multiplier: 1}, timeout: 10m}
steps:
  prepare:
    kind: command
    array: {i: {range: [0, 6]}}
    command: "python3 -c 'b = bytearray(({{i}} + 1) * 20 * 1024 * 1024)'; if [ {{i}} -eq 4 ]; then echo 'Traceback (most recent call last):' >&2; echo 'ValueError: bad seed {{i}}' >&2; exit 3; fi; if [ {{i}} -eq 1 ] && [ ! -e qa/flaky-{{i}} ]; then touch qa/flaky-{{i}}; echo 'node hiccup' >&2; exit 7; fi"
  scf:
    kind: qe-scf
    structures: structures/si2*.extxyz
    pseudopotentials: {family: qe-debian}
    kpoints: {spacing: 0.6}
    ecutwfc: 20
    recovery: default
  emt-env:
    kind: build-env
    environment: emt
  sanity:
    kind: md-benchmark
    needs: [emt-env]
    model: emt
    system: {element: Cu, atoms: 32}
    md: {steps: 20, warmup_steps: 2}
    gate: {pass_below: -1000%, marginal_below: -999%, on_fail: stop}
  production:
    kind: command
    needs: [sanity, prepare]
    condition: all-completed
    command: echo production
"#;

fn chromium(args: &[&str]) -> std::process::Output {
    Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .args(args)
        .output()
        .expect("chromium runs (scripts/deps/chromium.sh installs it)")
}

/// Messages the page wrote to the console (Chromium logs every one as `...:CONSOLE:N]`,
/// uncaught exceptions and `console.error` alike; the report writes none), leaving out
/// Chromium's own start-up noise (dbus, GPU), which is not console output.
fn console_errors(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught"))
        .map(str::to_string)
        .collect()
}

/// The share of pixels of a PNG that are not the page background, and how many distinct
/// colours it has.
fn png_content(path: &Path) -> (f64, usize) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let pixels = &buf[..info.buffer_size()];
    let background = [pixels[0], pixels[1], pixels[2]];
    let mut other = 0usize;
    let mut colours = std::collections::HashSet::new();
    let total = pixels.len() / channels;
    for p in pixels.chunks(channels) {
        let rgb = [p[0], p[1], p[2]];
        if rgb != background {
            other += 1;
        }
        if colours.len() < 10_000 {
            colours.insert(rgb);
        }
    }
    (other as f64 / total as f64, colours.len())
}

#[test]
fn the_report_of_a_campaign_with_retries_failures_a_gate_and_qe_scf_opens_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    copy_dir(&root().join("examples/structures"), &d.join("structures"));
    machine(d);
    std::fs::write(d.join("showcase.yaml"), SHOWCASE).unwrap();
    let out = flow(d, &["run", "showcase.yaml"]);
    // One task fails for good and the gate blocks production: the run says so.
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let report = d.join("report.html");
    let out = flow(
        d,
        &["report", "showcase.yaml", "-o", report.to_str().unwrap()],
    );
    assert_ok(&out);
    let html = std::fs::read_to_string(&report).unwrap();
    // Self-contained: nothing is fetched.
    for needle in ["<link", "src=\"http", "src='http", "@import", "url(http"] {
        assert!(!html.contains(needle), "the report loads `{needle}`");
    }
    assert!(
        html.contains("ValueError: bad seed 4"),
        "first stderr lines of a failure"
    );
    assert!(html.contains("FAIL"), "the benchmark verdict");
    assert!(html.contains("2 converged"), "the qe-scf summary");
    assert!(
        html.contains("blocked by gate"),
        "why production did not run"
    );

    let url = format!("file://{}", report.display());
    let dom = chromium(&["--dump-dom", &url]);
    let dom_text = text(&dom.stdout);
    let errors = console_errors(&text(&dom.stderr));
    assert!(errors.is_empty(), "console errors: {errors:?}");
    // The script ran to its end (it counts the DAG's nodes) and caught no error.
    assert!(
        dom_text.contains(r#"data-report-ready="5""#),
        "{}",
        &dom_text[..dom_text.len().min(2000)]
    );
    assert!(
        !dom_text.contains("data-js-errors="),
        "script errors in the page"
    );
    for step in ["prepare", "scf", "emt-env", "sanity", "production"] {
        assert!(
            dom_text.contains(&format!(r#"id="step-{step}""#)),
            "no section for {step}"
        );
        assert!(
            dom_text.contains(&format!(r#"class="dag-node" data-step="{step}""#)),
            "no DAG node for {step}"
        );
    }

    let shot = d.join("report.png");
    let out = chromium(&[
        "--window-size=1300,2400",
        &format!("--screenshot={}", shot.display()),
        &url,
    ]);
    assert!(shot.exists(), "no screenshot: {}", text(&out.stderr));
    let (share, colours) = png_content(&shot);
    assert!(
        share > 0.05,
        "the screenshot is nearly blank ({share:.3} of pixels drawn)"
    );
    assert!(colours > 20, "the screenshot has {colours} colours");
}

#[test]
fn trace_rows_are_what_ran_with_peak_memory_near_the_truth() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    machine(d);
    // alloc: touches 150 MiB; always-fails: 2 attempts; flaky: fails once then succeeds.
    std::fs::write(
        d.join("t.yaml"),
        r#"campaign: {name: traced, version: v1, machine: machine.yaml, output: campaigns}
defaults:
  execution: {max_retries: 1, retry_backoff: {initial: 0.1s, multiplier: 1}}
steps:
  alloc:
    kind: command
    command: "python3 -c 'n = 150 * 1024 * 1024; b = bytearray(n); b[::4096] = b\"x\" * (n // 4096)'"
  always-fails:
    kind: command
    command: "echo nope >&2; exit 4"
  flaky:
    kind: command
    command: "if [ -e qa/once ]; then exit 0; fi; touch qa/once; exit 9"
"#,
    )
    .unwrap();
    let out = flow(d, &["run", "t.yaml"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let (store, tasks) = campaign_state(&d.join("campaigns/v1_traced"));
    let attempts: u32 = tasks.values().map(|t| t.attempts).sum();
    assert_eq!(attempts, 5);

    let tsv = flow(d, &["trace", "t.yaml"]);
    assert_ok(&tsv);
    let tsv = text(&tsv.stdout);
    let lines: Vec<Vec<&str>> = tsv.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(lines.len(), 1 + attempts as usize, "{tsv}");
    let header = &lines[0];
    assert_eq!(header.len(), flow_engine::trace::TSV_COLUMNS.len());
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    for row in &lines[1..] {
        assert_eq!(row.len(), header.len(), "{row:?}");
    }

    let json = flow(d, &["trace", "t.yaml", "--output", "json"]);
    assert_ok(&json);
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let rows = doc["attempts"].as_array().unwrap();
    assert_eq!(rows.len(), attempts as usize);
    let of = |step: &str| -> Vec<&serde_json::Value> {
        rows.iter().filter(|r| r["step"] == step).collect()
    };
    let states = |step: &str| -> Vec<(String, i64)> {
        of(step)
            .iter()
            .map(|r| {
                (
                    r["state"].as_str().unwrap().to_string(),
                    r["exit_code"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(states("alloc"), [("succeeded".to_string(), 0)]);
    assert_eq!(
        states("always-fails"),
        [("failed".to_string(), 4), ("failed".to_string(), 4)]
    );
    assert_eq!(
        states("flaky"),
        [("failed".to_string(), 9), ("succeeded".to_string(), 0)]
    );
    for r in rows {
        // Every attempt was measured, asked for what the job type says, and has its times.
        assert_eq!(r["usage_source"], "rusage", "{r}");
        assert_eq!(r["requested_cpus"], 1);
        assert_eq!(r["requested_mem_mib"], 2048);
        assert_eq!(r["requested_time_s"], 3600.0);
        let (s, b, e) = (
            r["submitted"].as_f64().unwrap(),
            r["started"].as_f64().unwrap(),
            r["ended"].as_f64().unwrap(),
        );
        assert!(s <= b && b <= e, "{r}");
        assert!(r["job_id"].as_str().unwrap().starts_with("local:"), "{r}");
    }
    // The record of the database agrees with the trace.
    let alloc_task = tasks.values().find(|t| t.step == "alloc").unwrap();
    assert_eq!(store.attempts(&alloc_task.id).unwrap().len(), 1);
    let peak = of("alloc")[0]["peak_rss_mib"].as_f64().unwrap();
    // 150 MiB touched by python: the peak is at least that and within a factor 2.
    assert!(
        (150.0..300.0).contains(&peak),
        "peak {peak} MiB for 150 MiB"
    );
    let tsv_peak: f64 = lines.iter().find(|l| l[col("step")] == "alloc").unwrap()
        [col("peak_rss_mib")]
    .parse()
    .unwrap();
    assert!((tsv_peak - peak).abs() < 0.1);
    // --step filters; an unknown one is an error naming the steps.
    let flaky = flow(d, &["trace", "t.yaml", "--step", "flaky"]);
    assert_eq!(text(&flaky.stdout).lines().count(), 3);
    let bad = flow(d, &["trace", "t.yaml", "--step", "nope"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad.stderr).contains("steps: alloc, always-fails, flaky"));
}

/// A webhook on 127.0.0.1 that answers 200 (after refusing the first `refuse` requests
/// with 500) and hands back every body it got.
fn webhook(refuse: usize) -> (String, std::sync::mpsc::Receiver<serde_json::Value>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks/flow", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = 0;
        for stream in listener.incoming().take(50) {
            let Ok(mut stream) = stream else { continue };
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 8192];
            // Headers, then Content-Length bytes of body.
            let body = loop {
                let Ok(n) = stream.read(&mut chunk) else {
                    break None;
                };
                if n == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let length: usize = text[..end]
                        .lines()
                        .find_map(|l| l.strip_prefix("Content-Length: "))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + length {
                        break Some(buf[end + 4..end + 4 + length].to_vec());
                    }
                }
            };
            seen += 1;
            let status = if seen <= refuse {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            let _ = stream.write_all(
                format!("HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
                    .as_bytes(),
            );
            if seen > refuse {
                if let Some(body) = body.and_then(|b| serde_json::from_slice(&b).ok()) {
                    let _ = tx.send(body);
                }
            }
        }
    });
    (url, rx)
}

#[test]
fn notifications_reach_a_webhook_and_a_command_and_a_dead_one_never_stops_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    machine(d);
    let (url, bodies) = webhook(1);
    let events = d.join("events.jsonl");
    std::fs::write(
        d.join("n.yaml"),
        format!(
            r#"campaign: {{name: noisy, version: v1, machine: machine.yaml, output: campaigns}}
notify:
  webhook: {url}
  command: "cat >> {events}; echo >> {events}"
defaults:
  execution: {{max_retries: 0}}
steps:
  work:
    kind: command
    array: {{i: {{range: [0, 4]}}}}
    command: "test {{{{i}}}} -lt 2 || {{ echo broken >&2; exit 1; }}"
  after:
    kind: command
    needs: [work]
    command: echo never
"#,
            events = events.display()
        ),
    )
    .unwrap();
    assert_ok(&flow(d, &["validate", "n.yaml"]));
    let out = flow(d, &["run", "n.yaml"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.len() < 3 && Instant::now() < deadline {
        if let Ok(b) = bodies.recv_timeout(Duration::from_millis(200)) {
            got.push(b);
        }
    }
    let kinds: Vec<&str> = got.iter().map(|b| b["event"].as_str().unwrap()).collect();
    // Two tasks of `work` fail: one failure message (its step's first), then the end. The
    // first POST was answered 500 and retried.
    assert_eq!(kinds, ["start", "failure", "end"], "{got:#?}");
    for b in &got {
        assert!(
            b["text"]
                .as_str()
                .unwrap()
                .starts_with("flow: campaign noisy v1"),
            "{b}"
        );
        assert_eq!(b["schema"], "flow-notify-v1");
        assert_eq!(b["campaign"], "noisy");
    }
    assert_eq!(got[1]["step"], "work");
    assert_eq!(got[1]["failures"][0]["class"], "nonzero-exit");
    assert_eq!(got[2]["counts"]["failed"], 2);
    assert_eq!(got[2]["counts"]["blocked"], 1);
    assert_eq!(got[2]["failures"].as_array().unwrap().len(), 2);
    let log = std::fs::read_to_string(d.join("campaigns/v1_noisy/metadata/notify.log")).unwrap();
    assert!(
        log.contains("start: webhook try 1 failed: HTTP 500"),
        "{log}"
    );
    assert!(
        log.contains("start: webhook answered HTTP 200 (try 2)"),
        "{log}"
    );
    // The command got the same events on stdin.
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);

    // A webhook nobody answers: the campaign runs as fast as without one.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        d.join("dead.yaml"),
        format!("campaign: {{name: dead, version: v1, machine: machine.yaml, output: campaigns}}\nnotify: {{webhook: 'http://127.0.0.1:{port}/x', events: [start, failure]}}\nsteps:\n  one: {{kind: command, command: 'true'}}\n"),
    )
    .unwrap();
    let t0 = Instant::now();
    assert_ok(&flow(d, &["run", "dead.yaml"]));
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    let log = std::fs::read_to_string(d.join("campaigns/v1_dead/metadata/notify.log")).unwrap();
    assert!(log.contains("start: webhook try 1 failed"), "{log}");
}

/// A 40,000-task campaign's report: the state is written through the store's own API (as
/// a driver would), the page is rendered, and it stays small and loads in Chromium.
#[test]
fn the_report_of_40000_tasks_is_binned_small_and_loads() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    machine(d);
    std::fs::write(
        d.join("big.yaml"),
        "campaign: {name: big, version: v1, machine: machine.yaml, output: campaigns}\nsteps:\n  mocks:\n    kind: command\n    array: {realization: {range: [0, 2000]}, snapshot: {range: [0, 20]}}\n    command: echo {{realization}} {{snapshot}}\n  summary:\n    kind: command\n    needs: [mocks]\n    command: echo done\n",
    )
    .unwrap();
    let campaign = flow_dsl::load::load_campaign(&d.join("big.yaml")).unwrap();
    let plan = flow_engine::compile::compile(&campaign, None).unwrap();
    assert_eq!(plan.total_tasks(), 40_001);
    let db = campaign.campaign_dir.join("metadata/state.db");
    let mut store = StateStore::open(&db).unwrap();
    let mut rows = Vec::new();
    for i in 0..campaign.steps.len() {
        for t in plan.tasks(i) {
            rows.push((t.id.clone(), campaign.steps[i].name.clone(), t.index));
        }
    }
    store
        .insert_tasks(rows.iter().map(|(id, s, i)| {
            (
                id.as_str(),
                s.as_str(),
                *i,
                "{}".to_string(),
                "{}".to_string(),
            )
        }))
        .unwrap();
    let t0 = 1_795_000_000.0;
    let mut changes = Vec::new();
    for (n, (id, _, _)) in rows.iter().enumerate() {
        let start = t0 + (n / 200) as f64 * 30.0;
        let fail = n % 97 == 0;
        changes.push(Change::Launched {
            task_id: id.clone(),
            attempt: 1,
            executor: "slurm".into(),
            batch_key: format!("b{}", n / 1000),
            at: start - 5.0,
            consumed: None,
        });
        changes.push(Change::Started {
            task_id: id.clone(),
            attempt: 1,
            job_id: format!("{}_{}", 1000 + n / 1000, n % 1000),
            pid: None,
            at: start,
        });
        changes.push(Change::Finished {
            task_id: id.clone(),
            attempt: 1,
            outcome: flow_executors::AttemptOutcome {
                exit_code: Some(if fail { 1 } else { 0 }),
                signal: None,
                error_class: fail.then_some(flow_dsl::error_class::ErrorClass::NonzeroExit),
                message: fail.then(|| "exit status 1".to_string()),
                started_at: Some(start),
                ended_at: Some(start + 20.0 + (n % 13) as f64),
                usage: Some(flow_executors::ResourceUsage {
                    max_rss_kib: Some(100_000 + (n % 50) as u64 * 1000),
                    user_cpu_s: Some(15.0),
                    system_cpu_s: Some(1.0),
                    source: "sacct".into(),
                    spawner_rss_kib: None,
                }),
            },
            state: if fail {
                TaskState::Failed
            } else {
                TaskState::Succeeded
            },
            retries: 0,
            infra_retries: 0,
            not_before: None,
            details: None,
            product: None,
        });
    }
    store.apply(&changes, t0).unwrap();
    drop(store);
    let started = Instant::now();
    let out = flow(d, &["report", "big.yaml", "-o", "big.html"]);
    assert_ok(&out);
    let render_time = started.elapsed();
    let html = std::fs::read_to_string(d.join("big.html")).unwrap();
    assert!(html.len() < 5 * 1024 * 1024, "{} bytes", html.len());
    assert!(
        html.contains("timeline binned"),
        "40,000 attempts are binned"
    );
    assert!(html.contains("40001 attempts"), "the count is said");
    eprintln!(
        "40,001-task report: {} KiB, written in {:.2} s (debug build)",
        html.len() / 1024,
        render_time.as_secs_f64()
    );
    let t = Instant::now();
    let dom = chromium(&[
        "--dump-dom",
        &format!("file://{}", d.join("big.html").display()),
    ]);
    let load = t.elapsed();
    assert!(text(&dom.stdout).contains(r#"data-report-ready="2""#));
    assert!(console_errors(&text(&dom.stderr)).is_empty());
    eprintln!(
        "chromium --dump-dom of it: {:.2} s (browser start included)",
        load.as_secs_f64()
    );
}
