//! Deletions sent ahead to a peer that runs our binary: an `X-STAT` for
//! each row (a bounded answer, where SIG would bring a whole signature
//! back), then `DEL` for the entries the peer still has, without waiting
//! for each reply. Forced rows and a new HELLO wait until nothing is in
//! flight and run in lock-step; a conflict is resolved in lock-step once
//! the replies in flight are read. Each row's messages are held and printed
//! in row order, as the lock-step client prints them.

use super::pipeline::{REPLY_BUDGET, stat_line};
use super::{PassError, PeerRun};
use crate::config::matcher::is_at_or_below;
use crate::db::DirtyRow;
use crate::log::{self, Held};
use crate::msg;
use crate::protocol::{self, Request, StatAnswer, Status, Target};
use std::collections::VecDeque;

/// The cost of an answer to `DEL`: a status line.
const DEL_COST: usize = 64;

/// A row whose answer is awaited.
struct InFlight<'r> {
    row: &'r DirtyRow,
    key: Vec<u8>,
    /// waiting for the answer to DEL (else to X-STAT)
    del: bool,
    cost: usize,
    slot: usize,
}

/// What an answer leaves to do for its row.
enum Next {
    Finished,
    /// DEL went out: its answer is awaited
    DelSent,
    /// DEL was refused as a conflict: resolve it in lock-step
    Conflict,
    /// DEL failed while a conflict below was unresolved: send it again
    Retry,
}

/// A row that needs lock-step work once nothing is in flight.
struct Later<'r> {
    row: &'r DirtyRow,
    key: Vec<u8>,
    slot: usize,
    /// a conflict to resolve (else a DEL to send again: it failed while a
    /// conflict below it was still unresolved)
    conflict: bool,
}

/// The deletions of one pass in flight, and their messages in row order.
struct Dels<'r> {
    q: VecDeque<InFlight<'r>>,
    used: usize,
    later: Vec<Later<'r>>,
    /// messages per row from `base` on; Some when the row is finished
    out: VecDeque<(Vec<Held>, bool)>,
    base: usize,
}

impl Dels<'_> {
    fn held(&mut self, slot: usize) -> &mut Vec<Held> {
        &mut self.out[slot - self.base].0
    }

    /// The row is finished: print what is finished in row order.
    fn finish(&mut self, slot: usize) {
        self.out[slot - self.base].1 = true;
        while let Some((_, true)) = self.out.front() {
            let (held, _) = self.out.pop_front().expect("front");
            log::replay(held);
            self.base += 1;
        }
    }
}

