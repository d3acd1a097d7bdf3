//! Creations and changes sent ahead to a peer that runs our binary
//! (doc/protocol-extension.md). `X-STAT`s run ahead of the replies; the
//! changing requests go out strictly in file order, so the peer applies
//! them in the order the lock-step client would; each file's messages are
//! held and printed in file order too. Whatever needs a round trip per step
//! (forced entries, conflicts, rsync deltas of large files, a missing
//! parent) waits for the pipeline to empty and runs in lock-step.

use super::{Missing, Outcome, PassError, PeerRun, Step, dry_line};
use crate::config::matcher::is_at_or_below;
use crate::db::DirtyRow;
use crate::fsutil::{self, Stat};
use crate::log::{self, Held};
use crate::protocol::conn::{Conn, ConnError};
use crate::protocol::{self, FileKind, Request, StatAnswer, Status, Target};
use crate::{checktxt, msg};
use std::collections::{HashSet, VecDeque};

/// Reply bytes the peer may have queued for us at most. Far below what the
/// two sockets buffer, so the peer never blocks writing while we block
/// writing too.
pub(super) const REPLY_BUDGET: usize = 48 * 1024;
/// Files started but not yet past their turn.
const MAX_AHEAD: usize = 1024;
/// A changed file above this size goes as an rsync delta (lock-step);
/// smaller ones are sent whole.
pub(super) const WHOLE_FILE_MAX: i64 = 256 * 1024;

/// What a file still needs in lock-step.
#[derive(Clone, Copy)]
enum Lock {
    /// the whole lock-step update (forced entries, a missing parent)
    Modify,
    /// the lock-step create step and what follows (rsync delta)
    Apply,
    /// the create step was refused as a conflict
    Resolve,
    /// X-STAT found the parent directory missing
    ParentMissing,
}

/// A changing request ready to go when it is the file's turn.
enum Change {
    Put,
    Setime,
}

enum State {
    /// X-STAT in flight
    Stat,
    Ready(Change),
    /// the change is in flight
    Sent,
    Locked(Lock),
    Finished,
}

struct Job<'r> {
    row: &'r DirtyRow,
    real: Vec<u8>,
    key: Vec<u8>,
    st: Stat,
    target: Option<Vec<u8>>,
    text: Vec<u8>,
    state: State,
    held: Vec<Held>,
}

/// A reply we wait for, in order.
struct Waiting {
    job: usize,
    cost: usize,
}

/// The files of this pass by number; finished ones are dropped from the
/// front, so memory follows the files in flight, not the tree.
struct Jobs<'r> {
    base: usize,
    v: VecDeque<Job<'r>>,
}

impl<'r> Jobs<'r> {
    fn len(&self) -> usize {
        self.base + self.v.len()
    }
    fn push(&mut self, j: Job<'r>) {
        self.v.push_back(j);
    }
    fn get(&self, i: usize) -> Option<&Job<'r>> {
        i.checked_sub(self.base).and_then(|k| self.v.get(k))
    }
    fn truncate(&mut self, n: usize) {
        self.v.truncate(n.saturating_sub(self.base));
    }
    /// Drops the files before `upto`.
    fn trim(&mut self, upto: usize) {
        while self.base < upto && !self.v.is_empty() {
            self.v.pop_front();
            self.base += 1;
        }
    }
}

impl<'r> std::ops::Index<usize> for Jobs<'r> {
    type Output = Job<'r>;
    fn index(&self, i: usize) -> &Job<'r> {
        &self.v[i - self.base]
    }
}

impl std::ops::IndexMut<usize> for Jobs<'_> {
    fn index_mut(&mut self, i: usize) -> &mut Self::Output {
        &mut self.v[i - self.base]
    }
}

