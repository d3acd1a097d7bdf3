//! One server session after CONFIG: each line goes through the real
//! program's pipeline (protocol.md §2.1): unknown command → identification
//! → permission → conflict check → pre-removal → action → database update
//! → final status.

use super::Peer;
use super::extension::XCmd;
use crate::beneath::{self, Place};
use crate::check::{CheckOptions, Checker};
use crate::checktxt;
use crate::config::Config;
use crate::db::Db;
use crate::fnmatch::{Flags, fnmatch};
use crate::fsutil;
use crate::mark::{self, MarkOptions};
use crate::protocol::conn::{CORK_LIMIT, Conn, ConnError, SERVER_LINE_MAX};
use crate::protocol::{self, codec, delta};
use crate::{Fatal, log, msg};
use std::io::Write;

/// How a session ended.
pub enum End {
    /// BYE, EOF or TYPE: run actions and exit 0
    Normal,
    /// a fatal error (already logged): close without a reply, exit 1
    Fatal,
}

pub struct Session<'a> {
    pub cfg: &'a mut Config,
    pub db: &'a mut Db,
    pub conn: &'a mut Conn,
    pub peer: &'a Peer,
    pub tls: bool,
    /// the identified peer (after a successful HELLO)
    pub(super) ident: Option<Vec<u8>>,
    groups_set: bool,
    /// the client asked for pipelining (an extension between our own nodes)
    pub(super) pipelined: bool,
    /// file systems changed since the last batch sync (pipelined sessions)
    pub(super) unsynced: super::extension::Unsynced,
    /// directories already cleared of stale temporary files
    cleaned: std::collections::HashSet<(u64, u64)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Cmd {
    Hello,
    Group,
    Bye,
    Sig,
    Mark,
    Type,
    Gettm,
    Getsz,
    Flush,
    Del,
    Patch,
    Mkdir,
    Mkchr,
    Mkblk,
    Mkfifo,
    Mklink,
    Mksock,
    Setown,
    Setmod,
    Setime,
    List,
}

fn lookup(word: &[u8]) -> Option<Cmd> {
    let w = word.to_ascii_uppercase();
    Some(match w.as_slice() {
        b"HELLO" => Cmd::Hello,
        b"GROUP" => Cmd::Group,
        b"BYE" => Cmd::Bye,
        b"SIG" => Cmd::Sig,
        b"MARK" => Cmd::Mark,
        b"TYPE" => Cmd::Type,
        b"GETTM" => Cmd::Gettm,
        b"GETSZ" => Cmd::Getsz,
        b"FLUSH" => Cmd::Flush,
        b"DEL" => Cmd::Del,
        b"PATCH" => Cmd::Patch,
        b"MKDIR" => Cmd::Mkdir,
        b"MKCHR" => Cmd::Mkchr,
        b"MKBLK" => Cmd::Mkblk,
        b"MKFIFO" => Cmd::Mkfifo,
        b"MKLINK" => Cmd::Mklink,
        b"MKSOCK" => Cmd::Mksock,
        b"SETOWN" => Cmd::Setown,
        b"SETMOD" => Cmd::Setmod,
        b"SETIME" => Cmd::Setime,
        b"LIST" => Cmd::List,
        _ => return None,
    })
}

impl Cmd {
    /// needs the key/group permission check
    fn permission(self) -> bool {
        !matches!(self, Cmd::Hello | Cmd::Group | Cmd::Bye | Cmd::List)
    }
    /// conflict check (local re-check + dirty rows)
    fn conflict(self) -> bool {
        matches!(
            self,
            Cmd::Flush
                | Cmd::Del
                | Cmd::Patch
                | Cmd::Mkdir
                | Cmd::Mkchr
                | Cmd::Mkblk
                | Cmd::Mkfifo
                | Cmd::Mklink
                | Cmd::Mksock
                | Cmd::Setown
                | Cmd::Setmod
        )
    }
    fn creates(self) -> bool {
        matches!(
            self,
            Cmd::Mkdir | Cmd::Mkchr | Cmd::Mkblk | Cmd::Mkfifo | Cmd::Mklink | Cmd::Mksock
        )
    }
    /// full database update and actions afterwards
    fn updates(self) -> bool {
        self.creates() || matches!(self, Cmd::Del | Cmd::Patch)
    }
    /// metadata-only database update afterwards
    fn updates_meta(self) -> bool {
        matches!(self, Cmd::Setown | Cmd::Setmod | Cmd::Setime)
    }
    /// changes the file system
    fn changes(self) -> bool {
        self.updates() || self.updates_meta()
    }
}

