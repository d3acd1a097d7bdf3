//! The server's commands, one file per family (as mini-redis's `cmd/`):
//!
//! * `ident`: HELLO, GROUP, BYE;
//! * `read`: SIG, TYPE, GETTM, GETSZ, LIST and our X-STAT;
//! * `change`: PATCH, MK*, DEL and our X-PUT;
//! * `meta`: SETOWN, SETMOD, SETIME;
//! * `state`: MARK, FLUSH (the database only);
//! * `pipeline`: X-CSYNC2RS-PIPELINE, and making a batch durable;
//! * `catchup`: X-CATCHUP (a peer asks to be pushed to, roles reversed).
//!
//! Each handler gets a request the session has admitted (identity, name,
//! permission, place and conflict already checked).

pub(super) mod catchup;
pub(super) mod change;
pub(super) mod ident;
pub(super) mod meta;
pub(super) mod pipeline;
pub(super) mod read;
pub(super) mod state;

use super::session::{Admitted, Reply, Session};
use crate::protocol::Request;
use crate::protocol::conn::{Conn, ConnError};

/// What a handler did.
pub(crate) enum Done {
    /// it answered; the session goes on
    Replied,
    /// the session ends (BYE, TYPE, a fatal error already logged)
    End,
    /// answer this (Ok: `OK (cmd_finished).`) once the database follows
    /// the change
    Reply(Reply),
    /// answer this error at once, without the database update (a failed
    /// backup before MK*, as in the real server)
    Early(String),
}

/// Hands an admitted request to its family. `a` is Some for requests that
/// name a file.
pub(super) fn run(s: &mut Session, req: &Request, a: Option<&Admitted>) -> Result<Done, ConnError> {
    let file = || a.expect("admitted with a file");
    match *req {
        Request::Hello(name) => ident::hello(s, name),
        Request::Group(list) => ident::group(s, list),
        Request::Bye => ident::bye(s),
        Request::Pipeline(version) => pipeline::agree(s, version),
        Request::CatchUp { full, ref keys } => catchup::catch_up(s, full, keys),
        Request::List {
            myname,
            file: ref f,
            ref keys,
        } => read::list(s, myname, *f, keys),
        Request::Sig(_) => read::sig(s, &file().place),
        Request::Type(at) => read::type_cmd(s, at, file()),
        Request::Gettm(_) => read::get(s, &file().place, true),
        Request::Getsz(_) => read::get(s, &file().place, false),
        Request::XStat { text, .. } => read::x_stat(s, &file().place, text),
        Request::Mark(at) => Ok(state::mark(s, at.file)),
        Request::Flush(at) => Ok(state::flush(s, at.file)),
        Request::Del(at) => Ok(change::del(s, at.file, file())),
        Request::Patch(at) => change::patch(s, at.file, file()),
        Request::Make { at, kind, arg } => Ok(change::make(s, at.file, file(), kind, arg)),
        Request::XPut { .. } => change::x_put(s, req, file()),
        Request::Setown { uid, gid, .. } => Ok(Done::Reply(meta::on(&file().place, |p| {
            meta::set_own(s, p, uid, gid)
        }))),
        Request::Setmod { mode, .. } => Ok(Done::Reply(meta::on(&file().place, |p| {
            meta::set_mod(s, p, mode)
        }))),
        Request::Setime { mtime, .. } => Ok(Done::Reply(meta::on(&file().place, |p| {
            super::write::set_time(p, mtime)
        }))),
    }
}

/// Reads and drops a blob the client sent ahead.
pub(super) fn skip_blob(conn: &mut Conn) -> Result<(), ConnError> {
    if let Some(n) = conn.read_blob_header()? {
        let mut r = conn.blob_reader(n);
        std::io::copy(&mut r, &mut std::io::sink())?;
        if r.limit() > 0 {
            return Err(ConnError::Closed);
        }
    }
    Ok(())
}