struct Pipe<'r> {
    jobs: Jobs<'r>,
    q: VecDeque<Waiting>,
    used: usize,
    /// the next file whose change may go out
    turn: usize,
    /// the next file whose messages may be printed
    emit: usize,
    /// directories whose creation goes out in this pass
    creating: HashSet<Vec<u8>>,
    /// directories that cannot be created here: nothing below is sent
    skip: Vec<Vec<u8>>,
    /// files whose change was refused as a conflict after their turn: they
    /// are resolved in lock-step as soon as the pipeline is empty
    resolve: VecDeque<usize>,
}

impl<'r> PeerRun<'_, '_> {
    pub(super) fn changes_pipelined(
        &mut self,
        changes: Vec<(&'r DirtyRow, Vec<u8>, Stat)>,
    ) -> Result<Option<Vec<u8>>, PassError> {
        let mut p = Pipe {
            jobs: Jobs {
                base: 0,
                v: VecDeque::new(),
            },
            q: VecDeque::new(),
            used: 0,
            turn: 0,
            emit: 0,
            creating: HashSet::new(),
            skip: Vec::new(),
            resolve: VecDeque::new(),
        };
        let mut rows = changes.into_iter().peekable();
        loop {
            if let Some(r) = self.advance(&mut p)? {
                self.emit(&mut p);
                return Ok(Some(r));
            }
            self.emit(&mut p);
            // start more files while the budget allows
            while p.used < REPLY_BUDGET
                && p.jobs.len() - p.turn < MAX_AHEAD
                && !matches!(p.jobs.get(p.turn).map(|j| &j.state), Some(State::Locked(_)))
            {
                let Some((row, _, _)) = rows.peek() else {
                    break;
                };
                if self.session.hello() != Some(row.myname.as_slice()) {
                    // a new identity: HELLO once everything before is done
                    if !p.q.is_empty() || p.turn < p.jobs.len() {
                        break;
                    }
                    if !self.identify(&row.myname)? {
                        // no identity, no further modifications for this peer
                        return Ok(None);
                    }
                }
                let (row, real, st) = rows.next().expect("peeked");
                self.start(&mut p, row, real, st)?;
            }
            if p.q.is_empty() {
                if p.turn < p.jobs.len() || !p.resolve.is_empty() {
                    continue;
                }
                if rows.peek().is_none() {
                    self.emit(&mut p);
                    return Ok(None);
                }
                continue;
            }
            let w = p.q.pop_front().expect("not empty");
            p.used -= w.cost;
            let mut held = std::mem::take(&mut p.jobs[w.job].held);
            let r = log::capture(&mut held, || self.reply(&mut p, w.job));
            p.jobs[w.job].held = held;
            r?;
        }
    }

    /// Prints what finished files held and counts them in the progress.
    fn emit(&mut self, p: &mut Pipe<'r>) {
        let (files, bytes) = p.emit_finished();
        self.progress.done(files, bytes);
    }

    /// Sends the changes whose turn it is and runs lock-step work once the
    /// pipeline is empty. Some(dir): start the pass over (missing parent).
    fn advance(&mut self, p: &mut Pipe<'r>) -> Result<Option<Vec<u8>>, PassError> {
        while p.q.is_empty()
            && let Some(j) = p.resolve.pop_front()
        {
            let mut held = std::mem::take(&mut p.jobs[j].held);
            let r = log::capture(&mut held, || self.lockstep(p, j, Lock::Resolve));
            p.jobs[j].held = held;
            p.jobs[j].state = State::Finished;
            if let Some(dir) = r? {
                return Ok(Some(dir));
            }
        }
        while p.turn < p.jobs.len() {
            let j = p.turn;
            // (a file whose X-STAT is out waits for its reply first)
            if !matches!(p.jobs[j].state, State::Stat)
                && p.skip
                    .iter()
                    .any(|d| is_at_or_below(&p.jobs[j].row.filename, d))
            {
                // the lock-step client never gets to these
                p.jobs[j].held.clear();
                p.jobs[j].state = State::Finished;
                p.turn += 1;
                continue;
            }
            match p.jobs[j].state {
                State::Stat => break,
                State::Sent | State::Finished => p.turn += 1,
                State::Ready(_) => {
                    if p.used >= REPLY_BUDGET {
                        break;
                    }
                    let State::Ready(c) = std::mem::replace(&mut p.jobs[j].state, State::Sent)
                    else {
                        unreachable!()
                    };
                    let mut held = std::mem::take(&mut p.jobs[j].held);
                    let r = log::capture(&mut held, || self.send_change(p, j, c));
                    p.jobs[j].held = held;
                    r?;
                    p.turn += 1;
                }
                State::Locked(how) => {
                    if !p.q.is_empty() {
                        break;
                    }
                    let mut held = std::mem::take(&mut p.jobs[j].held);
                    let r = log::capture(&mut held, || self.lockstep(p, j, how));
                    p.jobs[j].held = held;
                    p.jobs[j].state = State::Finished;
                    p.turn += 1;
                    if let Some(dir) = r? {
                        // later files start over with the pass
                        p.jobs.truncate(j + 1);
                        return Ok(Some(dir));
                    }
                }
            }
        }
        Ok(None)
    }

    /// Starts one file: its checks, then X-STAT. A file not shared with
    /// this peer is finished at once (it keeps its place for the messages).
    fn start(
        &mut self,
        p: &mut Pipe<'r>,
        row: &'r DirtyRow,
        real: Vec<u8>,
        st: Stat,
    ) -> Result<(), PassError> {
        let mut job = Job {
            row,
            real,
            key: Vec::new(),
            st,
            target: None,
            text: Vec::new(),
            state: State::Finished,
            held: Vec::new(),
        };
        if let Some((myname, held)) = self.streamed.remove(&row.filename)
            && myname == row.myname
            && !row.forced
        {
            // sent while the check ran: done as the pipeline would have
            job.held = held;
            self.done(&row.filename)?;
            p.jobs.push(job);
            return Ok(());
        }
        let mut held = Vec::new();
        log::capture(&mut held, || self.begin(p, &mut job))?;
        job.held = held;
        p.jobs.push(job);
        Ok(())
    }

    fn begin(&mut self, p: &mut Pipe<'r>, job: &mut Job<'r>) -> Result<(), PassError> {
        let file = &job.row.filename;
        let Some(key) = self.key_or_skip(file, "Skipping file update ") else {
            return Ok(());
        };
        job.key = key.to_vec();
        if job.st.is_symlink() {
            job.target = fsutil::readlink(&job.real);
        }
        job.text = checktxt::checktxt(&job.st, job.target.as_deref(), &self.cfg.ignore, None);
        if job.row.forced {
            // FLUSH and the rest in lock-step; it prints its own lines
            job.state = State::Locked(Lock::Modify);
            return Ok(());
        }
        log::debug(1, msg!("Updating ", file, " on ", self.peer, " ..."));
        let (line, cost) = stat_line(&job.key, &job.row.filename, &job.text);
        self.session.conn.write_all(&line)?;
        p.q.push_back(Waiting {
            job: p.jobs.len(),
            cost,
        });
        p.used += cost;
        job.state = State::Stat;
        Ok(())
    }

    /// Reads the reply `j` waits for.
    fn reply(&mut self, p: &mut Pipe<'r>, j: usize) -> Result<(), PassError> {
        match p.jobs[j].state {
            State::Stat => self.stat_reply(p, j),
            State::Sent => {
                let r = self.session.conn.read_status()?;
                let job = &mut p.jobs[j];
                let file = &job.row.filename;
                match protocol::classify(&r) {
                    Status::Ok => {
                        job.state = State::Finished;
                        self.done(file)?;
                    }
                    Status::Conflict => {
                        p.creating.remove(file.as_slice());
                        job.state = State::Locked(Lock::Resolve);
                        p.resolve.push_back(j);
                    }
                    _ => {
                        p.creating.remove(file.as_slice());
                        self.refused(file, &r);
                        self.stays();
                        job.state = State::Finished;
                    }
                }
                Ok(())
            }
            _ => unreachable!("no reply awaited"),
        }
    }

    fn stat_reply(&mut self, p: &mut Pipe<'r>, j: usize) -> Result<(), PassError> {
        let file = p.jobs[j].row.filename.clone();
        let (text, digest) = match StatAnswer::read(&mut self.session.conn)? {
            StatAnswer::ParentMissing
                if self.opts.dry_run || p.creating.contains(fsutil::parent_dir(&file)) =>
            {
                (b"---".to_vec(), Vec::new())
            }
            StatAnswer::ParentMissing => {
                // recreated in lock-step, then the pass starts over
                p.jobs[j].state = State::Locked(Lock::ParentMissing);
                return Ok(());
            }
            StatAnswer::Found(t, d) => (t, d),
            StatAnswer::Refused(r) => {
                self.refused(&file, &r);
                self.stays();
                p.jobs[j].state = State::Finished;
                return Ok(());
            }
        };
        let job = &mut p.jobs[j];
        let mut same = text == job.text;
        if same && job.st.is_file() {
            match same_content(&job.row.filename, &job.real, &digest) {
                Ok(s) => same = s,
                Err(e) => {
                    self.errors
                        .error(msg!("ERROR: Cant read ", file, ": ", log::strerror(&e)));
                    job.state = State::Finished;
                    return Ok(());
                }
            }
        }
        if same {
            log::debug(1, "File is already up to date on peer.");
            if self.opts.dry_run {
                dry_line("?S", self.peer, &file);
                job.state = State::Finished;
            } else if job.st.is_symlink() {
                job.state = State::Finished;
                self.done(&file)?;
            } else {
                job.state = State::Ready(Change::Setime);
            }
            return Ok(());
        }
        if self.opts.dry_run {
            dry_line("?M", self.peer, &file);
            job.state = State::Finished;
            return Ok(());
        }
        let remote_reg = FileKind::of_check_text(&text) == Some(FileKind::Reg);
        if job.st.is_file() && remote_reg && job.st.size > WHOLE_FILE_MAX {
            job.state = State::Locked(Lock::Apply);
            return Ok(());
        }
        if job.st.is_dir() {
            p.creating.insert(file);
        }
        job.state = State::Ready(Change::Put);
        Ok(())
    }

    fn send_change(&mut self, p: &mut Pipe<'r>, j: usize, c: Change) -> Result<(), PassError> {
        let job = &mut p.jobs[j];
        let put = matches!(c, Change::Put);
        let sent = write_change(
            &mut self.session.conn,
            (&job.row.filename, &job.real, &job.key),
            &job.st,
            job.target.as_deref(),
            put,
        )?;
        match sent {
            Ok(cost) => {
                p.q.push_back(Waiting { job: j, cost });
                p.used += cost;
            }
            Err(e) => {
                self.refused(&job.row.filename, log::strerror(&e));
                self.stays();
                p.creating.remove(job.row.filename.as_slice());
                job.state = State::Finished;
            }
        }
        Ok(())
    }

    /// Lock-step work for one file (the pipeline is empty).
    fn lockstep(
        &mut self,
        p: &mut Pipe<'r>,
        j: usize,
        how: Lock,
    ) -> Result<Option<Vec<u8>>, PassError> {
        let job = &p.jobs[j];
        let (row, real, key) = (job.row, job.real.clone(), job.key.clone());
        let outcome = match how {
            Lock::Modify => self.modify_one(row, &real, &key)?,
            Lock::ParentMissing => {
                Outcome::ParentMissing(fsutil::parent_dir(&row.filename).to_vec())
            }
            Lock::Apply | Lock::Resolve => {
                let first = matches!(how, Lock::Resolve).then_some(Step::Conflict);
                let (st, target) = (job.st, job.target.clone());
                self.apply(&row.filename, &real, &key, &st, target.as_deref(), first)?
            }
        };
        match outcome {
            Outcome::Done | Outcome::Failed => Ok(None),
            Outcome::ParentMissing(dir) => match self.missing_parent(dir) {
                Missing::Restart(dir) => Ok(Some(dir)),
                Missing::Skip(dir) => {
                    p.skip.push(dir);
                    Ok(None)
                }
            },
        }
    }
}

