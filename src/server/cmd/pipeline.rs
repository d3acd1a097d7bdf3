//! Pipelining between our own nodes (doc/protocol-extension.md): after
//! `X-CSYNC2RS-PIPELINE 1` the client sends requests ahead, and may use
//! X-STAT and X-PUT. The real client never sends these, and the real
//! server answers `Unknown command!`, so the client stays in lock-step
//! with it. Replies of a pipelined session are held back and sent once the
//! batch they answer is durable (file systems synced, database committed).

use super::Done;
use crate::beneath::Place;
use crate::protocol::{self, conn::ConnError};
use crate::server::session::Session;
use std::os::unix::io::AsRawFd;

/// `X-CSYNC2RS-PIPELINE VERSION`: only version 1 exists.
pub(in crate::server) fn agree(s: &mut Session, version: &[u8]) -> Result<Done, ConnError> {
    if version != b"1" {
        s.reply(protocol::ERR_UNKNOWN)?;
        return Ok(Done::Replied);
    }
    s.pipelined = true;
    s.reply(protocol::OK_PIPELINING)?;
    Ok(Done::Replied)
}

/// One open directory per file system changed since the last sync.
#[derive(Default)]
pub(in crate::server) struct Unsynced {
    dirs: Vec<(u64, std::fs::File)>,
}

impl Unsynced {
    /// Remembers the file system holding the entry's directory.
    pub fn touch(&mut self, place: &Place) {
        let Ok((dev, _)) = place.dir_id() else { return };
        if self.dirs.iter().any(|(d, _)| *d == dev) {
            return;
        }
        if let Ok(f) = place.open_dir() {
            self.dirs.push((dev, f));
        }
    }

    /// syncfs on each remembered file system; an error means the batch is
    /// not durable and must not be acknowledged.
    pub fn sync(&mut self) -> std::io::Result<()> {
        for (_, f) in self.dirs.drain(..) {
            if unsafe { libc::syncfs(f.as_raw_fd()) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }
}
