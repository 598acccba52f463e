//! Notifications: a campaign (or its machine) says `notify:` and flow tells a webhook
//! and/or a command when the campaign starts, when a step first fails, when a gate decides,
//! and when it ends.
//!
//! ```yaml
//! notify:
//!   webhook: https://hooks.slack.com/services/...   # JSON POST; Slack/Mattermost read `text`
//!   command: mail -s "flow" me@example.org          # sh -c, the event JSON on stdin
//!   events: [start, failure, gate, end]             # the default: all four
//!   failure_interval: 10m                           # at most one failure message per interval
//! ```
//!
//! The campaign's `notify:` is merged over the machine recipe's, key by key, by the DSL
//! (`flow_dsl::machine_settings::notify`), which hands the result over typed.
//!
//! Contract: the driver calls [`Notifier::start`], [`Notifier::failure`],
//! [`Notifier::gate`] and [`Notifier::end`] with plain data; each call only formats the
//! event and offers it to a bounded queue (never blocks: when the queue is full the event
//! is dropped and logged). One background thread delivers: webhook POSTs time out after
//! [`DELIVERY_TIMEOUT`] and are tried [`ATTEMPTS`] times with a growing pause, the command is
//! killed after [`DELIVERY_TIMEOUT`] too; every delivery and every failure to deliver is a
//! line in `metadata/notify.log`. Only `end` waits, at most [`END_FLUSH`], for what is
//! queued to go out before the driver exits.

use serde::Serialize;
use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Schema tag of every event document.
pub const SCHEMA: &str = "flow-notify-v1";
/// Events waiting for delivery at most; more are dropped (and logged).
pub const QUEUE: usize = 64;
/// Deliveries per event, webhook and command each.
pub const ATTEMPTS: u32 = 3;
/// Limit of one delivery try.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`Notifier::end`] waits for queued events to go out.
pub const END_FLUSH: Duration = Duration::from_secs(15);

pub use flow_dsl::machine_settings::notify::{EventKind, NotifySettings};

/// Task counts of the whole campaign at the time of an event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub total: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub blocked: u64,
    pub cancelled: u64,
    pub running: u64,
}

impl Counts {
    /// Sums of the driver's per-step progress rows.
    pub fn of_rows(rows: &[crate::progress::ProgressRow]) -> Counts {
        let mut c = Counts::default();
        for r in rows {
            c.total += r.total;
            c.succeeded += r.succeeded;
            c.failed += r.failed;
            c.blocked += r.blocked;
            c.cancelled += r.cancelled;
            c.running += r.running;
        }
        c
    }
}

/// The driver's one call after an attempt was decided: a gate's decision and a failure for
/// good are told. `counts` is asked only when something is sent (it sums every step).
pub fn notify_attempt(
    notifier: &mut Notifier,
    step: &str,
    task: &str,
    decision: &crate::task_state::Decision,
    ended: &crate::campaign_core::EndedAttempt,
    counts: impl Fn() -> Counts,
) {
    use crate::campaign_core::GateEffect;
    let gate = match &ended.gate {
        GateEffect::None => None,
        GateEffect::Continue => Some(("continue", "")),
        GateEffect::Warn(m) => Some(("warn", m.as_str())),
        GateEffect::Stop(m) => Some(("stop", m.as_str())),
    };
    if let Some((action, text)) = gate {
        notifier.gate(step, action, text, counts());
    }
    if *decision == crate::task_state::Decision::Failed {
        notifier.failure(
            Failure {
                step: step.to_string(),
                task: task.to_string(),
                class: ended
                    .outcome
                    .error_class
                    .map(|c| c.as_str().to_string())
                    .unwrap_or_default(),
                message: ended.outcome.message.clone().unwrap_or_default(),
            },
            counts(),
        );
    }
}

/// One failed task, as the driver knows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    pub step: String,
    pub task: String,
    pub class: String,
    pub message: String,
}

/// A message to deliver.
#[derive(Debug, Clone)]
struct Outgoing {
    kind: EventKind,
    doc: serde_json::Value,
}

enum Job {
    Deliver(Outgoing),
    /// Everything before this was handled: say so on the channel.
    Flush(SyncSender<()>),
}

