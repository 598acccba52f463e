//! Where things live in a campaign directory.
//!
//! ```text
//! {output}/{version}_{name}/
//!   metadata/   config.json (resolved config snapshot), state.db, driver.log, driver.pid,
//!               results/{step}/b{NNNN}/{task}.a{N}.json, specs/, manifests/
//!   logs/       {step}/b{NNNN}/{task}.a{N}.out|err   (grouped by 1,000 tasks)
//!   qa/         summaries written by QA steps
//!   ...         step outputs (e.g. catalogs/r0000/...)
//! ```

use std::path::{Path, PathBuf};

/// Tasks per log/result sub-directory, so no directory holds 40,000 files.
pub const GROUP: u64 = 1000;

#[derive(Debug, Clone)]
pub struct Layout {
    pub campaign_dir: PathBuf,
}

impl Layout {
    pub fn new(campaign_dir: &Path) -> Layout {
        Layout {
            campaign_dir: campaign_dir.to_path_buf(),
        }
    }
    pub fn metadata(&self) -> PathBuf {
        self.campaign_dir.join("metadata")
    }
    pub fn logs(&self) -> PathBuf {
        self.campaign_dir.join("logs")
    }
    pub fn qa(&self) -> PathBuf {
        self.campaign_dir.join("qa")
    }
    pub fn config_snapshot(&self) -> PathBuf {
        self.metadata().join("config.json")
    }
    pub fn default_state_db(&self) -> PathBuf {
        self.metadata().join("state.db")
    }
    /// When the database lives elsewhere (network file system), this file says where.
    pub fn state_pointer(&self) -> PathBuf {
        self.metadata().join("state-location")
    }
    pub fn status_snapshot(&self) -> PathBuf {
        self.metadata().join("status.json")
    }
    /// The driver lock (one driver per campaign, whatever `--state-dir` says).
    pub fn driver_lock(&self) -> PathBuf {
        self.metadata().join("driver.lock")
    }
    pub fn cancel_request(&self) -> PathBuf {
        self.metadata().join("cancel-requested")
    }
    pub fn driver_log(&self) -> PathBuf {
        self.metadata().join("driver.log")
    }
    /// The directories flow writes (the ones outputs may not use,
    /// `flow_dsl::load::RESERVED_DIRS`, and `qa/`) must not lead out of the campaign
    /// directory through a symbolic link: refuse before anything is written there (a
    /// `metadata -> /elsewhere` link put the state database outside).
    pub fn check_confined(&self) -> Result<(), String> {
        let dirs = flow_dsl::load::RESERVED_DIRS.iter().copied().chain(["qa"]);
        for dir in dirs {
            crate::confined_path::layout_path(&self.campaign_dir, &self.campaign_dir.join(dir))?;
        }
        Ok(())
    }

    pub fn driver_pid(&self) -> PathBuf {
        self.metadata().join("driver.pid")
    }
    fn group(index: u64) -> String {
        format!("b{:04}", index / GROUP)
    }
    pub fn result_file(&self, step: &str, index: u64, task_id: &str, attempt: u32) -> PathBuf {
        self.metadata()
            .join("results")
            .join(step)
            .join(Self::group(index))
            .join(format!("{task_id}.a{attempt}.json"))
    }
    /// The local executor's result journals (`flow_executors::local`): the exit statuses
    /// of shell launches, one JSON line per ended attempt.
    pub fn result_journals(&self) -> PathBuf {
        self.metadata().join("result-journals")
    }
    pub fn spec_file(&self, step: &str, index: u64, task_id: &str, attempt: u32) -> PathBuf {
        self.metadata()
            .join("specs")
            .join(step)
            .join(Self::group(index))
            .join(format!("{task_id}.a{attempt}.json"))
    }
    pub fn log_files(
        &self,
        step: &str,
        index: u64,
        task_id: &str,
        attempt: u32,
    ) -> (PathBuf, PathBuf) {
        let dir = self.logs().join(step).join(Self::group(index));
        (
            dir.join(format!("{task_id}.a{attempt}.out")),
            dir.join(format!("{task_id}.a{attempt}.err")),
        )
    }
    /// Per-attempt scratch directory of typed steps (qe-scf attempts, md-benchmark).
    pub fn work_dir(&self, step: &str, index: u64, task_id: &str) -> PathBuf {
        self.campaign_dir
            .join("work")
            .join(step)
            .join(Self::group(index))
            .join(task_id)
    }
}

/// Write a file atomically (temp + rename in the same directory).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