impl Pipe<'_> {
    /// Prints the messages of finished files, in file order, and forgets
    /// the files nothing refers to any more. Returns how many files were
    /// finished and the bytes of the regular ones.
    fn emit_finished(&mut self) -> (usize, u64) {
        let (mut files, mut bytes) = (0, 0);
        while self.emit < self.jobs.len() && matches!(self.jobs[self.emit].state, State::Finished) {
            let j = &mut self.jobs[self.emit];
            log::replay(std::mem::take(&mut j.held));
            files += 1;
            bytes += crate::progress::file_bytes(&j.st);
            self.emit += 1;
        }
        let upto = self.emit.min(self.turn);
        let upto = self.resolve.iter().fold(upto, |m, &j| m.min(j));
        let upto = self.q.iter().fold(upto, |m, w| m.min(w.job));
        self.jobs.trim(upto);
        (files, bytes)
    }
}

/// An `X-STAT` request and what its reply may cost: status, the encoded
/// check text (about as long as ours), the digest.
pub(super) fn stat_line(key: &[u8], file: &[u8], text: &[u8]) -> (Vec<u8>, usize) {
    let line = Request::XStat {
        at: Target { key, file },
        text,
    }
    .encode();
    let cost = 128 + line.len();
    (line, cost)
}

/// The `X-PUT` request for an entry (a regular file's content follows it
/// as a blob).
pub(super) fn put_request<'a>(at: Target<'a>, st: &Stat, target: Option<&'a [u8]>) -> Request<'a> {
    Request::XPut {
        at,
        kind: Some(FileKind::of(st)),
        arg: super::make_arg(st, target),
        uid: (st.uid as i32).into(),
        gid: (st.gid as i32).into(),
        mode: (st.mode as i32).into(),
        mtime: st.mtime,
    }
}

