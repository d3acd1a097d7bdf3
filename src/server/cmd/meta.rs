//! SETOWN, SETMOD and SETIME: metadata of an entry that exists.

use crate::beneath::Place;
use crate::log;
use crate::server::session::{Reply, Session};

/// A command on the entry, or the text of why there is none.
pub(in crate::server) fn on(
    place: &std::io::Result<Place>,
    f: impl FnOnce(&Place) -> Reply,
) -> Reply {
    match place {
        Ok(p) => f(p),
        Err(e) => Err(log::strerror(e)),
    }
}

/// The owner SETOWN would set: -1 (unchanged) where ignored.
pub(in crate::server) fn owner(s: &Session, uid: i64, gid: i64) -> (u32, u32) {
    let uid = if s.cfg.ignore.uid {
        u32::MAX
    } else {
        uid as u32
    };
    let gid = if s.cfg.ignore.gid {
        u32::MAX
    } else {
        gid as u32
    };
    (uid, gid)
}

pub(in crate::server) fn set_own(s: &Session, p: &Place, uid: i64, gid: i64) -> Reply {
    let (uid, gid) = owner(s, uid, gid);
    if s.cfg.ignore.uid && s.cfg.ignore.gid {
        return Ok(());
    }
    p.chown(uid, gid).map_err(|e| log::strerror(&e))
}

/// The permission bits SETMOD sets.
pub(in crate::server) fn mode_bits(mode: i64) -> libc::mode_t {
    (mode as u32 & 0o7777) as libc::mode_t
}

/// SETMOD; a symlink keeps its target's mode (the real one's `chmod`
/// follows it, possibly out of the tree).
pub(in crate::server) fn set_mod(s: &Session, p: &Place, mode: i64) -> Reply {
    if s.cfg.ignore.mode {
        return Ok(());
    }
    p.chmod(mode_bits(mode)).map_err(|e| log::strerror(&e))
}
