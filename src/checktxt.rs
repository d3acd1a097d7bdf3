//! The check text that identifies a file's state (state.md §2).

use crate::config::model::Ignore;
use crate::urlenc;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

/// Builds `v1:…` from lstat data. `link_target` is the raw symlink target
/// (only used for symlinks). `mtime` is None for the "without mtime" form
/// that the server sends in reply to SIG (`mtime=0`).
pub fn checktxt(
    meta: &std::fs::Metadata,
    link_target: Option<&[u8]>,
    ignore: &Ignore,
    mtime: Option<i64>,
) -> Vec<u8> {
    let ft = meta.file_type();
    let mut out = Vec::with_capacity(96);
    out.extend_from_slice(b"v1");
    if !ft.is_symlink() && !ft.is_dir() {
        let _ = write!(out, ":mtime={}", mtime.unwrap_or(0));
    }
    if !ignore.mode {
        let _ = write!(out, ":mode={}", meta.mode() as i32);
    }
    if !ignore.uid {
        let _ = write!(out, ":uid={}", meta.uid() as i32);
    }
    if !ignore.gid {
        let _ = write!(out, ":gid={}", meta.gid() as i32);
    }
    if ft.is_file() {
        let _ = write!(out, ":type=reg:size={}", meta.size() as i64);
    } else if ft.is_dir() {
        out.extend_from_slice(b":type=dir");
    } else if ft.is_char_device() {
        let _ = write!(out, ":type=chr:dev={}", meta.rdev() as i32);
    } else if ft.is_block_device() {
        let _ = write!(out, ":type=blk:dev={}", meta.rdev() as i32);
    } else if ft.is_fifo() {
        out.extend_from_slice(b":type=fifo");
    } else if ft.is_symlink() {
        out.extend_from_slice(b":type=lnk:target=");
        urlenc::encode_into(link_target.unwrap_or_default(), &mut out);
    } else if ft.is_socket() {
        out.extend_from_slice(b":type=sock");
    }
    out
}

/// lstat + readlink + checktxt with the real mtime.
pub fn for_path(path: &std::path::Path, ignore: &Ignore) -> std::io::Result<Vec<u8>> {
    let meta = std::fs::symlink_metadata(path)?;
    Ok(for_meta(path, &meta, ignore))
}

pub fn for_meta(path: &std::path::Path, meta: &std::fs::Metadata, ignore: &Ignore) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    let target = if meta.file_type().is_symlink() {
        std::fs::read_link(path)
            .ok()
            .map(|t| t.as_os_str().as_bytes().to_vec())
    } else {
        None
    };
    checktxt(meta, target.as_deref(), ignore, Some(meta.mtime()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn regular_dir_and_symlink() {
        let d = std::env::temp_dir().join(format!("c2ct{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let f = d.join("f");
        std::fs::write(&f, b"abcdef").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let m = std::fs::metadata(&f).unwrap();
        let ig = Ignore::default();
        let t = String::from_utf8(for_path(&f, &ig).unwrap()).unwrap();
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
        let t = String::from_utf8(for_path(&l, &ig).unwrap()).unwrap();
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
        assert_eq!(for_path(&d, &all).unwrap(), b"v1:type=dir");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
