//! What a backend offers beyond the calls every [`crate::Executor`] has, so the CLI asks
//! instead of comparing backend names. Known from the executor kind alone
//! ([`Capabilities::of`]): asking needs no connection to the backend.

use flow_dsl::model::ExecutorKind;

/// See the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// [`crate::Executor::attempt_logs`] can say more than the task's own log files
    /// (Kubernetes: the logs of the attempt's pods), so `flow logs` asks it.
    pub attempt_logs: bool,
    /// What one backend job is called in messages (`Slurm job`, `Kubernetes Job`).
    pub job_noun: &'static str,
    /// Attempts outlive the driver as backend jobs that [`crate::Executor::cancel_all`]
    /// can stop when no driver runs (`flow cancel`), and a restarted driver adopts.
    pub jobs_outlive_driver: bool,
}

impl Capabilities {
    /// The capabilities of a backend.
    pub fn of(kind: ExecutorKind) -> Capabilities {
        match kind {
            ExecutorKind::Local => Capabilities {
                attempt_logs: false,
                job_noun: "process",
                jobs_outlive_driver: false,
            },
            ExecutorKind::Slurm => Capabilities {
                attempt_logs: false,
                job_noun: "Slurm job",
                jobs_outlive_driver: true,
            },
            ExecutorKind::Kubernetes => Capabilities {
                attempt_logs: true,
                job_noun: "Kubernetes Job",
                jobs_outlive_driver: true,
            },
        }
    }

    /// The capabilities of the backend an attempt recorded by name (`attempts.executor`);
    /// `None` for a name flow does not know.
    pub fn of_name(name: &str) -> Option<Capabilities> {
        ExecutorKind::parse(name).map(Capabilities::of)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_backend_says_what_it_offers() {
        let kube = Capabilities::of_name("kubernetes").unwrap();
        assert!(kube.attempt_logs && kube.jobs_outlive_driver);
        assert_eq!(kube.job_noun, "Kubernetes Job");
        let slurm = Capabilities::of_name("slurm").unwrap();
        assert!(!slurm.attempt_logs && slurm.jobs_outlive_driver);
        let local = Capabilities::of(ExecutorKind::Local);
        assert!(!local.attempt_logs && !local.jobs_outlive_driver);
        assert!(Capabilities::of_name("pbs").is_none());
    }
}