/// Numeric arguments: C `atoll`, garbage is 0 (protocol.md §2.2).
pub(super) fn num(tok: &[u8]) -> i64 {
    crate::config::parser::atoll(tok)
}

pub(super) fn errno_text() -> String {
    log::strerror(&std::io::Error::last_os_error())
}

/// A reply: Ok = `OK (cmd_finished).` unless the command already answered.
pub(super) type Reply = Result<(), String>;

/// How MK*'s create step went.
pub(super) enum Made {
    /// continue with the database update and this reply
    Done(Reply),
    /// answer this error at once
    Early(String),
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

    /// Runs one command; Ok(false) ends the session.
    fn command(&mut self, toks: &[Vec<u8>]) -> Result<bool, ConnError> {
        let tok = |i: usize| toks.get(i).map(Vec::as_slice).unwrap_or(b"");
        let Some(cmd) = lookup(tok(0)) else {
            if let Some(x) = super::extension::lookup(tok(0))
                && (x == XCmd::Pipeline || self.pipelined)
            {
                return self.extension(x, toks);
            }
            self.reply(protocol::ERR_UNKNOWN)?;
            return Ok(true);
        };
        if !matches!(cmd, Cmd::Hello | Cmd::Group | Cmd::Bye) && self.ident.is_none() {
            let t = self.identify_first();
            self.reply(&t)?;
            return Ok(true);
        }
        // a reply that may be large goes out on its own, after the batch
        if self.pipelined
            && matches!(cmd, Cmd::Sig | Cmd::Type | Cmd::List | Cmd::Patch)
            && let Err(f) = self.settle()
        {
            log::debug(0, &f.0);
            return Ok(false);
        }
        match cmd {
            Cmd::Hello => {
                let r = self.hello(tok(1));
                self.finish(r)?;
                return Ok(true);
            }
            Cmd::Group => {
                let r = self.group(tok(1));
                self.finish(r)?;
                return Ok(true);
            }
            Cmd::Bye => {
                self.reply(protocol::OK_CU_LATER)?;
                return Ok(false);
            }
            Cmd::List => {
                self.list(toks)?;
                return Ok(true);
            }
            _ => {}
        }
        let key = tok(1).to_vec();
        let file = tok(2).to_vec();
        if cmd.permission() && !self.name_ok(&file) {
            self.reply(protocol::ERR_PERMISSION)?;
            return Ok(true);
        }
        if cmd.permission()
            && let Err(e) = self.permission(&key, &file, cmd == Cmd::Type)
        {
            self.reply(e)?;
            return Ok(true);
        }
        let real = match self.cfg.prefix_decode(&file) {
            Ok(r) => r,
            Err(m) => {
                self.reply(&m)?;
                return Ok(true);
            }
        };
        let place = self.place(&file, &real);
        if cmd.changes() && self.refused(&file, &place) {
            self.reply(protocol::ERR_SYMLINKED_DIR)?;
            return Ok(true);
        }
        if cmd.conflict() {
            match self.conflict(&file, cmd == Cmd::Flush) {
                Ok(true) => {}
                Ok(false) => {
                    self.reply(protocol::ERR_CONFLICT)?;
                    return Ok(true);
                }
                Err(f) => {
                    log::debug(0, &f.0);
                    return Ok(false);
                }
            }
        }
        let result = match cmd {
            Cmd::Sig => return self.sig(&place).map(|_| true),
            Cmd::Type => {
                let place = self.type_target(&key, &file, place);
                return self.type_cmd(&place).map(|done| !done);
            }
            Cmd::Gettm | Cmd::Getsz => {
                let v = match place.as_ref().map(|p| p.lstat()) {
                    Ok(Ok(st)) if cmd == Cmd::Gettm => st.mtime,
                    Ok(Ok(st)) => st.size,
                    _ => -1,
                };
                self.reply(protocol::OK_DATA_FOLLOWS)?;
                self.reply(&v.to_string())?;
                return Ok(true);
            }
            Cmd::Mark => self.mark_cmd(&file),
            Cmd::Flush => self.db.delete_dirty_all(&file).map_err(|e| e.0),
            // a path that cannot be there is already deleted
            Cmd::Del => match &place {
                Ok(p) => crate::backup::before_change(self.cfg, &file, &real, p)
                    .and_then(|_| remove_entry(p)),
                Err(_) => Ok(()),
            },
            Cmd::Patch => {
                let backup = match &place {
                    Ok(p) => crate::backup::before_change(self.cfg, &file, &real, p),
                    Err(_) => Ok(()),
                };
                match backup {
                    Ok(()) => {
                        if let Ok(p) = &place {
                            pre_remove(p, false);
                        }
                        self.patch(&place)?
                    }
                    Err(e) => Err(e),
                }
            }
            Cmd::Mkdir | Cmd::Mkchr | Cmd::Mkblk | Cmd::Mkfifo | Cmd::Mksock | Cmd::Mklink => {
                match self.make_node(cmd, &file, &real, &place, tok(3)) {
                    Made::Done(r) => r,
                    Made::Early(e) => {
                        self.reply(&e)?;
                        return Ok(true);
                    }
                }
            }
            Cmd::Setown => on(&place, |p| self.set_own(p, tok(3), tok(4))),
            Cmd::Setmod => on(&place, |p| self.set_mod(p, tok(3))),
            Cmd::Setime => on(&place, |p| set_time(p, num(tok(3)))),
            Cmd::Hello | Cmd::Group | Cmd::Bye | Cmd::List => unreachable!(),
        };
        // lock-step changes in a pipelined session are synced with the
        // batch their reply belongs to
        if self.pipelined
            && cmd.changes()
            && let Ok(p) = &place
        {
            self.unsynced.touch(p);
        }
        if cmd.changes()
            && let Err(f) =
                self.update_db(&file, place.as_ref().ok(), cmd.updates() && result.is_ok())
        {
            log::debug(0, &f.0);
            return Ok(false);
        }
        self.finish(result)?;
        Ok(true)
    }

