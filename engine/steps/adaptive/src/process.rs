//! The algorithm as one long-lived process for the whole loop: started once, spoken to over
//! stdin/stdout in JSON lines ([`crate::protocol`]), its stderr appended to a log file.

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

/// What can go wrong talking to the algorithm.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("cannot start the algorithm `{program}`: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("the algorithm exited or closed its stdout (its stderr is in {log})")]
    Gone { log: PathBuf },
    #[error("the algorithm did not answer within {0:?} (its stderr is in {1})")]
    Timeout(Duration, PathBuf),
    #[error("the algorithm wrote a line that is not JSON ({error}): {line}")]
    NotJson { line: String, error: String },
    #[error("cannot write to the algorithm: {0}")]
    Write(std::io::Error),
}

/// A running algorithm.
pub struct AlgorithmProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<std::io::Result<String>>,
    log: PathBuf,
    timeout: Duration,
    /// Every request sent, for tests and diagnostics.
    sent: u64,
}

impl AlgorithmProcess {
    /// Start `argv` in `workdir` with `env` added, stderr appended to `log`. Each reply must
    /// come within `timeout`.
    pub fn spawn(
        argv: &[String],
        env: &[(String, String)],
        workdir: &Path,
        log: &Path,
        timeout: Duration,
    ) -> Result<AlgorithmProcess, ProcessError> {
        let program = argv.first().cloned().unwrap_or_default();
        let spawn_err = |source| ProcessError::Spawn {
            program: program.clone(),
            source,
        };
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir).map_err(spawn_err)?;
        }
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(spawn_err)?;
        let mut cmd = Command::new(&program);
        cmd.args(&argv[1.min(argv.len())..])
            .current_dir(workdir)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
        let mut child = cmd.spawn().map_err(spawn_err)?;
        let stdout = child.stdout.take().expect("piped stdout");
        let stdin = child.stdin.take();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let end = line.is_err();
                if tx.send(line).is_err() || end {
                    break;
                }
            }
        });
        Ok(AlgorithmProcess {
            child,
            stdin,
            lines: rx,
            log: log.to_path_buf(),
            timeout,
            sent: 0,
        })
    }

    /// Send one request and wait for its one-line reply.
    pub fn request(&mut self, message: &Value) -> Result<Value, ProcessError> {
        let stdin = self.stdin.as_mut().ok_or(ProcessError::Gone {
            log: self.log.clone(),
        })?;
        let mut line = message.to_string();
        line.push('\n');
        stdin
            .write_all(line.as_bytes())
            .and_then(|_| stdin.flush())
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    ProcessError::Gone {
                        log: self.log.clone(),
                    }
                } else {
                    ProcessError::Write(e)
                }
            })?;
        self.sent += 1;
        loop {
            match self.lines.recv_timeout(self.timeout) {
                Ok(Ok(reply)) if reply.trim().is_empty() => continue,
                Ok(Ok(reply)) => {
                    return serde_json::from_str(&reply).map_err(|e| ProcessError::NotJson {
                        line: reply.chars().take(500).collect(),
                        error: e.to_string(),
                    })
                }
                Ok(Err(_)) | Err(RecvTimeoutError::Disconnected) => {
                    return Err(ProcessError::Gone {
                        log: self.log.clone(),
                    })
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(ProcessError::Timeout(self.timeout, self.log.clone()))
                }
            }
        }
    }

    /// Requests sent so far.
    pub fn requests_sent(&self) -> u64 {
        self.sent
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Ask it to close, wait a moment, then kill it.
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(format!("{}\n", crate::protocol::close()).as_bytes());
            let _ = stdin.flush();
        }
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for AlgorithmProcess {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn talks_json_lines_and_reports_a_dead_process() {
        let dir = tempfile::tempdir().unwrap();
        let script = "while read line; do case \"$line\" in *close*) exit 0;; *die*) exit 3;; *) echo '{\"ok\":true,\"echo\":1}';; esac; done";
        let argv: Vec<String> = vec!["/bin/sh".into(), "-c".into(), script.into()];
        let log = dir.path().join("algo.log");
        let mut p =
            AlgorithmProcess::spawn(&argv, &[], dir.path(), &log, Duration::from_secs(5)).unwrap();
        let pid = p.pid();
        for _ in 0..3 {
            let r = p.request(&serde_json::json!({"op": "finished"})).unwrap();
            assert_eq!(r["echo"], 1);
        }
        // The same process answered every request.
        assert_eq!(p.pid(), pid);
        assert_eq!(p.requests_sent(), 3);
        assert!(matches!(
            p.request(&serde_json::json!({"op": "die"})),
            Err(ProcessError::Gone { .. })
        ));
        p.close();
    }
}
