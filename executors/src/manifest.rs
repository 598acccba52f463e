//! The manifest written next to each batch script: line N (0-based) is the [`TaskLaunch`] of
//! array index N, so the job runs exactly what was planned and never re-plans.

use crate::launch::TaskLaunch;
use std::io::Write;
use std::path::Path;

/// The manifest's text: one compact JSON object per line, in array-index order.
pub fn manifest_text(tasks: &[TaskLaunch]) -> Result<String, serde_json::Error> {
    let mut text = String::new();
    for task in tasks {
        text.push_str(&serde_json::to_string(task)?);
        text.push('\n');
    }
    Ok(text)
}

/// First 16 hex digits of the BLAKE3 hash of the manifest text: identifies a batch's
/// content (two submissions of the same tasks and attempts share it).
pub fn manifest_hash(text: &str) -> String {
    blake3::hash(text.as_bytes()).to_hex()[..16].to_string()
}

/// Parse a manifest back (adoption after a driver restart). Errors name the line.
pub fn parse_manifest(text: &str) -> Result<Vec<TaskLaunch>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| format!("manifest line {}: {e}", i + 1))
        })
        .collect()
}

/// Write `content` to `path` atomically: a temporary file in the same directory, synced,
/// then renamed over the target. Readers see the old file or the new one, never a part.
pub fn write_atomically(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(content)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn launch(id: &str) -> TaskLaunch {
        TaskLaunch {
            task_id: id.into(),
            attempt: 1,
            argv: vec!["echo".into(), "a 'b' $(c)".into()],
            env: vec![("FLOW_SEED".into(), "42".into())],
            workdir: PathBuf::from("/w"),
            stdout_path: PathBuf::from("/w/o"),
            stderr_path: PathBuf::from("/w/e"),
            result_path: PathBuf::from("/w/r.json"),
            writes_result: false,
            status_by_trap: false,
            timeout: None,
        }
    }

    #[test]
    fn one_line_per_task_round_trips() {
        let tasks = vec![launch("t0"), launch("t1")];
        let text = manifest_text(&tasks).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert_eq!(parse_manifest(&text).unwrap(), tasks);
        assert_eq!(manifest_hash(&text).len(), 16);
        assert_ne!(
            manifest_hash(&text),
            manifest_hash(&manifest_text(&tasks[..1]).unwrap())
        );
        assert!(parse_manifest("{}\n")
            .unwrap_err()
            .starts_with("manifest line 1"));
    }
}
