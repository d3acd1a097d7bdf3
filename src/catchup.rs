//! `--catch-up`: a host that was down asks each peer to push to it, now,
//! what the peer holds dirty for it (doc/protocol-extension.md). The asker
//! opens the connection (so it works before its own server is up and
//! through firewalls that only let it connect out), identifies itself,
//! agrees pipelining and sends `X-CATCHUP` with the keys of the groups it
//! shares with the peer; the roles are then reversed: the peer pushes as a
//! client would, and this host applies what arrives exactly as its server
//! does (the same path checks, conflict rules, backups, actions and rows).
//!
//! Both halves live here: `ask` for the asker, `push_back` for the server
//! that granted a request.

use crate::client::{self, ClientOptions, OpenError};
use crate::config::Config;
use crate::db::Db;
use crate::log::{self, Errors};
use crate::protocol::{self, Request};
use crate::server::session::{End, Session};
use crate::server::{CatchUpPush, Peer};
use crate::update::UpdateOptions;
use crate::{Fatal, msg, setup};

/// The asker's side: every peer (or those of `-P`) at once, each in a
/// thread with its own connection to the database; each peer's messages
/// are printed as one block, in peer order. Returns the errors met; one
/// line per peer says what came of it.
pub fn ask(
    cfg: &Config,
    db: &mut Db,
    copts: &ClientOptions,
    only_peers: Option<&[Vec<u8>]>,
    full: bool,
) -> Result<Errors, Fatal> {
    // in the order the update serves peers: descending names
    let mut peers = cfg.peers();
    peers.reverse();
    peers.retain(|p| match only_peers {
        Some(only) => only.iter().any(|o| o.eq_ignore_ascii_case(&p.name)),
        None => true,
    });
    let mut dbs = Vec::new();
    for _ in &peers {
        dbs.push(db.reopen()?);
    }
    let ended: Vec<(Vec<log::Held>, Result<Errors, Fatal>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = peers
            .iter()
            .zip(dbs)
            .map(|(p, mut db)| {
                scope.spawn(move || {
                    let ask = Ask {
                        peer: &p.name,
                        me: &p.myname,
                        keys: &p.keys,
                        full,
                    };
                    let mut held = Vec::new();
                    let mut errors = Errors::default();
                    let r = log::capture(&mut held, || {
                        ask_one(cfg, &mut db, copts, &ask, &mut errors)
                    });
                    (held, r.map(|_| errors))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| (Vec::new(), Err(Fatal::msg("A catch-up thread failed."))))
            })
            .collect()
    });
    let mut errors = Errors::default();
    let mut fatal = None;
    for (held, r) in ended {
        log::replay(held);
        match r {
            Ok(e) => errors.add(e),
            Err(f) if fatal.is_none() => fatal = Some(f),
            Err(_) => {}
        }
    }
    match fatal {
        Some(f) => Err(f),
        None => Ok(errors),
    }
}

/// One request.
struct Ask<'a> {
    peer: &'a [u8],
    /// this host's name towards the peer
    me: &'a [u8],
    keys: &'a [Vec<u8>],
    full: bool,
}

