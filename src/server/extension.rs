//! Pipelining between our own nodes (doc/protocol-extension.md): after
//! `X-CSYNC2RS-PIPELINE 1` the client sends requests ahead, and two
//! commands replace round-trip-heavy sequences:
//!
//! * `X-STAT KEY FILE CHECKTXT`: the file's check text here and, when it
//!   equals the client's and the file is regular, the SHA-256 of its
//!   content (what SIG's signature comparison decides, in bounded size);
//! * `X-PUT KEY FILE KIND ARG UID GID MODE MTIME`: the create step of PATCH
//!   (KIND `reg`, whole content as a blob) or MK*, then SETOWN, SETMOD and
//!   SETIME, stopping at the first error, with one reply.
//!
//! The real client never sends these, and the real server answers
//! `Unknown command!`, so the client stays in lock-step with it. Replies of
//! a pipelined session are held back and sent once the batch they answer is
//! durable (file systems synced, database committed).

use super::session::{Cmd, Made, Reply, Session, num, pre_remove, set_time, write_replacing};
use crate::beneath::Place;
use crate::protocol;
use crate::protocol::conn::ConnError;
use crate::{checktxt, log};
use std::io::Read;
use std::os::unix::io::AsRawFd;

pub const PIPELINE: &[u8] = b"X-CSYNC2RS-PIPELINE";
pub const OK_PIPELINING: &str = "OK (pipelining).";

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum XCmd {
    Pipeline,
    Stat,
    Put,
}

pub fn lookup(word: &[u8]) -> Option<XCmd> {
    let w = word.to_ascii_uppercase();
    match w.as_slice() {
        PIPELINE => Some(XCmd::Pipeline),
        b"X-STAT" => Some(XCmd::Stat),
        b"X-PUT" => Some(XCmd::Put),
        _ => None,
    }
}

/// One open directory per file system changed since the last sync.
#[derive(Default)]
pub struct Unsynced {
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

/// The SHA-256 of a file's content, lower-case hex.
pub fn content_digest(r: &mut impl Read) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

impl Session<'_> {
    /// Makes the batch answered so far durable (file systems a pipelined
    /// session changed, then the database), then sends its replies.
    pub(super) fn settle(&mut self) -> Result<(), crate::Fatal> {
        self.make_durable()?;
        self.conn
            .uncork_flush()
            .map_err(|_| crate::Fatal::msg("Connection closed."))
    }

    /// Syncs the file systems a pipelined session changed, then commits.
    pub(super) fn make_durable(&mut self) -> Result<(), crate::Fatal> {
        self.unsynced.sync().map_err(|e| {
            crate::Fatal::msg(format!(
                "Cannot make the received files durable (syncfs): {}",
                log::strerror(&e)
            ))
        })?;
        self.db.commit()?;
        Ok(())
    }

    /// An extension command; Ok(false) ends the session.
    pub(super) fn extension(&mut self, x: XCmd, toks: &[Vec<u8>]) -> Result<bool, ConnError> {
        let tok = |i: usize| toks.get(i).map(Vec::as_slice).unwrap_or(b"");
        if x == XCmd::Pipeline {
            if tok(1) != b"1" {
                self.reply(protocol::ERR_UNKNOWN)?;
                return Ok(true);
            }
            self.pipelined = true;
            self.reply(OK_PIPELINING)?;
            return Ok(true);
        }
        // the blob of X-PUT reg follows whatever the answer
        let has_blob = x == XCmd::Put && tok(3) == b"reg";
        let refuse = |s: &mut Self, line: &str| -> Result<bool, ConnError> {
            if has_blob {
                skip_blob(s)?;
            }
            s.reply(line)?;
            Ok(true)
        };
        if self.ident.is_none() {
            let t = self.identify_first();
            return refuse(self, &t);
        }
        let key = tok(1).to_vec();
        let file = tok(2).to_vec();
        if !self.name_ok(&file) {
            return refuse(self, protocol::ERR_PERMISSION);
        }
        if let Err(e) = self.permission(&key, &file, false) {
            return refuse(self, e);
        }
        let real = match self.cfg.prefix_decode(&file) {
            Ok(r) => r,
            Err(m) => return refuse(self, &m),
        };
        let place = self.place(&file, &real);
        if x == XCmd::Stat {
            return self.x_stat(&place, tok(3)).map(|_| true);
        }
        if self.refused(&file, &place) {
            return refuse(self, protocol::ERR_SYMLINKED_DIR);
        }
        match self.conflict(&file, false) {
            Ok(true) => {}
            Ok(false) => return refuse(self, protocol::ERR_CONFLICT),
            Err(f) => {
                if has_blob {
                    skip_blob(self)?;
                }
                log::debug(0, &f.0);
                return Ok(false);
            }
        }
        self.x_put(&file, &real, &place, toks)
    }

    fn x_stat(&mut self, place: &std::io::Result<Place>, theirs: &[u8]) -> Result<(), ConnError> {
        let (st, p) = match Self::look(place) {
            Ok(v) => v,
            Err(line) => return self.reply(&line),
        };
        let target = if st.is_symlink() { p.readlink() } else { None };
        let text = checktxt::checktxt(&st, target.as_deref(), &self.cfg.ignore, None);
        let digest = if st.is_file() && text == theirs {
            match p.open_read().and_then(|mut f| content_digest(&mut f)) {
                Ok(d) => d,
                Err(e) => return self.reply(&log::strerror(&e)),
            }
        } else {
            "-".to_string()
        };
        self.reply(protocol::OK_DATA_FOLLOWS)?;
        self.conn
            .write_all(&crate::msg!(crate::urlenc::encode(&text), "\n"))?;
        self.reply(&digest)
    }