    /// The create step of MK*; Early: answered without a database update
    /// (a failed backup, as in the real server).
    pub(super) fn make_node(
        &mut self,
        cmd: Cmd,
        file: &[u8],
        real: &[u8],
        place: &std::io::Result<Place>,
        arg: &[u8],
    ) -> Made {
        let p = match place {
            Ok(p) => p,
            Err(e) => return Made::Done(Err(log::strerror(e))),
        };
        let is_dir = || p.lstat().map(|s| s.is_dir()).unwrap_or(false);
        if cmd == Cmd::Mkdir {
            // an existing directory is kept (the real one rmdirs an empty
            // one and makes it again with mode 0700: Q17)
            if !is_dir() {
                if let Err(e) = crate::backup::before_change(self.cfg, file, real, p) {
                    return Made::Early(e);
                }
                pre_remove(p, true);
            }
            if let Err(e) = p.mkdir(0o700)
                && !is_dir()
            {
                return Made::Done(Err(log::strerror(&e)));
            }
            return Made::Done(Ok(()));
        }
        if let Err(e) = crate::backup::before_change(self.cfg, file, real, p) {
            return Made::Early(e);
        }
        pre_remove(p, true);
        if cmd == Cmd::Mklink {
            return Made::Done(p.symlink(arg).map_err(|e| log::strerror(&e)));
        }
        let kind = match cmd {
            Cmd::Mkchr => libc::S_IFCHR,
            Cmd::Mkblk => libc::S_IFBLK,
            Cmd::Mkfifo => libc::S_IFIFO,
            // the real server makes nothing here, so the client's SETOWN
            // fails forever (Q11); a socket node fixes that
            _ => libc::S_IFSOCK,
        };
        let dev = if matches!(cmd, Cmd::Mkchr | Cmd::Mkblk) {
            num(arg) as u32 as libc::dev_t
        } else {
            0
        };
        Made::Done(p.mknod(kind | 0o700, dev).map_err(|e| log::strerror(&e)))
    }

