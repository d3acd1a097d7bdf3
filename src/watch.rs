//! `--watch` (ours): a foreground daemon that replaces lsyncd + cron. At
//! start a full check of every configured path (as `-cr /`); then each
//! peer gets a worker thread that asks it for a catch-up and pushes what
//! is dirty for it. From then on inotify events on the included
//! directories, gathered for `--delay` seconds after the first one, decide
//! which paths are checked again, and the workers push the dirty rows.
//!
//! One thread owns the database (this one): the inotify reader and the
//! workers send it messages; workers reach the database through an
//! [`update::Proxy`], so SQLite is never contended inside the daemon and a
//! worker stuck on a hung peer holds no lock. Each peer has its own
//! backoff (1 s doubling to 60 s) and never delays the others. Events are
//! hints and the database is the truth: a queue overflow rescans
//! everything. What this host's server writes (files from peers) is
//! already in the database, so the check finds nothing to send back.
//!
//! SIGTERM/SIGINT: stop, commit, exit 0. SIGHUP: if the configuration
//! loads, the daemon restarts itself in place (same pid, same arguments):
//! a fresh check, catch-up and push under the new configuration.

use crate::Fatal;
use crate::check::{CheckOptions, Checker};
use crate::client::ClientOptions;
use crate::config::Config;
use crate::config::matcher::Class;
use crate::db::{Db, DirtyRow};
use crate::fasthash::FastMap;
use crate::log::{self, Errors};
use crate::paths::{self, join};
use crate::update::{self, Proxy, Req, UpdateOptions};
use crate::{msg, protocol, status};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, InotifyEvent, WatchDescriptor};
use std::collections::{BTreeMap, HashMap};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

static STOP: AtomicBool = AtomicBool::new(false);
static RELOAD: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

extern "C" fn on_hup(_: libc::c_int) {
    RELOAD.store(true, Ordering::Relaxed);
}

/// The longest wait before a peer that failed is tried again.
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// How long a stopping daemon waits for pushes under way.
const STOP_GRACE: Duration = Duration::from_secs(3);
/// How long after a check the peers look at their rows once more.
const LOOK_AGAIN: Duration = Duration::from_secs(2);
/// How often the loops look at the signal flags when nothing happens.
const TICK: Duration = Duration::from_millis(200);

fn mask() -> AddWatchFlags {
    AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_MODIFY
        | AddWatchFlags::IN_ATTRIB
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_ONLYDIR
}

struct Watcher<'a> {
    cfg: &'a Config,
    fd: &'a Inotify,
    dirs: HashMap<WatchDescriptor, Vec<u8>>,
    /// a watch could not be added (max_user_watches): warned once
    warned: bool,
}

impl Watcher<'_> {
    /// Watches `dir` and, where the configuration descends, every directory
    /// below it.
    fn add_tree(&mut self, dir: &[u8]) {
        match self.cfg.class(dir, false) {
            Class::Ignore if dir != b"/" => return,
            _ => {}
        }
        let path = paths::as_path(dir);
        match self.fd.add_watch(path, mask()) {
            Ok(wd) => {
                self.dirs.insert(wd, dir.to_vec());
            }
            Err(e) => {
                if e == nix::errno::Errno::ENOSPC && !self.warned {
                    self.warned = true;
                    log::debug(
                        0,
                        "WARNING: out of inotify watches (fs.inotify.max_user_watches): \
                         raise it, e.g. 'sysctl fs.inotify.max_user_watches=1048576'; \
                         directories without a watch are seen only by the next rescan.",
                    );
                }
                return;
            }
        }
        let Ok(entries) = std::fs::read_dir(path) else {
            return;
        };
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                let child = join(dir, e.file_name().as_bytes());
                if self.cfg.class(&child, false) != Class::Ignore {
                    self.add_tree(&child);
                }
            }
        }
    }

    /// Turns events into paths to check (true: recursively); false when
    /// the queue overflowed.
    fn take(&mut self, events: Vec<InotifyEvent>, pending: &mut BTreeMap<Vec<u8>, bool>) -> bool {
        let mut complete = true;
        for ev in events {
            if ev.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                complete = false;
                continue;
            }
            let Some(dir) = self.dirs.get(&ev.wd).cloned() else {
                continue;
            };
            if ev.mask.contains(AddWatchFlags::IN_IGNORED)
                || ev.mask.contains(AddWatchFlags::IN_DELETE_SELF)
            {
                self.dirs.remove(&ev.wd);
                continue;
            }
            let Some(name) = ev.name.as_ref() else {
                continue;
            };
            let path = join(&dir, name.as_bytes());
            if crate::beneath::is_temp_name(name.as_bytes())
                || self.cfg.class(&path, false) == Class::Ignore
            {
                continue;
            }
            let is_dir = ev.mask.contains(AddWatchFlags::IN_ISDIR);
            let appeared = ev.mask.contains(AddWatchFlags::IN_CREATE)
                || ev.mask.contains(AddWatchFlags::IN_MOVED_TO);
            if is_dir && appeared {
                // watched at once; what it already holds is checked
                self.add_tree(&path);
            }
            // a directory that came or went: everything below it too
            let recursive = is_dir
                && (appeared
                    || ev.mask.contains(AddWatchFlags::IN_MOVED_FROM)
                    || ev.mask.contains(AddWatchFlags::IN_DELETE));
            *pending.entry(path).or_default() |= recursive;
        }
        complete
    }
}

