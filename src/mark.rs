//! Marking files dirty (state.md §3.6) and the `-m` / `-f` modes (state.md §3.8).

use crate::action;
use crate::config::Config;
use crate::db::Db;
use crate::{Fatal, log, msg};

#[derive(Clone)]
pub struct MarkOptions {
    /// `-F`: new rows get the force flag
    pub force_new: bool,
}

/// Marks `name` dirty for its peers. `via`: the change came from that peer
/// (remote-type actions, only groups listing it); `only`: mark only towards
/// that peer.
pub fn mark(
    cfg: &Config,
    db: &mut Db,
    opts: &MarkOptions,
    name: &[u8],
    via: Option<&[u8]>,
    only: Option<&[u8]>,
) -> Result<(), Fatal> {
    action::schedule(cfg, db, name, via.is_none())?;
    mark_dirty(cfg, db, opts, name, via, only)
}

/// Marks without scheduling actions: for a server refusing an update
/// (the real one runs actions then, although nothing changed: state.md Q8).
pub fn mark_dirty(
    cfg: &Config,
    db: &mut Db,
    opts: &MarkOptions,
    name: &[u8],
    via: Option<&[u8]>,
    only: Option<&[u8]>,
) -> Result<(), Fatal> {
    let peers = cfg.peers_of(name, via);
    if peers.is_empty() {
        log::debug(
            2,
            msg!(
                "Not in one of my groups: ",
                name,
                " (",
                via.unwrap_or(b"NULL"),
                ")"
            ),
        );
        return Ok(());
    }
    log::debug(1, msg!("Marking file as dirty: ", name));
    for (peer, myname) in &peers {
        if let Some(o) = only
            && o != peer.as_slice()
        {
            continue;
        }
        db.mark_dirty(name, opts.force_new, myname, peer)?;
    }
    Ok(())
}

/// `-m [-r] NAME`: mark the name and, recursively, every known file below it.
pub fn mark_mode(
    cfg: &Config,
    db: &mut Db,
    opts: &MarkOptions,
    name: &[u8],
    recursive: bool,
) -> Result<(), Fatal> {
    mark(cfg, db, opts, name, None, None)?;
    db.checkpoint()?;
    if recursive {
        for f in db.file_names(name, true)? {
            mark(cfg, db, opts, &f, None, None)?;
            db.checkpoint()?;
        }
    }
    Ok(())
}