    fn x_put(
        &mut self,
        file: &[u8],
        real: &[u8],
        place: &std::io::Result<Place>,
        toks: &[Vec<u8>],
    ) -> Result<bool, ConnError> {
        let tok = |i: usize| toks.get(i).map(Vec::as_slice).unwrap_or(b"");
        let kind = tok(3);
        let (uid, gid, mode, mtime) = (tok(5), tok(6), tok(7), num(tok(8)));
        let symlink = kind == b"link";
        let result: Reply;
        let created: bool;
        if kind == b"reg" {
            let p = match place {
                Ok(p) => p,
                Err(e) => {
                    skip_blob(self)?;
                    return self.put_done(file, None, Err(crate::log::strerror(e)), false);
                }
            };
            if let Err(e) = crate::backup::before_change(self.cfg, file, real, p) {
                skip_blob(self)?;
                // as PATCH: the database follows the disk, no actions
                return self.put_done(file, Some(p), Err(e), false);
            }
            pre_remove(p, false);
            let (r, ok) = self.put_content(p, uid, gid, mode, mtime)?;
            result = r;
            created = ok;
        } else {
            let cmd = match kind {
                b"dir" => Cmd::Mkdir,
                b"chr" => Cmd::Mkchr,
                b"blk" => Cmd::Mkblk,
                b"fifo" => Cmd::Mkfifo,
                b"link" => Cmd::Mklink,
                b"sock" => Cmd::Mksock,
                _ => {
                    self.reply(protocol::ERR_UNKNOWN)?;
                    return Ok(true);
                }
            };
            match self.make_node(cmd, file, real, place, tok(4)) {
                Made::Early(e) => {
                    self.reply(&e)?;
                    return Ok(true);
                }
                Made::Done(Err(e)) => {
                    return self.put_done(file, place.as_ref().ok(), Err(e), false);
                }
                Made::Done(Ok(())) => {}
            }
            let p = place.as_ref().expect("made");
            created = true;
            result = self.set_own(p, uid, gid).and_then(|_| {
                if symlink {
                    return Ok(());
                }
                self.set_mod(p, mode)?;
                set_time(p, mtime)
            });
        }
        if let Ok(p) = place {
            self.unsynced.touch(p);
        }
        self.put_done(file, place.as_ref().ok(), result, created)
    }

    /// Receives the content blob into a temporary file with the new owner,
    /// mode and mtime, and renames it into place. (reply, created)
    fn put_content(
        &mut self,
        place: &Place,
        uid: &[u8],
        gid: &[u8],
        mode: &[u8],
        mtime: i64,
    ) -> Result<(Reply, bool), ConnError> {
        let Some(n) = self.conn.read_blob_header()? else {
            return Ok((Err("Input/output error".to_string()), false));
        };
        let (u, g) = self.owner(uid, gid);
        let skip_own = self.cfg.ignore.uid && self.cfg.ignore.gid;
        let skip_mod = self.cfg.ignore.mode;
        let mode = (num(mode) as u32 & 0o7777) as libc::mode_t;
        self.clean_once(place);
        let tempdir = self.cfg.tempdir.clone();
        let mut reader = self.conn.blob_reader(n);
        let result = write_replacing(
            place,
            tempdir.as_deref(),
            false,
            &mut |w| {
                let copied = std::io::copy(&mut reader, w).map_err(|e| log::strerror(&e))?;
                if copied != n {
                    return Err("Input/output error".to_string());
                }
                Ok(())
            },
            &mut |fd| {
                // SETOWN, SETMOD, SETIME in that order, on the new file
                if !skip_own && unsafe { libc::fchown(fd, u, g) } != 0 {
                    return Err(super::session::errno_text());
                }
                if !skip_mod && unsafe { libc::fchmod(fd, mode) } != 0 {
                    return Err(super::session::errno_text());
                }
                let ts = libc::timespec {
                    tv_sec: mtime as libc::time_t,
                    tv_nsec: 0,
                };
                if unsafe { libc::futimens(fd, [ts, ts].as_ptr()) } != 0 {
                    return Err(super::session::errno_text());
                }
                Ok(())
            },
        );
        // keep in step with the client whatever happened to the data
        std::io::copy(&mut reader, &mut std::io::sink())?;
        if reader.limit() > 0 {
            return Err(ConnError::Closed);
        }
        Ok(match result {
            Ok(meta) => (meta, true),
            Err(e) => (Err(e), false),
        })
    }

    fn put_done(
        &mut self,
        file: &[u8],
        place: Option<&Place>,
        result: Reply,
        created: bool,
    ) -> Result<bool, ConnError> {
        if let Err(f) = self.update_db(file, place, created) {
            log::debug(0, &f.0);
            return Ok(false);
        }
        self.finish(result)?;
        Ok(true)
    }
}

/// Reads and drops a blob the client sent ahead.
fn skip_blob(s: &mut Session) -> Result<(), ConnError> {
    if let Some(n) = s.conn.read_blob_header()? {
        let mut r = s.conn.blob_reader(n);
        std::io::copy(&mut r, &mut std::io::sink())?;
        if r.limit() > 0 {
            return Err(ConnError::Closed);
        }
    }
    Ok(())
}
