//! One server session after CONFIG. Every request takes the same path
//! (protocol.md §2.1): parse → identification → (a pipelined session sends
//! what it answered so far before a large reply) → name, permission,
//! prefix and place → symlinked directories for changes → conflict check →
//! the command family's handler in `cmd/` → the database follows the disk
//! → the final status.

use super::Peer;
use super::cmd::{self, Done};
use crate::beneath::{self, Place};
use crate::check::{CheckOptions, Checker};
use crate::checktxt;
use crate::config::Config;
use crate::db::Db;
use crate::mark::{self, MarkOptions};
use crate::protocol::conn::{CORK_LIMIT, Conn, ConnError, SERVER_LINE_MAX};
use crate::protocol::{self, FileKind, Request, codec};
use crate::{Fatal, fsutil, log, msg};

/// How a session ended.
pub enum End {
    /// BYE, EOF or TYPE: run actions and exit 0
    Normal,
    /// a fatal error (already logged): close without a reply, exit 1
    Fatal,
    /// the peer asked for a catch-up, which was granted: push to it over
    /// this connection, roles reversed (`full`: compare everything first)
    CatchUp { full: bool },
}

pub struct Session<'a> {
    pub cfg: &'a mut Config,
    pub db: &'a mut Db,
    pub conn: &'a mut Conn,
    pub peer: &'a Peer,
    pub tls: bool,
    /// the identified peer (after a successful HELLO)
    pub(super) ident: Option<Vec<u8>>,
    pub(super) groups_set: bool,
    /// the client asked for pipelining (an extension between our own nodes)
    pub(super) pipelined: bool,
    /// file systems changed since the last batch sync (pipelined sessions)
    pub(super) unsynced: cmd::pipeline::Unsynced,
    /// directories already cleared of stale temporary files
    cleaned: std::collections::HashSet<(u64, u64)>,
    /// a catch-up was granted (X-CATCHUP): Some(full)
    pub(super) catch_up: Option<bool>,
    /// entries received and applied (created, replaced or removed)
    pub received: usize,
}

/// A reply: Ok = `OK (cmd_finished).` unless the command already answered.
pub(super) type Reply = Result<(), String>;

/// A request admitted to act on a file.
pub(super) struct Admitted {
    /// the name on disk (`%prefix%` decoded)
    pub real: Vec<u8>,
    /// where it is, beneath its root, or why it cannot be reached
    pub place: std::io::Result<Place>,
}

/// Why a request is not carried out.
enum Refusal {
    /// answer this status line
    Reply(String),
    /// a fatal error (logged): the session ends
    Fatal,
}

/// Whether a request changes the file system (and the database follows).
fn changes(req: &Request) -> bool {
    matches!(
        req,
        Request::Del(_)
            | Request::Patch(_)
            | Request::Make { .. }
            | Request::Setown { .. }
            | Request::Setmod { .. }
            | Request::Setime { .. }
            | Request::XPut { .. }
    )
}

/// The conflict check a request needs: Some(flush).
fn conflict_check(req: &Request) -> Option<bool> {
    match req {
        Request::Flush(_) => Some(true),
        Request::Del(_)
        | Request::Patch(_)
        | Request::Make { .. }
        | Request::Setown { .. }
        | Request::Setmod { .. }
        | Request::XPut { .. } => Some(false),
        _ => None,
    }
}

