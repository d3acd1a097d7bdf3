//! `-R`: remove database rows that the config no longer covers (state.md §8).

use crate::config::Config;
use crate::db::Db;
use crate::urlenc::decode;
use crate::{Fatal, log, msg};

pub fn remove_stale(cfg: &Config, db: &mut Db) -> Result<(), Fatal> {
    for (name_enc, my_enc, peer_enc) in db.dirty_rows_raw()? {
        let name = decode(&name_enc);
        let peer = decode(&peer_enc);
        // the real one compares the stored, still encoded myname
        let keep = cfg.matching_groups(false).any(|g| {
            g.myname.as_deref() == Some(my_enc.as_slice())
                && g.has_peer(&peer)
                && g.selects(&name, false)
        });
        if !keep {
            log::debug(
                1,
                msg!("Removing ", name_enc, " (", peer, ") from dirty db."),
            );
            db.delete_dirty_raw(&name_enc, &peer_enc)?;
            db.checkpoint()?;
        }
    }
    for name_enc in db.file_names_raw()? {
        if !cfg.selects(&decode(&name_enc), false) {
            log::debug(1, msg!("Removing ", name_enc, " from file db."));
            db.delete_file_raw(&name_enc)?;
            db.checkpoint()?;
        }
    }
    Ok(())
}
