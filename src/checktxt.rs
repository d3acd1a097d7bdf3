//! The check text that identifies a file's state (state.md §2).

use crate::config::model::Ignore;
use crate::fsutil::{self, Stat};
use crate::protocol::FileKind;
use crate::urlenc;
use std::io::Write;

/// Builds `v1:…` from lstat data. `link_target` is the raw symlink target
/// (only used for symlinks). `mtime` is None for the "without mtime" form
/// that the server sends in reply to SIG (`mtime=0`).
pub fn checktxt(
    st: &Stat,
    link_target: Option<&[u8]>,
    ignore: &Ignore,
    mtime: Option<i64>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(96);
    out.extend_from_slice(b"v1");
    if !st.is_symlink() && !st.is_dir() {
        let _ = write!(out, ":mtime={}", mtime.unwrap_or(0));
    }
    if !ignore.mode {
        let _ = write!(out, ":mode={}", st.mode as i32);
    }
    if !ignore.uid {
        let _ = write!(out, ":uid={}", st.uid as i32);
    }
    if !ignore.gid {
        let _ = write!(out, ":gid={}", st.gid as i32);
    }
    let kind = FileKind::of(st);
    // an unknown file type gets no type field at all
    if kind != FileKind::Sock || st.is_socket() {
        let _ = write!(out, ":type={}", kind.check_type());
    }
    match kind {
        FileKind::Reg => {
            let _ = write!(out, ":size={}", st.size);
        }
        FileKind::Chr | FileKind::Blk => {
            let _ = write!(out, ":dev={}", st.rdev as i32);
        }
        FileKind::Link => {
            out.extend_from_slice(b":target=");
            urlenc::encode_into(link_target.unwrap_or_default(), &mut out);
        }
        FileKind::Dir | FileKind::Fifo | FileKind::Sock => {}
    }
    out
}

/// The check text with the real mtime, from lstat data and (for symlinks)
/// the target.
pub fn for_stat(st: &Stat, target: Option<&[u8]>, ignore: &Ignore) -> Vec<u8> {
    checktxt(st, target, ignore, Some(st.mtime))
}

/// lstat + readlink + checktxt with the real mtime.
pub fn for_path(path: &[u8], ignore: &Ignore) -> std::io::Result<Vec<u8>> {
    let st = fsutil::lstat(path)?;
    let target = if st.is_symlink() {
        fsutil::readlink(path)
    } else {
        None
    };
    Ok(for_stat(&st, target.as_deref(), ignore))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn regular_dir_and_symlink() {
        let d = std::env::temp_dir().join(format!("c2ct{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let f = d.join("f");
        std::fs::write(&f, b"abcdef").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let m = std::fs::metadata(&f).unwrap();
        let ig = Ignore::default();
        let t = String::from_utf8(for_path(f.as_os_str().as_bytes(), &ig).unwrap()).unwrap();
        assert_eq!(
            t,
            format!(
                "v1:mtime={}:mode=33188:uid={}:gid={}:type=reg:size=6",
                m.mtime(),
                m.uid(),
                m.gid()
            )
        );
        let l = d.join("l");
        std::os::unix::fs::symlink("target with space:%", &l).unwrap();
        let t = String::from_utf8(for_path(l.as_os_str().as_bytes(), &ig).unwrap()).unwrap();
        assert!(
            t.ends_with(":type=lnk:target=target%20with%20space%3A%25"),
            "{t}"
        );
        assert!(t.starts_with("v1:mode=41471:"), "{t}");
        let all = Ignore {
            uid: true,
            gid: true,
            mode: true,
        };
        assert_eq!(
            for_path(d.as_os_str().as_bytes(), &all).unwrap(),
            b"v1:type=dir"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}