/// See the module documentation. A `Notifier` without settings does nothing.
pub struct Notifier {
    campaign: String,
    version: String,
    settings: Option<NotifySettings>,
    queue: Option<SyncSender<Job>>,
    worker: Option<JoinHandle<()>>,
    log: PathBuf,
    failed_steps: HashSet<String>,
    last_failure_sent: Option<Instant>,
    suppressed_failures: u64,
    dropped: u64,
}

fn unix_now() -> f64 {
    flow_executors::task_runner::now()
}

/// Append one line to the notification log (errors ignored: logging never stops a run).
fn log_line(path: &Path, line: &str) {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{} {line}", crate::trace::iso_utc(unix_now()));
    }
}

impl Notifier {
    /// A notifier that does nothing.
    /// Whether the campaign configured any notification (the driver skips the work of
    /// telling otherwise).
    pub fn enabled(&self) -> bool {
        self.settings.is_some()
    }

    pub fn disabled() -> Notifier {
        Notifier {
            campaign: String::new(),
            version: String::new(),
            settings: None,
            queue: None,
            worker: None,
            log: PathBuf::new(),
            failed_steps: HashSet::new(),
            last_failure_sent: None,
            suppressed_failures: 0,
            dropped: 0,
        }
    }

    /// Start the delivery thread when there are settings; `log` is `metadata/notify.log`.
    pub fn new(
        settings: Option<NotifySettings>,
        campaign: &str,
        version: &str,
        log: PathBuf,
    ) -> Notifier {
        let Some(settings) = settings else {
            return Notifier::disabled();
        };
        let (tx, rx) = sync_channel::<Job>(QUEUE);
        let worker_settings = settings.clone();
        let worker_log = log.clone();
        let worker = std::thread::Builder::new()
            .name("flow-notify".into())
            .spawn(move || deliver_all(rx, &worker_settings, &worker_log))
            .ok();
        Notifier {
            campaign: campaign.to_string(),
            version: version.to_string(),
            queue: worker.as_ref().map(|_| tx),
            worker,
            settings: Some(settings),
            log,
            failed_steps: HashSet::new(),
            last_failure_sent: None,
            suppressed_failures: 0,
            dropped: 0,
        }
    }

    /// From a campaign's `notify:` (the campaign's over the machine's, typed by the DSL).
    pub fn for_campaign(campaign: &flow_dsl::model::Campaign, log: PathBuf) -> Notifier {
        Notifier::new(
            campaign.notify.clone(),
            &campaign.name,
            &campaign.version,
            log,
        )
    }

    fn wants(&self, kind: EventKind) -> bool {
        self.settings
            .as_ref()
            .is_some_and(|s| s.events.contains(&kind))
            && self.queue.is_some()
    }

