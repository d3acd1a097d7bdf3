//! `-x` towards csync2-rs peers: new and changed files go out while the
//! check is still walking the tree, one thread per peer, so the peer
//! writes while this host stats.
//!
//! Only the plain cases are sent here: an `X-STAT` that finds nothing, or
//! an entry of the same type, then `X-PUT` (or `SETIME` when only the
//! time differs). Everything else (conflicts, type changes, missing
//! parents, rsync deltas, errors) is left alone, silently, for the update
//! that follows the check: it goes through every dirty row as usual and
//! counts a row this stream finished as done, printing the messages held
//! for it at its place. The output, the databases and the peer's tree end
//! up as without the stream; only the peer's order of writes differs.

use super::pipeline::{REPLY_BUDGET, WHOLE_FILE_MAX, stat_line, write_change};
use crate::client::{self, ClientOptions, OpenError, Session};
use crate::config::Config;
use crate::db::Db;
use crate::fsutil::{self, Stat};
use crate::log::{self, Held};
use crate::protocol::conn::ConnError;
use crate::protocol::{self, FileKind, StatAnswer, Status};
use crate::{Fatal, checktxt, msg};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::mpsc::{
    Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError, sync_channel,
};
use std::thread::{Scope, ScopedJoinHandle};
use std::time::{Duration, Instant};

/// Files gathered before the `X-STAT`s go out: the peer syncs its file
/// systems each time its input runs dry, so a trickle would cost a sync
/// per file.
const BURST: usize = 128;
/// How long a burst waits to fill up.
const GATHER: Duration = Duration::from_millis(40);
/// Files the check may be ahead of a stream. A stream that falls further
/// behind (a first push of a big tree) stops taking files, and the update
/// sends the rest: memory stays bounded, and the check never waits.
const BACKLOG: usize = 4096;

/// A file the check found new or changed.
struct Item {
    file: Vec<u8>,
    myname: Vec<u8>,
}

/// What the stream to one peer left for the update.
pub struct Streamed {
    /// the session, to go on with (None: broken, open again)
    pub session: Option<Result<Session, OpenError>>,
    /// the stream's own messages (opening the session, wire lines)
    pub held: Vec<Held>,
    /// files the peer acknowledged: file → (the HELLO name, its messages)
    pub done: HashMap<Vec<u8>, (Vec<u8>, Vec<Held>)>,
    /// when the session was last used
    last: Instant,
}

/// A session idle for longer than this when the check ends is closed and
/// the update opens a new one (the peer or the network may have dropped
/// it meanwhile: our server's idle timeout is 600 s).
const STALE: Duration = Duration::from_secs(30);

/// Starts a thread per peer as the check finds files for it.
pub struct Streamer<'scope, 'env> {
    scope: &'scope Scope<'scope, 'env>,
    cfg: &'env Config,
    client: &'env ClientOptions<'env>,
    only_peers: Option<&'env [Vec<u8>]>,
    /// pinned certificates of the peers (TLS peers without one are not
    /// streamed to: pinning writes the database the check holds)
    pins: HashMap<Vec<u8>, Vec<u8>>,
    /// per peer: where its files go (None: not streamed)
    peers: HashMap<Vec<u8>, Option<SyncSender<Item>>>,
    threads: Vec<(Vec<u8>, ScopedJoinHandle<'scope, Streamed>)>,
}

impl<'scope, 'env> Streamer<'scope, 'env> {
    pub fn new(
        scope: &'scope Scope<'scope, 'env>,
        cfg: &'env Config,
        db: &Db,
        client: &'env ClientOptions<'env>,
        only_peers: Option<&'env [Vec<u8>]>,
    ) -> Result<Self, Fatal> {
        let mut pins = HashMap::new();
        for g in cfg.matching_groups(false) {
            for h in &g.hosts {
                if !pins.contains_key(&h.name)
                    && let Some(c) = db.peer_cert(&h.name)?
                {
                    pins.insert(h.name.clone(), c);
                }
            }
        }
        Ok(Streamer {
            scope,
            cfg,
            client,
            only_peers,
            pins,
            peers: HashMap::new(),
            threads: Vec::new(),
        })
    }

