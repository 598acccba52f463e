//! The campaign's state in SQLite: campaign metadata, steps, tasks, attempts, events, and
//! the driver's lease.
//!
//! One driver writes (it holds the lease); readers (`flow status`) open their own
//! connection and, in WAL mode, never block it. Changes are applied in groups, one
//! transaction per scheduler turn, so persistence does not cap throughput.

use crate::task_state::TaskState;
use flow_executors::AttemptOutcome;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod lease;
mod reads;
mod writes;

pub use lease::{driver_alive, hostname, process_alive};

/// Version of the database layout; `migrate` upgrades older files step by step.
pub const SCHEMA_VERSION: i64 = 3;

const MIGRATIONS: &[&str] = &[
    // 0 -> 1
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
     CREATE TABLE steps (name TEXT PRIMARY KEY, kind TEXT NOT NULL, task_count INTEGER NOT NULL,
                         digest TEXT NOT NULL, info TEXT);
     CREATE TABLE tasks (id TEXT PRIMARY KEY, step TEXT NOT NULL, idx INTEGER NOT NULL,
                         params TEXT NOT NULL, state TEXT NOT NULL,
                         attempts INTEGER NOT NULL DEFAULT 0,
                         retries INTEGER NOT NULL DEFAULT 0,
                         infra_retries INTEGER NOT NULL DEFAULT 0,
                         error_class TEXT, message TEXT, not_before REAL,
                         pid INTEGER, job_id TEXT, result TEXT, updated REAL);
     CREATE INDEX tasks_by_step ON tasks (step, state);
     CREATE TABLE attempts (task_id TEXT NOT NULL, attempt INTEGER NOT NULL, executor TEXT NOT NULL,
                            job_id TEXT, pid INTEGER, started REAL, ended REAL, exit_code INTEGER,
                            signal INTEGER, error_class TEXT, message TEXT, details TEXT,
                            PRIMARY KEY (task_id, attempt));
     CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, task_id TEXT,
                          kind TEXT NOT NULL, detail TEXT);
     CREATE TABLE lease (id INTEGER PRIMARY KEY CHECK (id = 1), host TEXT NOT NULL, pid INTEGER NOT NULL,
                         started REAL NOT NULL, heartbeat REAL NOT NULL);",
    // 1 -> 2: what a success produced and consumed (staleness), what its id was made of
    // (plan reasons), when an attempt was submitted apart from when it started, and
    // what it used (`ResourceUsage` JSON).
    "ALTER TABLE tasks ADD COLUMN product TEXT;
     ALTER TABLE tasks ADD COLUMN consumed TEXT;
     ALTER TABLE tasks ADD COLUMN work TEXT;
     ALTER TABLE tasks ADD COLUMN started REAL;
     ALTER TABLE attempts ADD COLUMN submitted REAL;
     ALTER TABLE attempts ADD COLUMN usage TEXT;
     CREATE INDEX tasks_by_step_params ON tasks (step, params);",
    // 2 -> 3: adaptive steps (see `adaptive_state.rs`): every ask and tell, committed before
    // it takes effect. `loop_key` is the step's work digest: a changed step starts afresh.
    "CREATE TABLE adaptive_asks (step TEXT NOT NULL, loop_key TEXT NOT NULL, trial INTEGER NOT NULL,
                                 batch INTEGER NOT NULL, asked_n INTEGER NOT NULL,
                                 param_id TEXT NOT NULL, params TEXT NOT NULL, at REAL NOT NULL,
                                 PRIMARY KEY (step, loop_key, trial));
     CREATE TABLE adaptive_tells (step TEXT NOT NULL, loop_key TEXT NOT NULL, trial INTEGER NOT NULL,
                                  param_id TEXT NOT NULL, state TEXT NOT NULL, loss REAL,
                                  result TEXT NOT NULL, at REAL NOT NULL,
                                  PRIMARY KEY (step, loop_key, trial));
     CREATE TABLE adaptive_loops (step TEXT NOT NULL, loop_key TEXT NOT NULL,
                                  finished INTEGER NOT NULL DEFAULT 0,
                                  PRIMARY KEY (step, loop_key));",
];

