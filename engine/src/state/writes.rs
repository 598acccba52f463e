//! Changing the state: steps, new tasks, the core's changes applied in one transaction,
//! re-queues.

use super::*;

impl StateStore {
    pub fn upsert_step(
        &self,
        name: &str,
        kind: &str,
        task_count: u64,
        digest: &str,
    ) -> Result<(), StateError> {
        self.conn
            .execute(
                "INSERT INTO steps (name, kind, task_count, digest) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(name) DO UPDATE SET kind = excluded.kind, task_count = excluded.task_count, digest = excluded.digest",
                params![name, kind, task_count as i64, digest],
            )
            .map(|_| ())
            .map_err(sql(&self.path))
    }

    pub fn set_step_info(&self, name: &str, info: &serde_json::Value) -> Result<(), StateError> {
        self.conn
            .execute(
                "UPDATE steps SET info = ?2 WHERE name = ?1",
                params![name, info.to_string()],
            )
            .map(|_| ())
            .map_err(sql(&self.path))
    }

    pub fn step_info(&self) -> Result<HashMap<String, serde_json::Value>, StateError> {
        let mut stmt = self
            .conn
            .prepare("SELECT name, info FROM steps WHERE info IS NOT NULL")
            .map_err(sql(&self.path))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(sql(&self.path))?;
        let mut out = HashMap::new();
        for row in rows {
            let (k, v) = row.map_err(sql(&self.path))?;
            if let Ok(json) = serde_json::from_str(&v) {
                out.insert(k, json);
            }
        }
        Ok(out)
    }

