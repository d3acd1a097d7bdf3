//! Pushing dirty files to peers: `-u`, the update half of `-x` and `-c -u`
//! (state.md §4, protocol.md §3).

use crate::checktxt;
use crate::client::{self, ClientOptions, OpenError};
use crate::config::Config;
use crate::config::matcher::is_at_or_below;
use crate::db::{Db, DirtyRow};
use crate::fsutil::{self, Stat};
use crate::log::Errors;
use crate::progress::{Progress, file_bytes};
use crate::protocol::conn::ConnError;
use crate::protocol::{self, FileKind, MakeArg, Request, Status, Target, delta};
use crate::urlenc;
use crate::{Fatal, log, msg};
use std::collections::{HashMap, HashSet};

use std::io::Write;

mod db;
mod deletions;
mod pipeline;
pub mod stream;

pub use db::{PeerDb, Proxy, Req, apply as apply_request};

pub struct UpdateOptions<'a> {
    pub dry_run: bool,
    pub recursive: bool,
    /// `-P`: only these peers (case-insensitive)
    pub only_peers: Option<Vec<Vec<u8>>>,
    /// canonical real names from the command line (empty: everything)
    pub args: Vec<Vec<u8>>,
    pub client: &'a ClientOptions<'a>,
}

/// What to do with the signature in a SIG answer.
enum SigUse<'p> {
    /// only its length matters
    Skip,
    /// compare it with the signature of this local file (logical, real)
    Compare(&'p [u8], &'p [u8]),
}

/// The signature in a SIG answer.
enum SigSeen {
    /// `octet-stream -1` / `ERROR`
    Missing,
    /// skipped, this long
    Len(u64),
    /// compared with the local file (Err: the file could not be read)
    Same(std::io::Result<bool>),
}

/// How the create step went.
#[derive(Clone, Copy)]
enum Step {
    Ok,
    /// `File is also marked dirty here!`
    Conflict,
    /// refused for another reason (error counted)
    Failed,
}

/// What one file's update ended with.
enum Outcome {
    Done,
    /// stays dirty; the error was counted
    Failed,
    /// the peer lacks this directory
    ParentMissing(Vec<u8>),
}

/// What to do about a missing parent directory.
enum Missing {
    /// recreate it (marked dirty) and start the pass over
    Restart(Vec<u8>),
    /// give up on everything below it in this pass
    Skip(Vec<u8>),
}

/// The connection broke (or the peer went silent for the whole timeout):
/// the rest of this peer's files are skipped.
struct Broken {
    timed_out: bool,
}

impl From<ConnError> for Broken {
    fn from(e: ConnError) -> Broken {
        Broken {
            timed_out: e.is_timeout(),
        }
    }
}

/// `streamed`: what [`stream`] already sent to each peer during the check.
pub fn update(
    cfg: &Config,
    db: &mut Db,
    opts: &UpdateOptions,
    mut streamed: HashMap<Vec<u8>, stream::Streamed>,
) -> Result<Errors, Fatal> {
    db.batch_from_start();
    let mut peers = db.dirty_peers()?;
    // the real client walks `GROUP BY peername` from the end; the output
    // keeps that order
    peers.sort_by_key(|p| urlenc::encode(p));
    peers.reverse();
    peers.retain(|peer| match &opts.only_peers {
        Some(only) => only.iter().any(|p| p.eq_ignore_ascii_case(peer)),
        None => true,
    });
    let mut sessions: Vec<Option<stream::Streamed>> =
        peers.iter().map(|p| streamed.remove(p)).collect();
    for (_, s) in streamed {
        if let Some(Ok(session)) = s.session {
            session.close();
        }
    }
    if peers.len() <= 1 || std::env::var_os("CSYNC2_SERIAL_PEERS").is_some() {
        let mut errors = Errors::default();
        for (peer, s) in peers.iter().zip(sessions) {
            let e = update_peer(cfg, db, opts, peer, s)?;
            if !opts.dry_run {
                crate::status::record(db, &[(peer.clone(), outcome(&e))]);
            }
            errors.add(e);
        }
        return Ok(errors);
    }
    // every peer at once: one thread per peer, the database stays here
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        for (index, peer) in peers.iter().enumerate() {
            let tx = tx.clone();
            let s = sessions[index].take();
            scope.spawn(move || {
                let mut proxy = db::Proxy::new(tx.clone());
                let mut held = Vec::new();
                let result =
                    log::capture(&mut held, || update_peer(cfg, &mut proxy, opts, peer, s));
                let _ = tx.send(db::Req::Finished {
                    index,
                    held,
                    result,
                });
            });
        }
        drop(tx);
        db::serve(cfg, db, rx, &peers, opts.dry_run)
    })
}