impl<'r> PeerRun<'_, '_> {
    /// The deletions of a pass (deepest first) to a pipelined peer; not for
    /// dry runs, which keep the lock-step SIG.
    pub(super) fn deletions_pipelined(&mut self, rows: Vec<&'r DirtyRow>) -> Result<(), PassError> {
        let mut d = Dels {
            q: VecDeque::new(),
            used: 0,
            later: Vec::new(),
            out: VecDeque::new(),
            base: 0,
        };
        for row in rows {
            self.progress.done(1, 0);
            // a new identity or a lock-step row: what is in flight first
            if row.forced || self.session.hello() != Some(row.myname.as_slice()) {
                self.settle_deletions(&mut d)?;
            }
            let slot = d.base + d.out.len();
            d.out.push_back((Vec::new(), false));
            let mut held = Vec::new();
            let started = log::capture(&mut held, || -> Result<_, PassError> {
                let Some(key) = self.key_or_skip(&row.filename, "Skipping deletion ") else {
                    return Ok(None);
                };
                if !self.identify(&row.myname)? {
                    return Ok(None);
                }
                if row.forced {
                    self.delete_one(row, key)?;
                    return Ok(None);
                }
                log::debug(
                    1,
                    msg!("Deleting ", &row.filename, " on ", self.peer, " ..."),
                );
                // `---` never equals the peer's text: no digest is read
                let (line, cost) = stat_line(key, &row.filename, b"---");
                self.session.conn.write_all(&line)?;
                Ok(Some((key.to_vec(), cost)))
            });
            *d.held(slot) = held;
            match started? {
                Some((key, cost)) => {
                    d.used += cost;
                    d.q.push_back(InFlight {
                        row,
                        key,
                        del: false,
                        cost,
                        slot,
                    });
                }
                None => d.finish(slot),
            }
            while d.used >= REPLY_BUDGET {
                self.deletion_answer(&mut d)?;
            }
        }
        self.settle_deletions(&mut d)
    }

    /// Reads every answer in flight, then does the lock-step work.
    fn settle_deletions(&mut self, d: &mut Dels<'r>) -> Result<(), PassError> {
        while !d.q.is_empty() {
            self.deletion_answer(d)?;
        }
        for l in std::mem::take(&mut d.later) {
            let mut held = std::mem::take(d.held(l.slot));
            let r = log::capture(&mut held, || -> Result<(), PassError> {
                if l.conflict {
                    return self.resolve_deletion(&l.row.filename, &l.key);
                }
                let at = Target {
                    key: &l.key,
                    file: &l.row.filename,
                };
                let st = self.session.request(&Request::Del(at))?;
                if protocol::classify(&st) == Status::Ok {
                    self.done(&l.row.filename)?;
                } else {
                    self.refused(&l.row.filename, &st);
                    self.stays();
                }
                Ok(())
            });
            *d.held(l.slot) = held;
            d.finish(l.slot);
            r?;
        }
        Ok(())
    }

    /// Reads the answer the oldest request in flight waits for.
    fn deletion_answer(&mut self, d: &mut Dels<'r>) -> Result<(), PassError> {
        let Some(mut f) = d.q.pop_front() else {
            return Ok(());
        };
        d.used -= f.cost;
        let file = &f.row.filename;
        let mut held = std::mem::take(d.held(f.slot));
        let r = log::capture(&mut held, || -> Result<Next, PassError> {
            if !f.del {
                return Ok(match StatAnswer::read(&mut self.session.conn)? {
                    // the parent is gone there, so the file is too; `---`:
                    // nothing there
                    StatAnswer::ParentMissing => {
                        self.done(file)?;
                        Next::Finished
                    }
                    StatAnswer::Found(text, _) if text == b"---" => {
                        self.done(file)?;
                        Next::Finished
                    }
                    StatAnswer::Found(..) => {
                        let at = Target { key: &f.key, file };
                        self.session.conn.write_all(&Request::Del(at).encode())?;
                        Next::DelSent
                    }
                    StatAnswer::Refused(st) => {
                        self.refused(file, &st);
                        self.stays();
                        Next::Finished
                    }
                });
            }
            let st = self.session.conn.read_status()?;
            Ok(match protocol::classify(&st) {
                Status::Ok => {
                    self.done(file)?;
                    Next::Finished
                }
                Status::Conflict => Next::Conflict,
                // a directory that still holds a file whose conflict is not
                // resolved yet: try again after the resolution
                _ if d
                    .later
                    .iter()
                    .any(|l| l.conflict && is_at_or_below(&l.row.filename, file)) =>
                {
                    Next::Retry
                }
                _ => {
                    self.refused(file, &st);
                    self.stays();
                    Next::Finished
                }
            })
        });
        *d.held(f.slot) = held;
        match r? {
            Next::Finished => d.finish(f.slot),
            Next::DelSent => {
                // its answer comes after those of every request sent before
                f.del = true;
                f.cost = DEL_COST;
                d.used += DEL_COST;
                d.q.push_back(f);
            }
            later => d.later.push(Later {
                row: f.row,
                key: f.key,
                slot: f.slot,
                conflict: matches!(later, Next::Conflict),
            }),
        }
        Ok(())
    }
}
