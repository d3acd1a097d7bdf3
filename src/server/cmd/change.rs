//! Requests that create, replace or remove an entry: PATCH, MK*, DEL, and
//! our X-PUT (the create step of PATCH or MK* with the content and the
//! metadata in one request).

use super::Done;
use super::meta;
use crate::beneath::Place;
use crate::protocol::conn::ConnError;
use crate::protocol::{self, FileKind, MakeArg, Request, delta};
use crate::server::session::{Admitted, Reply, Session};
use crate::server::write::{
    errno_text, pre_remove, remove_entry, set_time, write_patched, write_replacing,
};
use crate::{backup, log};

/// DEL: a path that cannot be there is already deleted.
pub(in crate::server) fn del(s: &mut Session, file: &[u8], a: &Admitted) -> Done {
    Done::Reply(match &a.place {
        Ok(p) => backup::before_change(s.cfg, file, &a.real, p).and_then(|_| remove_entry(p)),
        Err(_) => Ok(()),
    })
}

/// PATCH: backup, then the rsync exchange into a new version.
pub(in crate::server) fn patch(
    s: &mut Session,
    file: &[u8],
    a: &Admitted,
) -> Result<Done, ConnError> {
    let backup = match &a.place {
        Ok(p) => backup::before_change(s.cfg, file, &a.real, p),
        Err(_) => Ok(()),
    };
    if let Err(e) = backup {
        return Ok(Done::Reply(Err(e)));
    }
    if let Ok(p) = &a.place {
        pre_remove(p, false);
    }
    Ok(Done::Reply(patch_data(s, &a.place)?))
}

/// The data exchange of PATCH; the outer Result is the connection.
fn patch_data(s: &mut Session, place: &std::io::Result<Place>) -> Result<Reply, ConnError> {
    // everything that can fail is checked before OK (send_data), so no
    // side waits for the other (protocol.md Q18); a missing directory
    // fails after the delta, as in the real server
    let mut basis = match place.as_ref().map(|p| p.open_read()) {
        Ok(Ok(f)) => Some(f),
        Ok(Err(e)) if e.raw_os_error() == Some(libc::ENOENT) => None,
        Ok(Err(e)) => return Ok(Err(log::strerror(&e))),
        Err(_) => None,
    };
    let sig = match &mut basis {
        Some(f) => match f.metadata().and_then(|m| {
            if m.is_file() {
                delta::signature_of(f)
            } else {
                Err(std::io::Error::from_raw_os_error(libc::EISDIR))
            }
        }) {
            Ok(s) => s,
            Err(e) => return Ok(Err(log::strerror(&e))),
        },
        None => delta::Sig::Mem(delta::NO_BASIS_SIGNATURE.to_vec()),
    };
    s.reply(protocol::OK_SEND_DATA)?;
    super::read::send_sig(s, sig)?;
    // the client waits for the signature before it sends the delta
    s.conn.uncork_flush()?;
    let Some(n) = s.conn.read_blob_header()? else {
        return Ok(Err("Input/output error".to_string()));
    };
    if let Ok(p) = place {
        s.clean_once(p);
    }
    let tempdir = s.cfg.tempdir.clone();
    let durable = !s.pipelined;
    let mut reader = s.conn.blob_reader(n);
    let result = match place {
        Ok(p) => write_patched(p, basis.as_ref(), &mut reader, tempdir.as_deref(), durable),
        Err(e) => Err(log::strerror(e)),
    };
    // keep in step with the client whatever happened to the data
    std::io::copy(&mut reader, &mut std::io::sink())?;
    if reader.limit() > 0 {
        return Err(ConnError::Closed);
    }
    Ok(result)
}

/// How MK*'s create step went.
enum Made {
    /// continue with the database update and this reply
    Done(Reply),
    /// answer this error at once, without a database update (a failed
    /// backup, as in the real server)
    Early(String),
}

pub(in crate::server) fn make(
    s: &mut Session,
    file: &[u8],
    a: &Admitted,
    kind: FileKind,
    arg: MakeArg,
) -> Done {
    match make_node(s, file, a, kind, arg) {
        Made::Done(r) => Done::Reply(r),
        Made::Early(e) => Done::Early(e),
    }
}

/// The create step of MK*.
fn make_node(s: &mut Session, file: &[u8], a: &Admitted, kind: FileKind, arg: MakeArg) -> Made {
    let p = match &a.place {
        Ok(p) => p,
        Err(e) => return Made::Done(Err(log::strerror(e))),
    };
    let is_dir = || p.lstat().map(|s| s.is_dir()).unwrap_or(false);
    if kind == FileKind::Dir {
        // an existing directory is kept (the real one rmdirs an empty one
        // and makes it again with mode 0700: state.md Q17)
        if !is_dir() {
            if let Err(e) = backup::before_change(s.cfg, file, &a.real, p) {
                return Made::Early(e);
            }
            pre_remove(p, true);
        }
        if let Err(e) = p.mkdir(0o700)
            && !is_dir()
        {
            return Made::Done(Err(log::strerror(&e)));
        }
        return Made::Done(Ok(()));
    }
    if let Err(e) = backup::before_change(s.cfg, file, &a.real, p) {
        return Made::Early(e);
    }
    pre_remove(p, true);
    if kind == FileKind::Link {
        let target = match arg {
            MakeArg::Target(t) => t,
            _ => b"",
        };
        return Made::Done(p.symlink(target).map_err(|e| log::strerror(&e)));
    }
    // a socket: the real server makes nothing, so the client's SETOWN
    // fails forever (protocol.md Q9); a socket node fixes that
    let dev = match arg {
        MakeArg::Dev(d) => d as u32 as libc::dev_t,
        _ => 0,
    };
    Made::Done(
        p.mknod(kind.node_type() | 0o700, dev)
            .map_err(|e| log::strerror(&e)),
    )
}

