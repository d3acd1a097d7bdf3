//! Requests that read: SIG, TYPE, GETTM, GETSZ, LIST, and our X-STAT.

use super::Done;
use crate::beneath::{self, Place};
use crate::protocol::conn::ConnError;
use crate::protocol::{self, Target, delta};
use crate::server::session::{Admitted, Session};
use crate::{checktxt, fsutil, log, msg};

/// What SIG and X-STAT find at a place: Ok(stat), or Err(the status line
/// that says why there is nothing to describe).
fn look(place: &std::io::Result<Place>) -> Result<(fsutil::Stat, &Place), String> {
    let p = match place {
        Ok(p) => p,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            return Err(protocol::ERR_PARENT_MISSING.to_string());
        }
        // beneath a symlinked directory: nothing of ours is there
        Err(e) if beneath::is_symlink_error(e) => {
            return Err(protocol::OK_NOT_FOUND.to_string());
        }
        Err(e) => return Err(log::strerror(e)),
    };
    match p.lstat() {
        Ok(st) => Ok((st, p)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            Err(protocol::OK_PATH_NOT_FOUND.to_string())
        }
        Err(e) => Err(log::strerror(&e)),
    }
}

/// SIG: the check text (without mtime) and the rsync signature.
pub(in crate::server) fn sig(
    s: &mut Session,
    place: &std::io::Result<Place>,
) -> Result<Done, ConnError> {
    let (st, p) = match look(place) {
        Ok(st) => st,
        Err(line) => {
            s.reply(&line)?;
            if protocol::classify(line.as_bytes()) == protocol::Status::Ok {
                // nothing there: described as such
                s.reply("---")?;
                s.conn.send_blob(b"")?;
                s.reply(protocol::OK_FINISHED)?;
            }
            return Ok(Done::Replied);
        }
    };
    // read before answering: a read error becomes a plain error line
    // (the real server's `octet-stream -1` puts clients out of step:
    // protocol.md Q19)
    let sig = if st.is_file() {
        match p.open_read().and_then(|mut f| delta::signature_of(&mut f)) {
            Ok(s) => s,
            Err(e) => {
                s.reply(&log::strerror(&e))?;
                return Ok(Done::Replied);
            }
        }
    } else {
        delta::Sig::Mem(Vec::new())
    };
    let target = if st.is_symlink() { p.readlink() } else { None };
    let text = checktxt::checktxt(&st, target.as_deref(), &s.cfg.ignore, None);
    s.reply(protocol::OK_DATA_FOLLOWS)?;
    s.conn.write_all(&msg!(text, "\n"))?;
    send_sig(s, sig)?;
    s.reply(protocol::OK_FINISHED)?;
    Ok(Done::Replied)
}

/// A signature as a blob, streamed from its spool when large.
pub(in crate::server) fn send_sig(s: &mut Session, mut sig: delta::Sig) -> Result<(), ConnError> {
    let n = sig.len();
    let mut r = sig.reader()?;
    s.conn.send_blob_from(&mut r, n)
}

/// TYPE: the file's content, then the session ends. A symlink, device or
/// FIFO reads as nothing (the real one follows symlinks, out of the tree
/// too, and hangs on a FIFO).
pub(in crate::server) fn type_cmd(
    s: &mut Session,
    at: Target,
    a: &Admitted,
) -> Result<Done, ConnError> {
    let place = type_target(s, at.key, at.file, clone_place(&a.place));
    let file = place.and_then(|p| {
        let f = p.open_read()?;
        // a directory reads as nothing
        Ok(if f.metadata()?.is_dir() {
            None
        } else {
            Some(f)
        })
    });
    let file = match file {
        Ok(f) => f,
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOENT) | Some(libc::ELOOP) | Some(libc::EINVAL)
            ) =>
        {
            None
        }
        Err(e) => {
            s.reply(&log::strerror(&e))?;
            return Ok(Done::Replied);
        }
    };
    s.reply(protocol::OK_DATA_FOLLOWS)?;
    // streamed: a read error now can only end the session early
    if let Some(mut f) = file {
        s.conn.send_stream(&mut f)?;
    }
    s.conn.uncork_flush()?;
    Ok(Done::End)
}

fn clone_place(p: &std::io::Result<Place>) -> std::io::Result<Place> {
    match p {
        Ok(p) => p.try_clone(),
        Err(e) => Err(crate::server::write::clone_err(e)),
    }
}

