//! `csync2 --watch` (issue 15), the scenarios beyond the first slice of
//! `tests/net_watch.rs`:
//!
//! * `ours_to_real`: our watcher pushing to a real csync2 server (lock-step):
//!   create, append, chmod, chown, delete, `mkdir -p` with content, renames
//!   of a file and of a directory, a directory moved in from outside the
//!   tree and one moved out, file → symlink, `rm -rf`, excluded names;
//! * `three_nodes` / `three_nodes_conflict`: two watchers (each beside its
//!   own `-ii` server) and a third plain server: no echo (a watcher's `-vv`
//!   log never names a file it only received; nothing dirty; the files
//!   keep their inode, times and content once settled), changes both ways,
//!   the same file changed on both within the delay resolved by `auto
//!   younger` on all three nodes (three rounds: who reaches n3 last is a
//!   race), or left dirty and listed by `-M` without it; never a ping-pong
//!   (n3 gets each side's version once, then nothing changes);
//! * `late_include`: an included directory that appears after the start,
//!   odd names, an included directory removed as a whole and made again;
//! * `hung_peer`: a peer that accepts and never answers does not delay the
//!   other one; `--status --json` names it;
//! * `peer_down_and_back`: `--status --json` while the peer is down and after
//!   its backlog went out without a new event; SIGINT ends it like SIGTERM;
//! * `queue_overflow`: a real `IN_Q_OVERFLOW` (`fs.inotify.max_queued_events`
//!   lowered while the watcher starts, always restored): every file arrives
//!   and the warning names the limit;
//! * `sigterm_mid_burst`: SIGTERM in the middle of a 5,000-file burst: exit 0
//!   within a few seconds, nothing half-written on the peer, `-x` completes;
//! * `burst_5000`: a 5,000-file burst arrives; the time is printed.
//!
//! Needs root; see `tests/net_interop.rs` for the environment variables.

mod common;
mod net;
mod netx;

use net::*;
use netx::*;
use std::ffi::OsString;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Held while a watcher starts, until its inotify descriptor exists;
/// `queue_overflow` lowers `fs.inotify.max_queued_events` only under it, so
/// no other watcher of this file gets the small queue (watchers of other
/// test binaries or checkouts starting in that window of a few
/// milliseconds could: they would see an overflow and rescan).
static INOTIFY_INIT: Mutex<()> = Mutex::new(());