/// The local file's content has this digest (from `X-STAT`).
pub(super) fn same_content(file: &[u8], real: &[u8], digest: &[u8]) -> std::io::Result<bool> {
    let mut f = crate::beneath::open_file(file, real)?;
    Ok(protocol::content_digest(&mut f)?.as_bytes() == digest)
}

/// Sends `X-PUT` (`put`; a regular file's content follows as a blob) or
/// `SETIME` for `(file, real, key)`. Ok(Err): the file could not be
/// opened, nothing was sent; Ok(Ok(cost)): what the reply may cost.
pub(super) fn write_change(
    conn: &mut Conn,
    (file, real, key): (&[u8], &[u8], &[u8]),
    st: &Stat,
    target: Option<&[u8]>,
    put: bool,
) -> Result<std::io::Result<usize>, ConnError> {
    let at = Target { key, file };
    let line = if put {
        put_request(at, st, target).encode()
    } else {
        Request::Setime {
            at,
            mtime: st.mtime,
        }
        .encode()
    };
    let mut content = None;
    if put && st.is_file() {
        // opened first: a file we cannot read sends nothing
        match crate::beneath::open_file(file, real).and_then(|f| f.metadata().map(|m| (f, m.len())))
        {
            Ok(x) => content = Some(x),
            Err(e) => return Ok(Err(e)),
        }
    }
    conn.write_all(&line)?;
    if let Some((mut f, n)) = content {
        conn.write_blob_from(&mut f, n)?;
    }
    // a status line; error lines may name the file
    Ok(Ok(64 + file.len() / 4))
}
