//! Transient Slurm failures are retried: slurmctld is stopped and started again while a
//! command waits. Its own test binary, so no other Slurm test runs meanwhile (cargo runs
//! test binaries one after another). Needs root and `scripts/slurm-dev.sh up`.

mod slurm_support;

use flow_dsl::quantity::Rate;
use flow_executors::rate_limit::RateLimiter;
use flow_executors::slurm::slurm_cli::{SlurmCli, TransientRetry};
use slurm_support::require_slurm;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

#[test]
fn squeue_is_retried_while_slurmctld_restarts() {
    require_slurm();
    let pid = std::fs::read_to_string("/run/slurmctld.pid")
        .expect("slurmctld pid file (scripts/slurm-dev.sh up writes /run/slurmctld.pid)");
    let pid = pid.trim().to_string();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/slurm-dev.sh");
    let status = Command::new("kill").arg(&pid).status().expect("kill");
    assert!(status.success(), "could not stop slurmctld {pid}");
    let restart = std::thread::spawn(move || {
        // squeue itself keeps trying for about 9 s before it gives up; stay down longer.
        std::thread::sleep(Duration::from_secs(12));
        Command::new("bash")
            .arg(&script)
            .arg("up")
            .output()
            .expect("slurm-dev.sh up")
    });
    let cli = SlurmCli::new(
        RateLimiter::new(Rate::parse("10/s").expect("rate"), 5),
        TransientRetry {
            attempts: 20,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(2),
        },
        None,
    );
    let output = cli
        .run("squeue", &["--me".to_string(), "--noheader".to_string()])
        .expect("squeue succeeds once slurmctld is back");
    let restarted = restart.join().expect("restart thread");
    assert!(
        restarted.status.success(),
        "slurm-dev.sh up failed: {}",
        String::from_utf8_lossy(&restarted.stderr)
    );
    assert!(output.success, "{output:?}");
    let calls = cli.call_counts()["squeue"];
    assert!(calls >= 2, "squeue was not retried ({calls} call)");
}
