//! The set-up shared by both harness families: scenario directories, the
//! system directory (`CSYNC2_SYSTEM_DIR`: config and key files), node
//! directories, and file-system primitives for building trees (raw byte
//! paths, modes and mtimes as given).

use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The environment variable naming the system directory.
pub const SYSTEM_DIR: &str = "CSYNC2_SYSTEM_DIR";

/// Remove `p` (if it exists, with everything below it) and create it anew.
pub fn fresh_dir(p: &Path) {
    if p.exists() {
        std::fs::remove_dir_all(p)
            .unwrap_or_else(|e| panic!("remove stale directory {}: {e}", p.display()));
    }
    std::fs::create_dir_all(p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
}

/// Create directories (with their parents).
pub fn create_dirs(dirs: &[&Path]) {
    for d in dirs {
        std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
    }
}

/// Write a file of a system directory (config, key, certificate…).
pub fn write_etc(etc: &Path, file: &str, content: &str) {
    let p = etc.join(file);
    std::fs::write(&p, content).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
}

/// Write key files `(name, key)` into a system directory.
pub fn write_keys(etc: &Path, keys: &[(&str, &str)]) {
    for (name, key) in keys {
        write_etc(etc, name, key);
    }
}

/// The directories of one csync2 "host": its system directory `etc/`, its
/// database directories and its tree, below `dir`.
#[derive(Clone, Debug)]
pub struct HostDirs {
    pub dir: PathBuf,
    pub etc: PathBuf,
    pub tree: PathBuf,
}

impl HostDirs {
    /// Create `dir/etc`, `dir/tree` and `dir/<db>` for every name in `dbs`.
    pub fn create(dir: &Path, dbs: &[&str]) -> HostDirs {
        let h = HostDirs {
            dir: dir.to_path_buf(),
            etc: dir.join("etc"),
            tree: dir.join("tree"),
        };
        create_dirs(&[&h.etc, &h.tree]);
        for db in dbs {
            create_dirs(&[&dir.join(db)]);
        }
        h
    }
}

// ---------------------------------------------------------------------------
// File-system primitives
// ---------------------------------------------------------------------------

pub fn set_mode(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
}

/// utimensat(AT_FDCWD, p, {mtime, mtime}, AT_SYMLINK_NOFOLLOW).
pub fn set_mtime(p: &Path, mtime: i64) {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    let ts = libc::timespec {
        tv_sec: mtime as libc::time_t,
        tv_nsec: 0,
    };
    let times = [ts, ts];
    let r = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if r != 0 {
        panic!(
            "utimensat {}: {}",
            p.display(),
            std::io::Error::last_os_error()
        );
    }
}

fn shown(p: &Path) -> String {
    super::show(p.as_os_str().as_bytes())
}

/// A regular file with content, mode and mtime.
pub fn make_file(p: &Path, content: &[u8], mode: u32, mtime: i64) {
    std::fs::write(p, content).unwrap_or_else(|e| panic!("write {}: {e}", shown(p)));
    set_mode(p, mode);
    set_mtime(p, mtime);
}

/// A directory (the parent must exist) with a mode.
pub fn make_dir(p: &Path, mode: u32) {
    std::fs::create_dir(p).unwrap_or_else(|e| panic!("mkdir {}: {e}", shown(p)));
    set_mode(p, mode);
}

pub fn make_symlink(p: &Path, target: &[u8]) {
    std::os::unix::fs::symlink(OsStr::from_bytes(target), p)
        .unwrap_or_else(|e| panic!("symlink {}: {e}", shown(p)));
}

pub fn make_fifo(p: &Path, mode: u32, mtime: i64) {
    nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .unwrap_or_else(|e| panic!("mkfifo {}: {e}", shown(p)));
    set_mode(p, mode);
    set_mtime(p, mtime);
}

/// A block (`blk`) or character device `major:minor`.
pub fn make_dev(p: &Path, blk: bool, (major, minor): (u64, u64), mode: u32, mtime: i64) {
    use nix::sys::stat::{SFlag, makedev, mknod};
    let kind = if blk { SFlag::S_IFBLK } else { SFlag::S_IFCHR };
    mknod(
        p,
        kind,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
        makedev(major, minor),
    )
    .unwrap_or_else(|e| panic!("mknod {} (needs root): {e}", shown(p)));
    set_mode(p, mode);
    set_mtime(p, mtime);
}

static SOCK_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A unix socket inode (bound under a short path, then renamed into place,
/// because sun_path is limited to 108 bytes).
pub fn make_socket(p: &Path, mode: u32, mtime: i64) {
    let tmp = PathBuf::from(format!(
        "/tmp/c2s-{}-{}.sock",
        std::process::id(),
        SOCK_COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_file(&tmp);
    let l = std::os::unix::net::UnixListener::bind(&tmp)
        .unwrap_or_else(|e| panic!("bind {}: {e}", tmp.display()));
    drop(l);
    std::fs::rename(&tmp, p).unwrap_or_else(|e| panic!("rename socket to {}: {e}", shown(p)));
    set_mode(p, mode);
    set_mtime(p, mtime);
}

/// lchown (does not follow symlinks).
pub fn lchown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("lchown {} (needs root): {e}", shown(p)));
}

/// Remove a file, symlink, special file or a whole directory tree.
pub fn remove_any(p: &Path) {
    let md = std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("lstat {}: {e}", shown(p)));
    if md.is_dir() {
        std::fs::remove_dir_all(p).unwrap_or_else(|e| panic!("remove {}: {e}", shown(p)));
    } else {
        std::fs::remove_file(p).unwrap_or_else(|e| panic!("remove {}: {e}", shown(p)));
    }
}
