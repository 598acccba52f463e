//! What the state says: tasks, attempts, timings, events (read-only queries).

use super::*;

impl StateStore {
    /// Every task, by id.
    pub fn load_tasks(&self) -> Result<HashMap<String, TaskRow>, StateError> {
        // A reader may meet a database of an older layout (the driver migrates first).
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(sql(&self.path))?;
        if version < SCHEMA_VERSION {
            return Err(StateError::TooOld {
                path: self.path.display().to_string(),
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        let mut stmt = self
            .conn
            .prepare("SELECT id, step, idx, state, attempts, retries, infra_retries, error_class, message, not_before, pid, job_id, params, product, consumed, work, started FROM tasks")
            .map_err(sql(&self.path))?;
        let rows = stmt
            .query_map([], |r| {
                let state: String = r.get(3)?;
                Ok(TaskRow {
                    id: r.get(0)?,
                    step: r.get(1)?,
                    index: r.get::<_, i64>(2)? as u64,
                    state: TaskState::parse(&state).unwrap_or(TaskState::Pending),
                    attempts: r.get::<_, i64>(4)? as u32,
                    retries: r.get::<_, i64>(5)? as u32,
                    infra_retries: r.get::<_, i64>(6)? as u32,
                    error_class: r.get(7)?,
                    message: r.get(8)?,
                    not_before: r.get(9)?,
                    pid: r.get::<_, Option<i64>>(10)?.map(|p| p as u32),
                    job_id: r.get(11)?,
                    params: r.get(12)?,
                    product: r.get(13)?,
                    consumed: r.get(14)?,
                    work: r.get(15)?,
                    started: r.get(16)?,
                })
            })
            .map_err(sql(&self.path))?;
        let mut out = HashMap::new();
        for row in rows {
            let row = row.map_err(sql(&self.path))?;
            out.insert(row.id.clone(), row);
        }
        Ok(out)
    }

    /// Per task: how many attempts failed for lack of time (`walltime`) and of memory
    /// (`out-of-memory`): the escalation level of its next attempt.
    pub fn escalation_counts(&self) -> Result<HashMap<String, (u32, u32)>, StateError> {
        let mut stmt = self
            .conn
            .prepare("SELECT task_id, SUM(error_class = 'walltime'), SUM(error_class = 'out-of-memory') FROM attempts WHERE error_class IN ('walltime', 'out-of-memory') GROUP BY task_id")
            .map_err(sql(&self.path))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    (r.get::<_, i64>(1)? as u32, r.get::<_, i64>(2)? as u32),
                ))
            })
            .map_err(sql(&self.path))?;
        rows.collect::<Result<HashMap<_, _>, _>>()
            .map_err(sql(&self.path))
    }

    /// Per step: (first submission or start, last end, attempts ended, mean seconds of the
    /// attempts that succeeded): what elapsed time and ETA are computed from.
    pub fn step_timing(&self) -> Result<HashMap<String, StepTiming>, StateError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT t.step, MIN(COALESCE(a.submitted, a.started)), MAX(a.ended), COUNT(a.ended),
                        AVG(CASE WHEN a.error_class IS NULL AND a.ended IS NOT NULL AND a.started IS NOT NULL
                                 THEN a.ended - a.started END)
                 FROM attempts a JOIN tasks t ON t.id = a.task_id GROUP BY t.step",
            )
            .map_err(sql(&self.path))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    StepTiming {
                        first_start: r.get(1)?,
                        last_end: r.get(2)?,
                        ended: r.get::<_, i64>(3)? as u64,
                        mean_success_s: r.get(4)?,
                    },
                ))
            })
            .map_err(sql(&self.path))?;
        rows.collect::<Result<HashMap<_, _>, _>>()
            .map_err(sql(&self.path))
    }

    /// Details of the successful attempt of every succeeded task that has some.
    pub fn success_details(&self) -> Result<HashMap<String, String>, StateError> {
        let mut stmt = self
            .conn
            .prepare("SELECT a.task_id, a.details FROM attempts a JOIN tasks t ON t.id = a.task_id AND t.attempts = a.attempt WHERE t.state = 'succeeded' AND a.details IS NOT NULL")
            .map_err(sql(&self.path))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(sql(&self.path))?;
        rows.collect::<Result<HashMap<_, _>, _>>()
            .map_err(sql(&self.path))
    }

    /// Attempts of one task, oldest first.
    pub fn attempts(&self, task_id: &str) -> Result<Vec<AttemptRow>, StateError> {
        let mut stmt = self
            .conn
            .prepare("SELECT task_id, attempt, executor, job_id, started, ended, exit_code, error_class, message, details FROM attempts WHERE task_id = ?1 ORDER BY attempt")
            .map_err(sql(&self.path))?;
        let rows = stmt
            .query_map([task_id], |r| {
                Ok(AttemptRow {
                    task_id: r.get(0)?,
                    attempt: r.get::<_, i64>(1)? as u32,
                    executor: r.get(2)?,
                    job_id: r.get(3)?,
                    started: r.get(4)?,
                    ended: r.get(5)?,
                    exit_code: r.get(6)?,
                    error_class: r.get(7)?,
                    message: r.get(8)?,
                    details: r.get(9)?,
                })
            })
            .map_err(sql(&self.path))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(sql(&self.path))
    }

    /// Every attempt with its task (step, index, parameters, state), by step, task index and
    /// attempt: what `flow trace` and `flow report` read. Works on a layout-1 database too
    /// (no `submitted`/`usage` there).
    pub fn attempt_records(&self) -> Result<Vec<AttemptRecord>, StateError> {
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(sql(&self.path))?;
        let extra = if version >= 2 {
            "a.submitted, a.usage"
        } else {
            "NULL, NULL"
        };
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT a.task_id, t.step, t.idx, t.params, t.state, a.attempt, a.executor, a.job_id, {extra},
                        a.started, a.ended, a.exit_code, a.signal, a.error_class, a.message, a.details
                 FROM attempts a JOIN tasks t ON t.id = a.task_id
                 ORDER BY t.step, t.idx, a.attempt"
            ))
            .map_err(sql(&self.path))?;
        let rows = stmt
            .query_map([], |r| {
                let state: String = r.get(4)?;
                Ok(AttemptRecord {
                    task_id: r.get(0)?,
                    step: r.get(1)?,
                    index: r.get::<_, i64>(2)? as u64,
                    params: r.get(3)?,
                    task_state: TaskState::parse(&state).unwrap_or(TaskState::Pending),
                    attempt: r.get::<_, i64>(5)? as u32,
                    executor: r.get(6)?,
                    job_id: r.get(7)?,
                    submitted: r.get(8)?,
                    usage: r.get(9)?,
                    started: r.get(10)?,
                    ended: r.get(11)?,
                    exit_code: r.get(12)?,
                    signal: r.get(13)?,
                    error_class: r.get(14)?,
                    message: r.get(15)?,
                    details: r.get(16)?,
                })
            })
            .map_err(sql(&self.path))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(sql(&self.path))
    }

    /// Events of the given kind, oldest first: (time, task id, detail).
    pub fn events_of_kind(
        &self,
        kind: &str,
    ) -> Result<Vec<(f64, Option<String>, String)>, StateError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT at, task_id, COALESCE(detail, '') FROM events WHERE kind = ?1 ORDER BY seq",
            )
            .map_err(sql(&self.path))?;
        let rows = stmt
            .query_map([kind], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(sql(&self.path))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(sql(&self.path))
    }

    /// Task ids starting with `prefix`.
    /// The prefix is matched literally (`%` and `_` are not wildcards).
    pub fn find_tasks(&self, prefix: &str) -> Result<Vec<String>, StateError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id FROM tasks WHERE substr(id, 1, length(?1)) = ?1 LIMIT 5")
            .map_err(sql(&self.path))?;
        let rows = stmt
            .query_map([prefix], |r| r.get(0))
            .map_err(sql(&self.path))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(sql(&self.path))
    }
}
