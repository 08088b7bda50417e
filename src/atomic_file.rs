//! Crash-safe file writes: the one helper every writer of the campaign
//! record, the analysis, the index, reports and state files goes through.
//!
//! [`write`] puts the bytes into a temporary file in the target's own
//! directory (a rename is atomic only within one file system), fsyncs it,
//! renames it over the target and fsyncs the directory, so after a crash or
//! `kill -9` the target holds either its old or its new content, never a
//! torn one, and a completed write survives a power loss (POSIX: data and
//! the directory entry are durable only after `fsync` of the file and of
//! the directory; see fsync(2), rename(2)).
//!
//! A kill between creating the temporary and the rename leaves the
//! temporary behind. Its name is `<name>.<pid>-<n>.matador-tmp`, unique per
//! process and write (two writers of one target never share a temporary),
//! and recognisable: [`remove_temporaries`] removes exactly these (and
//! nothing else) from a folder tree, which `run --resume` does before it
//! continues a campaign.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The suffix of every temporary this module creates.
pub const TMP_SUFFIX: &str = ".matador-tmp";

/// Mode of files created by [`write`] (before the umask).
const DEFAULT_MODE: u32 = 0o644;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The temporary for one write of `path`: same directory, unique name.
fn tmp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!("{name}.{}-{n}{TMP_SUFFIX}", std::process::id()))
}

/// True when `name` (a file name) is one of this module's temporaries.
pub fn is_temporary(name: &str) -> bool {
    name.ends_with(TMP_SUFFIX)
}

/// Writes `bytes` to `path` atomically and durably (mode 0644 before the
/// umask for a new file). The error is the I/O error of the step that
/// failed; the temporary is removed on failure.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_mode(path, bytes, DEFAULT_MODE)
}

/// [`write`] with the file's mode: the temporary is created with `mode`,
/// so a secret is never readable by others, not even briefly.
pub fn write_mode(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let tmp = tmp_path(path);
    let done = write_tmp(&tmp, bytes, mode).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = done {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(path)
}

fn write_tmp(tmp: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(tmp)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Makes the rename durable: fsync of the directory holding `path`.
fn sync_dir(path: &Path) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

/// Removes this module's temporaries (and only them) under `dir`, at any
/// depth; returns what was removed. Left by a writer killed mid-write, they
/// hold no data that is not elsewhere: the target still has its old content.
/// Call it only when no writer is running in `dir` (a resume, before it
/// starts); symbolic links are not followed.
pub fn remove_temporaries(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            let kind = e.file_type()?;
            let p = e.path();
            if kind.is_dir() {
                stack.push(p);
            } else if kind.is_file() && is_temporary(&e.file_name().to_string_lossy()) {
                std::fs::remove_file(&p)?;
                removed.push(p);
            }
        }
    }
    removed.sort();
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn write_replaces_the_content_and_leaves_no_temporary() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("index.json");
        write(&p, b"one").unwrap();
        write(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["index.json"]);
    }

    #[test]
    fn a_failed_write_keeps_the_old_content_and_removes_its_temporary() {
        let d = tempfile::tempdir().unwrap();
        // The target is a directory: the rename fails after the temporary
        // was written.
        let p = d.path().join("x");
        std::fs::create_dir(&p).unwrap();
        std::fs::write(p.join("keep"), b"k").unwrap();
        assert!(write(&p, b"new").is_err());
        let names: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["x"]);
        assert_eq!(std::fs::read(p.join("keep")).unwrap(), b"k");
    }

    #[test]
    fn mode_is_set_from_the_start() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("key");
        write_mode(&p, b"secret", 0o600).unwrap();
        let m = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(m & 0o777, 0o600);
    }

    #[test]
    fn only_our_temporaries_are_removed() {
        let d = tempfile::tempdir().unwrap();
        let sub = d.path().join("measurements/m0001");
        std::fs::create_dir_all(&sub).unwrap();
        let ours = tmp_path(&sub.join("analysis.json"));
        assert!(is_temporary(&ours.file_name().unwrap().to_string_lossy()));
        std::fs::write(&ours, b"").unwrap();
        for keep in [
            "analysis.json",
            "analysis.json.tmp",
            "notes.tmp-matador",
            "a.pcap",
        ] {
            std::fs::write(sub.join(keep), b"x").unwrap();
        }
        let removed = remove_temporaries(d.path()).unwrap();
        assert_eq!(removed.len(), 1);
        assert_eq!(removed[0], ours);
        assert!(!ours.exists());
        let mut left: Vec<_> = std::fs::read_dir(&sub)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "a.pcap",
                "analysis.json",
                "analysis.json.tmp",
                "notes.tmp-matador"
            ]
        );
    }

    #[test]
    fn temporaries_are_unique_per_write() {
        let p = Path::new("/x/analysis.json");
        assert_ne!(tmp_path(p), tmp_path(p));
        assert_eq!(tmp_path(p).parent(), Some(Path::new("/x")));
    }
}