    fn offer(&mut self, kind: EventKind, text: String, mut doc: serde_json::Value) {
        if let Some(m) = doc.as_object_mut() {
            let mut head = serde_json::Map::new();
            head.insert("text".into(), text.into());
            head.insert("schema".into(), SCHEMA.into());
            head.insert("campaign".into(), self.campaign.clone().into());
            head.insert("version".into(), self.version.clone().into());
            head.insert("event".into(), kind.as_str().into());
            head.insert("at".into(), unix_now().into());
            head.insert("host".into(), crate::state::hostname().into());
            head.append(m);
            *m = head;
        }
        let Some(queue) = &self.queue else { return };
        match queue.try_send(Job::Deliver(Outgoing { kind, doc })) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped += 1;
                log_line(
                    &self.log,
                    &format!("{}: dropped, the delivery queue is full", kind.as_str()),
                );
            }
        }
    }

    /// The campaign starts: `steps` are (name, tasks).
    pub fn start(&mut self, steps: &[(String, u64)], counts: Counts) {
        if !self.wants(EventKind::Start) {
            return;
        }
        let text = format!(
            "flow: campaign {} {} started: {} task(s) in {} step(s), {} already done",
            self.campaign,
            self.version,
            counts.total,
            steps.len(),
            counts.succeeded
        );
        let steps: Vec<serde_json::Value> = steps
            .iter()
            .map(|(name, tasks)| serde_json::json!({"step": name, "tasks": tasks}))
            .collect();
        self.offer(
            EventKind::Start,
            text,
            serde_json::json!({"counts": counts, "steps": steps}),
        );
    }

    /// A task failed for good. Only a step's first failure is told, and at most one per
    /// `failure_interval`; the others are counted into the next message.
    pub fn failure(&mut self, failure: Failure, counts: Counts) {
        if !self.wants(EventKind::Failure) || !self.failed_steps.insert(failure.step.clone()) {
            return;
        }
        let interval = self
            .settings
            .as_ref()
            .map_or(Duration::ZERO, |s| s.failure_interval);
        if self
            .last_failure_sent
            .is_some_and(|t| t.elapsed() < interval)
        {
            self.suppressed_failures += 1;
            log_line(
                &self.log,
                &format!(
                    "failure: step {} not told (rate limit: one per {:?})",
                    failure.step, interval
                ),
            );
            return;
        }
        self.last_failure_sent = Some(Instant::now());
        let suppressed = std::mem::take(&mut self.suppressed_failures);
        let text = format!(
            "flow: campaign {} {}: step {} has a failed task ({}: {}); {} failed so far{}",
            self.campaign,
            self.version,
            failure.step,
            failure.class,
            failure.message,
            counts.failed,
            if suppressed > 0 {
                format!(", and {suppressed} other step(s) failed since the last message")
            } else {
                String::new()
            }
        );
        self.offer(
            EventKind::Failure,
            text,
            serde_json::json!({
                "step": failure.step,
                "counts": counts,
                "failures": [failure],
                "suppressed_failures": suppressed,
            }),
        );
    }

    /// A gate (md-benchmark) decided: `action` is `continue`, `warn` or `stop`.
    pub fn gate(&mut self, step: &str, action: &str, message: &str, counts: Counts) {
        if !self.wants(EventKind::Gate) {
            return;
        }
        let text = format!(
            "flow: campaign {} {}: gate of step {step}: {action}{}",
            self.campaign,
            self.version,
            if message.is_empty() {
                String::new()
            } else {
                format!(": {message}")
            }
        );
        self.offer(
            EventKind::Gate,
            text,
            serde_json::json!({
                "step": step,
                "action": action,
                "message": message,
                "counts": counts,
            }),
        );
    }

    /// The campaign ended (or was interrupted): the last message, then a bounded wait
    /// ([`END_FLUSH`]) for the queue to drain.
    pub fn end(&mut self, counts: Counts, interrupted: bool, failures: &[Failure]) {
        if self.wants(EventKind::End) {
            let verdict = if interrupted {
                "was interrupted"
            } else if counts.failed + counts.blocked + counts.cancelled == 0 {
                "finished"
            } else {
                "finished with failures"
            };
            let text = format!(
                "flow: campaign {} {} {verdict}: {} succeeded, {} failed, {} blocked, {} cancelled of {}",
                self.campaign,
                self.version,
                counts.succeeded,
                counts.failed,
                counts.blocked,
                counts.cancelled,
                counts.total
            );
            let shown: Vec<&Failure> = failures.iter().take(20).collect();
            self.offer(
                EventKind::End,
                text,
                serde_json::json!({
                    "counts": counts,
                    "interrupted": interrupted,
                    "failures": shown,
                    "more_failures": failures.len().saturating_sub(shown.len()),
                    "dropped_events": self.dropped,
                }),
            );
        }
        self.flush(END_FLUSH);
    }

    /// Wait up to `limit` for everything queued to be delivered (or given up on).
    pub fn flush(&mut self, limit: Duration) -> bool {
        let Some(queue) = &self.queue else {
            return true;
        };
        let (tx, rx) = sync_channel(1);
        let deadline = Instant::now() + limit;
        let mut job = Job::Flush(tx);
        loop {
            match queue.try_send(job) {
                Ok(()) => break,
                Err(TrySendError::Full(j)) if Instant::now() < deadline => {
                    job = j;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(_) => return false,
            }
        }
        rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .is_ok()
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        // Closing the queue ends the worker once it has done what it holds; it is not
        // joined (a webhook that hangs must not hold the process).
        self.queue.take();
        self.worker.take();
    }
}

