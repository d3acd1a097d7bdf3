//! X-CATCHUP (ours): a peer that was down asks this server to push, over
//! the connection it opened, what this host holds dirty for it. Only after
//! HELLO (address and certificate checked as for any request), only for
//! the groups of this host's own configuration that list the peer and whose
//! key the peer named, and not when `CSYNC2_NO_CATCHUP` is set here. The
//! push itself runs once the session ends (`End::CatchUp`).

use super::Done;
use crate::protocol::{self, conn::ConnError};
use crate::server::session::Session;
use crate::{log, msg};

pub(in crate::server) fn catch_up(
    s: &mut Session,
    full: bool,
    keys: &[&[u8]],
) -> Result<Done, ConnError> {
    let peer = s.peer_name().to_vec();
    if std::env::var_os("CSYNC2_NO_CATCHUP").is_some() {
        log::debug(
            1,
            msg!(
                "Refusing a catch-up request from ",
                peer,
                " (CSYNC2_NO_CATCHUP)."
            ),
        );
        s.reply(protocol::ERR_CATCHUP_OFF)?;
        return Ok(Done::Replied);
    }
    let shared = |g: &crate::config::Group| {
        g.myname.is_some() && g.has_peer(&peer) && keys.contains(&g.key.as_slice())
    };
    if !s.cfg.groups.iter().any(shared) {
        log::debug(
            1,
            msg!(
                "Refusing a catch-up request from ",
                peer,
                ": no shared group with its key."
            ),
        );
        s.reply(protocol::ERR_PERMISSION)?;
        return Ok(Done::Replied);
    }
    // only the groups the request may see stay active
    for g in &mut s.cfg.groups {
        if !shared(g) {
            g.myname = None;
        }
    }
    log::debug(1, msg!("Catch-up requested by ", peer, "."));
    s.reply(protocol::OK_CATCHING_UP)?;
    s.catch_up = Some(full);
    Ok(Done::End)
}