/// A lease older than this is taken over even if its holder looks alive elsewhere.
pub const LEASE_STALE_AFTER: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state database {path}: {source}")]
    Sqlite {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot create {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("campaign is being run by pid {pid} on {host} (started {started}, last heartbeat {age:.0} s ago); wait for it or stop it with `flow cancel`")]
    LeaseHeld {
        host: String,
        pid: i64,
        started: String,
        age: f64,
    },
    #[error("state database {path} {why}; flow does not replace it: move it away, or run `flow run FILE --reset-state` to keep it as {path}.corrupt-<time> and start the state over (tasks it recorded as done would run again)")]
    Corrupt { path: String, why: String },
    #[error("state database {path} has layout {found}, older than this flow's ({known}): an older flow wrote it, or its set-up was cut short (a full disk?); `flow run FILE` brings it up to date")]
    TooOld {
        path: String,
        found: i64,
        known: i64,
    },
    #[error("state database {path} was written by a newer flow (layout {found}, this flow knows {known}); upgrade flow")]
    TooNew {
        path: String,
        found: i64,
        known: i64,
    },
}

/// One task as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRow {
    pub id: String,
    pub step: String,
    pub index: u64,
    pub state: TaskState,
    pub attempts: u32,
    pub retries: u32,
    pub infra_retries: u32,
    pub error_class: Option<String>,
    pub message: Option<String>,
    pub not_before: Option<f64>,
    pub pid: Option<u32>,
    pub job_id: Option<String>,
    /// The task's parameters (JSON object of strings, as written).
    pub params: String,
    /// A success's product fingerprint.
    pub product: Option<String>,
    /// The digest of the upstream products its last attempt consumed.
    pub consumed: Option<String>,
    /// What its id was made of (`compile::WorkComponents` as JSON).
    pub work: Option<String>,
    /// When its current attempt started running (None while only submitted).
    pub started: Option<f64>,
}

/// When a step's attempts ran (`StateStore::step_timing`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepTiming {
    pub first_start: Option<f64>,
    pub last_end: Option<f64>,
    pub ended: u64,
    pub mean_success_s: Option<f64>,
}

/// One attempt as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRow {
    pub task_id: String,
    pub attempt: u32,
    pub executor: String,
    pub job_id: Option<String>,
    pub started: Option<f64>,
    pub ended: Option<f64>,
    pub exit_code: Option<i32>,
    pub error_class: Option<String>,
    pub message: Option<String>,
    pub details: Option<String>,
}

/// One attempt joined with its task, as [`StateStore::attempt_records`] reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRecord {
    pub task_id: String,
    pub step: String,
    pub index: u64,
    /// The task's parameters, JSON object text.
    pub params: String,
    /// The task's current state (of its latest attempt).
    pub task_state: TaskState,
    pub attempt: u32,
    pub executor: String,
    pub job_id: Option<String>,
    /// When the attempt was handed to the executor.
    pub submitted: Option<f64>,
    pub started: Option<f64>,
    pub ended: Option<f64>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub error_class: Option<String>,
    pub message: Option<String>,
    pub details: Option<String>,
    /// `flow_executors::ResourceUsage` JSON.
    pub usage: Option<String>,
}

/// A change the scheduler wants persisted; applied in groups by [`StateStore::apply`].
#[derive(Debug, Clone)]
pub enum Change {
    /// A new attempt was handed to the executor.
    Launched {
        task_id: String,
        attempt: u32,
        executor: String,
        /// The batch it was submitted in (recorded as `batch:<key>` until a job id arrives).
        batch_key: String,
        at: f64,
        /// The digest of the upstream products it consumes (steps with `needs`).
        consumed: Option<String>,
    },
    /// The executor started it.
    Started {
        task_id: String,
        attempt: u32,
        job_id: String,
        pid: Option<u32>,
        at: f64,
    },
    /// It ended; the task moves to `state`.
    Finished {
        task_id: String,
        attempt: u32,
        outcome: AttemptOutcome,
        state: TaskState,
        retries: u32,
        infra_retries: u32,
        not_before: Option<f64>,
        details: Option<String>,
        /// A success's product fingerprint.
        product: Option<String>,
    },
    /// A succeeded task's output changed but still validates: its new fingerprint (its
    /// consumers become stale).
    Product { task_id: String, product: String },
    /// The task moves to `state` without an attempt (blocked, re-queued, cancelled).
    SetState {
        task_id: String,
        state: TaskState,
        message: Option<String>,
    },
    Event {
        task_id: Option<String>,
        kind: String,
        detail: String,
    },
}