/// How a peer's update ended, for `--status`: Ok, or its first error.
pub(crate) fn outcome(e: &Errors) -> Result<(), Vec<u8>> {
    match e.total() {
        0 => Ok(()),
        n => Err(e
            .first()
            .map(<[u8]>::to_vec)
            .unwrap_or_else(|| format!("{n} errors").into_bytes())),
    }
}

/// The row is selected by the command-line arguments (prefix forms too:
/// the real client never selects `%prefix%` rows by argument, state.md Q13).
fn selected(cfg: &Config, opts: &UpdateOptions, file: &[u8]) -> bool {
    if opts.args.is_empty() {
        return true;
    }
    opts.args.iter().any(|a| {
        let mut forms = cfg.prefix_forms(a);
        forms.push(a.clone());
        forms
            .iter()
            .any(|f| f == b"/" || f == file || (opts.recursive && is_at_or_below(file, f)))
    })
}

fn peer_rows(
    cfg: &Config,
    db: &mut dyn PeerDb,
    opts: &UpdateOptions,
    peer: &[u8],
) -> Result<Vec<DirtyRow>, Fatal> {
    Ok(db
        .dirty_rows(peer)?
        .into_iter()
        .filter(|r| selected(cfg, opts, &r.filename))
        .collect())
}

/// The key for this file towards this peer: the first active group that
/// selects the file and lists the peer.
fn key_for<'c>(cfg: &'c Config, file: &[u8], peer: &[u8]) -> Option<&'c [u8]> {
    cfg.matching_groups(false)
        .find(|g| g.has_peer(peer) && g.selects(file, false))
        .map(|g| g.key.as_slice())
}

/// `While syncing file …: <reply>` as the real client prints it, then a
/// line that names the peer and says what to do (ours only).
pub(crate) fn sync_failed(errors: &mut Errors, peer: &[u8], file: &[u8], reply: impl AsRef<[u8]>) {
    let reply = reply.as_ref();
    errors.error(msg!("While syncing file ", file, ": ", reply));
    log::debug(0, hint(peer, file, reply));
}

/// What an error reply from `peer` about `file` means for the admin.
pub(crate) fn hint(peer: &[u8], file: &[u8], reply: &[u8]) -> Vec<u8> {
    let starts = |p: &str| reply.starts_with(p.as_bytes());
    let then = if starts(protocol::ERR_CONFLICT) {
        msg!(
            "the file was changed on ",
            peer,
            " too (a conflict). Run 'csync2 -f ",
            file,
            "' on the host whose version should win, then 'csync2 -x' there (or set 'auto' in the group)."
        )
    } else if starts(protocol::ERR_SLAVE) {
        msg!(
            peer,
            " has this host as a slave for this file and does not take changes from it; its own version comes back on its next run."
        )
    } else if starts(protocol::ERR_PERMISSION) {
        msg!(
            peer,
            " does not accept this file from this host: both configs must list both hosts in a group that includes it, with the same key."
        )
    } else if starts(protocol::ERR_SYMLINKED_DIR) {
        msg!(
            "on ",
            peer,
            " a directory on the path is a symlink, which csync2 never writes through: make it a directory there, or exclude the path."
        )
    } else if starts("No space left on device") || starts("Disk quota exceeded") {
        msg!(
            "the file system on ",
            peer,
            " is full: free space there (its old version of the file is unchanged)."
        )
    } else {
        msg!(peer, " could not apply the change.")
    };
    msg!(
        "Hint: ",
        then,
        " The file stays dirty for ",
        peer,
        " and is sent again by the next 'csync2 -x'."
    )
}

fn dry_line(code: &str, peer: &[u8], file: &[u8]) {
    let mut line = msg!(code, ": ", peer);
    line.extend(std::iter::repeat_n(
        b' ',
        15usize.saturating_sub(peer.len()),
    ));
    line.extend_from_slice(&msg!(" ", file, "\n"));
    log::stdout(&line);
}

