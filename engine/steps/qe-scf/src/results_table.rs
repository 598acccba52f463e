//! One results table across the structures of a step (`qa/<step>.results.csv`), a row per
//! structure, written as each task ends, and the summary `flow status` prints from it.
//!
//! Rows are appended (one `write` of one line, `O_APPEND`) when a task ends, so a factory of
//! thousands of structures never rewrites the table per task; a structure that runs again
//! appends a newer row. Readers keep the last row of each structure ([`read_table`]), and
//! [`compact_table`] rewrites the file with one row per structure, sorted (the engine does
//! it at the end of a run). Units are in the column names. Parquet is not written: no
//! Parquet crate is light enough for this crate (arrow's pull in ~100 crates); the CSV is
//! what pandas/polars read in one call.

use crate::error::QeError;
use crate::failure::Failure;
use crate::policy::FatalReport;
use crate::results::{read_result_json, ScfResult};
use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::Path;

/// The columns, in order (the CSV header).
pub const COLUMNS: [&str; 11] = [
    "structure",
    "status",
    "class",
    "attempts",
    "energy_ev",
    "energy_per_atom_ev",
    "max_force_ev_per_ang",
    "pressure_kbar",
    "total_magnetization_bohr",
    "final_mixing_beta",
    "message",
];

/// How a structure ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowStatus {
    /// A result was stored.
    Converged,
    /// The policy gave up, on anything but an unphysical result.
    Failed,
    /// The policy gave up on a result that failed sanitation (|force| above the limit,
    /// NaN).
    Unphysical,
}

