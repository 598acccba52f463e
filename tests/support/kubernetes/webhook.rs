//! A validating admission webhook on 127.0.0.1 that makes the real API server answer the
//! next N Job creates of one namespace with a chosen status (500: an admission webhook that
//! failed is how a real API server says 500 to a create). The API server calls it over TLS
//! with the dev cluster's serving certificate (its SANs hold 127.0.0.1; the CA is the
//! cluster's), so nothing new is issued.
//!
//! The webhook configuration is cluster-scoped but selects only the test's namespace, and its
//! `failurePolicy` is `Ignore`: once the test ends (the server gone, the configuration
//! deleted on drop), nothing else is refused.

use super::real::{kubectl, kubectl_ok, STATE};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A running webhook and its configuration; both go on drop.
pub struct FailingCreates {
    name: String,
    stop: Arc<AtomicBool>,
    port: u16,
}

struct Answers {
    status: u16,
    remaining: AtomicU32,
    /// A dry-run create reached the webhook: the API server uses the configuration.
    probed: AtomicBool,
}

impl FailingCreates {
    /// Install it for `namespace`: the next `times` Job creates there (not dry runs) are
    /// refused with `status`. Returns once the API server calls it.
    pub fn install(namespace: &str, status: u16, times: u32) -> FailingCreates {
        let answers = Arc::new(Answers {
            status,
            remaining: AtomicU32::new(times),
            probed: AtomicBool::new(false),
        });
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let tls = Arc::new(server_config());
        {
            let (answers, stop) = (answers.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (answers, tls) = (answers.clone(), tls.clone());
                    std::thread::spawn(move || {
                        let _ = serve(stream, &tls, &answers);
                    });
                }
            });
        }
        let name = format!("{namespace}-fail-creates");
        let ca = std::fs::read(format!("{STATE}/pki/ca.crt")).unwrap();
        let config = json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": name},
            "webhooks": [{
                "name": "fail-creates.flow.test",
                "clientConfig": {"url": format!("https://127.0.0.1:{port}/"), "caBundle": base64(&ca)},
                "rules": [{"apiGroups": ["batch"], "apiVersions": ["v1"], "operations": ["CREATE"],
                    "resources": ["jobs"], "scope": "Namespaced"}],
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "failurePolicy": "Ignore",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 5,
            }],
        });
        kubectl_ok(&["apply", "-f", "-"], Some(&config.to_string()));
        let webhook = FailingCreates { name, stop, port };
        // The API server picks the configuration up from its informer: probe with dry runs
        // (which the webhook lets through) until one reaches it.
        let probe = json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "webhook-probe", "namespace": namespace},
            "spec": {"template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "probe", "image": "flow.local/pause:3.10"}]}}}});
        let start = Instant::now();
        while !answers.probed.load(Ordering::SeqCst) {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the API server never called the webhook"
            );
            kubectl_ok(
                &["create", "--dry-run=server", "-o", "name", "-f", "-"],
                Some(&probe.to_string()),
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        webhook
    }
}

impl Drop for FailingCreates {
    fn drop(&mut self) {
        let _ = kubectl(
            &["delete", "validatingwebhookconfiguration", &self.name],
            None,
        );
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port)); // wakes the accept loop
    }
}

/// The API server's serving certificate and key (SANs: 127.0.0.1, localhost, ...).
fn server_config() -> rustls::ServerConfig {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(format!("{STATE}/pki/apiserver.crt"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(format!("{STATE}/pki/apiserver.key")).unwrap();
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap()
}

/// One HTTP/1.1 request (an AdmissionReview), one answer, then the connection closes.
fn serve(
    stream: TcpStream,
    tls: &Arc<rustls::ServerConfig>,
    answers: &Answers,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let conn = rustls::ServerConnection::new(tls.clone()).map_err(std::io::Error::other)?;
    let mut tls_stream = rustls::StreamOwned::new(conn, stream);
    let mut reader = BufReader::new(&mut tls_stream);
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((key, value)) = line.split_once(':') {
            if key.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let review: Value = serde_json::from_slice(&body).unwrap_or_default();
    let request = &review["request"];
    let dry_run = request["dryRun"] == true;
    if dry_run {
        answers.probed.store(true, Ordering::SeqCst);
    }
    let refuse = !dry_run
        && answers
            .remaining
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
    let mut response = json!({"uid": request["uid"], "allowed": !refuse});
    if refuse {
        response["status"] = json!({"code": answers.status,
            "message": "refused on purpose by the test's admission webhook"});
    }
    let answer = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "response": response})
    .to_string();
    write!(
        tls_stream,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
        answer.len()
    )?;
    tls_stream.flush()?;
    tls_stream.conn.send_close_notify();
    let _ = tls_stream.flush();
    Ok(())
}

/// Standard base64 (`base64 -w0`, coreutils).
fn base64(bytes: &[u8]) -> String {
    let mut child = std::process::Command::new("base64")
        .arg("-w0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("base64 runs");
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}
