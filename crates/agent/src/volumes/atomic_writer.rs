//! The atomic writer: how the kubelet updates files that a running
//! container is reading (upstream: `pkg/volume/util/atomic_writer.go`).
//!
//! A ConfigMap volume is bind-mounted into the container once, when the
//! container starts, and stays mounted for the container's whole life. An
//! edit of the ConfigMap must therefore change the files *inside* the
//! mounted directory, and it must never let a reader see half of the new
//! version: an nginx reloading its config in the middle of an update should
//! read either all of the old files or all of the new ones.
//!
//! Writing files in place cannot give that, so the writer never overwrites a
//! file. Every version of the payload goes into a fresh hidden directory
//! named after the time it was written, and one symlink, `..data`, says
//! which version is current:
//!
//! ```text
//! <volume>/..2026_12_02_18_00_00.123456789/nginx.conf   the real files
//! <volume>/..data -> ..2026_12_02_18_00_00.123456789    the current version
//! <volume>/nginx.conf -> ..data/nginx.conf              what the user sees
//! <volume>/conf.d -> ..data/conf.d                      nested paths: the top directory
//! ```
//!
//! An update writes the next timestamped directory completely, points a
//! temporary symlink `..data_tmp` at it and renames that over `..data`.
//! `rename(2)` replaces the link in one step, so every path lookup that
//! goes through `..data` resolves entirely in the old version or entirely
//! in the new one. Then the user-visible links for new top-level names are
//! added, links for names that disappeared are removed, and the previous
//! timestamped directory is deleted (a reader holding one of its files open
//! keeps reading that version until it closes it).
//!
//! The writer compares the payload with the current version first and does
//! nothing when they are equal, so calling it on every sync is cheap.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::os::unix::fs::{symlink, DirBuilderExt, PermissionsExt};
use std::path::Path;

use super::{FileProjection, Payload, SetUpError};

/// The symlink naming the current version.
const DATA_DIR_NAME: &str = "..data";
/// The symlink that is renamed over [`DATA_DIR_NAME`].
const NEW_DATA_DIR_NAME: &str = "..data_tmp";
/// Limits on one name and a whole path, as upstream's.
const MAX_FILE_NAME_LENGTH: usize = 255;
const MAX_PATH_LENGTH: usize = 4096;
/// Timestamped directories must be traversable by the container's user,
/// whoever that is; the files in them carry the modes the volume asks for.
const TIMESTAMP_DIR_MODE: u32 = 0o755;

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> SetUpError + '_ {
    move |source| SetUpError::Io { path: path.to_path_buf(), source }
}

/// Checks one payload path as upstream's `validatePath` does: relative, no
/// `..` component, and not starting with `..` (which would collide with the
/// writer's own hidden entries).
pub fn validate_path(path: &str) -> Result<(), SetUpError> {
    let invalid = |reason: String| Err(SetUpError::InvalidPath(reason));
    if path.is_empty() {
        return invalid(format!("must not be empty: {path:?}"));
    }
    if path.starts_with('/') {
        return invalid(format!("must be relative path: {path}"));
    }
    if path.len() > MAX_PATH_LENGTH {
        return invalid(format!("must be less than or equal to {MAX_PATH_LENGTH} characters"));
    }
    let items: Vec<&str> = path.split('/').collect();
    for item in &items {
        if *item == ".." {
            return invalid(format!("must not contain '..': {path}"));
        }
        if item.len() > MAX_FILE_NAME_LENGTH {
            return invalid(format!("filenames must be less than or equal to {MAX_FILE_NAME_LENGTH} characters"));
        }
    }
    if items[0].starts_with("..") && items[0].len() > 2 {
        return invalid(format!("must not start with '..': {path}"));
    }
    Ok(())
}

/// `a//b/./c/` → `a/b/c`, as Go's `path.Clean` does for the paths that
/// pass [`validate_path`]. A path that cleans to nothing (`.`, `./`) names
/// the volume itself, which cannot be a file.
fn clean(path: &str) -> Result<String, SetUpError> {
    let cleaned = path.split('/').filter(|c| !c.is_empty() && *c != ".").collect::<Vec<_>>().join("/");
    if cleaned.is_empty() {
        return Err(SetUpError::InvalidPath(format!("must not be empty: {path:?}")));
    }
    Ok(cleaned)
}