    /// The owner SETOWN would set: -1 (unchanged) where ignored.
    pub(super) fn owner(&self, uid: &[u8], gid: &[u8]) -> (u32, u32) {
        let uid = if self.cfg.ignore.uid {
            u32::MAX
        } else {
            num(uid) as u32
        };
        let gid = if self.cfg.ignore.gid {
            u32::MAX
        } else {
            num(gid) as u32
        };
        (uid, gid)
    }

    pub(super) fn set_own(&self, p: &Place, uid: &[u8], gid: &[u8]) -> Reply {
        let (uid, gid) = self.owner(uid, gid);
        if self.cfg.ignore.uid && self.cfg.ignore.gid {
            return Ok(());
        }
        p.chown(uid, gid).map_err(|e| log::strerror(&e))
    }

    /// SETMOD; a symlink keeps its target's mode (the real one's `chmod`
    /// follows it, possibly out of the tree).
    pub(super) fn set_mod(&self, p: &Place, mode: &[u8]) -> Reply {
        let mode = (num(mode) as u32 & 0o7777) as libc::mode_t;
        if self.cfg.ignore.mode {
            return Ok(());
        }
        p.chmod(mode).map_err(|e| log::strerror(&e))
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

    /// What TYPE reads: a symlink is followed (as by the real one) only to
    /// a file the peer could ask for itself (a name of a group it shares,
    /// with this key), resolved the same way; anything else reads as
    /// nothing (ELOOP).
    fn type_target(
        &self,
        key: &[u8],
        file: &[u8],
        mut place: std::io::Result<Place>,
    ) -> std::io::Result<Place> {
        let mut name = file.to_vec();
        for _ in 0..8 {
            let p = place?;
            if !p.lstat().map(|s| s.is_symlink()).unwrap_or(false) {
                return Ok(p);
            }
            // prefix names: the target's logical name is not known
            if name.first() == Some(&b'%') {
                break;
            }
            let Some(t) = p.readlink() else { break };
            let abs = if t.first() == Some(&b'/') {
                t
            } else {
                msg!(fsutil::parent_dir(&name), "/", t)
            };
            name = crate::paths::clean(&abs);
            let peer = self.peer_name();
            let shared = beneath::valid_name(&name)
                && self.cfg.matching_groups(true).any(|g| {
                    g.key == key && g.selects(&name, true) && g.hosts.iter().any(|h| h.name == peer)
                });
            if !shared {
                break;
            }
            place = Place::resolve(&name, 0);
        }
        Err(std::io::Error::from_raw_os_error(libc::ELOOP))
    }

    /// A name a peer may use at all (no `..`, NUL, empty components…).
    pub(super) fn name_ok(&self, file: &[u8]) -> bool {
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
    pub(super) fn refused(&self, file: &[u8], place: &std::io::Result<Place>) -> bool {
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

    pub(super) fn identify_first(&self) -> String {
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

    // ---- identification ---------------------------------------------------

    fn hello(&mut self, name: &[u8]) -> Reply {
        self.ident = None;
        if !self.peer.resolves_to(name) {
            return Err(protocol::ERR_IDENT.to_string());
        }
        if self.tls {
            // the client's certificate must be the one pinned for `name`
            let cert = self.peer.cert.clone().unwrap_or_default();
            match crate::tls::pin(self.db, name, &cert) {
                Ok(true) => {}
                Ok(false) => {
                    log::debug(1, "Peer did provide a wrong SSL X509 cetrificate.");
                    return Err(protocol::ERR_IDENT.to_string());
                }
                Err(e) => return Err(e.0),
            }
        } else {
            let me = self.cfg.myhostname.clone();
            let allowed = self.cfg.nossl.iter().any(|(from, to)| {
                fnmatch(from, &me, Flags::NONE) && fnmatch(to, name, Flags::NONE)
            });
            if !allowed {
                return Err(protocol::ERR_SSL_EXPECTED.to_string());
            }
        }
        self.ident = Some(name.to_vec());
        Ok(())
    }

    /// GROUP: only the listed groups stay active for this session. (The
    /// real server only ever tests its first group: state.md Q24.)
    fn group(&mut self, list: &[u8]) -> Reply {
        if self.groups_set {
            return Err(protocol::ERR_GROUP_SET.to_string());
        }
        self.groups_set = true;
        let names: Vec<&[u8]> = list.split(|&b| b == b',').collect();
        for g in &mut self.cfg.groups {
            if g.myname.is_some() && !names.contains(&g.name.as_slice()) {
                g.myname = None;
            }
        }
        Ok(())
    }

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
    pub(super) fn conflict(&mut self, file: &[u8], flush: bool) -> Result<bool, Fatal> {
        let copts = CheckOptions {
            init: false,
            compare: false,
            mark: MarkOptions { force_new: false },
            dump_dir_fd: None,
        };
        Checker::new(self.cfg, self.db, &copts).check_logical(file, false)?;
        if flush || !self.db.is_dirty(file)? {
            return Ok(true);
        }
        let peer = self.peer_name().to_vec();
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
        }
        self.db.checkpoint()?;
        Ok(())
    }

    // ---- reading commands -------------------------------------------------

    /// What SIG and X-STAT find at `real`: Ok(stat), or Err(the status line
    /// that says why there is nothing to describe).
    pub(super) fn look(place: &std::io::Result<Place>) -> Result<(fsutil::Stat, &Place), String> {
        let p = match place {
            Ok(p) => p,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                return Err(protocol::ERR_PARENT_MISSING.to_string());
            }
            // beneath a symlinked directory: nothing of ours is there
            Err(e) if beneath::is_symlink_error(e) => {
                return Err(protocol::OK_NOT_FOUND.to_string());
            }
            Err(e) => return Err(log::strerror(e)),
        };
        match p.lstat() {
            Ok(st) => Ok((st, p)),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                Err(protocol::OK_PATH_NOT_FOUND.to_string())
            }
            Err(e) => Err(log::strerror(&e)),
        }
    }

    fn sig(&mut self, place: &std::io::Result<Place>) -> Result<(), ConnError> {
        let (st, p) = match Self::look(place) {
            Ok(st) => st,
            Err(line) => {
                self.reply(&line)?;
                if protocol::classify(line.as_bytes()) == protocol::Status::Ok {
                    // nothing there: described as such
                    self.reply("---")?;
                    self.conn.send_blob(b"")?;
                    return self.reply(protocol::OK_FINISHED);
                }
                return Ok(());
            }
        };
        // read before answering: a read error becomes a plain error line
        // (the real server's `octet-stream -1` puts clients out of step: Q19)
        let sig = if st.is_file() {
            match p.open_read().and_then(|mut f| delta::signature_of(&mut f)) {
                Ok(s) => s,
                Err(e) => return self.reply(&log::strerror(&e)),
            }
        } else {
            delta::Sig::Mem(Vec::new())
        };
        let target = if st.is_symlink() { p.readlink() } else { None };
        let text = checktxt::checktxt(&st, target.as_deref(), &self.cfg.ignore, None);
        self.reply(protocol::OK_DATA_FOLLOWS)?;
        self.conn.write_all(&msg!(text, "\n"))?;
        self.send_sig(sig)?;
        self.reply(protocol::OK_FINISHED)
    }

    /// A signature as a blob, streamed from its spool when large.
    fn send_sig(&mut self, mut sig: delta::Sig) -> Result<(), ConnError> {
        let n = sig.len();
        let mut r = sig.reader()?;
        self.conn.send_blob_from(&mut r, n)
    }

    /// TYPE: the file's content, then the session ends. Ok(true): ended.
    /// A symlink, device or FIFO reads as nothing (the real one follows
    /// symlinks, out of the tree too, and hangs on a FIFO).
    fn type_cmd(&mut self, place: &std::io::Result<Place>) -> Result<bool, ConnError> {
        let file = place.as_ref().map_err(clone_err).and_then(|p| {
            let f = p.open_read()?;
            // a directory reads as nothing
            Ok(if f.metadata()?.is_dir() {
                None
            } else {
                Some(f)
            })
        });
        let file = match file {
            Ok(f) => f,
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENOENT) | Some(libc::ELOOP) | Some(libc::EINVAL)
                ) =>
            {
                None
            }
            Err(e) => {
                self.reply(&log::strerror(&e))?;
                return Ok(false);
            }
        };
        self.reply(protocol::OK_DATA_FOLLOWS)?;
        // streamed: a read error now can only end the session early
        if let Some(mut f) = file {
            self.conn.send_stream(&mut f)?;
        }
        self.conn.uncork_flush()?;
        Ok(true)
    }

    fn mark_cmd(&mut self, file: &[u8]) -> Reply {
        let peer = self.peer_name().to_vec();
        let opts = MarkOptions { force_new: false };
        mark::mark(self.cfg, self.db, &opts, file, Some(&peer), None)
            .map_err(|f| String::from_utf8_lossy(&f.0).into_owned())
    }

    /// LIST MYNAME FILE-or-- KEY…: rows of the file table this pair shares.
    fn list(&mut self, toks: &[Vec<u8>]) -> Result<(), ConnError> {
        let tok = |i: usize| toks.get(i).map(Vec::as_slice).unwrap_or(b"");
        let myname = tok(1).to_vec();
        let file = tok(2);
        let keys: Vec<&[u8]> = toks
            .iter()
            .skip(3)
            .map(Vec::as_slice)
            .take_while(|k| !k.is_empty())
            .collect();
        let peer = self.peer_name().to_vec();
        let rows = match self
            .db
            .file_rows_raw(if file == b"-" { None } else { Some(file) })
        {
            Ok(r) => r,
            Err(e) => return self.reply(&e.0),
        };
        let mut out = Vec::new();
        for (text_enc, name_enc) in rows {
            let name = crate::urlenc::decode(&name_enc);
            let shared = self.cfg.matching_groups(false).any(|g| {
                g.myname.as_deref() == Some(myname.as_slice())
                    && keys.contains(&g.key.as_slice())
                    && g.has_peer(&peer)
                    && g.selects(&name, false)
            });
            if shared {
                out.extend_from_slice(&text_enc);
                out.push(b'\t');
                out.extend_from_slice(&name_enc);
                out.push(b'\n');
            }
        }
        self.conn.write_all(&out)?;
        self.reply(protocol::OK_FINISHED)
    }

    // ---- PATCH --------------------------------------------------------------

    /// The data exchange of PATCH; the outer Result is the connection.
    fn patch(&mut self, place: &std::io::Result<Place>) -> Result<Reply, ConnError> {
        // everything that can fail is checked before OK (send_data), so no
        // side waits for the other (Q18); a missing directory fails after
        // the delta, as in the real server
        let mut basis = match place.as_ref().map(|p| p.open_read()) {
            Ok(Ok(f)) => Some(f),
            Ok(Err(e)) if e.raw_os_error() == Some(libc::ENOENT) => None,
            Ok(Err(e)) => return Ok(Err(log::strerror(&e))),
            Err(_) => None,
        };
        let sig = match &mut basis {
            Some(f) => match f.metadata().and_then(|m| {
                if m.is_file() {
                    delta::signature_of(f)
                } else {
                    Err(std::io::Error::from_raw_os_error(libc::EISDIR))
                }
            }) {
                Ok(s) => s,
                Err(e) => return Ok(Err(log::strerror(&e))),
            },
            None => delta::Sig::Mem(delta::NO_BASIS_SIGNATURE.to_vec()),
        };
        self.reply(protocol::OK_SEND_DATA)?;
        self.send_sig(sig)?;
        // the client waits for the signature before it sends the delta
        self.conn.uncork_flush()?;
        let Some(n) = self.conn.read_blob_header()? else {
            return Ok(Err("Input/output error".to_string()));
        };
        if let Ok(p) = place {
            self.clean_once(p);
        }
        let tempdir = self.cfg.tempdir.clone();
        let mut reader = self.conn.blob_reader(n);
        let durable = !self.pipelined;
        let result = match place {
            Ok(p) => write_patched(p, basis.as_ref(), &mut reader, tempdir.as_deref(), durable),
            Err(e) => Err(log::strerror(e)),
        };
        // keep in step with the client whatever happened to the data
        std::io::copy(&mut reader, &mut std::io::sink())?;
        if reader.limit() > 0 {
            return Err(ConnError::Closed);
        }
        Ok(result)
    }
}