    /// The check found `file` new or changed: send it to its peers.
    pub fn changed(&mut self, file: &[u8]) {
        for (peer, myname) in self.cfg.peers_of(file, None) {
            if !self.peers.contains_key(&peer) {
                let tx = self.spawn(&peer);
                self.peers.insert(peer.clone(), tx);
            }
            let slot = self.peers.get_mut(&peer).expect("inserted");
            let Some(tx) = slot else { continue };
            let item = Item {
                file: file.to_vec(),
                myname,
            };
            match tx.try_send(item) {
                Ok(()) => {}
                // too far behind, or stopped: the update sends the rest
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => *slot = None,
            }
        }
    }

    fn spawn(&mut self, peer: &[u8]) -> Option<SyncSender<Item>> {
        if let Some(only) = self.only_peers
            && !only.iter().any(|p| p.eq_ignore_ascii_case(peer))
        {
            return None;
        }
        let plain = client::plain_allowed(self.cfg, peer);
        let pin = self.pins.get(peer).cloned();
        if !plain && pin.is_none() {
            return None;
        }
        let (tx, rx) = sync_channel(BACKLOG);
        let (cfg, copts, name) = (self.cfg, self.client, peer.to_vec());
        let h = self
            .scope
            .spawn(move || run(cfg, copts, &name, pin.as_deref(), rx));
        self.threads.push((peer.to_vec(), h));
        Some(tx)
    }

    /// Waits for every stream to finish what it started.
    pub fn finish(self) -> HashMap<Vec<u8>, Streamed> {
        drop(self.peers);
        let mut out = HashMap::new();
        for (peer, h) in self.threads {
            let Ok(mut s) = h.join() else { continue };
            if s.last.elapsed() > STALE
                && let Some(Ok(session)) = s.session.take()
            {
                log::capture(&mut s.held, || session.close());
            }
            out.insert(peer, s);
        }
        out
    }
}

fn run(
    cfg: &Config,
    copts: &ClientOptions,
    peer: &[u8],
    pin: Option<&[u8]>,
    rx: Receiver<Item>,
) -> Streamed {
    let mut out = Streamed {
        session: None,
        held: Vec::new(),
        done: HashMap::new(),
        last: Instant::now(),
    };
    // the session's messages (and with -vvv its wire lines) are printed
    // where the update begins with this peer, each file's at its place
    let mut held = Vec::new();
    out.session = log::capture(&mut held, || {
        stream(cfg, copts, peer, pin, rx, &mut out.done, &mut out.last)
    });
    out.held = held;
    out
}

/// Opens the session and streams; None: it broke (the update opens a new
/// one; what was acknowledged stays done).
fn stream(
    cfg: &Config,
    copts: &ClientOptions,
    peer: &[u8],
    pin: Option<&[u8]>,
    rx: Receiver<Item>,
    done: &mut HashMap<Vec<u8>, (Vec<u8>, Vec<Held>)>,
    last: &mut Instant,
) -> Option<Result<Session, OpenError>> {
    let opened = client::open_pinning(cfg, peer, copts, &mut |der| {
        Ok(pin.is_some_and(|p| crate::tls::matches_pinned(p, der)))
    });
    let Ok(mut session) = opened else {
        return Some(opened);
    };
    session.negotiate_pipeline().ok()?;
    *last = Instant::now();
    if session.pipelined {
        let mut s = Stream {
            cfg,
            peer,
            session: &mut session,
            q: VecDeque::new(),
            ready: VecDeque::new(),
            used: 0,
            creating: HashSet::new(),
            refused: HashSet::new(),
            plain_dirs: Default::default(),
            done,
            last,
        };
        s.run(&rx).ok()?;
    }
    Some(Ok(session))
}

/// One file on its way.
struct Job {
    file: Vec<u8>,
    myname: Vec<u8>,
    real: Vec<u8>,
    key: Vec<u8>,
    st: Stat,
    target: Option<Vec<u8>>,
    text: Vec<u8>,
    held: Vec<Held>,
}

enum Wait {
    Stat(Job),
    Change(Job),
}

struct Stream<'a> {
    cfg: &'a Config,
    peer: &'a [u8],
    session: &'a mut Session,
    q: VecDeque<(Wait, usize)>,
    /// changes decided, in file order, waiting for reply budget
    ready: VecDeque<(Job, bool)>,
    used: usize,
    /// directories whose creation went out
    creating: HashSet<Vec<u8>>,
    /// HELLO names the peer refused
    refused: HashSet<Vec<u8>>,
    /// directories seen not to be symlinks
    plain_dirs: crate::fasthash::FastMap<Vec<u8>, bool>,
    done: &'a mut HashMap<Vec<u8>, (Vec<u8>, Vec<Held>)>,
    /// the last reply
    last: &'a mut Instant,
}

