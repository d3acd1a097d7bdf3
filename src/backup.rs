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
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};

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
    // mirror the parent directories with their owners and modes
    let mut at = dir.to_vec();
    let comps: Vec<&[u8]> = real
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
        .collect();
    let Some((name, parents)) = comps.split_last() else {
        return Ok(());
    };
    let mut orig = Vec::new();
    for c in parents {
        orig.extend_from_slice(b"/");
        orig.extend_from_slice(c);
        at.extend_from_slice(b"/");
        at.extend_from_slice(c);
        let src = std::fs::metadata(as_path(&orig))
            .map_err(|e| text(msg!(orig, ": ", crate::log::strerror(&e))))?;
        match std::fs::symlink_metadata(as_path(&at)) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(text(msg!(at, ": exists and is not a directory"))),
            Err(_) => std::fs::DirBuilder::new()
                .mode(0o700)
                .create(as_path(&at))
                .map_err(|e| text(msg!(at, ": ", crate::log::strerror(&e))))?,
        }
        // best effort, as the real one: owner and mode of the original
        let p = cstring(&at);
        unsafe {
            libc::lchown(p.as_ptr(), src.uid(), src.gid());
        }
        let _ = std::fs::set_permissions(
            as_path(&at),
            std::fs::Permissions::from_mode(src.mode() & 0o7777),
        );
    }
    let base = msg!(at, "/", name);
    // the copy first, so a failure leaves the older generations untouched
    let tmp = copy_to_temp(real, place, &at, name)?;
    let rotate = || -> Result<(), String> {
        let generation = |i: u32| -> Vec<u8> {
            if i == 0 {
                base.clone()
            } else {
                msg!(base, ".", i.to_string())
            }
        };
        for i in (0..generations.saturating_sub(1)).rev() {
            let from = generation(i);
            match std::fs::rename(as_path(&from), as_path(&generation(i + 1))) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(text(msg!(from, ": ", crate::log::strerror(&e)))),
            }
        }
        std::fs::rename(as_path(&tmp), as_path(&base))
            .map_err(|e| text(msg!(base, ": ", crate::log::strerror(&e))))
    };
    let r = rotate();
    if r.is_err() {
        let _ = std::fs::remove_file(as_path(&tmp));
    }
    r
}

/// Copies `real` (a regular file, or a symlink kept as a symlink) to a new
/// temporary name in `dir`, with the original's owner, mode and mtime.
fn copy_to_temp(real: &[u8], place: &Place, dir: &[u8], name: &[u8]) -> Result<Vec<u8>, String> {
    let st = place
        .lstat()
        .map_err(|e| text(msg!(real, ": ", crate::log::strerror(&e))))?;
    for attempt in 0..100u32 {
        let tmp = msg!(
            dir,
            "/.",
            name,
            ".bak",
            std::process::id().to_string(),
            ".",
            attempt.to_string()
        );
        let made = if st.is_symlink() {
            let target = place
                .readlink()
                .ok_or_else(|| text(msg!(real, ": cannot read the symlink")))?;
            std::os::unix::fs::symlink(as_path(&target), as_path(&tmp))
        } else {
            copy_file(place, &tmp)
        };
        match made {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                let _ = std::fs::remove_file(as_path(&tmp));
                return Err(text(msg!(tmp, ": ", crate::log::strerror(&e))));
            }
        }
        let p = cstring(&tmp);
        unsafe {
            libc::lchown(p.as_ptr(), st.uid, st.gid);
        }
        if !st.is_symlink() {
            let _ = std::fs::set_permissions(
                as_path(&tmp),
                std::fs::Permissions::from_mode(st.mode & 0o7777),
            );
            let t = libc::timeval {
                tv_sec: st.mtime as libc::time_t,
                tv_usec: 0,
            };
            unsafe {
                libc::utimes(p.as_ptr(), [t, t].as_ptr());
            }
        }
        return Ok(tmp);
    }
    Err(text(msg!(dir, ": cannot make a temporary file")))
}

fn copy_file(from: &Place, to: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut src = from.open_read()?;
    let mut dst = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(as_path(to))?;
    std::io::copy(&mut src, &mut dst)?;
    dst.sync_data()
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
