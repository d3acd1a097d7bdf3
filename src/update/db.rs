//! The database as the update of one peer uses it: that peer's dirty rows,
//! the rows it finished, the missing parents it marks again, and the
//! peer's certificate pin. With one peer the update works on the database
//! itself; with several, each peer's thread sends its requests to the one
//! thread that owns the database (SQLite is never contended), which also
//! prints each peer's held output as one block, in peer order.

use crate::config::Config;
use crate::db::{Db, DbError, DirtyRow};
use crate::log::{self, Errors, Held};
use crate::mark::{self, MarkOptions};
use crate::{Fatal, fsutil};
use std::sync::mpsc::{Receiver, Sender, channel};

pub trait PeerDb {
    /// The dirty rows towards `peer`.
    fn dirty_rows(&mut self, peer: &[u8]) -> Result<Vec<DirtyRow>, Fatal>;
    /// The peer has the file: its row goes.
    fn done(&mut self, file: &[u8], peer: &[u8]) -> Result<(), Fatal>;
    /// Marks what this host has below `dir` dirty again (to recreate a
    /// missing parent on the peer), then commits.
    fn mark_subtree(&mut self, cfg: &Config, dir: &[u8], peer: &[u8]) -> Result<(), Fatal>;
    /// Checks (and on first sight records) the peer's certificate.
    fn pin(&mut self, peer: &[u8], der: &[u8]) -> Result<bool, DbError>;
    /// The peer refused the file with this reply (its row stays dirty).
    fn refused(&mut self, _file: &[u8], _peer: &[u8], _reply: &[u8]) {}
}

impl PeerDb for Db {
    fn dirty_rows(&mut self, peer: &[u8]) -> Result<Vec<DirtyRow>, Fatal> {
        Ok(self.dirty_rows_for(peer)?)
    }

    fn done(&mut self, file: &[u8], peer: &[u8]) -> Result<(), Fatal> {
        self.delete_dirty(file, peer)?;
        self.checkpoint()?;
        Ok(())
    }

    fn mark_subtree(&mut self, cfg: &Config, dir: &[u8], peer: &[u8]) -> Result<(), Fatal> {
        let opts = MarkOptions { force_new: false };
        // descending, as the real client marks them
        for name in self.file_names(dir, true)?.into_iter().rev() {
            let Ok(real) = cfg.prefix_decode(&name) else {
                continue;
            };
            let root = fsutil::prefix_root_len(&name, &real);
            if fsutil::lstat(&real).is_ok() && !fsutil::under_symlink(&real, root) {
                // the real client also runs this host's actions here (state.md Q7)
                mark::mark_dirty(cfg, self, &opts, &name, Some(peer), None)?;
            }
        }
        self.commit()?;
        Ok(())
    }

    fn pin(&mut self, peer: &[u8], der: &[u8]) -> Result<bool, DbError> {
        crate::tls::pin(self, peer, der)
    }
}

/// Where the owner sends an answer, with the messages it printed.
type Answer<T> = Sender<(T, Vec<Held>)>;

/// What a peer's thread asks of the database's owner. Answers carry the
/// messages the owner printed meanwhile, so they land in the peer's block.
pub enum Req {
    Rows {
        peer: Vec<u8>,
        reply: Answer<Result<Vec<DirtyRow>, Fatal>>,
    },
    /// no answer: the owner keeps the first error for the end
    Done { file: Vec<u8>, peer: Vec<u8> },
    /// no answer: the peer refused the file (see [`PeerDb::refused`])
    Refused {
        file: Vec<u8>,
        peer: Vec<u8>,
        reply: Vec<u8>,
    },
    MarkSubtree {
        dir: Vec<u8>,
        peer: Vec<u8>,
        reply: Answer<Result<(), Fatal>>,
    },
    Pin {
        peer: Vec<u8>,
        der: Vec<u8>,
        reply: Answer<Result<bool, DbError>>,
    },
    /// the peer's thread ended: its output and result
    Finished {
        index: usize,
        held: Vec<Held>,
        result: Result<Errors, Fatal>,
    },
}

/// A peer thread's handle on the database: its requests go, as `M`, to
/// the thread that owns it (the update's [`serve`], or the `--watch` loop,
/// whose messages carry more than database requests).
pub struct Proxy<M = Req> {
    tx: Sender<M>,
}

fn gone() -> Fatal {
    Fatal::msg("The database owner stopped.")
}

impl<M: From<Req>> Proxy<M> {
    pub fn new(tx: Sender<M>) -> Proxy<M> {
        Proxy { tx }
    }

