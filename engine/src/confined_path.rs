//! Paths flow writes, removes or renames, resolved beneath the campaign directory.
//!
//! A campaign directory may hold symbolic links (a colleague's checkout, a scratch area
//! linked in). Following one out of the directory would let a campaign delete or overwrite
//! files elsewhere (`output: link/victim.txt` with `link -> /elsewhere`). [`resolve_beneath`]
//! walks a relative path component by component from the campaign directory's real path:
//! each symbolic link met is expanded and must stay beneath that directory, `..` may not
//! climb above it, and the result is the physical path (no links left to follow), which
//! callers then create, remove, write or rename. Links that stay inside are allowed.
//!
//! The check and the use are separate system calls, so a process that swaps a directory for
//! a link in between can still race it; what it closes is the campaign file (or its author)
//! pointing flow outside.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fmt;
use std::path::{Component, Path, PathBuf};

/// How many links one resolution may expand (Linux's own limit is 40).
const MAX_LINKS: usize = 40;

/// Why a path is not beneath the campaign directory.
#[derive(Debug)]
pub enum Escape {
    /// The path is absolute or climbs with `..`.
    NotRelative(PathBuf),
    /// A link on the way leads out.
    ThroughLink {
        link: PathBuf,
        target: PathBuf,
    },
    /// `..` inside a link target climbs above the campaign directory.
    Climbs(PathBuf),
    TooManyLinks(PathBuf),
    Io(PathBuf, std::io::Error),
}

impl fmt::Display for Escape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Escape::NotRelative(p) => write!(
                f,
                "`{}` is not a path relative to the campaign directory",
                p.display()
            ),
            Escape::ThroughLink { link, target } => write!(
                f,
                "it goes through the symbolic link {} -> {}, which leaves the campaign directory",
                link.display(),
                target.display()
            ),
            Escape::Climbs(link) => write!(
                f,
                "the symbolic link {} climbs out of the campaign directory with `..`",
                link.display()
            ),
            Escape::TooManyLinks(p) => {
                write!(
                    f,
                    "more than {MAX_LINKS} symbolic links on the way to {}",
                    p.display()
                )
            }
            Escape::Io(p, e) => write!(f, "cannot inspect {}: {e}", p.display()),
        }
    }
}

impl std::error::Error for Escape {}

fn normal_components(p: &Path) -> Result<Vec<OsString>, ()> {
    let mut out = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n.to_os_string()),
            Component::CurDir => {}
            Component::ParentDir => out.push(OsString::from("..")),
            Component::RootDir | Component::Prefix(_) => return Err(()),
        }
    }
    Ok(out)
}

/// Resolve `relative` beneath `root` without following any link out of it. Returns the
/// physical path (`root`'s real path joined with the resolved components); components that
/// do not exist yet are appended as they are.
pub fn resolve_beneath(root: &Path, relative: &Path) -> Result<PathBuf, Escape> {
    let root_real = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let mut pending: VecDeque<OsString> = normal_components(relative)
        .map_err(|_| Escape::NotRelative(relative.to_path_buf()))?
        .into();
    if pending.iter().any(|c| c == "..") {
        return Err(Escape::NotRelative(relative.to_path_buf()));
    }
    let mut cur = root_real.clone();
    let mut links = 0;
    while let Some(c) = pending.pop_front() {
        if c == ".." {
            // Only from a link target (already lexically checked), kept for safety.
            if cur == root_real {
                return Err(Escape::Climbs(cur));
            }
            cur.pop();
            continue;
        }
        let next = cur.join(&c);
        match std::fs::symlink_metadata(&next) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(Escape::TooManyLinks(next));
                }
                let target = std::fs::read_link(&next).map_err(|e| Escape::Io(next.clone(), e))?;
                // The target, read from the link's (physical) directory, lexically resolved.
                let joined = cur.join(&target);
                let mut resolved = PathBuf::new();
                for part in joined.components() {
                    match part {
                        Component::ParentDir => {
                            resolved.pop();
                        }
                        Component::CurDir => {}
                        other => resolved.push(other.as_os_str()),
                    }
                }
                let Ok(inside) = resolved.strip_prefix(&root_real) else {
                    return Err(Escape::ThroughLink { link: next, target });
                };
                // Walk the target again from the root: links inside it are checked too.
                let again = normal_components(inside).map_err(|_| Escape::Climbs(next.clone()))?;
                for part in again.into_iter().rev() {
                    pending.push_front(part);
                }
                cur = root_real.clone();
            }
            Ok(_) => cur = next,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                cur = next;
                for rest in pending.drain(..) {
                    if rest == ".." {
                        return Err(Escape::NotRelative(relative.to_path_buf()));
                    }
                    cur.push(rest);
                }
            }
            Err(e) => return Err(Escape::Io(next, e)),
        }
    }
    Ok(cur)
}