/// Writes `payload` into `target_dir` (which must exist) with the
/// timestamped-directory protocol described above. Returns whether a new
/// version was written: `false` when the current one already holds exactly
/// this payload, contents and modes.
pub fn write(target_dir: &Path, payload: &Payload) -> Result<bool, SetUpError> {
    let mut clean_payload = Payload::new();
    for (path, file) in payload {
        validate_path(path)?;
        clean_payload.insert(clean(path)?, file.clone());
    }

    let data_dir = target_dir.join(DATA_DIR_NAME);
    let old_ts_dir = match fs::read_link(&data_dir) {
        // A link to a version that is gone counts as no version at all.
        Ok(name) => Some(target_dir.join(name)).filter(|d| d.is_dir()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_error(&data_dir)(e)),
    };

    // What the current version holds that the new one does not: its
    // top-level names lose their user-visible links below.
    let mut paths_to_remove = BTreeSet::new();
    if let Some(old) = &old_ts_dir {
        let mut old_paths = BTreeSet::new();
        walk(old, "", &mut old_paths).map_err(io_error(old))?;
        let new_paths = with_parents(clean_payload.keys());
        paths_to_remove = old_paths.difference(&new_paths).cloned().collect();
    }

    let changed = old_ts_dir.as_ref().is_none_or(|old| differs(old, &clean_payload));
    if !changed && paths_to_remove.is_empty() {
        // Still make sure every visible link exists: an agent that died
        // between the rename and the links would otherwise leave them
        // missing for good, since the payload never differs again.
        create_user_visible_files(target_dir, &clean_payload)?;
        return Ok(false);
    }

    let ts_name = new_timestamp_dir(target_dir)?;
    let ts_dir = target_dir.join(&ts_name);
    if let Err(e) = write_payload_to_dir(&ts_dir, &clean_payload) {
        let _ = fs::remove_dir_all(&ts_dir);
        return Err(e);
    }

    let new_data_dir = target_dir.join(NEW_DATA_DIR_NAME);
    // A stale temporary link is left only by a crash mid-update.
    match fs::remove_file(&new_data_dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error(&new_data_dir)(e)),
    }
    if let Err(e) = symlink(&ts_name, &new_data_dir) {
        let _ = fs::remove_dir_all(&ts_dir);
        return Err(io_error(&new_data_dir)(e));
    }
    // The atomic step: from here on every lookup sees the new version.
    fs::rename(&new_data_dir, &data_dir).map_err(io_error(&data_dir))?;

    create_user_visible_files(target_dir, &clean_payload)?;
    for top in paths_to_remove.iter().filter(|p| !p.contains('/')) {
        let link = target_dir.join(top);
        match fs::remove_file(&link) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(&link)(e)),
        }
    }
    remove_old_timestamp_dirs(target_dir, &ts_name);
    Ok(true)
}

/// Every relative path under `root` (files, directories, links), walked
/// without following links.
fn walk(root: &Path, rel: &str, out: &mut BTreeSet<String>) -> io::Result<()> {
    for entry in fs::read_dir(root.join(rel))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let child = if rel.is_empty() { name } else { format!("{rel}/{name}") };
        if entry.file_type()?.is_dir() {
            walk(root, &child, out)?;
        }
        out.insert(child);
    }
    Ok(())
}

/// The payload's paths and every directory above them: `a/b/c` gives
/// `a`, `a/b` and `a/b/c`.
fn with_parents<'a>(paths: impl Iterator<Item = &'a String>) -> BTreeSet<String> {
    let mut all = BTreeSet::new();
    for path in paths {
        for (i, _) in path.match_indices('/') {
            all.insert(path[..i].to_string());
        }
        all.insert(path.clone());
    }
    all
}

/// Whether any file of `payload` is missing from `dir` or differs from it
/// in content or mode. Upstream compares content only; comparing the mode
/// too makes a `defaultMode` edit take effect without a content change.
fn differs(dir: &Path, payload: &Payload) -> bool {
    payload.iter().any(|(path, file)| {
        let path = dir.join(path);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_file() && meta.permissions().mode() & 0o7777 == file.mode => {
                // An unreadable file (mode 0 without privileges) counts
                // as changed: rewriting it is always correct.
                fs::read(&path).map_or(true, |data| data != file.data)
            }
            _ => true,
        }
    })
}