/// Streams the patched file into a temporary file next to the target and
/// renames it over the target; the temporary file never survives a failure.
fn write_patched(
    place: &Place,
    basis: Option<&std::fs::File>,
    d: &mut impl std::io::Read,
    tempdir: Option<&[u8]>,
    durable: bool,
) -> Reply {
    write_replacing(
        place,
        tempdir,
        durable,
        &mut |w| {
            delta::apply_stream(basis, d, &mut &mut *w, u64::MAX)
                .map(|_| ())
                .map_err(|_| "Input/output error".to_string())
        },
        &mut |_| Ok(()),
    )
    .and_then(|meta| meta)
}

/// Writes a new version of the entry into a temporary file (`fill`), gives
/// it the old file's owner and mode, then `meta` (whose error is returned
/// after the rename: the content is in place, as after PATCH and a failed
/// SET*), and puts it in place atomically. `durable`: fdatasync first;
/// otherwise only writeback is started (the caller syncs the batch).
/// Err: nothing changed; Ok(meta's result): the new content is in place.
pub(super) fn write_replacing(
    place: &Place,
    tempdir: Option<&[u8]>,
    durable: bool,
    fill: &mut dyn FnMut(&mut dyn std::io::Write) -> Reply,
    meta: &mut dyn FnMut(libc::c_int) -> Reply,
) -> Result<Reply, String> {
    use std::os::unix::io::AsRawFd;
    let old = place.lstat().ok().filter(|s| s.is_file());
    let temp = place.create_temp(tempdir).map_err(|e| log::strerror(&e))?;
    let fd = temp.file.as_raw_fd();
    let mut w = std::io::BufWriter::with_capacity(256 * 1024, &temp.file);
    fill(&mut w)?;
    w.flush().map_err(|e| log::strerror(&e))?;
    drop(w);
    if let Some(st) = old {
        unsafe {
            libc::fchown(fd, st.uid, st.gid);
            libc::fchmod(fd, (st.mode & 0o7777) as libc::mode_t);
        }
    }
    let meta_result = meta(fd);
    if durable {
        temp.file.sync_data().map_err(|e| log::strerror(&e))?;
    } else {
        unsafe {
            libc::sync_file_range(fd, 0, 0, libc::SYNC_FILE_RANGE_WRITE);
        }
    }
    temp.commit(place).map_err(|e| log::strerror(&e))?;
    if durable {
        // the rename too, or a crash could bring back the old file while
        // the database already knows the new one
        place.sync_dir().map_err(|e| log::strerror(&e))?;
    }
    Ok(meta_result)
}