/// [`resolve_beneath`] for a path given absolute (under `root`, as the layout builds them).
pub fn resolve_absolute_beneath(root: &Path, path: &Path) -> Result<PathBuf, Escape> {
    match path.strip_prefix(root) {
        Ok(rel) => resolve_beneath(root, rel),
        Err(_) => Err(Escape::NotRelative(path.to_path_buf())),
    }
}

/// The path of a step's output (or its temporary name) beneath the campaign directory, or
/// an error located at the step's `output:`.
pub fn output_path(
    campaign: &flow_dsl::model::Campaign,
    step: &flow_dsl::model::Step,
    relative: &str,
) -> Result<PathBuf, String> {
    resolve_beneath(&campaign.campaign_dir, Path::new(relative)).map_err(|e| match &step.output {
        Some(t) => format!(
            "{}: {}: the output path `{relative}` leaves the campaign directory: {e}",
            t.span, t.field
        ),
        None => format!("the path `{relative}` leaves the campaign directory: {e}"),
    })
}

/// A path flow itself made under the campaign directory (logs, results, work directories),
/// checked the same way.
pub fn layout_path(campaign_dir: &Path, path: &Path) -> Result<PathBuf, String> {
    resolve_absolute_beneath(campaign_dir, path).map_err(|e| {
        format!(
            "{} leaves the campaign directory {}: {e}",
            path.display(),
            campaign_dir.display()
        )
    })
}

/// Why an existing output, followed through links, is not beneath the campaign directory
/// ([`resolve_absolute_beneath`] as a sentence), or `None`.
pub fn leaves_campaign(campaign_dir: &Path, path: &Path) -> Option<String> {
    resolve_absolute_beneath(campaign_dir, path)
        .err()
        .map(|e| format!("is outside the campaign directory: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_out_are_refused_and_links_inside_are_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("campaign");
        let elsewhere = tmp.path().join("elsewhere");
        std::fs::create_dir_all(root.join("real")).unwrap();
        std::fs::create_dir_all(&elsewhere).unwrap();
        symlink(&elsewhere, root.join("link")).unwrap();
        symlink("real", root.join("inside")).unwrap();
        symlink("../elsewhere", root.join("relative-out")).unwrap();
        symlink("real/../../elsewhere", root.join("sneaky")).unwrap();
        symlink(elsewhere.join("victim.txt"), root.join("real/last")).unwrap();

        for bad in [
            "link/victim.txt",
            "relative-out/x",
            "sneaky/x",
            "real/last",
            "inside/last",
        ] {
            let e = resolve_beneath(&root, Path::new(bad)).unwrap_err();
            assert!(matches!(e, Escape::ThroughLink { .. }), "{bad}: {e}");
        }
        for bad in ["../x", "/etc/passwd", "a/../../x"] {
            assert!(resolve_beneath(&root, Path::new(bad)).is_err(), "{bad}");
        }
        let real = std::fs::canonicalize(&root).unwrap();
        assert_eq!(
            resolve_beneath(&root, Path::new("inside/new/out.txt")).unwrap(),
            real.join("real/new/out.txt")
        );
        assert_eq!(
            resolve_beneath(&root, Path::new("fresh/dir/x")).unwrap(),
            real.join("fresh/dir/x")
        );
    }

    #[test]
    fn link_loops_end() {
        let tmp = tempfile::tempdir().unwrap();
        symlink("b", tmp.path().join("a")).unwrap();
        symlink("a", tmp.path().join("b")).unwrap();
        assert!(matches!(
            resolve_beneath(tmp.path(), Path::new("a/x")),
            Err(Escape::TooManyLinks(_))
        ));
    }
}