/// Creates `..<UTC time>.<nanoseconds>` in `target_dir` and returns its name.
fn new_timestamp_dir(target_dir: &Path) -> Result<String, SetUpError> {
    loop {
        let now = jiff::Timestamp::now();
        let name = format!("..{}.{:09}", now.strftime("%Y_%m_%d_%H_%M_%S"), now.subsec_nanosecond());
        let dir = target_dir.join(&name);
        match fs::DirBuilder::new().mode(TIMESTAMP_DIR_MODE).create(&dir) {
            // Two writes within one clock tick: take the next tick.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_error(&dir)(e)),
            Ok(()) => {
                // The mode given to mkdir is reduced by the umask; set it as meant.
                fs::set_permissions(&dir, fs::Permissions::from_mode(TIMESTAMP_DIR_MODE)).map_err(io_error(&dir))?;
                return Ok(name);
            }
        }
    }
}

fn write_payload_to_dir(dir: &Path, payload: &Payload) -> Result<(), SetUpError> {
    for (path, FileProjection { data, mode }) in payload {
        let full = dir.join(path);
        if let Some(parent) = full.parent() {
            fs::DirBuilder::new().recursive(true).mode(TIMESTAMP_DIR_MODE).create(parent).map_err(io_error(parent))?;
        }
        fs::write(&full, data).map_err(io_error(&full))?;
        // As for the directory: the umask must not change the mode asked for.
        fs::set_permissions(&full, fs::Permissions::from_mode(*mode)).map_err(io_error(&full))?;
    }
    Ok(())
}

/// Links each top-level name of the payload, `name -> ..data/name`, unless
/// it is already there. Links are relative so that they resolve the same
/// wherever the volume directory is mounted.
fn create_user_visible_files(target_dir: &Path, payload: &Payload) -> Result<(), SetUpError> {
    let tops: BTreeSet<&str> = payload.keys().map(|p| p.split('/').next().unwrap_or(p)).collect();
    for top in tops {
        let visible = target_dir.join(top);
        match fs::symlink_metadata(&visible) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                symlink(Path::new(DATA_DIR_NAME).join(top), &visible).map_err(io_error(&visible))?;
            }
            Err(e) => return Err(io_error(&visible)(e)),
            Ok(_) => {}
        }
    }
    Ok(())
}