impl Stream<'_> {
    fn run(&mut self, rx: &Receiver<Item>) -> Result<(), ConnError> {
        let mut pending: VecDeque<Item> = VecDeque::new();
        let mut open = true;
        loop {
            if open {
                open = gather(rx, &mut pending, self.q.is_empty());
            }
            if pending.is_empty() && self.q.is_empty() {
                if open {
                    continue;
                }
                return Ok(());
            }
            while self.used < REPLY_BUDGET
                && let Some(item) = pending.pop_front()
            {
                if self.session.hello() != Some(item.myname.as_slice()) {
                    // a new identity: HELLO once everything before is done
                    while !self.q.is_empty() {
                        self.reply()?;
                    }
                    if self.refused.contains(&item.myname) {
                        continue;
                    }
                    if !self.session.identify(&item.myname)? {
                        self.refused.insert(item.myname);
                        continue;
                    }
                }
                self.start(item)?;
            }
            // the replies up to the last X-STAT: they decide what goes next
            while self.q.iter().any(|(w, _)| matches!(w, Wait::Stat(_))) {
                self.reply()?;
            }
            if !self.q.is_empty() && (pending.is_empty() || self.used >= REPLY_BUDGET) {
                // nothing new to send: wait for a change to finish
                self.reply()?;
            }
        }
    }

    /// Sends `X-STAT` for a file (or nothing: the update deals with it).
    fn start(&mut self, item: Item) -> Result<(), ConnError> {
        let Some(key) = super::key_for(self.cfg, &item.file, self.peer) else {
            return Ok(());
        };
        let Ok(real) = self.cfg.prefix_decode(&item.file) else {
            return Ok(());
        };
        let root = fsutil::prefix_root_len(&item.file, &real);
        let Ok(st) = fsutil::lstat(&real) else {
            return Ok(());
        };
        if fsutil::under_symlink_cached(&real, root, &mut self.plain_dirs) {
            return Ok(());
        }
        let target = if st.is_symlink() {
            fsutil::readlink(&real)
        } else {
            None
        };
        let text = checktxt::checktxt(&st, target.as_deref(), &self.cfg.ignore, None);
        let mut job = Job {
            file: item.file,
            myname: item.myname,
            real,
            key: key.to_vec(),
            st,
            target,
            text,
            held: Vec::new(),
        };
        // the pipeline's first message for the file
        log::capture(&mut job.held, || {
            log::debug(1, msg!("Updating ", &job.file, " on ", self.peer, " ..."))
        });
        let (line, cost) = stat_line(&job.key, &job.file, &job.text);
        self.session.conn.write_all(&line)?;
        self.used += cost;
        self.q.push_back((Wait::Stat(job), cost));
        Ok(())
    }

    fn reply(&mut self) -> Result<(), ConnError> {
        let Some((w, cost)) = self.q.pop_front() else {
            return Ok(());
        };
        self.used -= cost;
        *self.last = Instant::now();
        match w {
            Wait::Stat(job) => self.stat_reply(job)?,
            Wait::Change(job) => {
                let r = self.session.conn.read_status()?;
                if protocol::classify(&r) == Status::Ok {
                    self.done.insert(job.file, (job.myname, job.held));
                } else {
                    self.creating.remove(&job.file);
                }
            }
        }
        self.send_ready()
    }

    fn stat_reply(&mut self, mut job: Job) -> Result<(), ConnError> {
        let (text, digest) = match StatAnswer::read(&mut self.session.conn)? {
            StatAnswer::ParentMissing if self.creating.contains(fsutil::parent_dir(&job.file)) => {
                (b"---".to_vec(), Vec::new())
            }
            StatAnswer::Found(t, d) => (t, d),
            StatAnswer::ParentMissing | StatAnswer::Refused(_) => return Ok(()),
        };
        if text != b"---" && FileKind::of_check_text(&text) != FileKind::of_check_text(&job.text) {
            return Ok(());
        }
        let mut same = text == job.text;
        if same && job.st.is_file() {
            match super::pipeline::same_content(&job.file, &job.real, &digest) {
                Ok(s) => same = s,
                Err(_) => return Ok(()),
            }
        }
        if same {
            log::capture(&mut job.held, || {
                log::debug(1, "File is already up to date on peer.")
            });
            if job.st.is_symlink() {
                self.done.insert(job.file, (job.myname, job.held));
            } else {
                self.ready.push_back((job, false));
            }
            return Ok(());
        }
        if job.st.is_file() && text != b"---" && job.st.size > WHOLE_FILE_MAX {
            return Ok(());
        }
        if job.st.is_dir() {
            self.creating.insert(job.file.clone());
        }
        self.ready.push_back((job, true));
        Ok(())
    }

    /// Sends the decided changes, in order, as far as the budget allows.
    fn send_ready(&mut self) -> Result<(), ConnError> {
        while self.used < REPLY_BUDGET
            && let Some((job, put)) = self.ready.pop_front()
        {
            let names = (&job.file[..], &job.real[..], &job.key[..]);
            let conn = &mut self.session.conn;
            match write_change(conn, names, &job.st, job.target.as_deref(), put)? {
                Ok(cost) => {
                    self.used += cost;
                    self.q.push_back((Wait::Change(job), cost));
                }
                // unreadable: the update reports it
                Err(_) => {
                    self.creating.remove(&job.file);
                }
            }
        }
        Ok(())
    }
}

