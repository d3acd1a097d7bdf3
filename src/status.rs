//! `--status [--json]` (ours): for each peer of this host, how many files
//! wait for it (the rows `-M` lists for it), when the last push to it
//! succeeded and what its last error was; and whether a `--watch` daemon
//! runs on this database. It needs no daemon: the counts come from the
//! database, the rest from a small file beside it that every update writes
//! (`<database>.peers`: one line per peer, `NAME<TAB>EPOCH-or-- <TAB>ERROR-or--`,
//! URL-encoded).

use crate::config::Config;
use crate::db::Db;
use crate::json::Obj;
use crate::{Fatal, log, msg, urlenc};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::io::AsRawFd;

/// How the push to a peer ended: Ok, or its first error line.
pub type Ended = (Vec<u8>, Result<(), Vec<u8>>);

/// What is known of one peer's last push.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerState {
    /// seconds since the epoch
    pub last_sync: Option<i64>,
    pub last_error: Option<Vec<u8>>,
}

fn parse(text: &[u8]) -> BTreeMap<Vec<u8>, PeerState> {
    let mut out = BTreeMap::new();
    for line in text.split(|&b| b == b'\n') {
        let f: Vec<&[u8]> = line.split(|&b| b == b'\t').collect();
        if f.len() != 3 || f[0].is_empty() {
            continue;
        }
        let num = std::str::from_utf8(f[1]).ok().and_then(|s| s.parse().ok());
        let err = (f[2] != b"-").then(|| urlenc::decode(f[2]));
        out.insert(
            urlenc::decode(f[0]),
            PeerState {
                last_sync: num,
                last_error: err,
            },
        );
    }
    out
}

fn render(states: &BTreeMap<Vec<u8>, PeerState>) -> Vec<u8> {
    let mut out = Vec::new();
    for (peer, s) in states {
        out.extend_from_slice(&urlenc::encode(peer));
        out.push(b'\t');
        match s.last_sync {
            Some(t) => out.extend_from_slice(t.to_string().as_bytes()),
            None => out.push(b'-'),
        }
        out.push(b'\t');
        match &s.last_error {
            Some(e) => out.extend_from_slice(&urlenc::encode(e)),
            None => out.push(b'-'),
        }
        out.push(b'\n');
    }
    out
}

/// The recorded states (empty when there is no file yet).
pub fn read(db: &Db) -> BTreeMap<Vec<u8>, PeerState> {
    db.peer_state_file()
        .and_then(|p| std::fs::read(p).ok())
        .map(|t| parse(&t))
        .unwrap_or_default()
}

/// Records how the pushes to these peers ended: Ok, or the first error
/// line. Written whole to a temporary file and renamed, under a lock on
/// the file (a cron `-x`, a daemon's peers and a catch-up may record at
/// once); a failure only costs the status, so it is reported at -v and
/// otherwise ignored.
pub fn record(db: &Db, results: &[Ended]) {
    if results.is_empty() {
        return;
    }
    let Some(path) = db.peer_state_file() else {
        return;
    };
    let written = locked(&path).and_then(|_lock| {
        let mut states = read(db);
        let now = unsafe { libc::time(std::ptr::null_mut()) } as i64;
        for (peer, r) in results {
            let s = states.entry(peer.clone()).or_default();
            match r {
                Ok(()) => {
                    s.last_sync = Some(now);
                    s.last_error = None;
                }
                Err(e) => s.last_error = Some(e.clone()),
            }
        }
        // one writer at a time holds the lock: the pid names its file
        let mut tmp = path.clone().into_os_string();
        tmp.push(format!(".tmp{}", std::process::id()));
        let r = std::fs::write(&tmp, render(&states)).and_then(|_| std::fs::rename(&tmp, &path));
        if r.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        r
    });
    if let Err(e) = written {
        log::debug(
            1,
            format!(
                "Cannot record the peers' status in {}: {}",
                path.display(),
                log::strerror(&e)
            ),
        );
    }
}

/// An exclusive lock on the state file as it is now: the file is replaced
/// by rename, so a lock on a file that was replaced while we waited is
/// taken again on the new one. Each call opens the file anew, so threads
/// of one process exclude each other too.
fn locked(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::MetadataExt;
    loop {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let held = f.metadata()?;
        match std::fs::metadata(path) {
            Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => return Ok(f),
            _ => continue,
        }
    }
}

/// Whether a `--watch` daemon holds the lock of this database.
fn watching(db: &Db) -> bool {
    let Some(path) = db.watch_lock_file() else {
        return false;
    };
    let Ok(f) = std::fs::File::open(path) else {
        return false;
    };
    let free = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } == 0;
    !free
}

/// RFC 3339 in UTC for seconds since the epoch.
pub fn rfc3339(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // civil date from days since 1970-01-01 (Howard Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// `--status`: prints the report; exit 0.
pub fn show(cfg: &Config, db: &Db, json: bool) -> Result<i32, Fatal> {
    let states = read(db);
    let rows = db.dirty_rows()?;
    let watching = watching(db);
    let mut out = Vec::new();
    let mut list = Vec::new();
    if !json {
        out.extend_from_slice(&msg!(
            "host ",
            cfg.myhostname,
            if watching {
                " (watching)\n"
            } else {
                " (not watching)\n"
            }
        ));
    }
    for peer in cfg.peers().into_iter().map(|p| p.name) {
        let pending = rows
            .iter()
            .filter(|r| r.peername == peer && cfg.selects(&r.filename, false))
            .count();
        let s = states.get(&peer).cloned().unwrap_or_default();
        if json {
            let mut o = Obj::new()
                .bytes("name", &peer)
                .num("pending", pending as i64);
            o = match s.last_sync {
                Some(t) => o.bytes("last_sync", rfc3339(t).as_bytes()),
                None => o.null("last_sync"),
            };
            o = match &s.last_error {
                Some(e) => o.bytes("last_error", e),
                None => o.null("last_error"),
            };
            list.push(o);
            continue;
        }
        let sync = s.last_sync.map(rfc3339).unwrap_or_else(|| "never".into());
        out.extend_from_slice(&msg!(
            "peer ",
            peer,
            ": ",
            pending.to_string(),
            " pending, last sync ",
            sync,
            ", last error: ",
            s.last_error.as_deref().unwrap_or(b"-"),
            "\n"
        ));
    }
    if json {
        let o = Obj::new()
            .bytes("host", &cfg.myhostname)
            .bool("watching", watching)
            .list("peers", list);
        out = o.line();
    }
    let mut stdout = std::io::stdout();
    let _ = stdout.write_all(&out);
    let _ = stdout.flush();
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_the_state_file() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_796_700_000), "2026-12-08T03:20:00Z");
        let mut m = BTreeMap::new();
        m.insert(
            b"n1 x".to_vec(),
            PeerState {
                last_sync: Some(5),
                last_error: Some(b"ERROR: a\tb".to_vec()),
            },
        );
        m.insert(b"n2".to_vec(), PeerState::default());
        assert_eq!(parse(&render(&m)), m);
    }
}