    fn ask<T>(&self, make: impl FnOnce(Sender<(T, Vec<Held>)>) -> Req) -> Option<T> {
        let (tx, rx) = channel();
        self.tx.send(M::from(make(tx))).ok()?;
        let (value, held) = rx.recv().ok()?;
        log::replay(held);
        Some(value)
    }
}

impl<M: From<Req>> PeerDb for Proxy<M> {
    fn dirty_rows(&mut self, peer: &[u8]) -> Result<Vec<DirtyRow>, Fatal> {
        let peer = peer.to_vec();
        self.ask(|reply| Req::Rows { peer, reply })
            .unwrap_or_else(|| Err(gone()))
    }

    fn done(&mut self, file: &[u8], peer: &[u8]) -> Result<(), Fatal> {
        self.tx
            .send(M::from(Req::Done {
                file: file.to_vec(),
                peer: peer.to_vec(),
            }))
            .map_err(|_| gone())
    }

    fn mark_subtree(&mut self, _cfg: &Config, dir: &[u8], peer: &[u8]) -> Result<(), Fatal> {
        let (dir, peer) = (dir.to_vec(), peer.to_vec());
        self.ask(|reply| Req::MarkSubtree { dir, peer, reply })
            .unwrap_or_else(|| Err(gone()))
    }

    fn refused(&mut self, file: &[u8], peer: &[u8], reply: &[u8]) {
        let _ = self.tx.send(M::from(Req::Refused {
            file: file.to_vec(),
            peer: peer.to_vec(),
            reply: reply.to_vec(),
        }));
    }

    fn pin(&mut self, peer: &[u8], der: &[u8]) -> Result<bool, DbError> {
        let (peer, der) = (peer.to_vec(), der.to_vec());
        self.ask(|reply| Req::Pin { peer, der, reply })
            .unwrap_or_else(|| Err(DbError("The database owner stopped.".to_string())))
    }
}

/// The owner's side: serves the peers' requests until all `n` threads
/// finished, printing each peer's block as soon as the blocks before it
/// are out. Returns the errors of all peers, or the first fatal error (in
/// peer order, after every block was printed).
pub fn serve(
    cfg: &Config,
    db: &mut Db,
    rx: Receiver<Req>,
    peers: &[Vec<u8>],
    dry_run: bool,
) -> Result<Errors, Fatal> {
    let n = peers.len();
    type Ended = (Vec<Held>, Result<Errors, Fatal>);
    let mut results: Vec<Option<Ended>> = (0..n).map(|_| None).collect();
    let mut printed = 0;
    let mut finished = 0;
    let mut db_error: Option<Fatal> = None;
    while finished < n {
        let Ok(req) = rx.recv() else { break };
        match req {
            Req::Finished {
                index,
                held,
                result,
            } => {
                if let (Ok(e), false) = (&result, dry_run) {
                    crate::status::record(db, &[(peers[index].clone(), super::outcome(e))]);
                }
                results[index] = Some((held, result));
                finished += 1;
                while printed < n {
                    let Some((held, _)) = results[printed].as_mut() else {
                        break;
                    };
                    log::replay(std::mem::take(held));
                    printed += 1;
                }
            }
            other => {
                if let Err(f) = apply(cfg, db, other)
                    && db_error.is_none()
                {
                    db_error = Some(f);
                }
            }
        }
    }
    let mut errors = Errors::default();
    let mut fatal = None;
    for r in results.into_iter().flatten() {
        let (held, result) = r;
        log::replay(held);
        match result {
            Ok(e) => errors.add(e),
            Err(f) if fatal.is_none() => fatal = Some(f),
            Err(_) => {}
        }
    }
    match fatal.or(db_error) {
        Some(f) => Err(f),
        None => Ok(errors),
    }
}

/// Carries out a request other than `Finished` (which only [`serve`]
/// expects). Err: a `Done` failed (it has no one to answer to).
pub fn apply(cfg: &Config, db: &mut Db, req: Req) -> Result<(), Fatal> {
    match req {
        Req::Rows { peer, reply } => {
            let mut held = Vec::new();
            let r = log::capture(&mut held, || db.dirty_rows(&peer));
            let _ = reply.send((r, held));
        }
        Req::Done { file, peer } => PeerDb::done(db, &file, &peer)?,
        Req::MarkSubtree { dir, peer, reply } => {
            let mut held = Vec::new();
            let r = log::capture(&mut held, || db.mark_subtree(cfg, &dir, &peer));
            let _ = reply.send((r, held));
        }
        Req::Pin { peer, der, reply } => {
            let mut held = Vec::new();
            let r = log::capture(&mut held, || PeerDb::pin(db, &peer, &der));
            let _ = reply.send((r, held));
        }
        Req::Refused { .. } | Req::Finished { .. } => {}
    }
    Ok(())
}