/// What TYPE reads: a symlink is followed (as by the real one) only to a
/// file the peer could ask for itself (a name of a group it shares, with
/// this key), resolved the same way; anything else reads as nothing
/// (ELOOP).
fn type_target(
    s: &Session,
    key: &[u8],
    file: &[u8],
    mut place: std::io::Result<Place>,
) -> std::io::Result<Place> {
    let mut name = file.to_vec();
    for _ in 0..8 {
        let p = place?;
        if !p.lstat().map(|s| s.is_symlink()).unwrap_or(false) {
            return Ok(p);
        }
        // prefix names: the target's logical name is not known
        if name.first() == Some(&b'%') {
            break;
        }
        let Some(t) = p.readlink() else { break };
        let abs = if t.first() == Some(&b'/') {
            t
        } else {
            msg!(fsutil::parent_dir(&name), "/", t)
        };
        name = crate::paths::clean(&abs);
        let peer = s.peer_name();
        let shared = beneath::valid_name(&name)
            && s.cfg.matching_groups(true).any(|g| {
                g.key == key && g.selects(&name, true) && g.hosts.iter().any(|h| h.name == peer)
            });
        if !shared {
            break;
        }
        place = Place::resolve(&name, 0);
    }
    Err(std::io::Error::from_raw_os_error(libc::ELOOP))
}

/// GETTM / GETSZ: the mtime or size, -1 when there is nothing (no final
/// status line: protocol.md Q4).
pub(in crate::server) fn get(
    s: &mut Session,
    place: &std::io::Result<Place>,
    mtime: bool,
) -> Result<Done, ConnError> {
    let v = match place.as_ref().map(|p| p.lstat()) {
        Ok(Ok(st)) if mtime => st.mtime,
        Ok(Ok(st)) => st.size,
        _ => -1,
    };
    s.reply(protocol::OK_DATA_FOLLOWS)?;
    s.reply(&v.to_string())?;
    Ok(Done::Replied)
}

/// LIST MYNAME FILE-or-- KEY…: rows of the file table this pair shares.
pub(in crate::server) fn list(
    s: &mut Session,
    myname: &[u8],
    file: Option<&[u8]>,
    keys: &[&[u8]],
) -> Result<Done, ConnError> {
    let peer = s.peer_name().to_vec();
    let rows = match s.db.file_rows_raw(file) {
        Ok(r) => r,
        Err(e) => {
            s.reply(&e.0)?;
            return Ok(Done::Replied);
        }
    };
    let mut out = Vec::new();
    for (text_enc, name_enc) in rows {
        let name = crate::urlenc::decode(&name_enc);
        let shared = s.cfg.matching_groups(false).any(|g| {
            g.myname.as_deref() == Some(myname)
                && keys.contains(&g.key.as_slice())
                && g.has_peer(&peer)
                && g.selects(&name, false)
        });
        if shared {
            out.extend_from_slice(&text_enc);
            out.push(b'\t');
            out.extend_from_slice(&name_enc);
            out.push(b'\n');
        }
    }
    s.conn.write_all(&out)?;
    s.reply(protocol::OK_FINISHED)?;
    Ok(Done::Replied)
}

/// X-STAT: the check text here and, when it equals the client's and the
/// file is regular, the digest of its content.
pub(in crate::server) fn x_stat(
    s: &mut Session,
    place: &std::io::Result<Place>,
    theirs: &[u8],
) -> Result<Done, ConnError> {
    // a path through a regular file: that file is about to become a
    // directory in the client's pass (SIG answers `Not a directory`, as the
    // real server does, and the lock-step client makes the directory
    // before it asks)
    let not_dir = |e: &std::io::Error| e.raw_os_error() == Some(libc::ENOTDIR);
    let parent_is_file = match place {
        Err(e) => not_dir(e),
        Ok(p) => p.lstat().is_err_and(|e| not_dir(&e)),
    };
    if parent_is_file {
        s.reply(protocol::ERR_PARENT_MISSING)?;
        return Ok(Done::Replied);
    }
    let (st, p) = match look(place) {
        Ok(v) => v,
        Err(line) => {
            s.reply(&line)?;
            return Ok(Done::Replied);
        }
    };
    let target = if st.is_symlink() { p.readlink() } else { None };
    let text = checktxt::checktxt(&st, target.as_deref(), &s.cfg.ignore, None);
    let digest = if st.is_file() && text == theirs {
        match p
            .open_read()
            .and_then(|mut f| protocol::content_digest(&mut f))
        {
            Ok(d) => d,
            Err(e) => {
                s.reply(&log::strerror(&e))?;
                return Ok(Done::Replied);
            }
        }
    } else {
        "-".to_string()
    };
    protocol::send_stat_found(s.conn, &text, &digest)?;
    Ok(Done::Replied)
}