impl RowStatus {
    /// `converged`, `failed`, `unphysical`.
    pub fn as_str(self) -> &'static str {
        match self {
            RowStatus::Converged => "converged",
            RowStatus::Failed => "failed",
            RowStatus::Unphysical => "unphysical",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [
            RowStatus::Converged,
            RowStatus::Failed,
            RowStatus::Unphysical,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultRow {
    /// The structure's name.
    pub structure: String,
    /// How it ended.
    pub status: RowStatus,
    /// The failure class of the last attempt (empty when converged).
    pub class: String,
    /// Attempts made.
    pub attempts: usize,
    /// Total energy, eV.
    pub energy_ev: Option<f64>,
    /// Total energy per atom, eV.
    pub energy_per_atom_ev: Option<f64>,
    /// Largest |force| on any atom, eV/Å.
    pub max_force_ev_per_ang: Option<f64>,
    /// Pressure as pw.x printed it, kbar.
    pub pressure_kbar: Option<f64>,
    /// Total magnetisation, Bohr magnetons per cell.
    pub total_magnetization_bohr: Option<f64>,
    /// `mixing_beta` of the last attempt.
    pub final_mixing_beta: Option<f64>,
    /// Why it failed, or the warnings of a kept result.
    pub message: String,
}

impl ResultRow {
    /// The row of a stored result.
    pub fn from_result(r: &ScfResult) -> Self {
        let max_force = r
            .forces_ev_per_ang
            .iter()
            .map(|f| (f[0] * f[0] + f[1] * f[1] + f[2] * f[2]).sqrt())
            .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
        ResultRow {
            structure: r.structure.clone(),
            status: RowStatus::Converged,
            class: String::new(),
            attempts: r.attempts.len(),
            energy_ev: Some(r.energy_ev),
            energy_per_atom_ev: (!r.symbols.is_empty())
                .then(|| r.energy_ev / r.symbols.len() as f64),
            max_force_ev_per_ang: max_force,
            pressure_kbar: r.pressure_kbar,
            total_magnetization_bohr: r.total_magnetization,
            final_mixing_beta: r.final_mixing_beta,
            message: r.warnings.join("; "),
        }
    }

    /// The row of a structure the policy gave up on.
    pub fn from_fatal(f: &FatalReport) -> Self {
        let last = f.attempts.last();
        let failure = last.and_then(|a| a.failure);
        ResultRow {
            structure: f.structure.clone(),
            status: if failure == Some(Failure::Unphysical) {
                RowStatus::Unphysical
            } else {
                RowStatus::Failed
            },
            class: failure.map(|x| x.to_string()).unwrap_or_default(),
            attempts: f.attempts.len(),
            energy_ev: None,
            energy_per_atom_ev: None,
            max_force_ev_per_ang: None,
            pressure_kbar: None,
            total_magnetization_bohr: None,
            final_mixing_beta: last
                .and_then(|a| a.parameters.get("mixing_beta"))
                .and_then(|v| v.as_f64()),
            message: f.reason.clone(),
        }
    }

    /// The row as one CSV line (no newline).
    pub fn to_csv(&self) -> String {
        let num = |x: Option<f64>| x.map_or(String::new(), |v| format!("{v}"));
        [
            quote(&self.structure),
            self.status.as_str().to_string(),
            quote(&self.class),
            self.attempts.to_string(),
            num(self.energy_ev),
            num(self.energy_per_atom_ev),
            num(self.max_force_ev_per_ang),
            num(self.pressure_kbar),
            num(self.total_magnetization_bohr),
            num(self.final_mixing_beta),
            quote(&self.message),
        ]
        .join(",")
    }

    /// Parses a line written by [`ResultRow::to_csv`]; `None` for anything else.
    pub fn from_csv(line: &str) -> Option<Self> {
        let f = split_csv(line)?;
        if f.len() != COLUMNS.len() {
            return None;
        }
        let num = |s: &str| -> Option<Option<f64>> {
            if s.is_empty() {
                Some(None)
            } else {
                s.parse().ok().map(Some)
            }
        };
        Some(ResultRow {
            structure: f[0].clone(),
            status: RowStatus::parse(&f[1])?,
            class: f[2].clone(),
            attempts: f[3].parse().ok()?,
            energy_ev: num(&f[4])?,
            energy_per_atom_ev: num(&f[5])?,
            max_force_ev_per_ang: num(&f[6])?,
            pressure_kbar: num(&f[7])?,
            total_magnetization_bohr: num(&f[8])?,
            final_mixing_beta: num(&f[9])?,
            message: f[10].clone(),
        })
    }
}

fn quote(s: &str) -> String {
    let flat = s.replace(['\n', '\r'], " ");
    if flat.contains([',', '"']) || flat.starts_with(' ') {
        format!("\"{}\"", flat.replace('"', "\"\""))
    } else {
        flat
    }
}

fn split_csv(line: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => out.push(std::mem::take(&mut field)),
            (_, c) => field.push(c),
        }
    }
    if quoted {
        return None;
    }
    out.push(field);
    Some(out)
}

/// The row of a finished task from its directory: `result.json` (converged) or
/// `fatal.json` (gave up); `None` when the task left neither (interrupted, killed).
pub fn row_for_task(task_dir: &Path) -> Result<Option<ResultRow>, QeError> {
    let result = task_dir.join("result.json");
    if result.is_file() {
        return Ok(Some(ResultRow::from_result(&read_result_json(&result)?)));
    }
    let fatal = task_dir.join("fatal.json");
    if fatal.is_file() {
        return Ok(Some(ResultRow::from_fatal(
            &crate::task::read_fatal_report(&fatal)?,
        )));
    }
    Ok(None)
}

/// Appends `row` to the table at `table` (created with its header when missing).
pub fn append_row(table: &Path, row: &ResultRow) -> Result<(), QeError> {
    if let Some(dir) = table.parent() {
        std::fs::create_dir_all(dir).map_err(QeError::io("creating", dir))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(table)
        .map_err(QeError::io("opening", table))?;
    let empty = file
        .metadata()
        .map_err(QeError::io("reading metadata of", table))?
        .len()
        == 0;
    let mut text = String::new();
    if empty {
        text.push_str(&COLUMNS.join(","));
        text.push('\n');
    }
    text.push_str(&row.to_csv());
    text.push('\n');
    file.write_all(text.as_bytes())
        .map_err(QeError::io("appending to", table))
}

/// Records the end of a task: appends its row, if it left a result or a report. Returns
/// whether a row was written.
pub fn record_task(table: &Path, task_dir: &Path) -> Result<bool, QeError> {
    match row_for_task(task_dir)? {
        Some(row) => append_row(table, &row).map(|_| true),
        None => Ok(false),
    }
}

/// The table's rows, the last one of each structure, sorted by structure. A missing file
/// is an empty table; unreadable lines are skipped.
pub fn read_table(table: &Path) -> Result<Vec<ResultRow>, QeError> {
    let text = match std::fs::read_to_string(table) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(QeError::io("reading", table)(e)),
    };
    let mut rows: BTreeMap<String, ResultRow> = BTreeMap::new();
    for line in text.lines().skip(1) {
        if let Some(r) = ResultRow::from_csv(line) {
            rows.insert(r.structure.clone(), r);
        }
    }
    Ok(rows.into_values().collect())
}

/// Rewrites the table with one row per structure, sorted (temporary file + rename).
pub fn compact_table(table: &Path) -> Result<usize, QeError> {
    let rows = read_table(table)?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut text = COLUMNS.join(",");
    text.push('\n');
    for r in &rows {
        text.push_str(&r.to_csv());
        text.push('\n');
    }
    let tmp = table.with_extension("csv.tmp");
    std::fs::write(&tmp, text).map_err(QeError::io("writing", &tmp))?;
    std::fs::rename(&tmp, table).map_err(QeError::io("renaming into place", table))?;
    Ok(rows.len())
}

/// Counts and energy range of a table, for `flow status`.
#[derive(Debug, Clone, PartialEq)]
pub struct TableSummary {
    /// Structures with a stored result.
    pub converged: usize,
    /// Structures given up on (not unphysical).
    pub failed: usize,
    /// Structures given up on because the result was unphysical.
    pub unphysical: usize,
    /// Lowest and highest total energy of the converged ones, eV.
    pub energy_ev: Option<(f64, f64)>,
    /// Lowest and highest energy per atom, eV.
    pub energy_per_atom_ev: Option<(f64, f64)>,
}

fn range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.fold(None, |r, x| match r {
        None => Some((x, x)),
        Some((lo, hi)) => Some((lo.min(x), hi.max(x))),
    })
}

