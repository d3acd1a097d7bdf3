//! HELLO, GROUP and BYE: who the peer is and which groups it works in.

use super::Done;
use crate::fnmatch::{Flags, fnmatch};
use crate::protocol::{self, conn::ConnError};
use crate::server::session::{Reply, Session};

pub(in crate::server) fn hello(s: &mut Session, name: &[u8]) -> Result<Done, ConnError> {
    let r = check_hello(s, name);
    s.finish(r)?;
    Ok(Done::Replied)
}

/// HELLO: the name must resolve to the peer's address, and on TLS the
/// certificate must be the one pinned for it; without TLS a `nossl` rule
/// must allow plain text.
fn check_hello(s: &mut Session, name: &[u8]) -> Reply {
    s.ident = None;
    if !s.peer.resolves_to(name) {
        return Err(protocol::ERR_IDENT.to_string());
    }
    if s.tls {
        let cert = s.peer.cert.clone().unwrap_or_default();
        match crate::tls::pin(s.db, name, &cert) {
            Ok(true) => {}
            Ok(false) => {
                crate::log::debug(1, "Peer did provide a wrong SSL X509 cetrificate.");
                return Err(protocol::ERR_IDENT.to_string());
            }
            Err(e) => return Err(e.0),
        }
    } else {
        let me = s.cfg.myhostname.clone();
        let allowed =
            s.cfg.nossl.iter().any(|(from, to)| {
                fnmatch(from, &me, Flags::NONE) && fnmatch(to, name, Flags::NONE)
            });
        if !allowed {
            return Err(protocol::ERR_SSL_EXPECTED.to_string());
        }
    }
    s.ident = Some(name.to_vec());
    Ok(())
}

/// GROUP: only the listed groups stay active for this session. (The real
/// server only ever tests its first group: state.md Q24.)
pub(in crate::server) fn group(s: &mut Session, list: &[u8]) -> Result<Done, ConnError> {
    let r = if s.groups_set {
        Err(protocol::ERR_GROUP_SET.to_string())
    } else {
        s.groups_set = true;
        let names: Vec<&[u8]> = list.split(|&b| b == b',').collect();
        for g in &mut s.cfg.groups {
            if g.myname.is_some() && !names.contains(&g.name.as_slice()) {
                g.myname = None;
            }
        }
        Ok(())
    };
    s.finish(r)?;
    Ok(Done::Replied)
}

pub(in crate::server) fn bye(s: &mut Session) -> Result<Done, ConnError> {
    s.reply(protocol::OK_CU_LATER)?;
    Ok(Done::End)
}