/// Pre-removal before MK* (`any`) and PATCH (only what is not a regular
/// file); errors are ignored, as in the real server.
pub(super) fn pre_remove(p: &Place, any: bool) {
    let Ok(st) = p.lstat() else { return };
    if !any && st.is_file() {
        return;
    }
    let _ = if st.is_dir() { p.rmdir() } else { p.unlink() };
}

/// DEL: a directory only if empty; a missing entry is fine.
fn remove_entry(p: &Place) -> Reply {
    match p.remove() {
        Err(e) if e.raw_os_error() != Some(libc::ENOENT) => Err(log::strerror(&e)),
        _ => Ok(()),
    }
}

/// SETIME: atime and mtime (of the entry itself, never a symlink's target).
pub(super) fn set_time(p: &Place, t: i64) -> Reply {
    p.set_mtime(t).map_err(|e| log::strerror(&e))
}

/// A command on the entry, or the text of why there is none.
fn on(place: &std::io::Result<Place>, f: impl FnOnce(&Place) -> Reply) -> Reply {
    match place {
        Ok(p) => f(p),
        Err(e) => Err(log::strerror(e)),
    }
}

fn clone_err(e: &std::io::Error) -> std::io::Error {
    match e.raw_os_error() {
        Some(n) => std::io::Error::from_raw_os_error(n),
        None => std::io::Error::new(e.kind(), e.to_string()),
    }
}
