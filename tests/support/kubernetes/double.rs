//! [`Cluster`] on the in-process API double (`flow-kube-double`): real HTTP on loopback, the
//! unmodified `kube` client in the `flow` binary, Indexed Jobs whose pods run
//! `flow task run-manifest` as local processes. One double per test, so tests run in parallel.
//!
//! What differs from a real node: no image, no container, no CPU limit (every pod of a Job
//! runs at once), and a pod told to stop is SIGKILLed at once (the real kubelet's SIGTERM,
//! which `flow task run-manifest` ignores, and its grace period are not emulated except by
//! an eviction's own grace).

use super::{ApiRequest, Cluster};
use crate::support::flow_cmd;
use flow_kube_double::{ApiDouble, Options, RecordedRequest};
use serde_json::Value;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const NS: &str = "flow-test";
/// The `User-Agent` of the harness's own requests, which [`Cluster::requests`] leaves out.
const HARNESS: &str = "flow-test-harness";

pub struct DoubleCluster {
    pub double: ApiDouble,
}

impl DoubleCluster {
    /// One raw HTTP/1.1 request to the double; (status code, body).
    fn http(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let address = self.double.url().trim_start_matches("http://").to_string();
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: double\r\nUser-Agent: {HARNESS}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let code = answer.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
        let body = answer
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (code, body)
    }
}

/// Kubernetes' verb of a request the double recorded.
fn verb(r: &RecordedRequest) -> &'static str {
    let collection = matches!(
        r.path.rsplit('/').next(),
        Some("jobs" | "pods" | "configmaps")
    );
    match r.method.as_str() {
        _ if r.is_watch() => "watch",
        _ if r.is_list() => "list",
        "GET" => "get",
        "POST" => "create",
        "PATCH" => "patch",
        "PUT" => "update",
        "DELETE" if collection => "deletecollection",
        "DELETE" => "delete",
        _ => "other",
    }
}

impl Cluster for DoubleCluster {
    const BACKEND: &'static str = "double";
    const POLL: Duration = Duration::from_millis(20);

    fn start(_test: &str) -> Option<DoubleCluster> {
        let double = ApiDouble::start(Options {
            namespace: NS.into(),
            ..Options::default()
        })
        .expect("the API double starts");
        Some(DoubleCluster { double })
    }

    fn namespace(&self) -> &str {
        NS
    }

    fn tempdir(&self) -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    fn write_kubeconfig(&self, path: &Path) {
        self.double.write_kubeconfig(path).unwrap();
    }

    fn kubernetes_block(&self) -> String {
        format!(
            "    namespace: {NS}\n    image: registry.invalid/flow:test\n    flow_binary: {}\n",
            env!("CARGO_BIN_EXE_flow")
        )
    }

    fn flow_command(&self, dir: &Path, args: &[&str]) -> Command {
        let mut c = flow_cmd(dir, args);
        c.env("KUBECONFIG", dir.join("kubeconfig"));
        c
    }

    fn limit(&self) -> Duration {
        Duration::from_secs(120)
    }

    fn node_capacity(&self) -> Option<usize> {
        None
    }

    fn termination_grace(&self) -> Duration {
        Duration::ZERO
    }

    fn jobs(&self) -> Vec<Value> {
        self.double.jobs(NS)
    }

    fn pods(&self) -> Vec<Value> {
        self.double.pods(NS)
    }

    fn requests(&self) -> Vec<ApiRequest> {
        self.double
            .requests()
            .iter()
            .filter(|r| r.user_agent != HARNESS)
            .map(|r| ApiRequest {
                method: r.method.clone(),
                verb: verb(r).to_string(),
                path: r.path.clone(),
                query: r.query.clone(),
                code: r.code,
            })
            .collect()
    }

    fn evict_pod(&self, name: &str, grace_seconds: Option<u32>) {
        let options = grace_seconds
            .map(|g| format!(",\"deleteOptions\":{{\"gracePeriodSeconds\":{g}}}"))
            .unwrap_or_default();
        let body = format!(
            "{{\"apiVersion\":\"policy/v1\",\"kind\":\"Eviction\",\"metadata\":{{\"name\":\"{name}\",\"namespace\":\"{NS}\"}}{options}}}"
        );
        let path = format!("{}/{name}/eviction", self.pods_path());
        let (code, answer) = self.http("POST", &path, &body);
        assert_eq!(code, 201, "eviction of {name}: {answer}");
    }

    fn kill_container(&self, pod: &Value) {
        let name = super::name_of(pod);
        assert!(self.double.fail_pod(NS, &name, 137), "{name} was running");
    }

    fn delete_pod(&self, name: &str) {
        let (code, answer) = self.http("DELETE", &format!("{}/{name}", self.pods_path()), "");
        assert_eq!(code, 200, "delete of {name}: {answer}");
    }

    fn create_secret(&self, name: &str, key: &str, value: &str) {
        self.double.put_secret(name, key, value);
    }

    fn fail_job_creates(&self, status: u16, times: u32) -> bool {
        self.double
            .inject_failure("POST", &self.jobs_path(), status, times);
        true
    }

    fn expire_watches(&self) -> bool {
        self.double.expire_watches();
        true
    }
}