    /// Insert tasks that are not there yet (one transaction).
    pub fn insert_tasks<'a>(
        &mut self,
        tasks: impl Iterator<Item = (&'a str, &'a str, u64, String, String)>,
    ) -> Result<usize, StateError> {
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(sql(&path))?;
        let mut n = 0;
        {
            let mut stmt = tx
                .prepare_cached("INSERT OR IGNORE INTO tasks (id, step, idx, params, state, updated, work) VALUES (?1, ?2, ?3, ?4, 'pending', 0, ?5)")
                .map_err(sql(&path))?;
            for (id, step, idx, params_json, work) in tasks {
                n += stmt
                    .execute(params![id, step, idx as i64, params_json, work])
                    .map_err(sql(&path))?;
            }
        }
        tx.commit().map_err(sql(&path))?;
        Ok(n)
    }

    /// Apply a group of changes in one transaction.
    pub fn apply(&mut self, changes: &[Change], now: f64) -> Result<(), StateError> {
        if changes.is_empty() {
            return Ok(());
        }
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(sql(&path))?;
        for change in changes {
            match change {
                Change::Launched {
                    task_id,
                    attempt,
                    executor,
                    batch_key,
                    at,
                    consumed,
                } => {
                    tx.prepare_cached("INSERT OR REPLACE INTO attempts (task_id, attempt, executor, submitted) VALUES (?1, ?2, ?3, ?4)")
                        .and_then(|mut s| s.execute(params![task_id, attempt, executor, at]))
                        .map_err(sql(&path))?;
                    // Until the executor names its job, the batch says where the task went.
                    tx.prepare_cached("UPDATE tasks SET state = 'running', attempts = ?2, not_before = NULL, job_id = ?4, updated = ?3, started = NULL, pid = NULL, consumed = ?5 WHERE id = ?1")
                        .and_then(|mut s| s.execute(params![task_id, attempt, now, format!("batch:{batch_key}"), consumed]))
                        .map_err(sql(&path))?;
                }
                Change::Started {
                    task_id,
                    attempt,
                    job_id,
                    pid,
                    at,
                } => {
                    tx.prepare_cached("UPDATE attempts SET job_id = ?3, pid = ?4, started = ?5 WHERE task_id = ?1 AND attempt = ?2")
                        .and_then(|mut s| s.execute(params![task_id, attempt, job_id, pid, at]))
                        .map_err(sql(&path))?;
                    tx.prepare_cached(
                        "UPDATE tasks SET pid = ?2, job_id = ?3, updated = ?4, started = ?5 WHERE id = ?1 AND attempts = ?6",
                    )
                    .and_then(|mut s| s.execute(params![task_id, pid, job_id, now, at, attempt]))
                    .map_err(sql(&path))?;
                }
                Change::Finished {
                    task_id,
                    attempt,
                    outcome,
                    state,
                    retries,
                    infra_retries,
                    not_before,
                    details,
                    product,
                } => {
                    let class = outcome.error_class.map(|c| c.as_str().to_string());
                    // The start the attempt recorded itself (its result file, or the
                    // scheduler's accounting) when it is earlier than when the driver saw
                    // it start: an adopted job had been running long before.
                    let usage = outcome
                        .usage
                        .as_ref()
                        .and_then(|u| serde_json::to_string(u).ok());
                    tx.prepare_cached(
                        "UPDATE attempts SET ended = ?3, exit_code = ?4, signal = ?5, error_class = ?6, message = ?7, details = ?8,
                         started = CASE WHEN ?9 IS NOT NULL AND (started IS NULL OR ?9 < started) THEN ?9 ELSE started END,
                         usage = ?10 WHERE task_id = ?1 AND attempt = ?2",
                    )
                    .and_then(|mut s| s.execute(params![task_id, attempt, outcome.ended_at, outcome.exit_code, outcome.signal, class, outcome.message, details, outcome.started_at, usage]))
                    .map_err(sql(&path))?;
                    tx.prepare_cached(
                        "UPDATE tasks SET state = ?2, retries = ?3, infra_retries = ?4, error_class = ?5, message = ?6, not_before = ?7,
                         pid = NULL, started = NULL, updated = ?8, product = ?9 WHERE id = ?1",
                    )
                    .and_then(|mut s| s.execute(params![task_id, state.as_str(), retries, infra_retries, class, outcome.message, not_before, now, product]))
                    .map_err(sql(&path))?;
                }
                Change::Product { task_id, product } => {
                    tx.prepare_cached("UPDATE tasks SET product = ?2, updated = ?3 WHERE id = ?1")
                        .and_then(|mut s| s.execute(params![task_id, product, now]))
                        .map_err(sql(&path))?;
                }
                Change::SetState {
                    task_id,
                    state,
                    message,
                } => {
                    tx.prepare_cached("UPDATE tasks SET state = ?2, message = COALESCE(?3, message), pid = NULL, started = NULL, updated = ?4 WHERE id = ?1")
                        .and_then(|mut s| s.execute(params![task_id, state.as_str(), message, now]))
                        .map_err(sql(&path))?;
                }
                Change::Event {
                    task_id,
                    kind,
                    detail,
                } => {
                    tx.prepare_cached(
                        "INSERT INTO events (at, task_id, kind, detail) VALUES (?1, ?2, ?3, ?4)",
                    )
                    .and_then(|mut s| s.execute(params![now, task_id, kind, detail]))
                    .map_err(sql(&path))?;
                }
            }
        }
        tx.commit().map_err(sql(&path))
    }

    /// Re-queue the given tasks if they are in one of `states`. Returns how many.
    pub fn requeue_ids(
        &mut self,
        states: &[TaskState],
        ids: &[String],
        now: f64,
    ) -> Result<usize, StateError> {
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(sql(&path))?;
        let mut n = 0;
        {
            let mut stmt = tx
                .prepare_cached(
                    "UPDATE tasks SET state = 'pending', retries = 0, infra_retries = 0, not_before = NULL, updated = ?2,
                     message = 're-queued by flow retry' WHERE id = ?1 AND state = ?3",
                )
                .map_err(sql(&path))?;
            for id in ids {
                for s in states {
                    n += stmt
                        .execute(params![id, now, s.as_str()])
                        .map_err(sql(&path))?;
                }
            }
        }
        tx.execute(
            "INSERT INTO events (at, kind, detail) VALUES (?1, 'retry', ?2)",
            params![now, format!("{n} task(s) re-queued")],
        )
        .map_err(sql(&path))?;
        tx.commit().map_err(sql(&path))?;
        Ok(n)
    }
}