pub struct WatchOptions<'a> {
    pub delay: Duration,
    pub check: &'a CheckOptions,
    pub update: &'a UpdateOptions<'a>,
    pub client: &'a ClientOptions<'a>,
    /// Whether the configuration as it is now on disk loads (printing
    /// what is wrong with it): asked on SIGHUP before the restart.
    pub config_loads: &'a (dyn Fn() -> bool + Sync),
}

/// What reaches the loop that owns the database.
enum Msg {
    Events(Vec<InotifyEvent>),
    /// a worker's database request
    Db(Req),
    /// a worker's start-up catch-up ended
    CaughtUp(usize),
    /// a worker's push ended
    Pushed(usize, Result<Errors, Fatal>),
}

impl From<Req> for Msg {
    fn from(r: Req) -> Msg {
        Msg::Db(r)
    }
}

/// A file as a push read its row, by its identity on disk: inode and
/// change time to the nanosecond (None: absent). Any newer version, from
/// an edit or from this host's server, changes them, even one written in
/// the same second with the same size (whose check text is the same).
type Seen = Option<(u64, i64, i64)>;

fn seen(cfg: &Config, file: &[u8]) -> Seen {
    use std::os::unix::fs::MetadataExt;
    let real = cfg.prefix_decode(file).ok()?;
    std::fs::symlink_metadata(paths::as_path(&real))
        .ok()
        .map(|m| (m.ino(), m.ctime(), m.ctime_nsec()))
}

/// The loop's view of one peer.
struct PeerSlot {
    name: Vec<u8>,
    /// wakes its worker (dropped: the worker ends)
    wake: Option<Sender<()>>,
    /// a push (or the start-up catch-up) runs
    busy: bool,
    /// something changed since its push started
    wanted: bool,
    /// in backoff: the next try, and the wait that led to it
    retry: Option<(Instant, Duration)>,
    /// files it got in the running push
    files: usize,
    /// each file as the running push read its dirty row: a row the push
    /// finishes stays dirty if the file changed meanwhile (an edit, or this
    /// host's server took a newer version, than the push may have read)
    read: FastMap<Vec<u8>, Seen>,
    started: Instant,
    /// the first push ended (for READY=1)
    settled: bool,
}