/// Summarises rows (one per structure).
pub fn summarize(rows: &[ResultRow]) -> TableSummary {
    let count = |s: RowStatus| rows.iter().filter(|r| r.status == s).count();
    let converged = || rows.iter().filter(|r| r.status == RowStatus::Converged);
    TableSummary {
        converged: count(RowStatus::Converged),
        failed: count(RowStatus::Failed),
        unphysical: count(RowStatus::Unphysical),
        energy_ev: range(converged().filter_map(|r| r.energy_ev)),
        energy_per_atom_ev: range(converged().filter_map(|r| r.energy_per_atom_ev)),
    }
}

/// The summary of the table at `table`; `None` when it does not exist or has no rows.
pub fn summarize_table(table: &Path) -> Option<TableSummary> {
    let rows = read_table(table).ok()?;
    (!rows.is_empty()).then(|| summarize(&rows))
}

impl fmt::Display for TableSummary {
    /// `12 converged, 2 failed, 1 unphysical; energy -215.3 … -108.1 eV (-7.95 … -5.40 eV/atom)`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} converged, {} failed, {} unphysical",
            self.converged, self.failed, self.unphysical
        )?;
        if let Some((lo, hi)) = self.energy_ev {
            write!(f, "; energy {lo:.4} … {hi:.4} eV")?;
        }
        if let Some((lo, hi)) = self.energy_per_atom_ev {
            write!(f, " ({lo:.4} … {hi:.4} eV/atom)")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, status: RowStatus, e: Option<f64>) -> ResultRow {
        ResultRow {
            structure: name.into(),
            status,
            class: if status == RowStatus::Converged {
                String::new()
            } else {
                "scf-not-converged".into()
            },
            attempts: 2,
            energy_ev: e,
            energy_per_atom_ev: e.map(|x| x / 2.0),
            max_force_ev_per_ang: e.map(|_| 0.25),
            pressure_kbar: None,
            total_magnetization_bohr: None,
            final_mixing_beta: Some(0.3),
            message: "no handler left, \"quoted\", and a comma".into(),
        }
    }

    #[test]
    fn rows_round_trip_through_csv() {
        let r = row("structures/a b,c.extxyz#0", RowStatus::Failed, None);
        let line = r.to_csv();
        assert_eq!(ResultRow::from_csv(&line), Some(r));
        let ok = row("si.extxyz", RowStatus::Converged, Some(-214.9));
        assert_eq!(ResultRow::from_csv(&ok.to_csv()), Some(ok));
        assert_eq!(ResultRow::from_csv("not,a,row"), None);
    }

    #[test]
    fn appended_rows_last_one_wins_and_compaction_keeps_one_per_structure() {
        let dir = tempfile::tempdir().unwrap();
        let table = dir.path().join("qa/scf.results.csv");
        append_row(&table, &row("b", RowStatus::Failed, None)).unwrap();
        append_row(&table, &row("a", RowStatus::Converged, Some(-10.0))).unwrap();
        append_row(&table, &row("b", RowStatus::Converged, Some(-12.0))).unwrap();
        append_row(&table, &row("c", RowStatus::Unphysical, None)).unwrap();
        let text = std::fs::read_to_string(&table).unwrap();
        assert_eq!(text.lines().next().unwrap(), COLUMNS.join(","));
        assert_eq!(text.lines().count(), 5);
        let rows = read_table(&table).unwrap();
        let names: Vec<&str> = rows.iter().map(|r| r.structure.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(rows[1].status, RowStatus::Converged);
        let s = summarize(&rows);
        assert_eq!((s.converged, s.failed, s.unphysical), (2, 0, 1));
        assert_eq!(s.energy_ev, Some((-12.0, -10.0)));
        assert_eq!(
            s.to_string(),
            "2 converged, 0 failed, 1 unphysical; energy -12.0000 … -10.0000 eV (-6.0000 … -5.0000 eV/atom)"
        );
        assert_eq!(compact_table(&table).unwrap(), 3);
        assert_eq!(std::fs::read_to_string(&table).unwrap().lines().count(), 4);
        assert_eq!(read_table(&table).unwrap(), rows);
        assert_eq!(summarize_table(&dir.path().join("none.csv")), None);
    }
}