/// The open database.
pub struct StateStore {
    conn: Connection,
    path: PathBuf,
}

pub(crate) fn sql(path: &Path) -> impl Fn(rusqlite::Error) -> StateError + '_ {
    move |source| StateError::Sqlite {
        path: path.display().to_string(),
        source,
    }
}

/// An existing database file must be an SQLite database: a 0-byte or foreign file (a disk
/// that filled up, a copy cut short) is refused by name instead of being silently replaced
/// by an empty state, which would rerun every finished task.
fn check_database_file(path: &Path) -> Result<(), StateError> {
    use std::io::Read;
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(());
    };
    let corrupt = |why: &str| StateError::Corrupt {
        path: path.display().to_string(),
        why: why.to_string(),
    };
    if !meta.is_file() {
        return Err(corrupt("is not a regular file"));
    }
    if meta.len() == 0 {
        return Err(corrupt("is empty (0 bytes)"));
    }
    let mut header = [0u8; 16];
    let read = std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut header))
        .is_ok();
    if !read || &header != b"SQLite format 3\0" {
        return Err(corrupt("is not an SQLite database (its header is wrong)"));
    }
    Ok(())
}

fn corrupt_or_sql(path: &Path) -> impl Fn(rusqlite::Error) -> StateError + '_ {
    move |source| match source.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase) => {
            StateError::Corrupt {
                path: path.display().to_string(),
                why: format!("is damaged ({source})"),
            }
        }
        _ => StateError::Sqlite {
            path: path.display().to_string(),
            source,
        },
    }
}

fn directory_writable(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

/// A path for an SQLite `file:` URI (`%`, `?` and `#` escaped).
fn uri_path(path: &Path) -> String {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = String::new();
    for c in abs.to_string_lossy().chars() {
        match c {
            '%' => out.push_str("%25"),
            '?' => out.push_str("%3f"),
            '#' => out.push_str("%23"),
            c => out.push(c),
        }
    }
    out
}

/// Move a database that cannot be used aside (with its `-wal`/`-shm` files) so the next
/// open starts a new state: what `flow run --reset-state` does. Returns the new name.
pub fn set_aside(path: &Path) -> Result<Option<PathBuf>, StateError> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(None);
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let aside = PathBuf::from(format!("{}.corrupt-{stamp}", path.display()));
    for suffix in ["", "-wal", "-shm"] {
        let from = PathBuf::from(format!("{}{suffix}", path.display()));
        if std::fs::symlink_metadata(&from).is_ok() {
            let to = PathBuf::from(format!("{}{suffix}", aside.display()));
            std::fs::rename(&from, &to).map_err(|source| StateError::Io {
                path: from.display().to_string(),
                source,
            })?;
        }
    }
    Ok(Some(aside))
}