/// Runs until SIGTERM or SIGINT; the errors met are reported as they
/// happen (a daemon's run has no total). SIGHUP with a configuration that
/// loads ends in [`restart`], which does not return.
pub fn run(cfg: &Config, db: &mut Db, o: &WatchOptions) -> Result<Errors, Fatal> {
    // one daemon per database; the lock goes with the process, so a
    // killed daemon never looks alive to --status
    let _lock = match db.watch_lock_file() {
        Some(path) => Some(lock_watch(&path)?),
        None => None,
    };
    unsafe {
        libc::signal(libc::SIGTERM, on_stop as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_stop as *const () as libc::sighandler_t);
        libc::signal(libc::SIGHUP, on_hup as *const () as libc::sighandler_t);
    }
    // the runs' own lines (per file) need one more -v; -v shows one line
    // per push
    log::set_level_shift(1);
    let fd = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
        .map_err(|e| Fatal::msg(format!("Cannot watch files (inotify_init): {e}")))?;
    let mut w = Watcher {
        cfg,
        fd: &fd,
        dirs: HashMap::new(),
        warned: false,
    };
    // watches first: nothing changed during the start-up is missed
    // from `/`: the parents of included paths are watched too (only to see
    // an included directory appear or go)
    w.add_tree(b"/");
    log::note(1, format!("Watching {} directories.", w.dirs.len()));
    Checker::new(cfg, db, o.check).check_real(b"/", true)?;
    db.commit()?;
    let only = o.update.only_peers.as_deref();
    let peers: Vec<Vec<u8>> = cfg
        .peers()
        .into_iter()
        .map(|p| p.name)
        .filter(|n| only.is_none_or(|only| only.iter().any(|o| o.eq_ignore_ascii_case(n))))
        .collect();
    let mut catchup_dbs = Vec::new();
    for _ in &peers {
        catchup_dbs.push(db.reopen()?);
    }
    let (tx, rx) = channel::<Msg>();
    let reload = std::thread::scope(|scope| -> Result<bool, Fatal> {
        {
            let tx = tx.clone();
            let fd = &fd;
            scope.spawn(move || read_events(fd, tx));
        }
        let mut slots = Vec::new();
        for (index, (name, cdb)) in peers.iter().zip(catchup_dbs).enumerate() {
            let (wake, woken) = channel();
            let tx = tx.clone();
            scope.spawn(move || worker(cfg, o, index, name, cdb, woken, tx));
            slots.push(PeerSlot {
                name: name.clone(),
                wake: Some(wake),
                busy: true,
                wanted: true,
                retry: None,
                files: 0,
                read: FastMap::default(),
                started: Instant::now(),
                settled: false,
            });
        }
        drop(tx);
        let mut l = Loop {
            cfg,
            o,
            w,
            slots,
            pending: BTreeMap::new(),
            first_event: None,
            look_again: None,
            parked: FastMap::default(),
            // no peer to wait for: the start-up is over
            ready: peers.is_empty(),
        };
        if l.ready {
            notify("READY=1");
        }
        let reload = l.serve(db, &rx)?;
        if reload {
            RELOAD.store(true, Ordering::Relaxed);
        }
        STOP.store(true, Ordering::Relaxed);
        l.finish(db, &rx)?;
        Ok(reload)
    })?;
    if reload {
        restart();
    }
    log::note(1, "Stopped by a signal.");
    Ok(Errors::default())
}

struct Loop<'a> {
    cfg: &'a Config,
    o: &'a WatchOptions<'a>,
    w: Watcher<'a>,
    slots: Vec<PeerSlot>,
    /// paths to check (true: with what is below them)
    pending: BTreeMap<Vec<u8>, bool>,
    first_event: Option<Instant>,
    /// when the peers look at their dirty rows again after a check
    look_again: Option<Instant>,
    /// files in a conflict no `auto` rule resolved, as they were then: not
    /// sent to any peer until they change (retrying would only make the
    /// other side mark the file again for every third peer and send it
    /// there, and the third peers would flip between the two versions)
    parked: FastMap<Vec<u8>, Seen>,
    /// READY=1 was sent
    ready: bool,
}