/// Deletes every timestamped directory but `current`: the version just
/// replaced, and any left by an agent that died mid-update. A failure only
/// leaves garbage behind, so it is logged rather than returned.
fn remove_old_timestamp_dirs(target_dir: &Path, current: &str) {
    let Ok(entries) = fs::read_dir(target_dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if !is_dir || !name.starts_with("..") || name == current {
            continue;
        }
        if let Err(e) = fs::remove_dir_all(entry.path()) {
            tracing::warn!(dir = %entry.path().display(), error = %e, "cannot remove an old volume version");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn payload(files: &[(&str, &str, u32)]) -> Payload {
        files.iter().map(|(p, d, m)| (p.to_string(), FileProjection { data: d.as_bytes().to_vec(), mode: *m })).collect()
    }

    fn timestamp_dirs(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("..") && n != DATA_DIR_NAME)
            .collect();
        names.sort();
        names
    }

    #[test]
    fn paths_are_validated_as_upstream() {
        let long_name = "x".repeat(256);
        for (path, want) in [
            ("a", None),
            ("a/b/c", None),
            ("a../b", None),
            ("..a/b", Some("invalid path: must not start with '..': ..a/b")),
            ("", Some("invalid path: must not be empty: \"\"")),
            ("/etc/passwd", Some("invalid path: must be relative path: /etc/passwd")),
            ("a/../../b", Some("invalid path: must not contain '..': a/../../b")),
            ("..", Some("invalid path: must not contain '..': ..")),
            ("..data", Some("invalid path: must not start with '..': ..data")),
            (long_name.as_str(), Some("invalid path: filenames must be less than or equal to 255 characters")),
        ] {
            let got = validate_path(path).err().map(|e| e.to_string());
            assert_eq!(got.as_deref(), want, "{path:?}");
        }
    }

    #[test]
    fn first_write_links_files_through_data() {
        let dir = tempfile::tempdir().unwrap();
        assert!(write(dir.path(), &payload(&[("a", "1", 0o644), ("conf.d/b", "2", 0o644)])).unwrap());

        assert_eq!(fs::read_link(dir.path().join("a")).unwrap(), Path::new("..data/a"));
        assert_eq!(fs::read_link(dir.path().join("conf.d")).unwrap(), Path::new("..data/conf.d"));
        assert_eq!(fs::read_to_string(dir.path().join("conf.d/b")).unwrap(), "2");
        let ts = fs::read_link(dir.path().join(DATA_DIR_NAME)).unwrap();
        let ts = ts.to_str().unwrap();
        // `..2026_12_02_18_00_00.123456789`
        assert_eq!(ts.len(), "..2026_12_02_18_00_00.123456789".len(), "{ts}");
        assert!(ts.starts_with("..20"), "{ts}");
        assert_eq!(fs::metadata(dir.path().join(ts)).unwrap().permissions().mode() & 0o777, 0o755);
    }

    #[test]
    fn an_update_is_seen_through_the_already_open_directory() {
        // A container's bind mount holds the volume directory itself, not
        // its path; a directory handle opened before the update plays it.
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &payload(&[("a", "old", 0o644)])).unwrap();
        let handle = fs::File::open(dir.path()).unwrap();
        let through_handle = format!("/proc/self/fd/{}/a", handle.as_raw_fd());
        assert_eq!(fs::read_to_string(&through_handle).unwrap(), "old");

        write(dir.path(), &payload(&[("a", "new", 0o644)])).unwrap();
        assert_eq!(fs::read_to_string(&through_handle).unwrap(), "new");
    }

    #[test]
    fn old_versions_and_removed_keys_are_cleaned_up() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &payload(&[("a", "1", 0o644), ("gone", "x", 0o644), ("sub/gone", "y", 0o644)])).unwrap();
        let first = timestamp_dirs(dir.path());
        // A version left by a crash mid-update is swept too.
        fs::create_dir(dir.path().join("..2000_01_01_00_00_00.000000001")).unwrap();

        write(dir.path(), &payload(&[("a", "2", 0o644)])).unwrap();
        let second = timestamp_dirs(dir.path());
        assert_eq!(second.len(), 1, "{second:?}");
        assert_ne!(first, second);
        assert!(fs::symlink_metadata(dir.path().join("gone")).is_err());
        assert!(fs::symlink_metadata(dir.path().join("sub")).is_err());
        assert!(fs::symlink_metadata(dir.path().join(NEW_DATA_DIR_NAME)).is_err());
        assert_eq!(fs::read_to_string(dir.path().join("a")).unwrap(), "2");
    }

    #[test]
    fn modes_are_set_regardless_of_umask() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &payload(&[("ro", "x", 0o400), ("exec", "y", 0o755), ("open", "z", 0o666)])).unwrap();
        for (name, mode) in [("ro", 0o400), ("exec", 0o755), ("open", 0o666)] {
            // Through the link, as a container reads it.
            assert_eq!(fs::metadata(dir.path().join(name)).unwrap().permissions().mode() & 0o777, mode, "{name}");
        }
    }

    #[test]
    fn an_unchanged_payload_is_not_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let p = payload(&[("a", "1", 0o644), ("d/b", "2", 0o600)]);
        assert!(write(dir.path(), &p).unwrap());
        let before = fs::read_link(dir.path().join(DATA_DIR_NAME)).unwrap();
        assert!(!write(dir.path(), &p).unwrap());
        assert_eq!(fs::read_link(dir.path().join(DATA_DIR_NAME)).unwrap(), before);

        // A mode change alone is a change.
        assert!(write(dir.path(), &payload(&[("a", "1", 0o600), ("d/b", "2", 0o600)])).unwrap());
    }

    #[test]
    fn a_missing_visible_link_is_restored_without_a_new_version() {
        let dir = tempfile::tempdir().unwrap();
        let p = payload(&[("a", "1", 0o644)]);
        write(dir.path(), &p).unwrap();
        fs::remove_file(dir.path().join("a")).unwrap();
        assert!(!write(dir.path(), &p).unwrap());
        assert_eq!(fs::read_to_string(dir.path().join("a")).unwrap(), "1");
    }

    #[test]
    fn paths_are_cleaned_and_an_empty_payload_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &payload(&[("./x//y", "1", 0o644)])).unwrap();
        assert_eq!(fs::read_to_string(dir.path().join("x/y")).unwrap(), "1");
        write(dir.path(), &Payload::new()).unwrap();
        assert!(fs::symlink_metadata(dir.path().join("x")).is_err());
        assert!(fs::read_dir(dir.path().join(DATA_DIR_NAME)).unwrap().next().is_none());
        assert!(matches!(write(dir.path(), &payload(&[(".", "1", 0o644)])), Err(SetUpError::InvalidPath(_))));
    }
}
