//! `--watch` (ours): a foreground daemon that replaces lsyncd + cron. At
//! start a full check of every configured path (as `-cr /`), a catch-up
//! from the peers, and a push of everything dirty; then inotify events on
//! the included directories, gathered for `--delay` seconds after the
//! first one, decide which paths are checked again before the dirty rows
//! are pushed. Events are hints and the database is the truth: a queue
//! overflow rescans everything, a peer that is down keeps its rows dirty
//! and is retried with a backoff up to 60 s without any new event. What this
//! host's server writes (files from peers) is already in the database, so
//! the check finds nothing to send back.

use crate::Fatal;
use crate::check::{CheckOptions, Checker};
use crate::client::ClientOptions;
use crate::config::{Config, matcher::Class};
use crate::db::Db;
use crate::fasthash::FastMap;
use crate::log::{self, Errors};
use crate::paths::{self, join};
use crate::update::UpdateOptions;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use std::collections::{BTreeMap, HashMap};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// The longest wait before a peer that failed is tried again.
const BACKOFF_MAX: Duration = Duration::from_secs(60);

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
    fd: Inotify,
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
}

/// The directories to watch from: the shortest paths the configuration
/// includes (their parents are only stepped through).
fn roots(cfg: &Config) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut todo = vec![b"/".to_vec()];
    while let Some(d) = todo.pop() {
        match cfg.class(&d, false) {
            Class::Member => out.push(d),
            Class::StepInto => {
                if let Ok(entries) = std::fs::read_dir(paths::as_path(&d)) {
                    for e in entries.flatten() {
                        if e.file_type().is_ok_and(|t| t.is_dir()) {
                            todo.push(join(&d, e.file_name().as_bytes()));
                        }
                    }
                }
            }
            Class::Ignore => {}
        }
    }
    out
}

pub struct WatchOptions<'a> {
    pub delay: Duration,
    pub check: &'a CheckOptions,
    pub update: &'a UpdateOptions<'a>,
    pub client: &'a ClientOptions<'a>,
}

/// Runs until SIGTERM or SIGINT; the errors met are reported as they
/// happen (a daemon's run has no total).
pub fn run(cfg: &Config, db: &mut Db, o: &WatchOptions) -> Result<Errors, Fatal> {
    // one daemon per database; the lock goes with the process, so a
    // killed daemon never looks alive to --status
    let _lock = match db.watch_lock_file() {
        Some(path) => Some(lock_watch(&path)?),
        None => None,
    };
    unsafe {
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
    }
    let fd = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
        .map_err(|e| Fatal::msg(format!("Cannot watch files (inotify_init): {e}")))?;
    let mut w = Watcher {
        cfg,
        fd,
        dirs: HashMap::new(),
        warned: false,
    };
    // watches first: nothing changed during the start-up is missed
    for r in roots(cfg) {
        w.add_tree(&r);
    }
    log::debug(1, format!("Watching {} directories.", w.dirs.len()));
    Checker::new(cfg, db, o.check).check_real(b"/", true)?;
    db.commit()?;
    let only = o.update.only_peers.as_deref();
    // a catch-up from the peers: what they hold for this host comes now
    let _ = crate::catchup::ask(cfg, db, o.client, only, false)?;
    let mut retry = push(cfg, db, o, None)?;
    notify_ready();
    let mut pending: BTreeMap<Vec<u8>, bool> = BTreeMap::new();
    let mut first_event: Option<Instant> = None;
    while !STOP.load(Ordering::Relaxed) {
        let mut pfd = libc::pollfd {
            fd: w.fd.as_fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        unsafe { libc::poll(&mut pfd, 1, 100) };
        let mut overflow = false;
        while let Ok(events) = w.fd.read_events() {
            if events.is_empty() {
                break;
            }
            for ev in events {
                if ev.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                    overflow = true;
                    continue;
                }
                let Some(dir) = w.dirs.get(&ev.wd).cloned() else {
                    continue;
                };
                if ev.mask.contains(AddWatchFlags::IN_IGNORED)
                    || ev.mask.contains(AddWatchFlags::IN_DELETE_SELF)
                {
                    w.dirs.remove(&ev.wd);
                    continue;
                }
                let Some(name) = ev.name.as_ref() else {
                    continue;
                };
                let path = join(&dir, name.as_bytes());
                if crate::beneath::is_temp_name(name.as_bytes())
                    || cfg.class(&path, false) == Class::Ignore
                {
                    continue;
                }
                let is_dir = ev.mask.contains(AddWatchFlags::IN_ISDIR);
                let appeared = ev.mask.contains(AddWatchFlags::IN_CREATE)
                    || ev.mask.contains(AddWatchFlags::IN_MOVED_TO);
                if is_dir && appeared {
                    // watched at once; what it already holds is checked
                    w.add_tree(&path);
                }
                let recursive =
                    is_dir && (appeared || ev.mask.contains(AddWatchFlags::IN_MOVED_FROM));
                *pending.entry(path).or_default() |= recursive;
                first_event.get_or_insert_with(Instant::now);
            }
        }
        if overflow {
            log::debug(
                0,
                "WARNING: the inotify queue overflowed (fs.inotify.max_queued_events): \
                 rescanning everything; raise it, e.g. 'sysctl fs.inotify.max_queued_events=1048576'.",
            );
            pending.clear();
            pending.insert(b"/".to_vec(), true);
            first_event.get_or_insert_with(Instant::now);
        }
        let due = first_event.is_some_and(|t| t.elapsed() >= o.delay);
        let retry_due = retry.as_ref().is_some_and(|(at, _)| Instant::now() >= *at);
        if !due && !retry_due {
            continue;
        }
        if due {
            let mut checker = Checker::new(cfg, db, o.check);
            for (path, recursive) in std::mem::take(&mut pending) {
                checker.check_real(&path, recursive)?;
            }
            drop(checker);
            db.commit()?;
            first_event = None;
        }
        retry = push(cfg, db, o, retry.map(|(_, wait)| wait))?;
    }
    log::debug(1, "Stopped by a signal.");
    Ok(Errors::default())
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

/// Tells systemd (`Type=notify`) that the start-up push is done: `READY=1`
/// to `$NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace).
fn notify_ready() {
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
    let sent =
        UnixDatagram::unbound().and_then(|s| addr.and_then(|a| s.send_to_addr(b"READY=1", &a)));
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

/// Pushes what is dirty. Some((when, wait)): a peer kept rows dirty; try
/// again then, doubling the wait (after `last`) up to a minute.
fn push(
    cfg: &Config,
    db: &mut Db,
    o: &WatchOptions,
    last: Option<Duration>,
) -> Result<Option<(Instant, Duration)>, Fatal> {
    let started = Instant::now();
    let errors = crate::update::update(cfg, db, o.update, HashMap::new())?;
    db.commit()?;
    let left: FastMap<Vec<u8>, ()> = db
        .dirty_rows()?
        .into_iter()
        .filter(|r| cfg.selects(&r.filename, false))
        .map(|r| (r.peername, ()))
        .collect();
    log::debug(
        1,
        format!(
            "Pushed in {} ms ({} errors).",
            started.elapsed().as_millis(),
            errors.total()
        ),
    );
    if left.is_empty() {
        return Ok(None);
    }
    let wait = last
        .map(|w| (w * 2).min(BACKOFF_MAX))
        .unwrap_or(Duration::from_secs(1));
    Ok(Some((Instant::now() + wait, wait)))
}
