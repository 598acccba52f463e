//! The adaptive steps' part of the state database (tables `adaptive_asks`,
//! `adaptive_tells`, `adaptive_loops`, migration 2 in `state.rs`).
//!
//! An ask is committed together with the tasks of its new evaluations, in one transaction,
//! before any of them can launch; a tell is committed before the algorithm hears it. So the
//! committed history is always a prefix of what happened, and a driver killed at any moment
//! rebuilds the loop from it ([`flow_adaptive::AdaptiveLoop::new`]).

use crate::state::{sql, StateError, StateStore};
use flow_adaptive::{Asked, TrialResult};
use rusqlite::params;

/// A task to insert with an ask: (id, index, params JSON).
pub type NewTask = (String, u64, String);

/// The committed history of one loop.
#[derive(Debug, Clone, Default)]
pub struct LoopHistory {
    pub asks: Vec<Asked>,
    pub tells: Vec<TrialResult>,
    pub finished: bool,
}

impl StateStore {
    /// The committed asks and tells of a loop, in trial order.
    pub fn adaptive_history(&self, step: &str, loop_key: &str) -> Result<LoopHistory, StateError> {
        let (conn, path) = self.connection_ref();
        let mut h = LoopHistory::default();
        let mut stmt = conn
            .prepare("SELECT trial, batch, asked_n, param_id, params FROM adaptive_asks WHERE step = ?1 AND loop_key = ?2 ORDER BY trial")
            .map_err(sql(path))?;
        let rows = stmt
            .query_map(params![step, loop_key], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })
            .map_err(sql(path))?;
        for row in rows {
            let (trial, batch, asked_n, param_id, params) = row.map_err(sql(path))?;
            h.asks.push(Asked {
                trial: trial as u64,
                batch: batch as u64,
                asked_n: asked_n as u64,
                param_id,
                params: serde_json::from_str(&params).unwrap_or_default(),
            });
        }
        let mut stmt = conn
            .prepare("SELECT result FROM adaptive_tells WHERE step = ?1 AND loop_key = ?2 ORDER BY trial")
            .map_err(sql(path))?;
        let rows = stmt
            .query_map(params![step, loop_key], |r| r.get::<_, String>(0))
            .map_err(sql(path))?;
        for row in rows {
            let text = row.map_err(sql(path))?;
            if let Ok(t) = serde_json::from_str::<TrialResult>(&text) {
                h.tells.push(t);
            }
        }
        h.finished = conn
            .query_row(
                "SELECT finished FROM adaptive_loops WHERE step = ?1 AND loop_key = ?2",
                params![step, loop_key],
                |r| r.get::<_, i64>(0),
            )
            .map(|f| f != 0)
            .unwrap_or(false);
        Ok(h)
    }

    /// Commit an ask and the tasks of its new evaluations in one transaction.
    pub fn commit_ask(
        &mut self,
        step: &str,
        loop_key: &str,
        asked: &[Asked],
        tasks: &[NewTask],
        now: f64,
    ) -> Result<(), StateError> {
        let (conn, path) = self.connection();
        let path = path.to_path_buf();
        let tx = conn.transaction().map_err(sql(&path))?;
        for a in asked {
            tx.execute(
                "INSERT INTO adaptive_asks (step, loop_key, trial, batch, asked_n, param_id, params, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    step,
                    loop_key,
                    a.trial as i64,
                    a.batch as i64,
                    a.asked_n as i64,
                    a.param_id,
                    serde_json::Value::Object(a.params.clone()).to_string(),
                    now
                ],
            )
            .map_err(sql(&path))?;
        }
        for (id, idx, params_json) in tasks {
            tx.execute(
                "INSERT OR IGNORE INTO tasks (id, step, idx, params, state, updated) VALUES (?1, ?2, ?3, ?4, 'pending', ?5)",
                params![id, step, *idx as i64, params_json, now],
            )
            .map_err(sql(&path))?;
        }
        if asked.is_empty() {
            Self::set_finished_in(&tx, step, loop_key).map_err(sql(&path))?;
        }
        tx.execute(
            "UPDATE steps SET task_count = (SELECT COUNT(*) FROM tasks WHERE step = ?1) WHERE name = ?1",
            params![step],
        )
        .map_err(sql(&path))?;
        tx.commit().map_err(sql(&path))
    }

    /// Commit tells (before they are sent).
    pub fn commit_tells(
        &mut self,
        step: &str,
        loop_key: &str,
        told: &[TrialResult],
        now: f64,
    ) -> Result<(), StateError> {
        let (conn, path) = self.connection();
        let path = path.to_path_buf();
        let tx = conn.transaction().map_err(sql(&path))?;
        for t in told {
            tx.execute(
                "INSERT INTO adaptive_tells (step, loop_key, trial, param_id, state, loss, result, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    step,
                    loop_key,
                    t.trial as i64,
                    t.param_id,
                    t.state.as_str(),
                    t.loss,
                    serde_json::to_string(t).unwrap_or_default(),
                    now
                ],
            )
            .map_err(sql(&path))?;
        }
        tx.commit().map_err(sql(&path))
    }

    /// The algorithm said it is finished.
    pub fn set_adaptive_finished(&mut self, step: &str, loop_key: &str) -> Result<(), StateError> {
        let (conn, path) = self.connection();
        Self::set_finished_in(conn, step, loop_key).map_err(sql(path))
    }

    fn set_finished_in(
        conn: &rusqlite::Connection,
        step: &str,
        loop_key: &str,
    ) -> Result<(), rusqlite::Error> {
        conn.execute(
            "INSERT INTO adaptive_loops (step, loop_key, finished) VALUES (?1, ?2, 1) ON CONFLICT (step, loop_key) DO UPDATE SET finished = 1",
            params![step, loop_key],
        )
        .map(|_| ())
    }

    /// The latest loop of a step (its key), for status readers that have no plan.
    pub fn adaptive_latest_key(&self, step: &str) -> Result<Option<String>, StateError> {
        let (conn, path) = self.connection_ref();
        match conn.query_row(
            "SELECT loop_key FROM adaptive_asks WHERE step = ?1 ORDER BY at DESC LIMIT 1",
            params![step],
            |r| r.get::<_, String>(0),
        ) {
            Ok(k) => Ok(Some(k)),
            Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
            Err(e) => Err(sql(path)(e)),
        }
    }
}
