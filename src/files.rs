//! Replacing a file safely: the new bytes go to a temporary file in the same directory, are
//! flushed to disk, and take the old file's place in one rename, so a reader (or a crash) sees
//! either the old file or the new one, never half of one. Used by `setup` and `secrets`; knows
//! nothing about what it writes.

use std::io::Write as _;
use std::path::Path;

use anyhow::{Context as _, Result};

/// How the written file's permissions are decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Keep the permissions of the file being replaced; a new file gets the usual `0644`.
    Keep,
    /// Exactly this Unix mode (ignored elsewhere); `0o600` for files that hold a key.
    Exact(u32),
}

/// Writes `bytes` to `path` atomically. The parent directory must exist.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: Mode) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".izzi-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in `{}`", dir.display()))?;
    let permissions = match mode {
        Mode::Keep => fs_err::metadata(path).ok().map(|m| m.permissions()),
        Mode::Exact(bits) => unix_permissions(bits),
    }
    .or_else(|| unix_permissions(0o644));
    if let Some(permissions) = permissions {
        tmp.as_file()
            .set_permissions(permissions)
            .with_context(|| {
                format!(
                    "cannot set permissions on a temporary file in `{}`",
                    dir.display()
                )
            })?;
    }
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("cannot write a temporary file in `{}`", dir.display()))?;
    tmp.persist(path)
        .map_err(|err| err.error)
        .with_context(|| format!("cannot replace `{}`", path.display()))?;
    sync_dir(dir);
    Ok(())
}

/// Permissions with the given Unix mode bits; `None` where modes do not exist.
#[cfg_attr(
    unix,
    expect(
        clippy::unnecessary_wraps,
        reason = "`None` on systems without Unix modes"
    )
)]
pub(crate) fn unix_permissions(bits: u32) -> Option<std::fs::Permissions> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        Some(std::fs::Permissions::from_mode(bits))
    }
    #[cfg(not(unix))]
    {
        let _ = bits;
        None
    }
}

/// The Unix mode bits of a file, if it exists and modes exist here.
pub(crate) fn unix_mode(path: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        fs_err::metadata(path)
            .ok()
            .map(|m| m.permissions().mode() & 0o7777)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// Flushes a directory entry after a rename, so the rename itself survives a power cut. Best
/// effort: some platforms and file systems cannot open a directory for this.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(handle) = std::fs::File::open(dir) {
        let _ = handle.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// Creates `dir` and its missing parents, returning the ones it created, outermost first, so
/// they can be removed again.
pub(crate) fn create_dirs(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let mut missing = Vec::new();
    let mut cursor = Some(dir);
    while let Some(d) = cursor {
        if d.as_os_str().is_empty() || d.exists() {
            break;
        }
        missing.push(d.to_path_buf());
        cursor = d.parent();
    }
    missing.reverse();
    for d in &missing {
        fs_err::create_dir(d)?;
    }
    Ok(missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_contents_and_keeps_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        fs_err::write(&path, "old").unwrap();
        #[cfg(unix)]
        fs_err::set_permissions(&path, unix_permissions(0o640).unwrap()).unwrap();
        write_atomic(&path, b"new", Mode::Keep).unwrap();
        assert_eq!(fs_err::read_to_string(&path).unwrap(), "new");
        #[cfg(unix)]
        assert_eq!(unix_mode(&path), Some(0o640));
        let leftovers: Vec<_> = fs_err::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn exact_mode_for_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials");
        write_atomic(&path, b"k", Mode::Exact(0o600)).unwrap();
        #[cfg(unix)]
        assert_eq!(unix_mode(&path), Some(0o600));
    }

    #[test]
    fn creates_only_missing_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b/c");
        let made = create_dirs(&deep).unwrap();
        assert_eq!(
            made,
            vec![dir.path().join("a"), dir.path().join("a/b"), deep.clone()]
        );
        assert!(create_dirs(&deep).unwrap().is_empty());
    }
}
