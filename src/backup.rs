//! Server-side backups before a file is overwritten or removed
//! (`backup-directory`, `backup-generations`; state.md §5.5).
//!
//! Layout as the real one: the file's full real path mirrored below the
//! backup directory. `<base>` holds the content before the latest update,
//! `<base>.1` the one before, … up to `<base>.<N-1>`: all N generations are
//! kept (the real one keeps two, and none for N = 1).

use crate::beneath::Place;
use crate::config::model::Config;
use crate::msg;
use crate::paths::as_path;
use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};

/// Backs up `real` (logical name `file`) into every distinct backup
/// directory of the active groups that select it. Nothing to do for a path
/// that is missing, a directory or a special file.
pub fn before_change(cfg: &Config, file: &[u8], real: &[u8], place: &Place) -> Result<(), String> {
    let Ok(st) = place.lstat() else {
        return Ok(());
    };
    if !(st.is_file() || st.is_symlink()) {
        return Ok(());
    }
    let mut done: Vec<&[u8]> = Vec::new();
    for g in cfg.active_groups() {
        let Some(dir) = g.backup_directory.as_deref() else {
            continue;
        };
        if g.backup_generations < 1 || done.contains(&dir) || !g.selects(file, false) {
            continue;
        }
        done.push(dir);
        backup_one(dir, g.backup_generations as u32, real, place)
            .map_err(|e| text(msg!("Backup of ", real, " to ", dir, " failed: ", e)))?;
    }
    Ok(())
}

/// `place` is where `real` is, opened beneath its root: the copy is read
/// from there, never through a symlink.
fn backup_one(dir: &[u8], generations: u32, real: &[u8], place: &Place) -> Result<(), String> {
    let dir = dir.strip_suffix(b"/").unwrap_or(dir);
    let top = as_path(dir);
    if !top.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(top)
            .map_err(|e| text(msg!(dir, ": ", crate::log::strerror(&e))))?;
    }
    match std::fs::metadata(top) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(text(msg!(dir, ": Not a directory"))),
        Err(e) => return Err(text(msg!(dir, ": ", crate::log::strerror(&e)))),
    }
    // mirror the parent directories with their owners and modes; each one
    // is opened without following symlinks and changed through its
    // descriptor (a mirrored directory belongs to the original's owner, who
    // must not be able to swap in a symlink and redirect a chmod or a copy)
    let comps: Vec<&[u8]> = real
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
        .collect();
    let Some((name, parents)) = comps.split_last() else {
        return Ok(());
    };
    let err = |what: &[u8], e: std::io::Error| text(msg!(what, ": ", crate::log::strerror(&e)));
    let mut at = dir.to_vec();
    let mut fd = open_dir_at(None, dir, false).map_err(|e| err(dir, e))?;
    let mut orig = Vec::new();
    for c in parents {
        orig.extend_from_slice(b"/");
        orig.extend_from_slice(c);
        at.extend_from_slice(b"/");
        at.extend_from_slice(c);
        let src = std::fs::metadata(as_path(&orig)).map_err(|e| err(&orig, e))?;
        let cc = cstring(c);
        if unsafe { libc::mkdirat(fd.as_raw_fd(), cc.as_ptr(), 0o700) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EEXIST) {
                return Err(err(&at, e));
            }
        }
        fd = match open_dir_at(Some(&fd), c, true) {
            Ok(f) => f,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR)) => {
                return Err(text(msg!(at, ": exists and is not a directory")));
            }
            Err(e) => return Err(err(&at, e)),
        };
        // best effort, as the real one: owner and mode of the original
        unsafe {
            libc::fchown(fd.as_raw_fd(), src.uid(), src.gid());
            libc::fchmod(fd.as_raw_fd(), (src.mode() & 0o7777) as libc::mode_t);
        }
    }
    let base = msg!(at, "/", name);
    // the copy first, so a failure leaves the older generations untouched
    let tmp = copy_to_temp(real, place, &fd, &at, name)?;
    let generation = |i: u32| -> CString {
        if i == 0 {
            cstring(name)
        } else {
            cstring(&msg!(name, ".", i.to_string()))
        }
    };
    let rename = |from: &CString, to: &CString| -> std::io::Result<()> {
        let d = fd.as_raw_fd();
        if unsafe { libc::renameat(d, from.as_ptr(), d, to.as_ptr()) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    };
    let rotate = || -> Result<(), String> {
        for i in (0..generations.saturating_sub(1)).rev() {
            match rename(&generation(i), &generation(i + 1)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    let from = msg!(at, "/", generation(i).as_bytes());
                    return Err(err(&from, e));
                }
            }
        }
        rename(&tmp, &generation(0)).map_err(|e| err(&base, e))
    };
    let r = rotate();
    if r.is_err() {
        unsafe { libc::unlinkat(fd.as_raw_fd(), tmp.as_ptr(), 0) };
    }
    r
}

/// A directory: `name` below `parent` (never through a symlink when
/// `nofollow`), or the path `name` itself.
fn open_dir_at(
    parent: Option<&std::os::fd::OwnedFd>,
    name: &[u8],
    nofollow: bool,
) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    let c = cstring(name);
    let mut flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
    if nofollow {
        flags |= libc::O_NOFOLLOW;
    }
    let d = parent.map_or(libc::AT_FDCWD, |p| p.as_raw_fd());
    let r = unsafe { libc::openat(d, c.as_ptr(), flags) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(r) })
}

