//! The file-writing steps the change commands share: a new version through
//! a temporary file renamed into place, the removal before MK*, DEL's
//! removal, and times.

use super::session::Reply;
use crate::beneath::Place;
use crate::log;
use crate::protocol::delta;
use std::io::Write;
use std::os::unix::io::AsRawFd;

pub(super) fn errno_text() -> String {
    log::strerror(&std::io::Error::last_os_error())
}

/// The reply for a failed write of received data: the system's reason
/// when there is one (`No space left on device` names the cause, where the
/// real server says `Input/output error`), else the real server's text
/// for a bad delta or a broken transfer.
pub(super) fn write_error_text(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(_) => log::strerror(e),
        None => "Input/output error".to_string(),
    }
}

pub(super) fn clone_err(e: &std::io::Error) -> std::io::Error {
    match e.raw_os_error() {
        Some(n) => std::io::Error::from_raw_os_error(n),
        None => std::io::Error::new(e.kind(), e.to_string()),
    }
}

/// Streams the patched file into a temporary file next to the target and
/// renames it over the target; the temporary file never survives a failure.
pub(super) fn write_patched(
    place: &Place,
    basis: Option<&std::fs::File>,
    d: &mut impl std::io::Read,
    tempdir: Option<&[u8]>,
    durable: bool,
) -> Reply {
    write_replacing(
        place,
        tempdir,
        durable,
        &mut |w| {
            delta::apply_stream(basis, d, &mut &mut *w, u64::MAX)
                .map(|_| ())
                .map_err(|e| write_error_text(&e))
        },
        &mut |_| Ok(()),
    )
    .and_then(|meta| meta)
}

/// Writes a new version of the entry into a temporary file (`fill`), gives
/// it the old file's owner and mode, then `meta` (whose error is returned
/// after the rename: the content is in place, as after PATCH and a failed
/// SET*), and puts it in place atomically. `durable`: fdatasync first;
/// otherwise only writeback is started (the caller syncs the batch).
/// Err: nothing changed; Ok(meta's result): the new content is in place.
pub(super) fn write_replacing(
    place: &Place,
    tempdir: Option<&[u8]>,
    durable: bool,
    fill: &mut dyn FnMut(&mut dyn std::io::Write) -> Reply,
    meta: &mut dyn FnMut(libc::c_int) -> Reply,
) -> Result<Reply, String> {
    let old = place.lstat().ok().filter(|s| s.is_file());
    let temp = place.create_temp(tempdir).map_err(|e| log::strerror(&e))?;
    let fd = temp.file.as_raw_fd();
    let mut w = std::io::BufWriter::with_capacity(256 * 1024, &temp.file);
    fill(&mut w)?;
    w.flush().map_err(|e| log::strerror(&e))?;
    drop(w);
    if let Some(st) = old {
        unsafe {
            libc::fchown(fd, st.uid, st.gid);
            libc::fchmod(fd, (st.mode & 0o7777) as libc::mode_t);
        }
    }
    let meta_result = meta(fd);
    if durable {
        temp.file.sync_data().map_err(|e| log::strerror(&e))?;
    } else {
        unsafe {
            libc::sync_file_range(fd, 0, 0, libc::SYNC_FILE_RANGE_WRITE);
        }
    }
    temp.commit(place).map_err(|e| log::strerror(&e))?;
    if durable {
        // the rename too, or a crash could bring back the old file while
        // the database already knows the new one
        place.sync_dir().map_err(|e| log::strerror(&e))?;
    }
    Ok(meta_result)
}

/// Pre-removal before MK* (`any`) and PATCH (only what is not a regular
/// file); errors are ignored, as in the real server.
pub(super) fn pre_remove(p: &Place, any: bool) {
    let Ok(st) = p.lstat() else { return };
    if !any && st.is_file() {
        return;
    }
    let _ = if st.is_dir() { p.rmdir() } else { p.unlink() };
}

/// DEL: a directory only if empty; a missing entry is fine.
pub(super) fn remove_entry(p: &Place) -> Reply {
    match p.remove() {
        Err(e) if e.raw_os_error() != Some(libc::ENOENT) => Err(log::strerror(&e)),
        _ => Ok(()),
    }
}

/// SETIME: atime and mtime (of the entry itself, never a symlink's target).
pub(super) fn set_time(p: &Place, t: i64) -> Reply {
    p.set_mtime(t).map_err(|e| log::strerror(&e))
}

#[cfg(test)]
mod tests {
    #[test]
    fn write_errors_name_their_cause() {
        let full = std::io::Error::from_raw_os_error(libc::ENOSPC);
        assert_eq!(super::write_error_text(&full), "No space left on device");
        let bad = std::io::Error::new(std::io::ErrorKind::InvalidData, "bad delta magic");
        assert_eq!(super::write_error_text(&bad), "Input/output error");
    }
}