/// A catch-up granted by this host's server: push what is dirty for
/// `peer` over `session`, the connection `peer` opened (roles reversed).
pub fn push_over(
    cfg: &Config,
    db: &mut Db,
    opts: &UpdateOptions,
    peer: &[u8],
    session: client::Session,
) -> Result<Errors, Fatal> {
    db.batch_from_start();
    update_session(cfg, db, opts, peer, None, Some(session))
}

/// The update of one peer through `db` (a [`Proxy`] of a `--watch`
/// daemon's worker): its dirty rows, on a new session.
pub fn push_peer(
    cfg: &Config,
    db: &mut dyn PeerDb,
    opts: &UpdateOptions,
    peer: &[u8],
) -> Result<Errors, Fatal> {
    update_session(cfg, db, opts, peer, None, None)
}

fn update_peer(
    cfg: &Config,
    db: &mut dyn PeerDb,
    opts: &UpdateOptions,
    peer: &[u8],
    streamed: Option<stream::Streamed>,
) -> Result<Errors, Fatal> {
    update_session(cfg, db, opts, peer, streamed, None)
}

/// The update of one peer, on the session the stream opened, on `fresh`
/// (open, not yet offered pipelining), or on a new one.
fn update_session(
    cfg: &Config,
    db: &mut dyn PeerDb,
    opts: &UpdateOptions,
    peer: &[u8],
    streamed: Option<stream::Streamed>,
    fresh: Option<client::Session>,
) -> Result<Errors, Fatal> {
    let mut errors = Errors::default();
    if peer_rows(cfg, db, opts, peer)?.is_empty() {
        if let Some(stream::Streamed {
            session: Some(Ok(s)),
            ..
        }) = streamed
        {
            s.close();
        }
        if let Some(s) = fresh {
            s.close();
        }
        return Ok(errors);
    }
    // a session the stream opened (and its messages) goes on here
    let (held, opened, done) = match streamed {
        Some(s) => (s.held, s.session, s.done),
        None => (Vec::new(), None, HashMap::new()),
    };
    log::replay(held);
    let negotiated = opened.is_some();
    let opened = match fresh {
        Some(s) => Ok(s),
        None => opened.unwrap_or_else(|| {
            client::open_pinning(cfg, peer, opts.client, &mut |der| db.pin(peer, der))
        }),
    };
    let mut session = match opened {
        Ok(s) => s,
        Err(OpenError::Tls(m)) => {
            // fatal for the whole run, as in the real client (protocol.md Q32)
            return Err(Fatal::msg(m));
        }
        Err(_) => {
            client::connection_failed(&mut errors, peer);
            log::debug(1, "Host stays in dirty state. Try again later...");
            return Ok(errors);
        }
    };
    if !negotiated && let Err(e) = session.negotiate_pipeline() {
        if e.is_timeout() {
            client::timed_out(&mut errors, peer, opts.client.timeout);
        } else {
            errors.error("Connection closed.");
        }
        return Ok(errors);
    }
    let mut run = PeerRun {
        cfg,
        db,
        opts,
        peer,
        session: &mut session,
        missing: HashSet::new(),
        progress: Progress::new(peer, 0, 0),
        streamed: done,
        errors: Errors::default(),
    };
    loop {
        match run.pass() {
            Ok(None) => break,
            Ok(Some(dir)) => {
                // recreate the missing parent from this host's file table,
                // then start over (state.md §4.7)
                run.mark_subtree(&dir)?;
                // what the abandoned pass met is met again by the next
                run.errors = Errors::default();
            }
            Err(PassError::Fatal(f)) => return Err(f),
            Err(PassError::Broken { timed_out }) => {
                if timed_out {
                    client::timed_out(&mut run.errors, peer, opts.client.timeout);
                } else {
                    run.errors.error("Connection closed.");
                }
                return Ok(run.errors);
            }
        }
    }
    let errors = run.errors;
    session.close();
    Ok(errors)
}

enum PassError {
    Fatal(Fatal),
    Broken { timed_out: bool },
}

impl From<Fatal> for PassError {
    fn from(f: Fatal) -> PassError {
        PassError::Fatal(f)
    }
}

impl From<crate::db::DbError> for PassError {
    fn from(e: crate::db::DbError) -> PassError {
        PassError::Fatal(e.into())
    }
}

impl From<Broken> for PassError {
    fn from(b: Broken) -> PassError {
        PassError::Broken {
            timed_out: b.timed_out,
        }
    }
}