impl Loop<'_> {
    /// Until a signal ends the daemon: true for SIGHUP with a
    /// configuration that loads.
    fn serve(&mut self, db: &mut Db, rx: &Receiver<Msg>) -> Result<bool, Fatal> {
        loop {
            if STOP.load(Ordering::Relaxed) {
                return Ok(false);
            }
            if RELOAD.swap(false, Ordering::Relaxed) {
                log::note(1, "SIGHUP: loading the configuration again.");
                if (self.o.config_loads)() {
                    return Ok(true);
                }
                log::debug(
                    0,
                    "The configuration does not load; the daemon goes on with the one it has.",
                );
            }
            let wait = self.next_deadline().map_or(TICK, |at| {
                at.saturating_duration_since(Instant::now()).min(TICK)
            });
            match rx.recv_timeout(wait) {
                Ok(m) => self.handle(db, m)?,
                Err(RecvTimeoutError::Timeout) => {
                    // quiet: let the local server (another process) write
                    db.commit()?;
                }
                Err(RecvTimeoutError::Disconnected) => return Ok(false),
            }
            if self
                .first_event
                .is_some_and(|t| t.elapsed() >= self.o.delay)
            {
                let pending = std::mem::take(&mut self.pending);
                let mut checker = Checker::new(self.cfg, db, self.o.check);
                for (path, recursive) in pending {
                    checker.check_real(&path, recursive)?;
                }
                drop(checker);
                self.unpark(db)?;
                db.commit()?;
                self.first_event = None;
                for i in 0..self.slots.len() {
                    self.wake(i, false);
                }
                // this host's server marks rows too (a conflict it lost, a
                // forced version it took) and commits when its session
                // ends: the peers look at their rows once more after that
                self.look_again = Some(Instant::now() + LOOK_AGAIN);
            }
            if self.look_again.is_some_and(|t| Instant::now() >= t) {
                self.look_again = None;
                for i in 0..self.slots.len() {
                    self.wake(i, false);
                }
            }
            let now = Instant::now();
            for i in 0..self.slots.len() {
                let s = &self.slots[i];
                if !s.busy && s.retry.is_some_and(|(at, _)| now >= at) {
                    self.wake(i, true);
                }
            }
        }
    }

    /// The soonest moment something is due: the end of the delay, or a
    /// peer's retry. (While pushes run, also soon: idle gaps commit.)
    fn next_deadline(&self) -> Option<Instant> {
        let mut at = self.first_event.map(|t| t + self.o.delay);
        if let Some(t) = self.look_again {
            at = Some(at.map_or(t, |a| a.min(t)));
        }
        for s in self.slots.iter().filter(|s| !s.busy) {
            if let Some((r, _)) = s.retry {
                at = Some(at.map_or(r, |a: Instant| a.min(r)));
            }
        }
        if self.slots.iter().any(|s| s.busy) {
            let soon = Instant::now() + Duration::from_millis(50);
            at = Some(at.map_or(soon, |a| a.min(soon)));
        }
        at
    }

    fn handle(&mut self, db: &mut Db, m: Msg) -> Result<(), Fatal> {
        match m {
            Msg::Events(events) => {
                if !self.w.take(events, &mut self.pending) {
                    // directories made while events were lost get watches
                    self.w.add_tree(b"/");
                    log::debug(
                        0,
                        "WARNING: the inotify queue overflowed (fs.inotify.max_queued_events): \
                         rescanning everything; raise it, e.g. 'sysctl fs.inotify.max_queued_events=1048576'.",
                    );
                    self.pending.clear();
                    self.pending.insert(b"/".to_vec(), true);
                }
                if !self.pending.is_empty() {
                    self.first_event.get_or_insert_with(Instant::now);
                }
            }
            Msg::Db(req) => self.request(db, req)?,
            Msg::CaughtUp(i) => {
                // the catch-up wrote through its own connection; the push
                // follows in the same worker
                self.slots[i].started = Instant::now();
            }
            Msg::Pushed(i, result) => {
                db.commit()?;
                self.pushed(db, i, result)?;
                if !self.ready && self.slots.iter().all(|s| s.settled) {
                    self.ready = true;
                    notify("READY=1");
                }
            }
        }
        Ok(())
    }

    /// Files held back by a conflict that changed since (the winner's
    /// version arrived, or someone edited them): marked dirty for every
    /// peer, so that the version this host now has reaches the peers that
    /// got the losing one (no other host sends it to them).
    fn unpark(&mut self, db: &mut Db) -> Result<(), Fatal> {
        let mut changed = Vec::new();
        for (file, then) in &self.parked {
            if seen(self.cfg, file) != *then {
                changed.push(file.clone());
            }
        }
        let opts = crate::mark::MarkOptions { force_new: false };
        for file in changed {
            self.parked.remove(&file);
            crate::mark::mark_dirty(self.cfg, db, &opts, &file, None, None)?;
        }
        Ok(())
    }

    /// A database request of a peer's worker.
    fn request(&mut self, db: &mut Db, req: Req) -> Result<(), Fatal> {
        let slot =
            |slots: &mut Vec<PeerSlot>, peer: &[u8]| slots.iter().position(|s| s.name == peer);
        match req {
            Req::Rows { peer, reply } if let Some(i) = slot(&mut self.slots, &peer) => {
                let s = &mut self.slots[i];
                let parked = &self.parked;
                let mut held = Vec::new();
                let rows = log::capture(&mut held, || -> Result<Vec<DirtyRow>, Fatal> {
                    let mut out = Vec::new();
                    for row in db.dirty_rows_for(&peer)? {
                        let now = seen(self.cfg, &row.filename);
                        // (one that changed leaves the list in `unpark`)
                        if !row.forced && parked.get(&row.filename) == Some(&now) {
                            continue;
                        }
                        s.read.insert(row.filename.clone(), now);
                        out.push(row);
                    }
                    Ok(out)
                });
                let _ = reply.send((rows, held));
            }
            Req::Done { file, peer } if let Some(i) = slot(&mut self.slots, &peer) => {
                self.slots[i].files += 1;
                // under the write lock: this host's server cannot record a
                // newer version between the look and the delete
                db.begin_write()?;
                if let Some(then) = self.slots[i].read.get(&file)
                    && seen(self.cfg, &file) != *then
                {
                    // a newer version: it goes again
                    self.slots[i].wanted = true;
                    return Ok(());
                }
                update::apply_request(self.cfg, db, Req::Done { file, peer })?;
            }
            Req::Refused { file, peer, reply } if let Some(i) = slot(&mut self.slots, &peer) => {
                if reply.starts_with(protocol::ERR_CONFLICT.as_bytes()) {
                    let then = match self.slots[i].read.get(&file) {
                        Some(t) => *t,
                        None => seen(self.cfg, &file),
                    };
                    self.parked.insert(file, then);
                }
            }
            other => {
                if let Err(f) = update::apply_request(self.cfg, db, other) {
                    log::debug(0, &f.0);
                }
            }
        }
        Ok(())
    }

    /// A push ended: record it, log one line, and decide when the peer is
    /// tried again.
    fn pushed(
        &mut self,
        db: &mut Db,
        i: usize,
        result: Result<Errors, Fatal>,
    ) -> Result<(), Fatal> {
        let cfg = self.cfg;
        let s = &mut self.slots[i];
        let parked = &self.parked;
        s.busy = false;
        s.settled = true;
        let ms = s.started.elapsed().as_millis();
        let outcome = match &result {
            Ok(e) => update::outcome(e),
            Err(f) => {
                log::debug(0, &f.0);
                Err(f.0.clone())
            }
        };
        status::record(db, &[(s.name.clone(), outcome.clone())]);
        s.read = FastMap::default();
        // what stays dirty, apart from conflicts waiting for a change
        let mut left = 0;
        for r in db.dirty_rows_for(&s.name)? {
            let waits = !r.forced
                && parked
                    .get(&r.filename)
                    .is_some_and(|then| *then == seen(cfg, &r.filename));
            if cfg.selects(&r.filename, false) && !waits {
                left += 1;
            }
        }
        let files = std::mem::take(&mut s.files);
        let mut line = msg!(
            "Pushed ",
            files.to_string(),
            " files to ",
            &s.name,
            " in ",
            ms.to_string(),
            " ms"
        );
        if left == 0 || (outcome.is_ok() && s.wanted) {
            if files > 0 {
                line.push(b'.');
                log::note(1, line);
            }
            s.retry = None;
            // changed meanwhile (or kept dirty for that reason): again now
            if std::mem::take(&mut s.wanted) {
                self.wake(i, false);
            }
            return Ok(());
        }
        let wait = s
            .retry
            .map(|(_, w)| (w * 2).min(BACKOFF_MAX))
            .unwrap_or(Duration::from_secs(1));
        s.retry = Some((Instant::now() + wait, wait));
        line.extend_from_slice(&msg!("; ", left.to_string(), " stay dirty"));
        if let Err(e) = &outcome {
            line.extend_from_slice(&msg!(" (", e, ")"));
        }
        line.extend_from_slice(&msg!(", next try in ", wait.as_secs().to_string(), " s."));
        log::note(1, line);
        Ok(())
    }

    /// Starts a push to peer `i` unless one runs (then it follows) or the
    /// peer is in backoff (`retry`: its time has come).
    fn wake(&mut self, i: usize, retry: bool) {
        let s = &mut self.slots[i];
        if s.busy {
            s.wanted = true;
            return;
        }
        if s.retry.is_some() && !retry {
            // in backoff: its next try takes this change along
            return;
        }
        s.busy = true;
        s.wanted = false;
        s.files = 0;
        s.started = Instant::now();
        if let Some(tx) = &s.wake {
            let _ = tx.send(());
        }
    }

    /// After a stop signal: the workers end after their push; what they
    /// report in the grace time is recorded, then everything is committed.
    /// A push still running then (a hung peer) is cut off: its rows stay
    /// dirty, which only means those files go again.
    fn finish(&mut self, db: &mut Db, rx: &Receiver<Msg>) -> Result<(), Fatal> {
        for s in &mut self.slots {
            s.wake = None;
        }
        let until = Instant::now() + STOP_GRACE;
        while self.slots.iter().any(|s| s.busy) {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match rx.recv_timeout(left) {
                Ok(Msg::Events(_)) => {}
                Ok(m) => self.handle(db, m)?,
                Err(_) => break,
            }
        }
        db.commit()?;
        if self.slots.iter().any(|s| s.busy) {
            // a worker waits on a hung peer: leave without joining it
            if RELOAD.load(Ordering::Relaxed) {
                restart();
            }
            log::note(1, "Stopped by a signal.");
            std::process::exit(0);
        }
        Ok(())
    }
}