/// Waits until `cond` holds (at most `secs`); how long it took.
fn within(secs: u64, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(secs) {
        if cond() {
            return Some(t.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if cond() { Some(t.elapsed()) } else { None }
}

/// Within 20 s.
fn arrives(cond: impl FnMut() -> bool) -> Option<Duration> {
    within(20, cond)
}

/// Whether process `pid` has an inotify descriptor open.
fn has_inotify(pid: u32) -> bool {
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    rd.flatten().any(|e| {
        std::fs::read_link(e.path()).is_ok_and(|t| t.to_string_lossy().contains("inotify"))
    })
}

/// A running `--watch` daemon.
struct Watcher {
    proc: Proc,
    ready: bool,
    started: Instant,
}

/// Starts `--watch ARGS` on node `i` with `NOTIFY_SOCKET` set for this
/// process only, and waits (at most 60 s) for `READY=1`, i.e. for the end
/// of its start-up push. `small_queue`: `fs.inotify.max_queued_events`
/// is lowered to that many events until the watcher has created its
/// inotify instance (which takes the limit then), and restored at once.
fn start_watcher(r: &mut Run, i: usize, args: &[&str], small_queue: Option<u32>) -> Watcher {
    let n = r.n(i).clone();
    let sock = r.dir.join(format!("notify-{}.sock", n.short()));
    let _ = std::fs::remove_file(&sock);
    let notify = std::os::unix::net::UnixDatagram::bind(&sock).expect("bind NOTIFY_SOCKET");
    notify
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let mut full: Vec<OsString> = vec!["--watch".into()];
    full.extend(args.iter().map(OsString::from));
    let mut cmd = n.command(&full);
    cmd.env("NOTIFY_SOCKET", &sock);
    let guard = INOTIFY_INIT.lock().unwrap_or_else(|e| e.into_inner());
    let limit = small_queue.map(QueueLimit::lower);
    let started = Instant::now();
    let mut proc = Proc::spawn(
        cmd,
        format!("{} watcher {}", n.short(), common::cmdline(&full)),
    );
    let pid = proc.pid;
    within(20, || has_inotify(pid) || proc.exited());
    drop(limit);
    drop(guard);
    let mut buf = [0u8; 64];
    let got = notify.recv(&mut buf).map(|k| buf[..k].to_vec());
    let ready = got.as_deref().ok() == Some(&b"READY=1"[..]);
    r.note(format!(
        "{}: started --watch {} (ready: {ready}, after {:?})",
        n.short(),
        args.join(" "),
        started.elapsed()
    ));
    r.expect(
        ready,
        format!("the watcher on {} reports READY=1: {got:?}", n.short()),
    );
    Watcher {
        proc,
        ready,
        started,
    }
}

/// SIGTERM to the watcher (our own child, by pid); its end and how long
/// the exit took (at most 30 s, then it is killed).
fn stop_watcher(r: &mut Run, i: usize, w: Watcher) -> (Done, Duration) {
    signal_watcher(r, i, w, libc::SIGTERM)
}

/// As [`stop_watcher`] with signal `sig`.
fn signal_watcher(r: &mut Run, i: usize, w: Watcher, sig: libc::c_int) -> (Done, Duration) {
    let t = Instant::now();
    // SAFETY: kill(2) on the pid of a child this test started
    unsafe { libc::kill(w.proc.pid as i32, sig) };
    let d = w.proc.wait_until(Instant::now() + Duration::from_secs(30));
    let took = t.elapsed();
    let name = format!("{}-watcher", r.n(i).short());
    r.save_output(&d, &name);
    r.note(format!(
        "{}: watcher stopped after {took:?} ({}; up {:?}, ready {})",
        r.n(i).short(),
        d.status(),
        w.started.elapsed(),
        w.ready
    ));
    (d, took)
}

/// `--status --json` on node `i`.
fn status(r: &mut Run, i: usize) -> serde_json::Value {
    let st = r.nodes[i].run(&["--status", "--json"].map(OsString::from));
    serde_json::from_slice(&st.stdout).unwrap_or_default()
}

/// The entry of peer `name` in a `--status --json` answer.
fn peer(v: &serde_json::Value, name: &str) -> serde_json::Value {
    v["peers"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["name"] == name))
        .cloned()
        .unwrap_or_default()
}

/// The dirty rows of node `n` (file, peer), read while its daemons run
/// (`None` when the database cannot be read just now).
fn dirty_rows(n: &Node) -> Option<Vec<(String, String)>> {
    let c = rusqlite::Connection::open_with_flags(
        n.db_file(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .ok()?;
    c.busy_timeout(Duration::from_secs(5)).ok()?;
    let mut st = c.prepare("SELECT filename, peername FROM dirty").ok()?;
    let rows = st
        .query_map([], |row| {
            let f: String = row.get(0)?;
            let p: String = row.get(1)?;
            Ok((
                common::show(&common::url_decode(f.as_bytes())),
                common::show(&common::url_decode(p.as_bytes())),
            ))
        })
        .ok()?;
    rows.collect::<Result<Vec<_>, _>>().ok()
}

/// How a file looks now: (inode, mtime ns, ctime ns, content).
fn look(p: &Path) -> Option<(u64, i64, i64, Vec<u8>)> {
    let m = std::fs::symlink_metadata(p).ok()?;
    Some((
        m.ino(),
        m.mtime() * 1_000_000_000 + m.mtime_nsec(),
        m.ctime() * 1_000_000_000 + m.ctime_nsec(),
        std::fs::read(p).unwrap_or_default(),
    ))
}

/// The server's temporary names anywhere below `root`.
fn temp_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name();
            if name.to_string_lossy().starts_with(".csync2-tmp.") {
                out.push(e.path());
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(e.path());
            }
        }
    }
    out
}

/// A measurement worth seeing in every run (printed by the harness).
fn info(r: &mut Run, s: String) {
    r.note(s.clone());
    r.notes.push(s);
}

/// Lines of `text` that contain `needle`.
fn count(text: &str, needle: &str) -> usize {
    text.lines().filter(|l| l.contains(needle)).count()
}

const THREE: &str =
    "nossl * *;\ngroup g {\n    host {N1} {N2} {N3};\n    key g.key;\n    include {SYNC};\n";

// ---------------------------------------------------------------------------
// 1. ours -> real
// ---------------------------------------------------------------------------

#[test]
fn ours_to_real() {
    solo("watchreal", Net::Watchreal, 2, &[1], &[MODE_C], |r| {
        r.config(
            "nossl * *;\ngroup g {\n    host {N1} {N2};\n    key g.key;\n    \
             include {SYNC};\n    exclude *.excl;\n}\n",
        );
        let (a, b) = (r.n(0).clone(), r.n(1).clone());
        a.file("old.txt", "old\n", 0o644, T0);
        b.file("old.txt", "old\n", 0o644, T0);
        a.file("owned.txt", "owned\n", 0o644, T0);
        b.file("owned.txt", "owned\n", 0o644, T0);
        r.init();
        let server = r.start_server(1, "-ii");
        let w = start_watcher(r, 0, &["--delay", "0.3", "-v"], None);

        let mut steps: Vec<(&str, Option<Duration>)> = Vec::new();
        a.file("new.txt", "new\n", 0o644, T0 + 1);
        steps.push((
            "a new file",
            arrives(|| b.read("new.txt").as_deref() == Some(&b"new\n"[..])),
        ));
        // excluded names: never sent (checked at the end, after later
        // changes went through)
        std::fs::write(a.p("skip.excl"), "excluded\n").expect("write");
        std::fs::write(a.p("new.txt"), "new\nmore\n").expect("append");
        steps.push((
            "an append",
            arrives(|| b.read("new.txt").as_deref() == Some(&b"new\nmore\n"[..])),
        ));
        std::fs::set_permissions(a.p("old.txt"), std::fs::Permissions::from_mode(0o600))
            .expect("chmod");
        steps.push((
            "a mode change",
            arrives(|| {
                std::fs::metadata(b.p("old.txt"))
                    .is_ok_and(|m| m.permissions().mode() & 0o777 == 0o600)
            }),
        ));
        a.chown("owned.txt", 1234, 2345);
        steps.push((
            "an owner change (numeric)",
            arrives(|| {
                std::fs::metadata(b.p("owned.txt"))
                    .is_ok_and(|m| m.uid() == 1234 && m.gid() == 2345)
            }),
        ));
        std::fs::remove_file(a.p("old.txt")).expect("rm");
        steps.push(("a deletion", arrives(|| !b.p("old.txt").exists())));
        std::fs::create_dir_all(a.p("x/y/z")).expect("mkdir -p");
        std::fs::write(a.p("x/y/z/f"), "deep\n").expect("write deep");
        std::fs::write(a.p("x/y/z/also.excl"), "excluded\n").expect("write");
        steps.push((
            "mkdir -p with content",
            arrives(|| b.read("x/y/z/f").as_deref() == Some(&b"deep\n"[..])),
        ));
        std::fs::rename(a.p("new.txt"), a.p("renamed.txt")).expect("rename");
        steps.push((
            "a file renamed",
            arrives(|| {
                b.read("renamed.txt").as_deref() == Some(&b"new\nmore\n"[..])
                    && !b.p("new.txt").exists()
            }),
        ));
        std::fs::rename(a.p("x"), a.p("x2")).expect("rename dir");
        steps.push((
            "a directory renamed",
            arrives(|| b.read("x2/y/z/f").as_deref() == Some(&b"deep\n"[..]) && !b.p("x").exists()),
        ));
        // the renamed directory's watches follow it: changes inside it are
        // seen under the new name
        std::fs::write(a.p("x2/y/z/f"), "deep, changed after the rename\n").expect("write");
        std::fs::write(a.p("x2/y/g"), "new after the rename\n").expect("write");
        steps.push((
            "changes inside the renamed directory",
            arrives(|| {
                b.read("x2/y/z/f").as_deref() == Some(&b"deep, changed after the rename\n"[..])
                    && b.read("x2/y/g").as_deref() == Some(&b"new after the rename\n"[..])
            }),
        ));
        // a directory with content moved in from outside the tree
        let outside = a.dir.join("outside");
        std::fs::create_dir_all(outside.join("in/sub")).expect("mkdir outside");
        std::fs::write(outside.join("in/top.txt"), "top\n").expect("write");
        std::fs::write(outside.join("in/sub/low.txt"), "low\n").expect("write");
        std::fs::rename(outside.join("in"), a.p("moved_in")).expect("move in");
        steps.push((
            "a directory moved in from outside",
            arrives(|| {
                b.read("moved_in/top.txt").as_deref() == Some(&b"top\n"[..])
                    && b.read("moved_in/sub/low.txt").as_deref() == Some(&b"low\n"[..])
            }),
        ));
        // and one moved out
        std::fs::rename(a.p("x2"), outside.join("x2")).expect("move out");
        steps.push(("a directory moved out", arrives(|| !b.p("x2").exists())));
        // what changes out there now is none of the tree's business
        std::fs::write(outside.join("x2/y/z/f"), "changed outside\n").expect("write");
        std::fs::remove_file(a.p("renamed.txt")).expect("rm");
        std::os::unix::fs::symlink("moved_in/top.txt", a.p("renamed.txt")).expect("symlink");
        steps.push((
            "a file turned symlink",
            arrives(|| {
                std::fs::symlink_metadata(b.p("renamed.txt")).is_ok_and(|m| m.is_symlink())
                    && std::fs::read_link(b.p("renamed.txt"))
                        .is_ok_and(|t| t == Path::new("moved_in/top.txt"))
            }),
        ));
        std::fs::remove_dir_all(a.p("moved_in")).expect("rm -rf");
        steps.push(("rm -rf of a subtree", arrives(|| !b.p("moved_in").exists())));
        // a last change: everything before it has been handled
        a.file("last.txt", "last\n", 0o644, T0 + 2);
        steps.push(("a last file", arrives(|| b.p("last.txt").exists())));
        for (what, took) in steps {
            r.note(format!("{what}: {took:?}"));
            r.expect(took.is_some(), format!("{what} arrives within 20 s"));
        }
        r.expect(
            !b.p("skip.excl").exists() && !b.p("x2/y/z/also.excl").exists(),
            "excluded files never arrive",
        );
        let (d, _) = stop_watcher(r, 0, w);
        r.expect(
            d.code == Some(0),
            format!("the watcher exits 0 on SIGTERM: {}", d.status()),
        );
        let srv = r.stop_daemon(1, server);
        r.note(format!("real server: {}", srv.status()));
        let want = listing(&a.tree);
        let mut got = listing(&b.tree);
        let mut want_cmp = want.clone();
        want_cmp.retain(|k, _| !k.ends_with(".excl"));
        got.retain(|k, _| !k.ends_with(".excl"));
        r.expect(
            want_cmp == got,
            format!(
                "n2's tree equals n1's (without excluded names):\n n1: {}\n n2: {}",
                show_listing(&want_cmp),
                show_listing(&got)
            ),
        );
        let rows = dirty_rows(&a).unwrap_or_default();
        r.expect(
            rows.is_empty(),
            format!("nothing stays dirty on n1: {rows:?}"),
        );
        let o = r.recheck("n2 -cr after the watch", 1);
        let dirty = r.dirty(o, 1);
        r.expect(
            dirty.is_empty(),
            format!("n2's database agrees with its files ({} rows)", dirty.len()),
        );
    });
}

// ---------------------------------------------------------------------------
// 2. three nodes, two watchers
// ---------------------------------------------------------------------------

/// The set-up of the three-node scenarios: n1 and n2 run a watcher beside
/// their own `-ii` server, n3 only a server.
fn three_up(r: &mut Run, auto: Option<&str>) -> (Vec<Proc>, Watcher, Watcher) {
    let mut cfg = THREE.to_string();
    if let Some(a) = auto {
        cfg.push_str(&format!("    auto {a};\n"));
    }
    cfg.push_str("}\n");
    r.config(&cfg);
    for i in 0..3 {
        r.n(i).file("base.txt", "base\n", 0o644, T0);
    }
    r.init();
    let servers: Vec<Proc> = (0..3).map(|i| r.start_server(i, "-ii")).collect();
    // -vv: the per-file lines the no-echo check counts
    let w1 = start_watcher(r, 0, &["--delay", "0.5", "-vv"], None);
    let w2 = start_watcher(r, 1, &["--delay", "0.5", "-vv"], None);
    (servers, w1, w2)
}

/// Watchers stopped (exit 0 expected), then the servers; the watchers'
/// stderr.
fn three_down(r: &mut Run, servers: Vec<Proc>, w1: Watcher, w2: Watcher) -> (String, String) {
    let (d1, _) = stop_watcher(r, 0, w1);
    let (d2, _) = stop_watcher(r, 1, w2);
    for (who, d) in [("n1", &d1), ("n2", &d2)] {
        r.expect(
            d.code == Some(0),
            format!("the watcher on {who} exits 0 on SIGTERM: {}", d.status()),
        );
    }
    for (i, s) in servers.into_iter().enumerate() {
        r.stop_daemon(i, s);
    }
    (
        String::from_utf8_lossy(&d1.stderr).into_owned(),
        String::from_utf8_lossy(&d2.stderr).into_owned(),
    )
}

/// Every node's view of `rel` is unchanged for 3 s (no ping-pong): the
/// same inode, mtime and content. (The change time may move: the daemon
/// that lost a conflict sends the winning version on to every peer once,
/// and a peer that already has it only gets its metadata set again.)
fn stable(r: &mut Run, rel: &str) {
    let before: Vec<_> = (0..3).map(|i| look(&r.n(i).p(rel))).collect();
    let end = Instant::now() + Duration::from_secs(3);
    let mut changed = Vec::new();
    while Instant::now() < end && changed.is_empty() {
        std::thread::sleep(Duration::from_millis(100));
        for (i, b) in before.iter().enumerate() {
            let now = look(&r.n(i).p(rel));
            let key =
                |v: &Option<(u64, i64, i64, Vec<u8>)>| v.as_ref().map(|x| (x.0, x.1, x.3.clone()));
            if key(&now) != key(b) {
                let text = |v: &Option<(u64, i64, i64, Vec<u8>)>| {
                    v.as_ref().map(|x| (x.0, x.1, x.2, common::show(&x.3)))
                };
                changed.push(format!(
                    "{}: (inode, mtime ns, ctime ns, content) {:?} -> {:?}",
                    r.n(i).short(),
                    text(b),
                    text(&now)
                ));
            }
        }
    }
    r.expect(
        changed.is_empty(),
        format!("{rel} stays as it is once settled (changed again on {changed:?})"),
    );
}

#[test]
fn three_nodes() {
    solo("watchthree", Net::Watchthree, 3, &[1, 2], &[MODE_D], |r| {
        let (servers, w1, w2) = three_up(r, Some("younger"));
        let (a, b, c) = (r.n(0).clone(), r.n(1).clone(), r.n(2).clone());
        let sync = a.s("");
        let sync = sync.to_string_lossy().to_string();

        a.file("from_n1.txt", "written on n1\n", 0o644, T0 + 10);
        let t = arrives(|| b.p("from_n1.txt").exists() && c.p("from_n1.txt").exists());
        r.expect(t.is_some(), "a change on n1 arrives on n2 and n3");
        b.file("from_n2.txt", "written on n2\n", 0o644, T0 + 10);
        let t = arrives(|| a.p("from_n2.txt").exists() && c.p("from_n2.txt").exists());
        r.expect(t.is_some(), "a change on n2 arrives on n1 and n3");
        std::fs::write(b.p("base.txt"), "base, changed on n2\n").expect("write");
        let t = arrives(|| {
            a.read("base.txt").as_deref() == Some(&b"base, changed on n2\n"[..])
                && c.read("base.txt").as_deref() == Some(&b"base, changed on n2\n"[..])
        });
        r.expect(
            t.is_some(),
            "a change of an old file on n2 arrives on n1 and n3",
        );

        // the same file changed on both within the delay: n2's is younger
        // and must end up everywhere. Who reaches n3 last is a race, so
        // three rounds (one new file each); the first that does not
        // converge ends them.
        for round in 0..3 {
            let rel = format!("both{round}.txt");
            let now = unsafe { libc::time(std::ptr::null_mut()) } as i64;
            let (v1, v2) = (
                format!("n1's version {round}\n"),
                format!("n2's version {round}\n"),
            );
            a.file(&rel, &v1, 0o644, now - 100);
            b.file(&rel, &v2, 0o644, now - 50);
            let t = within(20, || {
                (0..3).all(|i| r.n(i).read(&rel).as_deref() == Some(v2.as_bytes()))
                    && dirty_rows(&a).is_some_and(|v| v.is_empty())
                    && dirty_rows(&b).is_some_and(|v| v.is_empty())
            });
            let seen = |n: &Node| n.read(&rel).map(|v| common::show(&v));
            info(
                r,
                format!(
                    "auto younger round {round}: converged after {t:?}; n1 {:?}, n2 {:?}, n3 {:?}",
                    seen(&a),
                    seen(&b),
                    seen(&c)
                ),
            );
            r.expect(
                t.is_some(),
                format!(
                    "auto younger, round {round}: n2's version everywhere, nothing dirty (n1: {:?}, \
                     n2: {:?}, n3: {:?}; dirty n1 {:?}, n2 {:?})",
                    seen(&a),
                    seen(&b),
                    seen(&c),
                    dirty_rows(&a),
                    dirty_rows(&b)
                ),
            );
            stable(r, &rel);
            if t.is_none() {
                break;
            }
        }
        for rel in ["from_n1.txt", "from_n2.txt", "base.txt"] {
            stable(r, rel);
        }
        let (log1, log2) = three_down(r, servers, w1, w2);
        // no echo: a watcher never sends what it only received
        for (who, log, foreign) in [
            ("n1", &log1, "from_n2.txt"),
            ("n2", &log2, "from_n1.txt"),
            ("n1", &log1, "base.txt"),
        ] {
            let k = count(log, &format!("Updating {sync}/{foreign} on"));
            r.expect(
                k == 0,
                format!("no echo: the watcher on {who} sent {foreign}, which it only received, {k} times"),
            );
        }
        let k = count(&log1, &format!("Updating {sync}/from_n1.txt on"));
        r.expect(
            k == 2,
            format!("n1 sent its own new file once to each peer ({k} lines)"),
        );
    });
}

#[test]
fn three_nodes_conflict() {
    solo("watchconfl", Net::Watchconfl, 3, &[1, 2], &[MODE_D], |r| {
        let (servers, w1, w2) = three_up(r, None);
        let (a, b, c) = (r.n(0).clone(), r.n(1).clone(), r.n(2).clone());
        a.file("first.txt", "first\n", 0o644, T0 + 10);
        let t = arrives(|| b.p("first.txt").exists() && c.p("first.txt").exists());
        r.expect(t.is_some(), "a change on n1 arrives on n2 and n3");
        // both within the delay, no auto rule: a conflict, left dirty
        let now = unsafe { libc::time(std::ptr::null_mut()) } as i64;
        a.file("both.txt", "n1's version\n", 0o644, now - 100);
        b.file("both.txt", "n2's version\n", 0o644, now - 50);
        let sync = a.s("").to_string_lossy().to_string();
        let want = format!("{sync}/both.txt");
        let t = within(40, || {
            let d1 = dirty_rows(&a).unwrap_or_default();
            let d2 = dirty_rows(&b).unwrap_or_default();
            d1.iter().any(|(f, p)| *f == want && *p == b.name)
                && d2.iter().any(|(f, p)| *f == want && *p == a.name)
                && c.p("both.txt").exists()
        });
        r.expect(
            t.is_some(),
            format!(
                "the conflict stays dirty on both sides (n1 {:?}, n2 {:?})",
                dirty_rows(&a),
                dirty_rows(&b)
            ),
        );
        r.expect(
            a.read("both.txt").as_deref() == Some(&b"n1's version\n"[..])
                && b.read("both.txt").as_deref() == Some(&b"n2's version\n"[..]),
            "each side keeps its own version",
        );
        for (i, who) in [(0, &b.name), (1, &a.name)] {
            let m = r.cmd(i, args!["-M"]);
            let out = common::show(&m.stdout);
            r.expect(
                out.lines()
                    .any(|l| l.contains(&want) && l.contains(who.as_str())),
                format!("-M on {} lists both.txt for {who}: {out:?}", r.n(i).short()),
            );
        }
        for rel in ["both.txt", "first.txt"] {
            stable(r, rel);
        }
        r.expect(
            a.read("both.txt").as_deref() == Some(&b"n1's version\n"[..])
                && b.read("both.txt").as_deref() == Some(&b"n2's version\n"[..]),
            "each side still keeps its own version",
        );
        let (log1, log2) = three_down(r, servers, w1, w2);
        // each side sent its version to n3 at most once: once the conflict
        // is known, the file is held back from every peer (a push already
        // under way may have sent it), and the retries never re-send it
        for (who, log) in [("n1", &log1), ("n2", &log2)] {
            let k = count(log, &format!("Updating {want} on {} ", c.name));
            r.expect(
                k <= 1,
                format!("no ping-pong: the watcher on {who} sent both.txt to n3 {k} times"),
            );
        }
    });
}

// ---------------------------------------------------------------------------
// an included directory that appears after the start
// ---------------------------------------------------------------------------

#[test]
fn late_include() {
    solo("watchlate", Net::Watchlate, 2, &[1], &[MODE_D], |r| {
        if r.transport == Transport::Tls {
            r.note("plain only");
            return;
        }
        r.config(
            "nossl * *;\ngroup g {\n    host {N1} {N2};\n    key g.key;\n    \
             include {SYNC}/now;\n    include {SYNC}/later;\n}\n",
        );
        let (a, b) = (r.n(0).clone(), r.n(1).clone());
        a.mkdir("now", 0o755);
        b.mkdir("now", 0o755);
        r.init();
        let server = r.start_server(1, "-ii");
        let w = start_watcher(r, 0, &["--delay", "0.3", "-v"], None);
        a.file("now/f", "in a directory there at the start\n", 0o644, T0);
        r.expect(
            within(10, || b.p("now/f").exists()).is_some(),
            "a file in an included directory arrives",
        );
        // (10 s each from here: a failure here fails the same way each time)
        // `later` is included but did not exist when the watcher started
        std::fs::create_dir(a.p("later")).expect("mkdir");
        std::fs::write(a.p("later/f"), "in an included directory made later\n").expect("write");
        r.expect(
            within(10, || b.p("later/f").exists()).is_some(),
            "a file in an included directory created after the start arrives",
        );
        std::fs::write(a.p("later/g"), "a second one\n").expect("write");
        r.expect(
            within(10, || b.p("later/g").exists()).is_some(),
            "and so does the next file in it",
        );
        // names with a space, a newline and a byte that is not UTF-8
        let odd: &[u8] = b"now/odd name\nwith \xff";
        a.file(odd, "odd\n", 0o644, T0);
        r.expect(
            within(10, || b.read(odd).as_deref() == Some(&b"odd\n"[..])).is_some(),
            "a file with an odd name arrives",
        );
        // an included directory removed as a whole, then made again
        std::fs::remove_dir_all(a.p("now")).expect("rm -rf");
        r.expect(
            within(10, || !b.p("now").exists()).is_some(),
            "an included directory removed as a whole goes on n2 too",
        );
        std::fs::create_dir(a.p("now")).expect("mkdir");
        std::fs::write(a.p("now/again"), "made again\n").expect("write");
        r.expect(
            within(10, || {
                b.read("now/again").as_deref() == Some(&b"made again\n"[..])
            })
            .is_some(),
            "a file in the included directory made again arrives",
        );
        let (d, _) = stop_watcher(r, 0, w);
        r.expect(d.code == Some(0), format!("exit 0: {}", d.status()));
        r.stop_daemon(1, server);
    });
}

// ---------------------------------------------------------------------------
// 3. a peer that accepts and never answers
// ---------------------------------------------------------------------------

#[test]
fn hung_peer() {
    solo("watchhung", Net::Watchhung, 3, &[1, 2], &[MODE_D], |r| {
        if r.transport == Transport::Tls {
            r.note("plain only");
            return;
        }
        r.config(&format!("{THREE}}}\n"));
        let (a, b, c) = (r.n(0).clone(), r.n(1).clone(), r.n(2).clone());
        r.init();
        a.file("early.txt", "before the start\n", 0o644, T0);
        let server = r.start_server(1, "-ii");
        let silent = Silent::start(&c);
        // when the start-up push reaches n2, seen from beside the start
        let early = b.p("early.txt");
        let seen =
            std::thread::spawn(move || within(30, || early.exists()).map(|_| Instant::now()));
        let w = start_watcher(r, 0, &["--delay", "0.2", "--timeout", "2", "-v"], None);
        let early = seen
            .join()
            .ok()
            .flatten()
            .map(|t| t.saturating_duration_since(w.started));
        info(
            r,
            format!("start-up push reached n2 {early:?} after the start"),
        );
        r.expect(
            early.is_some_and(|e| e <= Duration::from_millis(1500)),
            format!(
                "the hung peer does not delay the start-up (catch-up, push) towards n2: \
                 early.txt there within 1.5 s of the start, took {early:?}"
            ),
        );
        // a change every 0.7 s: each reaches n2 within 1.5 s, whatever n3
        // does (the push to n3 waits 2 s for each attempt)
        let mut lat = Vec::new();
        for k in 0..8 {
            let t = Instant::now();
            let rel = format!("live{k}.txt");
            a.file(&rel, format!("change {k}\n"), 0o644, T0 + 10 + k);
            let took = within(20, || b.p(&rel).exists());
            lat.push(took);
            let spent = t.elapsed();
            if spent < Duration::from_millis(700) {
                std::thread::sleep(Duration::from_millis(700) - spent);
            }
        }
        info(r, format!("latencies to n2 with n3 hung: {lat:?}"));
        r.expect(
            lat.iter().all(|l| l.is_some()),
            format!("every change reaches n2: {lat:?}"),
        );
        let worst = lat.iter().flatten().max().copied().unwrap_or_default();
        r.expect(
            worst <= Duration::from_millis(1500),
            format!(
                "the hung peer does not delay n2: every change within 1.5 s (delay 0.2 s), \
                 worst {worst:?}: {lat:?}"
            ),
        );
        // --status: n3 pending with its error, n2 done
        let (mut p2, mut p3) = (serde_json::Value::Null, serde_json::Value::Null);
        let ok = within(20, || {
            let v = status(r, 0);
            p2 = peer(&v, &b.name);
            p3 = peer(&v, &c.name);
            p2["pending"] == 0
                && p3["pending"].as_i64().is_some_and(|k| k > 0)
                && p3["last_error"].is_string()
        });
        r.expect(
            ok.is_some(),
            format!("--status: n2 nothing pending ({p2}), n3 pending with an error ({p3})"),
        );
        let (d, took) = stop_watcher(r, 0, w);
        r.expect(
            d.code == Some(0) && took < Duration::from_secs(5),
            format!(
                "the watcher exits 0 within 5 s of SIGTERM despite the hung peer: {} after {took:?}",
                d.status()
            ),
        );
        let conns = silent.stop();
        r.expect(conns > 0, "the watcher connected to the hung peer");
        r.stop_daemon(1, server);
    });
}

// ---------------------------------------------------------------------------
// 4. a peer down and back
// ---------------------------------------------------------------------------

#[test]
fn peer_down_and_back() {
    solo("watchdown", Net::Watchdown, 2, &[1], &[MODE_D], |r| {
        let (a, b) = (r.n(0).clone(), r.n(1).clone());
        a.file("base.txt", "base\n", 0o644, T0);
        b.file("base.txt", "base\n", 0o644, T0);
        r.init();
        let server = r.start_server(1, "-ii");
        let w = start_watcher(r, 0, &["--delay", "0.3", "-v"], None);
        a.file("one.txt", "one\n", 0o644, T0 + 1);
        r.expect(
            arrives(|| b.p("one.txt").exists()).is_some(),
            "a first file arrives",
        );
        let up = within(20, || {
            let v = status(r, 0);
            let p = peer(&v, &b.name);
            p["pending"] == 0 && p["last_sync"].is_string() && p["last_error"].is_null()
        });
        r.expect(up.is_some(), "--status: n2 synced before it goes down");
        r.stop_daemon(1, server);
        a.file(
            "while_down.txt",
            "written while n2 was down\n",
            0o644,
            T0 + 2,
        );
        let mut seen = serde_json::Value::Null;
        let down = within(30, || {
            let v = status(r, 0);
            seen = v.clone();
            let p = peer(&v, &b.name);
            v["watching"] == true
                && p["pending"].as_i64().is_some_and(|k| k > 0)
                && p["last_error"].is_string()
        });
        r.expect(
            down.is_some(),
            format!("--status while n2 is down: pending > 0 and its error: {seen}"),
        );
        r.expect(
            !b.p("while_down.txt").exists(),
            "nothing reached n2 while it was down",
        );
        // back: the backlog goes out without any new event (the backoff is
        // short yet: a few seconds)
        let server = r.start_server(1, "-ii");
        let back = within(60, || {
            b.read("while_down.txt").as_deref() == Some(&b"written while n2 was down\n"[..])
        });
        info(r, format!("backlog arrived {back:?} after n2 was back"));
        r.expect(back.is_some(), "the backlog arrives when n2 is back");
        let after = within(20, || {
            let v = status(r, 0);
            seen = v.clone();
            let p = peer(&v, &b.name);
            p["pending"] == 0
                && p["last_sync"]
                    .as_str()
                    .is_some_and(|s| s.ends_with('Z') || s.ends_with("+00:00"))
                && p["last_error"].is_null()
        });
        r.expect(
            after.is_some(),
            format!("--status after n2 is back: pending 0, last_sync set, no error: {seen}"),
        );
        // SIGINT is handled like SIGTERM
        let (d, took) = signal_watcher(r, 0, w, libc::SIGINT);
        r.expect(
            d.code == Some(0) && took < Duration::from_secs(5),
            format!("SIGINT: exit 0 within 5 s: {} after {took:?}", d.status()),
        );
        r.stop_daemon(1, server);
    });
}

// ---------------------------------------------------------------------------
// 5. a real inotify queue overflow
// ---------------------------------------------------------------------------

const QUEUE_SYSCTL: &str = "/proc/sys/fs/inotify/max_queued_events";

/// `fs.inotify.max_queued_events` lowered; the old value is written back
/// when dropped (also on a panic).
struct QueueLimit {
    old: String,
}

impl QueueLimit {
    fn lower(to: u32) -> QueueLimit {
        let old = std::fs::read_to_string(QUEUE_SYSCTL).expect("read max_queued_events");
        let g = QueueLimit {
            old: old.trim().to_string(),
        };
        std::fs::write(QUEUE_SYSCTL, to.to_string()).expect("lower max_queued_events");
        g
    }
}

impl Drop for QueueLimit {
    fn drop(&mut self) {
        let _ = std::fs::write(QUEUE_SYSCTL, &self.old);
    }
}

#[test]
fn queue_overflow() {
    solo("watchqueue", Net::Watchqueue, 2, &[1], &[MODE_D], |r| {
        if r.transport == Transport::Tls {
            r.note("plain only");
            return;
        }
        let (a, b) = (r.n(0).clone(), r.n(1).clone());
        a.mkdir("burst", 0o755);
        b.mkdir("burst", 0o755);
        r.init();
        let server = r.start_server(1, "-ii");
        // the queue size is taken when the watcher creates its inotify
        // instance: lowered only until then
        let before = std::fs::read_to_string(QUEUE_SYSCTL).unwrap_or_default();
        let w = start_watcher(r, 0, &["--delay", "0.3", "-v"], Some(16));
        let restored = std::fs::read_to_string(QUEUE_SYSCTL).unwrap_or_default();
        r.expect(
            restored == before,
            format!(
                "max_queued_events restored: {} (was {})",
                restored.trim(),
                before.trim()
            ),
        );
        // a burst far beyond 16 events, for at least 2 s (the watcher is
        // busy checking and pushing meanwhile)
        let t = Instant::now();
        let mut n = 0;
        while n < 1500 || (n < 4000 && t.elapsed() < Duration::from_secs(2)) {
            std::fs::write(a.p(format!("burst/f{n}")), format!("file {n}\n")).expect("write");
            n += 1;
        }
        info(r, format!("{n} files written in {:?}", t.elapsed()));
        let all = within(60, || {
            (0..n).all(|k| {
                b.read(format!("burst/f{k}")).as_deref() == Some(format!("file {k}\n").as_bytes())
            })
        });
        let missing = (0..n)
            .filter(|k| !b.p(format!("burst/f{k}")).exists())
            .count();
        r.expect(
            all.is_some(),
            format!(
                "every file of the burst arrives despite the overflow ({missing} of {n} missing)"
            ),
        );
        let (d, _) = stop_watcher(r, 0, w);
        r.expect(d.code == Some(0), format!("exit 0: {}", d.status()));
        let err = String::from_utf8_lossy(&d.stderr).into_owned();
        r.expect(
            err.contains("fs.inotify.max_queued_events"),
            format!(
                "the overflow warning names fs.inotify.max_queued_events: {:?}",
                err.lines()
                    .filter(|l| l.contains("WARN") || l.contains("inotify"))
                    .collect::<Vec<_>>()
            ),
        );
        r.stop_daemon(1, server);
    });
}

// ---------------------------------------------------------------------------
// 6. SIGTERM in the middle of a burst, 7. a 5,000-file burst
// ---------------------------------------------------------------------------

const BURST: usize = 5000;

fn burst_content(k: usize) -> Vec<u8> {
    format!("burst file {k} of {BURST}\n")
        .repeat(8)
        .into_bytes()
}

/// Writes the burst on `a` below `burst/`; how long that took.
fn write_burst(a: &Node) -> Duration {
    let t = Instant::now();
    for k in 0..BURST {
        std::fs::write(a.p(format!("burst/f{k:05}")), burst_content(k)).expect("write");
    }
    t.elapsed()
}

/// The names below `burst/` on `n` (temporary names too).
fn burst_names(n: &Node) -> Vec<String> {
    std::fs::read_dir(n.p("burst"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn arrived(n: &Node) -> usize {
    burst_names(n)
        .iter()
        .filter(|s| !s.starts_with(".csync2-tmp."))
        .count()
}

#[test]
fn sigterm_mid_burst() {
    solo("watchterm", Net::Watchterm, 2, &[1], &[MODE_D], |r| {
        if r.transport == Transport::Tls {
            r.note("plain only");
            return;
        }
        let (a, b) = (r.n(0).clone(), r.n(1).clone());
        a.mkdir("burst", 0o755);
        b.mkdir("burst", 0o755);
        r.init();
        let server = r.start_server(1, "-ii");
        let w = start_watcher(r, 0, &["--delay", "0.3"], None);
        let wrote = write_burst(&a);
        r.note(format!("{BURST} files written in {wrote:?}"));
        // SIGTERM once the first files are there
        let begun = within(60, || arrived(&b) >= 50);
        let at_term = arrived(&b);
        info(
            r,
            format!("{at_term} files on n2 when SIGTERM is sent ({begun:?} after the burst)"),
        );
        r.expect(begun.is_some(), "the burst starts arriving");
        let (d, took) = stop_watcher(r, 0, w);
        r.expect(
            d.code == Some(0) && took <= Duration::from_secs(5),
            format!(
                "SIGTERM mid-burst: exit 0 within 5 s: {} after {took:?}",
                d.status()
            ),
        );
        if at_term >= BURST {
            r.note("the whole burst had arrived before SIGTERM: not mid-burst");
        }
        // the server's sessions end; then nothing half-written
        let srv_pid = server.pid;
        within(20, || children_of(srv_pid).is_empty());
        let temps = temp_files(&b.tree);
        r.expect(
            temps.is_empty(),
            format!("no temporary files left on n2: {temps:?}"),
        );
        let mut bad = Vec::new();
        let mut present = 0;
        for k in 0..BURST {
            if let Some(c) = b.read(format!("burst/f{k:05}")) {
                present += 1;
                if c != burst_content(k) {
                    bad.push(k);
                }
            }
        }
        info(
            r,
            format!("{present} of {BURST} files on n2 after the stop (exit after {took:?})"),
        );
        r.expect(
            bad.is_empty(),
            format!("every file present on n2 is complete (incomplete: {bad:?})"),
        );
        // a following -x completes the sync
        let x = r.cmd(0, args!["-x"]);
        r.expect(
            x.code == Some(0),
            format!("-x after the stop: {}", x.status()),
        );
        let complete = (0..BURST).all(|k| {
            b.read(format!("burst/f{k:05}"))
                .is_some_and(|c| c == burst_content(k))
        });
        r.expect(
            complete,
            "after -x every file of the burst is on n2, complete",
        );
        let rows = dirty_rows(&a).unwrap_or_default();
        r.expect(
            rows.is_empty(),
            format!("nothing dirty on n1 after -x ({} rows)", rows.len()),
        );
        r.stop_daemon(1, server);
    });
}

#[test]
fn burst_5000() {
    solo("watchburst", Net::Watchburst, 2, &[1], &[MODE_D], |r| {
        if r.transport == Transport::Tls {
            r.note("plain only");
            return;
        }
        let (a, b) = (r.n(0).clone(), r.n(1).clone());
        a.mkdir("burst", 0o755);
        b.mkdir("burst", 0o755);
        r.init();
        let server = r.start_server(1, "-ii");
        let w = start_watcher(r, 0, &["--delay", "0.3", "-v"], None);
        let t = Instant::now();
        let wrote = write_burst(&a);
        let all = within(120, || arrived(&b) >= BURST);
        let took = t.elapsed();
        eprintln!(
            "[watchburst] {BURST} files: written in {wrote:?}, all on the peer after {took:?} ({:?})",
            all
        );
        info(
            r,
            format!("{BURST} files written in {wrote:?}, all on the peer after {took:?}"),
        );
        r.expect(
            all.is_some(),
            format!(
                "all {BURST} files arrive within 120 s ({} there)",
                arrived(&b)
            ),
        );
        let bad: Vec<usize> = (0..BURST)
            .filter(|&k| {
                b.read(format!("burst/f{k:05}"))
                    .is_none_or(|c| c != burst_content(k))
            })
            .take(10)
            .collect();
        r.expect(bad.is_empty(), format!("every file complete: {bad:?}"));
        let (d, _) = stop_watcher(r, 0, w);
        r.expect(d.code == Some(0), format!("exit 0: {}", d.status()));
        r.stop_daemon(1, server);
    });
}