fn ask_one(
    cfg: &Config,
    db: &mut Db,
    copts: &ClientOptions,
    a: &Ask,
    errors: &mut Errors,
) -> Result<(), Fatal> {
    let (peer, me) = (a.peer, a.me);
    let mut session = match client::open(cfg, db, peer, copts) {
        Ok(s) => s,
        Err(OpenError::Tls(m)) => {
            errors.error(msg!("ERROR: Catch-up from ", peer, " failed: ", m));
            return Ok(());
        }
        Err(_) => {
            client::connection_failed(errors, peer);
            return Ok(());
        }
    };
    let refused = |errors: &mut Errors, why: &[u8]| {
        errors.error(msg!("ERROR: Catch-up from ", peer, " refused: ", why));
    };
    match session.identify(me) {
        Ok(true) => {}
        Ok(false) => {
            refused(errors, b"it did not accept this host's identification.");
            session.close();
            return Ok(());
        }
        Err(e) => {
            timed_out_or_closed(errors, peer, &e, copts);
            return Ok(());
        }
    }
    if let Err(e) = session.negotiate_pipeline() {
        timed_out_or_closed(errors, peer, &e, copts);
        return Ok(());
    }
    if !session.pipelined {
        errors.error(msg!(
            "ERROR: Catch-up from ",
            peer,
            " is not possible: it runs a csync2 that cannot be asked. Run 'csync2 -x' on ",
            peer,
            " instead."
        ));
        session.close();
        return Ok(());
    }
    let keys: Vec<&[u8]> = a.keys.iter().map(Vec::as_slice).collect();
    match session.request(&Request::CatchUp { full: a.full, keys }) {
        Ok(r) if r == protocol::OK_CATCHING_UP.as_bytes() => {}
        Ok(r) => {
            refused(errors, &r);
            session.close();
            return Ok(());
        }
        Err(e) => {
            timed_out_or_closed(errors, peer, &e, copts);
            return Ok(());
        }
    }
    // roles reversed: the peer pushes, this host serves
    let who = Peer {
        addr: session.peer_addr,
        cert: session.peer_cert.clone(),
    };
    let tls = who.cert.is_some();
    let mut cfg = cfg.clone();
    let mut server = Session::new(&mut cfg, db, &mut session.conn, &who, tls);
    let end = server.run();
    let received = server.received;
    match end {
        End::Normal | End::CatchUp { .. } => log::stdout(&msg!(
            "Catch-up from ",
            peer,
            ": ",
            received.to_string(),
            if received == 1 {
                " file.\n"
            } else {
                " files.\n"
            }
        )),
        End::Fatal => errors.error(msg!(
            "ERROR: Catch-up from ",
            peer,
            " ended early after ",
            received.to_string(),
            " files."
        )),
    }
    Ok(())
}

fn timed_out_or_closed(
    errors: &mut Errors,
    peer: &[u8],
    e: &protocol::conn::ConnError,
    copts: &ClientOptions,
) {
    if e.is_timeout() {
        client::timed_out(errors, peer, copts.timeout);
    } else {
        errors.error(msg!(
            "ERROR: Catch-up from ",
            peer,
            ": the connection closed."
        ));
    }
}

/// The server's side of a granted request: push as `-u` would, to the
/// asker only, over its connection. The exit code of the server process.
pub fn push_back(p: CatchUpPush, db: &mut Db) -> i32 {
    let o = p.options;
    let timeout = setup::client_timeout(None).unwrap_or(Some(setup::DEFAULT_TIMEOUT));
    let client = ClientOptions {
        sysdir: &o.host.sysdir,
        bind_name: None,
        port: o.port.clone(),
        cfgname: &o.cfgname,
        groups: None,
        timeout,
    };
    let uopts = UpdateOptions {
        dry_run: false,
        recursive: false,
        only_peers: Some(vec![p.peer.to_vec()]),
        args: Vec::new(),
        client: &client,
    };
    let mut session = client::Session::over(p.conn);
    let mut errors = Errors::default();
    let pushed = (|| -> Result<(), Fatal> {
        if p.full {
            // this host's names in the groups it shares with the asker
            let mut mine: Vec<&[u8]> = Vec::new();
            for g in p.cfg.matching_groups(false) {
                if let Some(me) = g.myname.as_deref()
                    && g.has_peer(p.peer)
                    && !mine.contains(&me)
                {
                    mine.push(me);
                }
            }
            for me in mine {
                crate::compare::mark_differences_over(
                    p.cfg,
                    db,
                    &mut session,
                    me,
                    p.peer,
                    &client,
                    &mut errors,
                )?;
            }
            db.commit()?;
        }
        errors.add(crate::update::push_over(
            p.cfg, db, &uopts, p.peer, session,
        )?);
        Ok(())
    })();
    match pushed {
        Ok(()) if errors.total() == 0 => 0,
        Ok(()) => 1,
        Err(f) => {
            log::debug(0, &f.0);
            1
        }
    }
}