/// Reads inotify events and hands them to the loop until the daemon stops.
fn read_events(fd: &Inotify, tx: Sender<Msg>) {
    while !STOP.load(Ordering::Relaxed) {
        let mut pfd = libc::pollfd {
            fd: fd.as_fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        unsafe { libc::poll(&mut pfd, 1, TICK.as_millis() as i32) };
        while let Ok(events) = fd.read_events() {
            if events.is_empty() || tx.send(Msg::Events(events)).is_err() {
                break;
            }
        }
    }
}

/// One peer's worker: first a catch-up from it (on its own database
/// connection), then a push each time the loop wakes it.
fn worker(
    cfg: &Config,
    o: &WatchOptions,
    index: usize,
    peer: &[u8],
    mut cdb: Db,
    woken: Receiver<()>,
    tx: Sender<Msg>,
) {
    let only = [peer.to_vec()];
    let _ = crate::catchup::ask(cfg, &mut cdb, o.client, Some(&only), false);
    drop(cdb);
    if tx.send(Msg::CaughtUp(index)).is_err() {
        return;
    }
    let uopts = UpdateOptions {
        dry_run: false,
        recursive: false,
        only_peers: Some(only.to_vec()),
        args: Vec::new(),
        client: o.client,
    };
    loop {
        let mut proxy: Proxy<Msg> = Proxy::new(tx.clone());
        let result = update::push_peer(cfg, &mut proxy, &uopts, peer);
        if tx.send(Msg::Pushed(index, result)).is_err() || woken.recv().is_err() {
            return;
        }
        while woken.try_recv().is_ok() {}
    }
}

/// Takes the daemon's lock beside the database (and writes its pid there
/// for people); Err when another daemon holds it.
fn lock_watch(path: &std::path::Path) -> Result<std::fs::File, Fatal> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| {
            Fatal::msg(format!(
                "Cannot open {}: {}",
                path.display(),
                log::strerror(&e)
            ))
        })?;
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(Fatal::msg(format!(
            "Another csync2 --watch runs on this database (it holds {}).",
            path.display()
        )));
    }
    let _ = f.set_len(0);
    let _ = writeln!(f, "{}", std::process::id());
    Ok(f)
}