/// X-PUT: the create step (content for `reg`), then owner, mode and
/// mtime, stopping at the first error, with one reply.
pub(in crate::server) fn x_put(
    s: &mut Session,
    req: &Request,
    a: &Admitted,
) -> Result<Done, ConnError> {
    let Request::XPut {
        at,
        kind,
        arg,
        uid,
        gid,
        mode,
        mtime,
    } = *req
    else {
        unreachable!("x_put gets X-PUT")
    };
    let file = at.file;
    let place = &a.place;
    let Some(kind) = kind else {
        s.reply(protocol::ERR_UNKNOWN)?;
        return Ok(Done::Replied);
    };
    let result: Reply;
    let created: bool;
    if kind == FileKind::Reg {
        let p = match place {
            Ok(p) => p,
            Err(e) => {
                super::skip_blob(s.conn)?;
                return put_done(s, file, None, Err(log::strerror(e)), false);
            }
        };
        if let Err(e) = backup::before_change(s.cfg, file, &a.real, p) {
            super::skip_blob(s.conn)?;
            // as PATCH: the database follows the disk, no actions
            return put_done(s, file, Some(p), Err(e), false);
        }
        pre_remove(p, false);
        let (r, ok) = put_content(s, p, uid, gid, mode, mtime)?;
        result = r;
        created = ok;
    } else {
        match make_node(s, file, a, kind, arg) {
            Made::Early(e) => {
                s.reply(&e)?;
                return Ok(Done::Replied);
            }
            Made::Done(Err(e)) => {
                return put_done(s, file, place.as_ref().ok(), Err(e), false);
            }
            Made::Done(Ok(())) => {}
        }
        let p = place.as_ref().expect("made");
        created = true;
        result = meta::set_own(s, p, uid, gid).and_then(|_| {
            if kind == FileKind::Link {
                return Ok(());
            }
            meta::set_mod(s, p, mode)?;
            set_time(p, mtime)
        });
    }
    if let Ok(p) = place {
        s.unsynced.touch(p);
    }
    put_done(s, file, place.as_ref().ok(), result, created)
}

/// Receives the content blob into a temporary file with the new owner,
/// mode and mtime, and renames it into place. (reply, created)
fn put_content(
    s: &mut Session,
    place: &Place,
    uid: i64,
    gid: i64,
    mode: i64,
    mtime: i64,
) -> Result<(Reply, bool), ConnError> {
    let Some(n) = s.conn.read_blob_header()? else {
        return Ok((Err("Input/output error".to_string()), false));
    };
    let (u, g) = meta::owner(s, uid, gid);
    let skip_own = s.cfg.ignore.uid && s.cfg.ignore.gid;
    let skip_mod = s.cfg.ignore.mode;
    let mode = meta::mode_bits(mode);
    s.clean_once(place);
    let tempdir = s.cfg.tempdir.clone();
    let mut reader = s.conn.blob_reader(n);
    let result = write_replacing(
        place,
        tempdir.as_deref(),
        false,
        &mut |w| {
            let copied = std::io::copy(&mut reader, w).map_err(|e| log::strerror(&e))?;
            if copied != n {
                return Err("Input/output error".to_string());
            }
            Ok(())
        },
        &mut |fd| {
            // SETOWN, SETMOD, SETIME in that order, on the new file
            if !skip_own && unsafe { libc::fchown(fd, u, g) } != 0 {
                return Err(errno_text());
            }
            if !skip_mod && unsafe { libc::fchmod(fd, mode) } != 0 {
                return Err(errno_text());
            }
            let ts = libc::timespec {
                tv_sec: mtime as libc::time_t,
                tv_nsec: 0,
            };
            if unsafe { libc::futimens(fd, [ts, ts].as_ptr()) } != 0 {
                return Err(errno_text());
            }
            Ok(())
        },
    );
    // keep in step with the client whatever happened to the data
    std::io::copy(&mut reader, &mut std::io::sink())?;
    if reader.limit() > 0 {
        return Err(ConnError::Closed);
    }
    Ok(match result {
        Ok(meta) => (meta, true),
        Err(e) => (Err(e), false),
    })
}

fn put_done(
    s: &mut Session,
    file: &[u8],
    place: Option<&Place>,
    result: Reply,
    created: bool,
) -> Result<Done, ConnError> {
    if let Err(f) = s.update_db(file, place, created) {
        log::debug(0, &f.0);
        return Ok(Done::End);
    }
    s.finish(result)?;
    Ok(Done::Replied)
}
