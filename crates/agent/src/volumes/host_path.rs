//! `hostPath`: a file or directory of the node, mounted into the pod
//! (upstream: `pkg/volume/hostpath/host_path.go`).
//!
//! Nothing is copied: the container sees the node's own file, so a hostPath
//! volume is as powerful as the agent itself and upstream's documentation
//! warns against it for anything but node agents. Its `type` is a check
//! made before the container starts, so that a pod expecting the Docker
//! socket fails with a clear message instead of mounting an empty directory
//! the runtime made up:
//!
//! | type                | the path must be          | when missing      |
//! |---------------------|---------------------------|-------------------|
//! | `""` (default)      | anything, or nothing      | no check at all   |
//! | `DirectoryOrCreate` | a directory               | created, 0755     |
//! | `Directory`         | a directory               | error             |
//! | `FileOrCreate`      | a file                    | created empty, 0644 (the parent must exist) |
//! | `File`              | a file                    | error             |
//! | `Socket`            | a UNIX socket             | error             |
//! | `CharDevice`        | a character device        | error             |
//! | `BlockDevice`       | a block device            | error             |
//!
//! Checks follow symlinks, as upstream's `os.Stat` does.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt};
use std::path::Path;

use super::SetUpError;

/// The `type` values, as `v1.HostPathType`.
pub const UNSET: &str = "";
pub const DIRECTORY_OR_CREATE: &str = "DirectoryOrCreate";
pub const DIRECTORY: &str = "Directory";
pub const FILE_OR_CREATE: &str = "FileOrCreate";
pub const FILE: &str = "File";
pub const SOCKET: &str = "Socket";
pub const CHAR_DEVICE: &str = "CharDevice";
pub const BLOCK_DEVICE: &str = "BlockDevice";

/// What upstream's `SetUp` does for a hostPath volume: refuse a path with
/// a `..` component, then check (and maybe create) it according to
/// `type_`.
pub fn set_up(path: &str, type_: &str) -> Result<(), SetUpError> {
    if path.split('/').any(|part| part == "..") {
        return Err(SetUpError::HostPathBacksteps(path.to_string()));
    }
    check_type(Path::new(path), type_)
}

/// The `type` check alone (upstream's `checkTypeInternal`).
pub fn check_type(path: &Path, type_: &str) -> Result<(), SetUpError> {
    let failed = |expected: &'static str| SetUpError::HostPathType { path: path.display().to_string(), expected };
    let io_error = |source: io::Error| SetUpError::Io { path: path.to_path_buf(), source };
    let file_type = fs::metadata(path).ok().map(|m| m.file_type());
    let is = |expected: &'static str, test: fn(&fs::FileType) -> bool| match &file_type {
        Some(t) if test(t) => Ok(()),
        _ => Err(failed(expected)),
    };
    match type_ {
        UNSET => Ok(()),
        DIRECTORY_OR_CREATE if file_type.is_none() => {
            // Like `mkdir -p`: a directory created meanwhile is fine.
            fs::DirBuilder::new().recursive(true).mode(0o755).create(path).map_err(io_error)
        }
        DIRECTORY_OR_CREATE | DIRECTORY => is("directory", fs::FileType::is_dir),
        FILE_OR_CREATE if file_type.is_none() => {
            // Opened for append so that a file created meanwhile is never truncated.
            fs::OpenOptions::new().append(true).create(true).mode(0o644).open(path).map(drop).map_err(io_error)
        }
        FILE_OR_CREATE | FILE => is("file", fs::FileType::is_file),
        SOCKET => is("socket file", <fs::FileType as FileTypeExt>::is_socket),
        CHAR_DEVICE => is("character device", <fs::FileType as FileTypeExt>::is_char_device),
        BLOCK_DEVICE => is("block device", <fs::FileType as FileTypeExt>::is_block_device),
        other => Err(SetUpError::InvalidHostPathType(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn type_checks_as_upstream() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("dir");
        let f = dir.path().join("file");
        let s = dir.path().join("sock");
        let missing = dir.path().join("missing");
        fs::create_dir(&d).unwrap();
        fs::write(&f, "x").unwrap();
        let _listener = UnixListener::bind(&s).unwrap();
        let null = Path::new("/dev/null");

        let not_a = |p: &Path, what: &str| Some(format!("hostPath type check failed: {} is not a {what}", p.display()));
        for (path, type_, want) in [
            (&missing, UNSET, None),
            (&f, UNSET, None),
            (&d, DIRECTORY, None),
            (&f, DIRECTORY, not_a(&f, "directory")),
            (&missing, DIRECTORY, not_a(&missing, "directory")),
            (&d, DIRECTORY_OR_CREATE, None),
            (&f, DIRECTORY_OR_CREATE, not_a(&f, "directory")),
            (&f, FILE, None),
            (&d, FILE, not_a(&d, "file")),
            (&missing, FILE, not_a(&missing, "file")),
            (&f, FILE_OR_CREATE, None),
            (&d, FILE_OR_CREATE, not_a(&d, "file")),
            (&s, SOCKET, None),
            (&f, SOCKET, not_a(&f, "socket file")),
            (&null.to_path_buf(), CHAR_DEVICE, None),
            (&f, CHAR_DEVICE, not_a(&f, "character device")),
            (&null.to_path_buf(), BLOCK_DEVICE, not_a(null, "block device")),
            (&f, "Fiel", Some("Fiel is an invalid volume type".to_string())),
        ] {
            let got = check_type(path, type_).err().map(|e| e.to_string());
            assert_eq!(got, want, "{} as {type_:?}", path.display());
        }
        assert!(fs::symlink_metadata(&missing).is_err(), "checks without OrCreate create nothing");
    }

    #[test]
    fn or_create_types_create_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let new_dir = dir.path().join("a/b/c");
        check_type(&new_dir, DIRECTORY_OR_CREATE).unwrap();
        assert!(new_dir.is_dir());

        let new_file = dir.path().join("a/f");
        check_type(&new_file, FILE_OR_CREATE).unwrap();
        assert_eq!(fs::read(&new_file).unwrap(), b"");
        // An existing file keeps its content.
        fs::write(&new_file, "keep").unwrap();
        check_type(&new_file, FILE_OR_CREATE).unwrap();
        assert_eq!(fs::read_to_string(&new_file).unwrap(), "keep");

        // FileOrCreate does not create the parent directory, as upstream.
        let orphan = dir.path().join("no/such/f");
        assert!(matches!(check_type(&orphan, FILE_OR_CREATE), Err(SetUpError::Io { .. })));
    }

    #[test]
    fn backsteps_are_refused() {
        let err = set_up("/var/../etc", DIRECTORY).unwrap_err();
        assert_eq!(err.to_string(), "invalid HostPath `/var/../etc`: must not contain '..'");
        // A name that merely contains dots is fine.
        set_up("/tmp/..hidden", UNSET).unwrap();
    }
}