impl StateStore {
    /// Open (creating and migrating) the database for writing.
    pub fn open(path: &Path) -> Result<StateStore, StateError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| StateError::Io {
                path: dir.display().to_string(),
                source,
            })?;
        }
        if !path.exists() {
            Self::create_atomically(path)?;
        }
        check_database_file(path)?;
        let conn = Connection::open(path).map_err(corrupt_or_sql(path))?;
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(sql(path))?;
        // WAL lets status readers work while the driver writes. It needs shared memory that
        // network file systems do not provide; the caller keeps the file on a local disk.
        let _mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(corrupt_or_sql(path))?;
        conn.execute_batch("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;")
            .map_err(sql(path))?;
        let mut store = StateStore {
            conn,
            path: path.to_path_buf(),
        };
        store.migrate()?;
        Ok(store)
    }

    /// Create a new database with its schema beside `path` and rename it into place: a
    /// driver stopped at any moment leaves either no database or a complete one, never a
    /// 0-byte file that later runs must refuse as corrupt.
    fn create_atomically(path: &Path) -> Result<(), StateError> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "state.db".into());
        let temporary = path.with_file_name(format!(".{name}.new.{}", std::process::id()));
        let io = |source| StateError::Io {
            path: temporary.display().to_string(),
            source,
        };
        let _ = std::fs::remove_file(&temporary);
        let made = Self::make_schema_at(&temporary);
        if made.is_err() {
            let _ = std::fs::remove_file(&temporary);
        }
        made?;
        std::fs::File::open(&temporary)
            .and_then(|f| f.sync_all())
            .map_err(io)?;
        std::fs::rename(&temporary, path).map_err(|source| StateError::Io {
            path: path.display().to_string(),
            source,
        })?;
        if let Some(dir) = path.parent() {
            let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(())
    }

    /// A database with the current schema at `temporary` (journal mode DELETE: nothing
    /// beside it to rename).
    fn make_schema_at(temporary: &Path) -> Result<(), StateError> {
        {
            let conn = Connection::open(temporary).map_err(sql(temporary))?;
            conn.execute_batch("PRAGMA journal_mode=DELETE;")
                .map_err(sql(temporary))?;
            let mut store = StateStore {
                conn,
                path: temporary.to_path_buf(),
            };
            store.migrate()?;
        }
        Ok(())
    }

    /// Open read-only (never blocks the driver, never writes). A database in a directory
    /// this process cannot write (a read-only file system, an archive) is opened as
    /// immutable: SQLite then needs no `-shm`/`-wal` files, which is right for a campaign
    /// no driver runs on.
    pub fn open_readonly(path: &Path) -> Result<StateStore, StateError> {
        check_database_file(path)?;
        let conn = if directory_writable(path) {
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        } else {
            let uri = format!("file:{}?immutable=1", uri_path(path));
            Connection::open_with_flags(
                uri,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
            )
        }
        .map_err(corrupt_or_sql(path))?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(sql(path))?;
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'tasks'",
                [],
                |r| r.get(0),
            )
            .map_err(corrupt_or_sql(path))?;
        if tables == 0 {
            return Err(StateError::Corrupt {
                path: path.display().to_string(),
                why: "is an SQLite database without flow's tables".into(),
            });
        }
        Ok(StateStore {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// The connection and the file's path, for stores of one step kind kept in their own
    /// module (`adaptive_state.rs`).
    pub(crate) fn connection(&mut self) -> (&mut Connection, &Path) {
        (&mut self.conn, &self.path)
    }

    /// Read-only access to the connection (status readers).
    pub(crate) fn connection_ref(&self) -> (&Connection, &Path) {
        (&self.conn, &self.path)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn migrate(&mut self) -> Result<(), StateError> {
        let path = self.path.clone();
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(sql(&path))?;
        if version > SCHEMA_VERSION {
            return Err(StateError::TooNew {
                path: path.display().to_string(),
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        for (i, step) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = self.conn.transaction().map_err(sql(&path))?;
            tx.execute_batch(step).map_err(sql(&path))?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)
                .map_err(sql(&path))?;
            tx.commit().map_err(sql(&path))?;
        }
        Ok(())
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StateError> {
        self.conn
            .execute("INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value", params![key, value])
            .map(|_| ())
            .map_err(sql(&self.path))
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>, StateError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(sql(&self.path))
    }
}

fn format_time(unix: f64) -> String {
    let (y, m, d, hh, mm, ss) = crate::time_text::civil_utc(unix as i64);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02} UTC")
}

/// File systems where SQLite's locking and WAL shared memory cannot be trusted.
pub fn network_filesystem(path: &Path) -> Option<&'static str> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let mut probe = path.to_path_buf();
    while !probe.exists() {
        if !probe.pop() {
            return None;
        }
    }
    let c = CString::new(probe.as_os_str().as_bytes()).ok()?;
    // SAFETY: statfs fills the zeroed struct; c is a valid NUL-terminated path.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    match st.f_type as i64 {
        0x6969 => Some("NFS"),
        0x0BD0_0BD0 => Some("Lustre"),
        0x4750_4653 => Some("GPFS"),
        0xFF53_4D42 | 0xFE53_4D42 => Some("SMB/CIFS"),
        0x1983_0326 => Some("BeeGFS"),
        0x00C3_6400 => Some("CephFS"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_is_exclusive_and_stale_leases_are_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let mut a = StateStore::open(&path).unwrap();
        let mut b = StateStore::open(&path).unwrap();
        let me = std::process::id();
        assert!(a.acquire_lease("h", me, 100.0).unwrap().is_none());
        assert_eq!(
            a.live_lease("h", 101.0).unwrap().map(|l| l.1),
            Some(me as i64)
        );
        assert_eq!(
            a.live_lease("elsewhere", 101.0).unwrap().map(|l| l.1),
            Some(me as i64)
        );
        // Same host, another live pid (pid 1 exists): refused.
        a.conn.execute("UPDATE lease SET pid = 1", []).unwrap();
        assert!(matches!(
            b.acquire_lease("h", me, 101.0),
            Err(StateError::LeaseHeld { .. })
        ));
        // Heartbeat too old: taken over.
        let note = b
            .acquire_lease("h", me, 100.0 + LEASE_STALE_AFTER.as_secs_f64() + 1.0)
            .unwrap();
        assert!(note.unwrap().contains("no heartbeat"));
        // Dead pid on this host: taken over at once.
        a.conn
            .execute("UPDATE lease SET pid = 999999, heartbeat = 1000", [])
            .unwrap();
        // A dead driver's lease is no driver (flow cancel then acts itself).
        assert!(a.live_lease("h", 1000.5).unwrap().is_none());
        assert!(a.live_lease("elsewhere", 1000.5).unwrap().is_some());
        assert!(a
            .live_lease("elsewhere", 1000.0 + LEASE_STALE_AFTER.as_secs_f64() + 1.0)
            .unwrap()
            .is_none());
        assert!(b
            .acquire_lease("h", me, 1001.0)
            .unwrap()
            .unwrap()
            .contains("no longer running"));
    }

    #[test]
    fn tasks_round_trip_and_requeue() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = StateStore::open(&dir.path().join("s.db")).unwrap();
        let rows = [("a".to_string(), 0u64), ("b".to_string(), 1)];
        s.insert_tasks(
            rows.iter()
                .map(|(id, i)| (id.as_str(), "st", *i, "{}".to_string(), "{}".to_string())),
        )
        .unwrap();
        assert_eq!(
            s.insert_tasks(rows.iter().map(|(id, i)| (
                id.as_str(),
                "st",
                *i,
                "{}".to_string(),
                "{}".to_string()
            )))
            .unwrap(),
            0
        );
        s.apply(
            &[Change::SetState {
                task_id: "a".into(),
                state: TaskState::Failed,
                message: Some("x".into()),
            }],
            1.0,
        )
        .unwrap();
        assert_eq!(s.load_tasks().unwrap()["a"].state, TaskState::Failed);
        assert_eq!(
            s.requeue_ids(
                &[TaskState::Failed],
                &["a".to_string(), "b".to_string()],
                2.0
            )
            .unwrap(),
            1
        );
        assert_eq!(s.load_tasks().unwrap()["a"].state, TaskState::Pending);
    }

    /// An adopted job is seen to start when the new driver first polls it; its own result
    /// says when it really started, and that earlier time is what the trace keeps.
    #[test]
    fn an_attempt_keeps_the_earlier_start_its_result_records() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = StateStore::open(&dir.path().join("s.db")).unwrap();
        s.insert_tasks([("a", "st", 0u64, "{}".to_string(), "{}".to_string())].into_iter())
            .unwrap();
        let outcome = |started: f64| flow_executors::AttemptOutcome {
            exit_code: Some(0),
            signal: None,
            error_class: None,
            message: None,
            started_at: Some(started),
            ended_at: Some(300.0),
            usage: None,
        };
        for (task, reported, expected) in [("a", 50.0, 50.0), ("a", 250.0, 200.0)] {
            s.apply(
                &[
                    Change::Launched {
                        task_id: task.into(),
                        attempt: if reported < 100.0 { 1 } else { 2 },
                        executor: "slurm".into(),
                        batch_key: "b".into(),
                        at: 10.0,
                        consumed: None,
                    },
                    Change::Started {
                        task_id: task.into(),
                        attempt: if reported < 100.0 { 1 } else { 2 },
                        job_id: "7".into(),
                        pid: None,
                        at: 200.0,
                    },
                    Change::Finished {
                        task_id: task.into(),
                        attempt: if reported < 100.0 { 1 } else { 2 },
                        outcome: outcome(reported),
                        state: TaskState::Succeeded,
                        retries: 0,
                        infra_retries: 0,
                        not_before: None,
                        details: None,
                        product: None,
                    },
                ],
                300.0,
            )
            .unwrap();
            let attempts = s.attempts(task).unwrap();
            assert_eq!(
                attempts.last().unwrap().started,
                Some(expected),
                "{reported}"
            );
        }
    }

    #[test]
    fn dates_render() {
        assert_eq!(format_time(0.0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_time(1_795_000_000.0), "2026-11-18 11:06:40 UTC");
    }
}