/// Takes what the check found: waits for a first file when nothing is in
/// flight, then up to [`GATHER`] for a burst. false: the check is over.
fn gather(rx: &Receiver<Item>, pending: &mut VecDeque<Item>, idle: bool) -> bool {
    if idle && pending.is_empty() {
        match rx.recv() {
            Ok(i) => pending.push_back(i),
            Err(_) => return false,
        }
    }
    let until = Instant::now() + GATHER;
    while pending.len() < BURST {
        let r = if idle {
            rx.recv_timeout(until.saturating_duration_since(Instant::now()))
        } else {
            rx.try_recv().map_err(|e| match e {
                TryRecvError::Empty => RecvTimeoutError::Timeout,
                TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
            })
        };
        match r {
            Ok(i) => pending.push_back(i),
            Err(RecvTimeoutError::Timeout) => return true,
            Err(RecvTimeoutError::Disconnected) => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(n: u8) -> Item {
        Item {
            file: vec![b'/', n],
            myname: b"a".to_vec(),
        }
    }

    #[test]
    fn gather_takes_a_burst_and_sees_the_end() {
        let (tx, rx) = sync_channel(BACKLOG);
        let mut pending = VecDeque::new();
        // busy (replies in flight): takes what is there, never waits
        assert!(gather(&rx, &mut pending, false));
        assert!(pending.is_empty());
        for n in 0..3 {
            tx.send(item(n)).unwrap();
        }
        assert!(gather(&rx, &mut pending, false));
        assert_eq!(pending.len(), 3);
        // idle: waits for the first, then at most GATHER for more
        tx.send(item(3)).unwrap();
        pending.clear();
        let t = Instant::now();
        assert!(gather(&rx, &mut pending, true));
        assert_eq!(pending.len(), 1);
        assert!(t.elapsed() >= GATHER);
        // the check is over: what was sent is still taken
        tx.send(item(4)).unwrap();
        drop(tx);
        pending.clear();
        assert!(!gather(&rx, &mut pending, true));
        assert_eq!(pending.len(), 1);
    }

    #[test]
    fn gather_stops_at_a_full_burst() {
        let (tx, rx) = sync_channel(BACKLOG);
        for n in 0..(BURST + 5) {
            tx.send(item(n as u8)).unwrap();
        }
        let mut pending = VecDeque::new();
        assert!(gather(&rx, &mut pending, true));
        assert_eq!(pending.len(), BURST);
    }
}