fn deliver_all(rx: Receiver<Job>, settings: &NotifySettings, log: &Path) {
    loop {
        match rx.recv_timeout(Duration::from_secs(3600)) {
            Ok(Job::Deliver(out)) => deliver(&out, settings, log),
            Ok(Job::Flush(done)) => {
                let _ = done.try_send(());
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

fn deliver(out: &Outgoing, settings: &NotifySettings, log: &Path) {
    let body = out.doc.to_string();
    if let Some(url) = &settings.webhook {
        let mut tries = 0;
        loop {
            tries += 1;
            match post_json(url, &body, DELIVERY_TIMEOUT) {
                Ok(status) => {
                    log_line(
                        log,
                        &format!(
                            "{}: webhook answered HTTP {status} (try {tries})",
                            out.kind.as_str()
                        ),
                    );
                    break;
                }
                Err(e) => {
                    log_line(
                        log,
                        &format!("{}: webhook try {tries} failed: {e}", out.kind.as_str()),
                    );
                    if tries >= ATTEMPTS {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(500 * u64::from(tries)));
                }
            }
        }
    }
    if let Some(command) = &settings.command {
        let mut tries = 0;
        loop {
            tries += 1;
            match run_command(command, &body, DELIVERY_TIMEOUT) {
                Ok(()) => {
                    log_line(
                        log,
                        &format!("{}: command succeeded (try {tries})", out.kind.as_str()),
                    );
                    break;
                }
                Err(e) => {
                    log_line(
                        log,
                        &format!("{}: command try {tries} failed: {e}", out.kind.as_str()),
                    );
                    if tries >= ATTEMPTS {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(500 * u64::from(tries)));
                }
            }
        }
    }
}

/// Run `sh -c command` with `body` on stdin; killed after `timeout`.
fn run_command(command: &str, body: &str, timeout: Duration) -> Result<(), String> {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start /bin/sh: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read its stdin is fine.
        let _ = stdin.write_all(body.as_bytes());
    }
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                let first = err.lines().next().unwrap_or("").to_string();
                return Err(format!(
                    "{status}{}",
                    if first.is_empty() {
                        String::new()
                    } else {
                        format!(": {first}")
                    }
                ));
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                flow_executors::task_runner::kill_group(child.id(), libc::SIGKILL);
                let _ = child.wait();
                return Err(format!("killed after {timeout:?}"));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// A URL split into what a request needs.
#[derive(Debug, PartialEq)]
struct Target {
    tls: bool,
    host: String,
    port: u16,
    path: String,
}

fn parse_url(url: &str) -> Result<Target, String> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(format!("`{url}` is not an http:// or https:// URL"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => (
            h.trim_start_matches('[').trim_end_matches(']').to_string(),
            p.parse::<u16>()
                .map_err(|_| format!("`{url}`: bad port `{p}`"))?,
        ),
        _ => (authority.to_string(), if tls { 443 } else { 80 }),
    };
    if host.is_empty() {
        return Err(format!("`{url}` names no host"));
    }
    Ok(Target {
        tls,
        host,
        port,
        path: path.to_string(),
    })
}

/// POST `body` as JSON; returns the HTTP status when it is 2xx, an error otherwise.
pub fn post_json(url: &str, body: &str, timeout: Duration) -> Result<u16, String> {
    use std::net::{TcpStream, ToSocketAddrs};
    let t = parse_url(url)?;
    let addr = (t.host.as_str(), t.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", t.host))?
        .next()
        .ok_or_else(|| format!("{} has no address", t.host))?;
    let tcp = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    tcp.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    tcp.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let request = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: flow/{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        t.path,
        t.host,
        env!("CARGO_PKG_VERSION"),
        body.len()
    );
    let response = if t.tls {
        let mut stream = tls_stream(&t.host, tcp)?;
        exchange(&mut stream, &request)?
    } else {
        let mut tcp = tcp;
        exchange(&mut tcp, &request)?
    };
    let status_line = response.lines().next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: `{status_line}`"))?;
    if (200..300).contains(&status) {
        Ok(status)
    } else {
        Err(format!("HTTP {status}"))
    }
}

fn exchange(stream: &mut (impl Read + Write), request: &str) -> Result<String, String> {
    stream
        .write_all(request.as_bytes())
        .and_then(|_| stream.flush())
        .map_err(|e| format!("sending: {e}"))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    // The status line is all that matters; read until it is there or the peer closes.
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.windows(2).any(|w| w == b"\r\n") || buf.len() > 64 * 1024 {
                    break;
                }
            }
            Err(e) if buf.is_empty() => return Err(format!("reading the answer: {e}")),
            Err(_) => break,
        }
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

fn tls_stream(
    host: &str,
    tcp: std::net::TcpStream,
) -> Result<rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>, String> {
    use std::sync::Arc;
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for cert in found.certs {
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return Err("no CA certificates found on this machine".into());
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| format!("{host}: {e}"))?;
    let conn = rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    Ok(rustls::StreamOwned::new(conn, tcp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("https://hooks.example.org/services/T/B").unwrap(),
            Target {
                tls: true,
                host: "hooks.example.org".into(),
                port: 443,
                path: "/services/T/B".into()
            }
        );
        assert_eq!(
            parse_url("http://127.0.0.1:8080").unwrap(),
            Target {
                tls: false,
                host: "127.0.0.1".into(),
                port: 8080,
                path: "/".into()
            }
        );
        assert!(parse_url("ftp://x").is_err());
        assert!(parse_url("http://:80/").is_err());
    }

    #[test]
    fn only_a_steps_first_failure_is_told_and_failures_are_rate_limited() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("events.jsonl");
        let settings = NotifySettings {
            webhook: None,
            command: Some(format!(
                "cat >> {}; echo >> {}",
                out.display(),
                out.display()
            )),
            events: [EventKind::Failure, EventKind::End].into_iter().collect(),
            failure_interval: Duration::from_secs(3600),
        };
        let mut n = Notifier::new(Some(settings), "c", "v1", dir.path().join("notify.log"));
        let f = |step: &str| Failure {
            step: step.into(),
            task: "t".into(),
            class: "nonzero-exit".into(),
            message: "exit status 2".into(),
        };
        n.start(&[("a".into(), 1)], Counts::default()); // not asked for
        n.failure(f("a"), Counts::default());
        n.failure(f("a"), Counts::default()); // same step
        n.failure(f("b"), Counts::default()); // rate limited
        n.end(Counts::default(), false, &[f("a"), f("b")]);
        let text = std::fs::read_to_string(&out).unwrap();
        let docs: Vec<serde_json::Value> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let kinds: Vec<&str> = docs.iter().map(|d| d["event"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["failure", "end"]);
        assert_eq!(docs[0]["step"], "a");
        assert_eq!(docs[1]["failures"].as_array().unwrap().len(), 2);
        let log = std::fs::read_to_string(dir.path().join("notify.log")).unwrap();
        assert!(log.contains("step b not told"), "{log}");
    }

    #[test]
    fn an_unreachable_webhook_is_retried_logged_and_never_blocks() {
        let dir = tempfile::tempdir().unwrap();
        // A port nobody listens on (bound, then closed).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let settings = NotifySettings {
            webhook: Some(format!("http://127.0.0.1:{port}/hook")),
            command: None,
            events: [EventKind::Start].into_iter().collect(),
            failure_interval: Duration::ZERO,
        };
        let log = dir.path().join("notify.log");
        let mut n = Notifier::new(Some(settings), "c", "v1", log.clone());
        let t0 = Instant::now();
        for _ in 0..200 {
            n.start(&[], Counts::default());
        }
        assert!(
            t0.elapsed() < Duration::from_millis(500),
            "{:?}",
            t0.elapsed()
        );
        assert!(n.dropped > 0, "a full queue drops events");
        drop(n);
        std::thread::sleep(Duration::from_millis(2500));
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("webhook try 1 failed"), "{text}");
        assert!(
            text.contains("dropped, the delivery queue is full"),
            "{text}"
        );
    }
}