struct PeerRun<'a, 'o> {
    cfg: &'a Config,
    db: &'a mut dyn PeerDb,
    opts: &'a UpdateOptions<'o>,
    peer: &'a [u8],
    session: &'a mut client::Session,
    /// parent directories already reported missing in this run
    missing: HashSet<Vec<u8>>,
    progress: Progress,
    /// files the stream during the check already brought to the peer:
    /// file → (HELLO name, messages)
    streamed: HashMap<Vec<u8>, (Vec<u8>, Vec<log::Held>)>,
    /// the errors of this pass
    errors: Errors,
}

impl<'a> PeerRun<'a, '_> {
    /// The peer refused the change of `file` (or it could not be sent):
    /// printed and counted as [`sync_failed`], and told to the database's
    /// owner (a `--watch` daemon holds back files a conflict refused).
    fn refused(&mut self, file: &[u8], reply: impl AsRef<[u8]>) {
        let reply = reply.as_ref();
        sync_failed(&mut self.errors, self.peer, file, reply);
        self.db.refused(file, self.peer, reply);
    }

    /// One pass over this peer's rows: deletions (deepest first), then
    /// creations and changes (parents first). Some(dir): redo after
    /// recreating `dir`.
    fn pass(&mut self) -> Result<Option<Vec<u8>>, PassError> {
        let rows = peer_rows(self.cfg, self.db, self.opts, self.peer)?;
        let mut changes = Vec::new();
        let mut deletions = Vec::new();
        // directories seen not to be symlinks, for this pass
        let mut plain = crate::fasthash::FastMap::default();
        for row in rows.iter().rev() {
            let real = self.cfg.prefix_decode(&row.filename).map_err(Fatal::msg)?;
            let root = fsutil::prefix_root_len(&row.filename, &real);
            if let Ok(st) = fsutil::lstat(&real)
                && !fsutil::under_symlink_cached(&real, root, &mut plain)
            {
                changes.push((row, real, st));
            } else {
                deletions.push(row);
            }
        }
        let bytes = changes.iter().map(|(_, _, st)| file_bytes(st)).sum();
        self.progress = Progress::new(self.peer, rows.len(), bytes);
        if self.session.pipelined && !self.opts.dry_run {
            self.deletions_pipelined(deletions)?;
        } else {
            for row in deletions {
                self.progress.done(1, 0);
                let Some(key) = self.key_or_skip(&row.filename, "Skipping deletion ") else {
                    continue;
                };
                if !self.identify(&row.myname)? {
                    continue;
                }
                self.delete_one(row, key)?;
            }
        }
        changes.reverse();
        if self.session.pipelined {
            return self.changes_pipelined(changes);
        }
        let mut skip: Vec<Vec<u8>> = Vec::new();
        // a file counts as done when the next one starts
        let mut previous = None;
        for (row, real, st) in changes {
            if let Some(b) = previous.replace(file_bytes(&st)) {
                self.progress.done(1, b);
            }
            if skip.iter().any(|d| is_at_or_below(&row.filename, d)) {
                continue;
            }
            let Some(key) = self.key_or_skip(&row.filename, "Skipping file update ") else {
                continue;
            };
            if !self.identify(&row.myname)? {
                // no identity, no further modifications for this peer
                return Ok(None);
            }
            if let Outcome::ParentMissing(dir) = self.modify_one(row, &real, key)? {
                match self.missing_parent(dir) {
                    Missing::Restart(dir) => return Ok(Some(dir)),
                    Missing::Skip(dir) => skip.push(dir),
                }
            }
        }
        if let Some(b) = previous {
            self.progress.done(1, b);
        }
        Ok(None)
    }

    /// The key towards this peer; None (logged at -vv as `what FILE on
    /// PEER - not in my groups.`): the file is not shared with it.
    fn key_or_skip(&self, file: &[u8], what: &str) -> Option<&'a [u8]> {
        let key = key_for(self.cfg, file, self.peer);
        if key.is_none() {
            log::debug(
                2,
                msg!(what, file, " on ", self.peer, " - not in my groups."),
            );
        }
        key
    }

    /// A parent directory the peer lacks: recreate it and start the pass
    /// over, or, the second time, give up on everything below it.
    fn missing_parent(&mut self, dir: Vec<u8>) -> Missing {
        log::debug(1, "File stays in dirty state. Try again later...");
        log::debug(1, msg!("missing parent dir : ", dir));
        if self.missing.insert(dir.clone()) {
            return Missing::Restart(dir);
        }
        // the same parent again: nothing here can create it
        self.errors.error(msg!(
            "ERROR: Cannot create missing parent ",
            dir,
            " on ",
            self.peer,
            ": it is not in this host's database."
        ));
        Missing::Skip(dir)
    }

    fn identify(&mut self, myname: &[u8]) -> Result<bool, Broken> {
        if self.session.identify(myname)? {
            return Ok(true);
        }
        // counted, but silent at level 0 in update mode, as the real client
        self.errors.count();
        log::debug(2, msg!("Identification by ", self.peer, " refused."));
        Ok(false)
    }

    fn mark_subtree(&mut self, dir: &[u8]) -> Result<(), Fatal> {
        self.db.mark_subtree(self.cfg, dir, self.peer)
    }

    fn done(&mut self, file: &[u8]) -> Result<(), Fatal> {
        self.db.done(file, self.peer)
    }

    fn stays(&self) -> Outcome {
        log::debug(1, "File stays in dirty state. Try again later...");
        Outcome::Failed
    }

    /// Reads the check text line of a SIG answer.
    fn read_sig_text(&mut self) -> Result<Vec<u8>, Broken> {
        Ok(self.session.conn.read_line(16383)?)
    }

    /// Reads the rest of a SIG answer: the signature (streamed: skipped or
    /// compared chunk by chunk) and the final status. None: an error
    /// status (logged).
    fn read_sig_rest(&mut self, usage: SigUse) -> Result<Option<SigSeen>, Broken> {
        let conn = &mut self.session.conn;
        let seen = conn.read_blob_with(|body, n| match usage {
            SigUse::Skip => {
                std::io::copy(body, &mut std::io::sink())?;
                Ok(SigSeen::Len(n))
            }
            SigUse::Compare(file, real) => {
                let r = match crate::beneath::open_file(file, real) {
                    Ok(mut f) => delta::signature_equals(&mut f, body, n)?,
                    Err(e) => {
                        std::io::copy(body, &mut std::io::sink())?;
                        Err(e)
                    }
                };
                Ok(SigSeen::Same(r))
            }
        });
        let seen = match seen {
            Ok(s) => s.unwrap_or(SigSeen::Missing),
            Err(ConnError::Format) => return Err(Broken { timed_out: false }),
            Err(e) => return Err(e.into()),
        };
        let st = conn.read_status()?;
        if protocol::classify(&st) != Status::Ok {
            self.errors.error(msg!("While syncing file: ", st));
            return Ok(None);
        }
        Ok(Some(seen))
    }

    fn delete_one(&mut self, row: &DirtyRow, key: &[u8]) -> Result<(), PassError> {
        let file = &row.filename;
        log::debug(1, msg!("Deleting ", file, " on ", self.peer, " ..."));
        if row.forced {
            if self.opts.dry_run {
                dry_line("!D", self.peer, file);
                return Ok(());
            }
            let st = self
                .session
                .request(&Request::Flush(Target { key, file }))?;
            if protocol::classify(&st) != Status::Ok {
                self.refused(file, &st);
                self.stays();
                return Ok(());
            }
        } else {
            let st = self.session.request(&Request::Sig(Target { key, file }))?;
            match protocol::classify(&st) {
                // the parent is gone there, so the file is too
                Status::ParentMissing => {
                    if self.opts.dry_run {
                        dry_line("?S", self.peer, file);
                    } else {
                        self.done(file)?;
                    }
                    return Ok(());
                }
                Status::Ok => {}
                _ => {
                    self.refused(file, &st);
                    self.stays();
                    return Ok(());
                }
            }
            let text = self.read_sig_text()?;
            let Some(sig) = self.read_sig_rest(SigUse::Skip)? else {
                self.stays();
                return Ok(());
            };
            let differs = text != b"---" || !matches!(sig, SigSeen::Len(0));
            if !differs {
                if self.opts.dry_run {
                    dry_line("?S", self.peer, file);
                } else {
                    self.done(file)?;
                }
                return Ok(());
            }
            if self.opts.dry_run {
                dry_line("?D", self.peer, file);
                return Ok(());
            }
        }
        let at = Target { key, file };
        let st = self.session.request(&Request::Del(at))?;
        match protocol::classify(&st) {
            Status::Ok => self.done(file)?,
            Status::Conflict => self.resolve_deletion(file, key)?,
            _ => {
                self.refused(file, &st);
                self.stays();
            }
        }
        Ok(())
    }

    /// A DEL refused as a conflict: this host's removal wins only by the
    /// group's `auto` rule; then FLUSH and DEL again.
    fn resolve_deletion(&mut self, file: &[u8], key: &[u8]) -> Result<(), PassError> {
        if !self.auto_resolve(file, key, None)? {
            self.errors.count();
            self.stays();
            return Ok(());
        }
        log::debug(1, msg!("Deleting ", file, " on ", self.peer, " ..."));
        let at = Target { key, file };
        let retried = self.flush(file, key)?
            && protocol::classify(&self.session.request(&Request::Del(at))?) == Status::Ok;
        if retried {
            self.done(file)?;
        } else {
            self.errors
                .error("ERROR: Auto-resolving failed. Giving up.");
            self.stays();
        }
        Ok(())
    }

    fn modify_one(
        &mut self,
        row: &DirtyRow,
        real: &[u8],
        key: &[u8],
    ) -> Result<Outcome, PassError> {
        let file = &row.filename;
        let Ok(st) = fsutil::lstat(real) else {
            self.errors.error(msg!("ERROR: Cant stat ", file, "."));
            return Ok(Outcome::Failed);
        };
        log::debug(1, msg!("Updating ", file, " on ", self.peer, " ..."));
        let at = Target { key, file };
        let target = if st.is_symlink() {
            // the real client reads at most 1023 bytes for MKLINK (protocol.md Q41)
            fsutil::readlink(real)
        } else {
            None
        };
        if row.forced {
            if self.opts.dry_run {
                dry_line("!M", self.peer, file);
                return Ok(Outcome::Done);
            }
            let r = self.session.request(&Request::Flush(at))?;
            if protocol::classify(&r) != Status::Ok {
                self.refused(file, &r);
                return Ok(self.stays());
            }
        } else {
            let r = self.session.request(&Request::Sig(at))?;
            match protocol::classify(&r) {
                Status::Ok => {}
                // a dry run creates nothing, so nothing to recreate and
                // no pass to start over: the file would be created
                Status::ParentMissing if self.opts.dry_run => {
                    dry_line("?M", self.peer, file);
                    return Ok(Outcome::Done);
                }
                Status::ParentMissing => {
                    return Ok(Outcome::ParentMissing(fsutil::parent_dir(file).to_vec()));
                }
                _ => {
                    self.refused(file, &r);
                    return Ok(self.stays());
                }
            }
            let text = self.read_sig_text()?;
            let mine = checktxt::checktxt(&st, target.as_deref(), &self.cfg.ignore, None);
            // whole strings: the real client stops at the shorter one (state.md Q2)
            let usage = if text == mine && st.is_file() {
                SigUse::Compare(file, real)
            } else {
                SigUse::Skip
            };
            let Some(sig) = self.read_sig_rest(usage)? else {
                return Ok(self.stays());
            };
            let differs = text != mine
                || match sig {
                    SigSeen::Same(Ok(same)) => !same,
                    SigSeen::Same(Err(e)) => {
                        self.errors
                            .error(msg!("ERROR: Cant read ", file, ": ", log::strerror(&e)));
                        return Ok(Outcome::Failed);
                    }
                    SigSeen::Len(n) => n != 0,
                    SigSeen::Missing => true,
                };
            if !differs {
                log::debug(1, "File is already up to date on peer.");
                if self.opts.dry_run {
                    dry_line("?S", self.peer, file);
                    return Ok(Outcome::Done);
                }
                if !st.is_symlink() {
                    let r = self.session.request(&Request::Setime {
                        at,
                        mtime: st.mtime,
                    })?;
                    if protocol::classify(&r) != Status::Ok {
                        self.refused(file, &r);
                        return Ok(self.stays());
                    }
                }
                self.done(file)?;
                return Ok(Outcome::Done);
            }
            if self.opts.dry_run {
                dry_line("?M", self.peer, file);
                return Ok(Outcome::Done);
            }
        }
        self.apply(file, real, key, &st, target.as_deref(), None)
    }

    /// The create step (unless `first` says how it already went), conflict
    /// resolution, metadata, and the dirty row.
    #[allow(clippy::too_many_arguments)]
    fn apply(
        &mut self,
        file: &[u8],
        real: &[u8],
        key: &[u8],
        st: &Stat,
        target: Option<&[u8]>,
        first: Option<Step>,
    ) -> Result<Outcome, PassError> {
        let at = Target { key, file };
        let step = match first {
            Some(s) => s,
            None => self.create(file, real, key, st, target)?,
        };
        match step {
            Step::Ok => {}
            Step::Failed => return Ok(self.stays()),
            Step::Conflict => {
                if !self.auto_resolve(file, key, Some(st))? {
                    self.errors.count();
                    return Ok(self.stays());
                }
                // the entry starts over, forced
                log::debug(1, msg!("Updating ", file, " on ", self.peer, " ..."));
                let retried = self.flush(file, key)?
                    && matches!(self.create(file, real, key, st, target)?, Step::Ok);
                if !retried {
                    self.errors
                        .error("ERROR: Auto-resolving failed. Giving up.");
                    return Ok(self.stays());
                }
            }
        }
        // a real server makes no socket node, so its metadata commands fail
        // forever (protocol.md Q9): for sockets their errors are ignored
        let socket = st.is_socket();
        let mut meta = vec![Request::Setown {
            at,
            uid: (st.uid as i32).into(),
            gid: (st.gid as i32).into(),
        }];
        if !st.is_symlink() {
            meta.push(Request::Setmod {
                at,
                mode: (st.mode as i32).into(),
            });
            meta.push(Request::Setime {
                at,
                mtime: st.mtime,
            });
        }
        for m in meta {
            let r = self.session.request(&m)?;
            if protocol::classify(&r) != Status::Ok && !socket {
                self.refused(file, &r);
                return Ok(self.stays());
            }
        }
        self.done(file)?;
        Ok(Outcome::Done)
    }

    /// The type-specific create step.
    fn create(
        &mut self,
        file: &[u8],
        real: &[u8],
        key: &[u8],
        st: &Stat,
        target: Option<&[u8]>,
    ) -> Result<Step, PassError> {
        let at = Target { key, file };
        let kind = FileKind::of(st);
        let req = if kind == FileKind::Reg {
            Request::Patch(at)
        } else {
            Request::Make {
                at,
                kind,
                arg: make_arg(st, target),
            }
        };
        let r = self.session.request(&req)?;
        match protocol::classify(&r) {
            Status::Ok => {}
            Status::Conflict => return Ok(Step::Conflict),
            _ => {
                self.refused(file, &r);
                return Ok(Step::Failed);
            }
        }
        if !st.is_file() {
            return Ok(Step::Ok);
        }
        // PATCH: a server that skipped the data phase answers finished (protocol.md Q16)
        if r == protocol::OK_FINISHED.as_bytes() {
            self.errors.error(msg!(
                "While syncing file ",
                file,
                ": the peer skipped the data transfer."
            ));
            return Ok(Step::Failed);
        }
        let conn = &mut self.session.conn;
        // large signatures are spooled, not held
        let sig = match conn.read_blob_with(|body, n| delta::read_sig(body, n)) {
            Ok(s) => s,
            Err(ConnError::Format) => return Err(PassError::Broken { timed_out: false }),
            Err(e) => return Err(Broken::from(e).into()),
        };
        let sig = match sig {
            Some(Ok(sig)) => sig,
            Some(Err(e)) => {
                conn.send_blob_error()?;
                let _ = conn.read_status()?;
                self.refused(file, log::strerror(&e));
                return Ok(Step::Failed);
            }
            None => {
                // answer the error blob with one, so both sides stay in step (protocol.md Q18)
                conn.send_blob_error()?;
                let r = conn.read_status()?;
                self.refused(file, &r);
                return Ok(Step::Failed);
            }
        };
        // the delta is spooled, so its size is known before it is sent
        let spooled = crate::beneath::open_file(file, real).and_then(|mut f| {
            let mut tmp = fsutil::anon_tempfile()?;
            let mut w = std::io::BufWriter::with_capacity(256 * 1024, &mut tmp);
            delta::delta_stream(&sig, &mut f, &mut w)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            w.flush()?;
            drop(w);
            let n = std::io::Seek::stream_position(&mut tmp)?;
            std::io::Seek::rewind(&mut tmp)?;
            Ok((tmp, n))
        });
        let (mut tmp, n) = match spooled {
            Ok(x) => x,
            Err(e) => {
                // tell the server the data is not coming (protocol.md Q22)
                conn.send_blob_error()?;
                let _ = conn.read_status()?;
                self.refused(file, log::strerror(&e));
                return Ok(Step::Failed);
            }
        };
        conn.send_blob_from(&mut tmp, n)?;
        let r = conn.read_status()?;
        if protocol::classify(&r) != Status::Ok {
            self.refused(file, &r);
            return Ok(Step::Failed);
        }
        Ok(Step::Ok)
    }

    /// FLUSH before a forced update; false: refused (error counted).
    fn flush(&mut self, file: &[u8], key: &[u8]) -> Result<bool, PassError> {
        let r = self
            .session
            .request(&Request::Flush(Target { key, file }))?;
        if protocol::classify(&r) != Status::Ok {
            self.refused(file, &r);
            return Ok(false);
        }
        Ok(true)
    }

    /// Decides a conflict (state.md §4.6); `local` is None for a removal.
    /// true: this host wins and the entry is redone as forced.
    fn auto_resolve(
        &mut self,
        file: &[u8],
        key: &[u8],
        local: Option<&Stat>,
    ) -> Result<bool, PassError> {
        use crate::config::AutoMethod;
        if local.is_none() {
            // the real client prints this without a newline (state.md Q5)
            log::debug(0, "auto resolving... response = 10");
        }
        let peer = self.peer;
        let groups: Vec<&crate::config::Group> = self
            .cfg
            .matching_groups(false)
            .filter(|g| g.selects(file, false))
            .collect();
        let verdict = |won: bool, test: &str| {
            if won {
                log::debug(0, format!("Auto-resolving conflict: Won '{test}' test."));
            } else {
                log::debug(
                    0,
                    format!("Do not auto-resolve conflict: Lost '{test}' test."),
                );
            }
            won
        };
        if groups
            .iter()
            .any(|g| !g.local_slave && g.hosts.iter().any(|h| h.name == peer && h.slave))
        {
            return Ok(verdict(true, "master/slave"));
        }
        let Some(g) = groups.iter().find(|g| g.has_peer(peer)) else {
            return Ok(false);
        };
        let on_left = g
            .hosts
            .iter()
            .find(|h| h.name == peer)
            .is_some_and(|h| h.on_left);
        let (cmd, test) = match g.auto {
            AutoMethod::None => return Ok(false),
            AutoMethod::First => return Ok(verdict(true, "first")),
            AutoMethod::Left => return Ok(verdict(!on_left, "left/right")),
            AutoMethod::Right => return Ok(verdict(on_left, "left/right")),
            AutoMethod::Younger | AutoMethod::Older => ("GETTM", "younger/older"),
            AutoMethod::Bigger | AutoMethod::Smaller => ("GETSZ", "bigger/smaller"),
        };
        let Some(st) = local else {
            log::debug(0, "Do not auto-resolve conflict: This is a removal.");
            return Ok(false);
        };
        let at = Target { key, file };
        let req = if cmd == "GETTM" {
            Request::Gettm(at)
        } else {
            Request::Getsz(at)
        };
        let r = self.session.request(&req)?;
        if protocol::classify(&r) != Status::Ok {
            self.refused(file, &r);
            return Ok(false);
        }
        let line = self.session.conn.read_line(16383)?;
        let remote: i64 = String::from_utf8_lossy(&line).trim().parse().unwrap_or(-1);
        let mine = if cmd == "GETTM" { st.mtime } else { st.size };
        let won = remote == -1
            || match g.auto {
                AutoMethod::Younger | AutoMethod::Bigger => mine > remote,
                _ => mine <= remote,
            };
        Ok(verdict(won, test))
    }
}

/// The kind-specific argument of MK* and X-PUT for an entry: a device's
/// number (which the real client leaves out: protocol.md Q8), a symlink's
/// target (at most 1023 bytes, as the real client reads it for MKLINK:
/// protocol.md Q41).
pub(crate) fn make_arg<'t>(st: &Stat, target: Option<&'t [u8]>) -> MakeArg<'t> {
    match FileKind::of(st) {
        k if k.is_device() => MakeArg::Dev((st.rdev as i32).into()),
        FileKind::Link => {
            let t = target.unwrap_or_default();
            MakeArg::Target(&t[..t.len().min(1023)])
        }
        _ => MakeArg::None,
    }
}

impl From<ConnError> for PassError {
    fn from(e: ConnError) -> PassError {
        PassError::Broken {
            timed_out: e.is_timeout(),
        }
    }
}