/// Tells systemd (`Type=notify`) how the daemon is: `READY=1` after the
/// start-up push, `RELOADING=1` before a restart for SIGHUP. To
/// `$NOTIFY_SOCKET`: a path, or `@name` in the abstract namespace.
fn notify(state: &str) {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let bytes = target.as_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name),
        None => SocketAddr::from_pathname(paths::as_path(bytes)),
    };
    let sent = UnixDatagram::unbound()
        .and_then(|s| addr.and_then(|a| s.send_to_addr(state.as_bytes(), &a)));
    if let Err(e) = sent {
        log::debug(
            1,
            format!(
                "Cannot notify systemd (NOTIFY_SOCKET): {}",
                log::strerror(&e)
            ),
        );
    }
}

/// SIGHUP: the same program again with the same arguments and pid (the
/// database is committed, the lock and every other descriptor close on
/// exec). Only returns... never: if exec fails the daemon exits 1.
fn restart() -> ! {
    use std::ffi::CString;
    notify("RELOADING=1");
    log::note(1, "Restarting with the new configuration.");
    let args: Vec<CString> = std::env::args_os()
        .filter_map(|a| CString::new(a.as_bytes()).ok())
        .collect();
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    // /proc/self/exe: this very program, even if its file was replaced
    unsafe { libc::execv(c"/proc/self/exe".as_ptr(), argv.as_ptr()) };
    let e = std::io::Error::last_os_error();
    log::debug(
        0,
        format!(
            "Cannot restart (exec /proc/self/exe): {}",
            log::strerror(&e)
        ),
    );
    std::process::exit(1);
}
