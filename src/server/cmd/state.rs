//! MARK and FLUSH: requests that change only this host's database.

use super::Done;
use crate::mark::{self, MarkOptions};
use crate::server::session::Session;

/// MARK: the file becomes dirty here towards the requesting peer's groups.
pub(in crate::server) fn mark(s: &mut Session, file: &[u8]) -> Done {
    let peer = s.peer_name().to_vec();
    let opts = MarkOptions { force_new: false };
    Done::Reply(
        mark::mark(s.cfg, s.db, &opts, file, Some(&peer), None)
            .map_err(|f| String::from_utf8_lossy(&f.0).into_owned()),
    )
}

/// FLUSH: this host forgets every dirty row of the file, towards all
/// peers (protocol.md Q12), so the requester's version wins.
pub(in crate::server) fn flush(s: &mut Session, file: &[u8]) -> Done {
    Done::Reply(s.db.delete_dirty_all(file).map_err(|e| e.0))
}