/// Copies the entry at `place` (a regular file, or a symlink kept as a
/// symlink) to a new temporary name in the directory `dir` (shown as
/// `shown`), with the original's owner, mode and mtime set through the new
/// file's descriptor.
fn copy_to_temp(
    real: &[u8],
    place: &Place,
    dir: &std::os::fd::OwnedFd,
    shown: &[u8],
    name: &[u8],
) -> Result<CString, String> {
    let st = place
        .lstat()
        .map_err(|e| text(msg!(real, ": ", crate::log::strerror(&e))))?;
    let d = dir.as_raw_fd();
    for attempt in 0..100u32 {
        let tmp_name = msg!(
            ".",
            name,
            ".bak",
            std::process::id().to_string(),
            ".",
            attempt.to_string()
        );
        let tmp = cstring(&tmp_name);
        let fail = |e: std::io::Error| {
            unsafe { libc::unlinkat(d, tmp.as_ptr(), 0) };
            text(msg!(shown, "/", tmp_name, ": ", crate::log::strerror(&e)))
        };
        if st.is_symlink() {
            let target = place
                .readlink()
                .ok_or_else(|| text(msg!(real, ": cannot read the symlink")))?;
            let t = cstring(&target);
            if unsafe { libc::symlinkat(t.as_ptr(), d, tmp.as_ptr()) } != 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EEXIST) {
                    continue;
                }
                return Err(fail(e));
            }
            unsafe {
                libc::fchownat(d, tmp.as_ptr(), st.uid, st.gid, libc::AT_SYMLINK_NOFOLLOW);
            }
            return Ok(tmp);
        }
        let r = unsafe {
            libc::openat(
                d,
                tmp.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o600 as libc::c_uint,
            )
        };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EEXIST) {
                continue;
            }
            return Err(fail(e));
        }
        use std::os::fd::FromRawFd;
        let mut dst = unsafe { std::fs::File::from_raw_fd(r) };
        let copied = (|| -> std::io::Result<()> {
            let mut src = place.open_read()?;
            std::io::copy(&mut src, &mut dst)?;
            let fd = dst.as_raw_fd();
            let ts = libc::timespec {
                tv_sec: st.mtime as libc::time_t,
                tv_nsec: 0,
            };
            unsafe {
                libc::fchown(fd, st.uid, st.gid);
                libc::fchmod(fd, (st.mode & 0o7777) as libc::mode_t);
                libc::futimens(fd, [ts, ts].as_ptr());
            }
            dst.sync_data()
        })();
        return match copied {
            Ok(()) => Ok(tmp),
            Err(e) => Err(fail(e)),
        };
    }
    Err(text(msg!(shown, ": cannot make a temporary file")))
}

fn text(v: Vec<u8>) -> String {
    String::from_utf8_lossy(&v).into_owned()
}

fn cstring(b: &[u8]) -> CString {
    CString::new(std::ffi::OsStr::from_bytes(b).as_bytes()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("c2bak-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn b(p: &std::path::Path) -> Vec<u8> {
        p.as_os_str().as_bytes().to_vec()
    }

    fn place(p: &std::path::Path) -> Place {
        Place::resolve(&b(p), 0).unwrap()
    }

    #[test]
    fn rotation_keeps_all_generations() {
        let d = tmpdir("rot");
        let src = d.join("data/f.txt");
        std::fs::create_dir_all(src.parent().unwrap()).unwrap();
        let bak = d.join("bak");
        for v in 0..6 {
            std::fs::write(&src, format!("v{v}")).unwrap();
            backup_one(&b(&bak), 3, &b(&src), &place(&src)).unwrap();
        }
        let base = bak.join(src.strip_prefix("/").unwrap());
        let read =
            |s: &str| std::fs::read_to_string(format!("{}{s}", base.display())).unwrap_or_default();
        assert_eq!(
            (read(""), read(".1"), read(".2"), read(".3")),
            ("v5".into(), "v4".into(), "v3".into(), String::new())
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn one_generation_and_symlinks() {
        let d = tmpdir("one");
        let link = d.join("l");
        std::os::unix::fs::symlink("target/x", &link).unwrap();
        let bak = d.join("b");
        backup_one(&b(&bak), 1, &b(&link), &place(&link)).unwrap();
        backup_one(&b(&bak), 1, &b(&link), &place(&link)).unwrap();
        let base = bak.join(link.strip_prefix("/").unwrap());
        assert_eq!(
            std::fs::read_link(&base).unwrap(),
            std::path::Path::new("target/x")
        );
        assert!(!std::path::Path::new(&format!("{}.1", base.display())).exists());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn never_writes_through_a_symlinked_mirror_directory() {
        let d = tmpdir("swap");
        let src = d.join("data/f.txt");
        std::fs::create_dir_all(src.parent().unwrap()).unwrap();
        std::fs::write(&src, "v1").unwrap();
        let bak = d.join("bak");
        backup_one(&b(&bak), 2, &b(&src), &place(&src)).unwrap();
        // the mirror of data/ becomes a symlink to somewhere else
        let mirror = bak.join(d.join("data").strip_prefix("/").unwrap());
        std::fs::remove_dir_all(&mirror).unwrap();
        let elsewhere = d.join("elsewhere");
        std::fs::create_dir_all(&elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &mirror).unwrap();
        let e = backup_one(&b(&bak), 2, &b(&src), &place(&src)).unwrap_err();
        assert!(e.ends_with("exists and is not a directory"), "{e}");
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn backup_dir_that_is_a_file_is_an_error() {
        let d = tmpdir("bad");
        let f = d.join("f");
        std::fs::write(&f, "x").unwrap();
        let bad = d.join("notadir");
        std::fs::write(&bad, "").unwrap();
        let e = backup_one(&b(&bad), 3, &b(&f), &place(&f)).unwrap_err();
        assert!(e.ends_with("Not a directory"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }
}