impl<'a> Session<'a> {
    pub fn new(
        cfg: &'a mut Config,
        db: &'a mut Db,
        conn: &'a mut Conn,
        peer: &'a Peer,
        tls: bool,
    ) -> Session<'a> {
        // replies wait for the commit anyway (`settle`)
        db.batch_from_start();
        Session {
            cfg,
            db,
            conn,
            peer,
            tls,
            ident: None,
            groups_set: false,
            pipelined: false,
            unsynced: Default::default(),
            cleaned: Default::default(),
            catch_up: None,
            received: 0,
        }
    }

    pub(super) fn reply(&mut self, line: &str) -> Result<(), ConnError> {
        self.conn.send_line(line)
    }

    pub fn run(&mut self) -> End {
        // replies wait for the database commit of what they answer: a
        // client that saw OK drops its dirty row, so the change must not
        // be lost here by a crash right after the reply
        self.conn.set_corked(true);
        let end = self.run_loop();
        // the last replies (BYE's) go out if the peer still listens
        if let Err(f) = self.make_durable() {
            log::debug(0, &f.0);
            return End::Fatal;
        }
        let _ = self.conn.uncork_flush();
        if let Some(full) = self.catch_up {
            return End::CatchUp { full };
        }
        end
    }

    fn run_loop(&mut self) -> End {
        loop {
            // never hold the database's write lock while waiting for the
            // client: other sessions (and local runs) would time out
            // (a lock-step client waits for each reply: answer unless a
            // whole request is already here)
            let more = if self.pipelined {
                self.conn.has_buffered()
            } else {
                self.conn.has_buffered_line()
            };
            if (!more || self.conn.pending_out() >= CORK_LIMIT / 2)
                && let Err(e) = self.settle()
            {
                log::debug(0, &e.0);
                return End::Fatal;
            }
            let line = match self.conn.read_request_line(SERVER_LINE_MAX) {
                Ok(Some(l)) => l,
                Ok(None) => return End::Normal,
                Err(ConnError::TooLong) => {
                    log::debug(
                        0,
                        "Received line too long for buffer size (16384), giving up.",
                    );
                    return End::Fatal;
                }
                Err(e) => return self.ended(e),
            };
            let Some(mut toks) = codec::tokenize(&line) else {
                continue;
            };
            // a file name with a NUL in it is refused, not cut short (the
            // real one acts on the part before the NUL)
            if codec::cut_short(&line, 2)
                && let Some(t) = toks.get_mut(2)
            {
                t.push(0);
            }
            match self.command(&toks) {
                Ok(true) => {}
                Ok(false) => return End::Normal,
                Err(ConnError::Format) => {
                    log::debug(0, "Format-error while receiving data.");
                    return End::Fatal;
                }
                Err(e) => return self.ended(e),
            }
        }
    }

    /// The connection failed or went idle: what was done stands (actions
    /// run), and an idle peer is named in the log.
    fn ended(&self, e: ConnError) -> End {
        if let ConnError::Io(e) = &e
            && super::timed_out(e)
        {
            let who = self.peer.addr.map(|a| a.to_string()).unwrap_or_default();
            log::debug(
                0,
                format!(
                    "Peer {who} sent nothing for {} seconds: closing the connection.",
                    super::idle_timeout()
                ),
            );
        }
        End::Normal
    }

    /// Runs one request; Ok(false) ends the session.
    fn command(&mut self, toks: &[Vec<u8>]) -> Result<bool, ConnError> {
        let Some(req) = Request::parse(toks, self.pipelined) else {
            self.reply(protocol::ERR_UNKNOWN)?;
            return Ok(true);
        };
        let admitted = match self.admit(&req) {
            Ok(a) => a,
            Err(refusal) => {
                // the content of X-PUT reg follows whatever the answer
                if matches!(
                    req,
                    Request::XPut {
                        kind: Some(FileKind::Reg),
                        ..
                    }
                ) {
                    cmd::skip_blob(self.conn)?;
                }
                return match refusal {
                    Refusal::Reply(line) => self.reply(&line).map(|_| true),
                    Refusal::Fatal => Ok(false),
                };
            }
        };
        let done = cmd::run(self, &req, admitted.as_ref())?;
        let result = match done {
            Done::Replied => return Ok(true),
            Done::End => return Ok(false),
            Done::Early(e) => return self.reply(&e).map(|_| true),
            Done::Reply(r) => r,
        };
        if changes(&req)
            && let (Some(at), Some(a)) = (req.target(), &admitted)
        {
            // lock-step changes in a pipelined session are synced with the
            // batch their reply belongs to
            if self.pipelined
                && let Ok(p) = &a.place
            {
                self.unsynced.touch(p);
            }
            let full = matches!(
                req,
                Request::Del(_) | Request::Patch(_) | Request::Make { .. }
            ) && result.is_ok();
            if let Err(f) = self.update_db(at.file, a.place.as_ref().ok(), full) {
                log::debug(0, &f.0);
                return Ok(false);
            }
        }
        self.finish(result)?;
        Ok(true)
    }

    /// The admission path every request takes. Ok(None): admitted, and it
    /// names no file.
    fn admit(&mut self, req: &Request) -> Result<Option<Admitted>, Refusal> {
        let open = matches!(
            req,
            Request::Hello(_) | Request::Group(_) | Request::Bye | Request::Pipeline(_)
        );
        if !open && self.ident.is_none() {
            return Err(Refusal::Reply(self.identify_first()));
        }
        // a reply that may be large goes out on its own, after the batch
        if self.pipelined
            && matches!(
                req,
                Request::Sig(_) | Request::Type(_) | Request::List { .. } | Request::Patch(_)
            )
            && let Err(f) = self.settle()
        {
            log::debug(0, &f.0);
            return Err(Refusal::Fatal);
        }
        let Some(at) = req.target() else {
            return Ok(None);
        };
        if !self.name_ok(at.file) {
            return Err(Refusal::Reply(protocol::ERR_PERMISSION.to_string()));
        }
        let compare = matches!(req, Request::Type(_));
        if let Err(e) = self.permission(at.key, at.file, compare) {
            return Err(Refusal::Reply(e.to_string()));
        }
        let real = self.cfg.prefix_decode(at.file).map_err(Refusal::Reply)?;
        let place = self.place(at.file, &real);
        if changes(req) && self.refused(at.file, &place) {
            return Err(Refusal::Reply(protocol::ERR_SYMLINKED_DIR.to_string()));
        }
        if let Some(flush) = conflict_check(req) {
            match self.conflict(at.file, flush) {
                Ok(true) => {}
                Ok(false) => return Err(Refusal::Reply(protocol::ERR_CONFLICT.to_string())),
                Err(f) => {
                    log::debug(0, &f.0);
                    return Err(Refusal::Fatal);
                }
            }
        }
        Ok(Some(Admitted { real, place }))
    }

    /// Makes the batch answered so far durable (file systems a pipelined
    /// session changed, then the database), then sends its replies.
    pub(super) fn settle(&mut self) -> Result<(), Fatal> {
        self.make_durable()?;
        self.conn
            .uncork_flush()
            .map_err(|_| Fatal::msg("Connection closed."))
    }

    /// Syncs the file systems a pipelined session changed, then commits.
    pub(super) fn make_durable(&mut self) -> Result<(), Fatal> {
        self.unsynced.sync().map_err(|e| {
            Fatal::msg(format!(
                "Cannot make the received files durable (syncfs): {}",
                log::strerror(&e)
            ))
        })?;
        self.db.commit()?;
        Ok(())
    }

    /// Before the first write into a directory in this session: remove
    /// what a killed server left there.
    pub(super) fn clean_once(&mut self, p: &Place) {
        if let Ok(id) = p.dir_id()
            && self.cleaned.insert(id)
        {
            p.remove_stale_temps();
        }
    }

    /// Where a peer's name is on disk, beneath its root (the prefix's
    /// directory, else `/`) without symlinked directories.
    pub(super) fn place(&self, file: &[u8], real: &[u8]) -> std::io::Result<Place> {
        Place::resolve(real, fsutil::prefix_root_len(file, real))
    }

    /// A name a peer may use at all (no `..`, NUL, empty components…).
    fn name_ok(&self, file: &[u8]) -> bool {
        if beneath::valid_name(file) {
            return true;
        }
        log::debug(
            1,
            msg!(
                "Refusing the file name '",
                file,
                "' from ",
                self.peer_name(),
                "."
            ),
        );
        false
    }

    /// A change whose path goes through a symlinked directory (logged).
    fn refused(&self, file: &[u8], place: &std::io::Result<Place>) -> bool {
        match place {
            Err(e) if beneath::is_symlink_error(e) => {
                log::debug(
                    1,
                    msg!(
                        "Refusing to change '",
                        file,
                        "' for ",
                        self.peer_name(),
                        ": a directory on its path is a symlink."
                    ),
                );
                true
            }
            _ => false,
        }
    }

    fn identify_first(&self) -> String {
        let who = match self.peer.addr {
            Some(a) => a.to_string(),
            None => "stranger".to_string(),
        };
        format!("Dear {who}, please identify first.")
    }

    pub(super) fn finish(&mut self, r: Reply) -> Result<(), ConnError> {
        match r {
            Ok(()) => self.reply(protocol::OK_FINISHED),
            Err(e) => self.reply(&e),
        }
    }

    pub(super) fn peer_name(&self) -> &[u8] {
        self.ident.as_deref().unwrap_or_default()
    }

    /// The peer may send this file with this key: a group of this host
    /// selects it, lists the peer and has the key. A slave peer's change
    /// is refused and the file marked dirty towards it.
    pub(super) fn permission(
        &mut self,
        key: &[u8],
        file: &[u8],
        compare: bool,
    ) -> Result<(), &'static str> {
        let peer = self.peer_name().to_vec();
        let mut slave = false;
        for g in self.cfg.matching_groups(compare) {
            if g.key != key || !g.selects(file, compare) {
                continue;
            }
            let Some(h) = g.hosts.iter().find(|h| h.name == peer) else {
                continue;
            };
            if !h.slave {
                return Ok(());
            }
            slave = true;
        }
        if slave {
            // the change stays here and goes back to the slave later
            let opts = MarkOptions { force_new: false };
            let _ = mark::mark_dirty(self.cfg, self.db, &opts, file, Some(&peer), None);
            return Err(protocol::ERR_SLAVE);
        }
        Err(protocol::ERR_PERMISSION)
    }

    /// Re-checks the file here; Ok(false) when it is dirty here (conflict).
    fn conflict(&mut self, file: &[u8], flush: bool) -> Result<bool, Fatal> {
        let copts = CheckOptions {
            init: false,
            compare: false,
            mark: MarkOptions { force_new: false },
            dump_dir_fd: None,
        };
        Checker::new(self.cfg, self.db, &copts).check_logical(file, false)?;
        let peer = self.peer_name().to_vec();
        if flush {
            // this host lost an auto-resolved conflict: the version it had
            // may already be on a third host, which the winner's push can
            // reach before it. Marked for every peer (the requester's row
            // goes with the change), the winning version follows it there.
            // (Ours: the real server marks nothing here; with two hosts
            // there is no third one and nothing is marked.)
            let third = self
                .cfg
                .peers_of(file, Some(&peer))
                .iter()
                .any(|(p, me)| *p != peer && p != me);
            if third {
                let opts = MarkOptions { force_new: false };
                mark::mark_dirty(self.cfg, self.db, &opts, file, Some(&peer), None)?;
            }
            return Ok(true);
        }
        if !self.db.is_dirty(file)? {
            return Ok(true);
        }
        let opts = MarkOptions { force_new: false };
        mark::mark_dirty(self.cfg, self.db, &opts, file, Some(&peer), None)?;
        Ok(false)
    }

    /// After a change: the requester's dirty row goes, the file row follows
    /// the disk; a full update also schedules this host's actions (the real
    /// one also does that when the change failed, as if it had happened).
    pub(super) fn update_db(
        &mut self,
        file: &[u8],
        place: Option<&Place>,
        full: bool,
    ) -> Result<(), Fatal> {
        let peer = self.peer_name().to_vec();
        self.db.delete_dirty(file, &peer)?;
        match place.and_then(|p| p.lstat().ok().map(|st| (p, st))) {
            Some((p, st)) => {
                let target = if st.is_symlink() { p.readlink() } else { None };
                let text = checktxt::for_stat(&st, target.as_deref(), &self.cfg.ignore);
                self.db.set_file(file, &text)?
            }
            None => self.db.delete_file(file)?,
        }
        if full {
            crate::action::schedule(self.cfg, self.db, file, false)?;
            log::debug(1, msg!("Updated ", file, " from ", peer, "."));
            self.received += 1;
        }
        self.db.checkpoint()?;
        Ok(())
    }
}
