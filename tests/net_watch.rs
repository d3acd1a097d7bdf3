//! `csync2 --watch` (issue 15, first slice): changes on node 1 reach node 2
//! within seconds without any `-x`: a new file, an append, a mode change,
//! `mkdir -p` with content, a deletion and an `rm -rf` of a subtree; the
//! daemon stops on SIGTERM with exit 0.
//!
//! Needs root; see `tests/net_interop.rs` for the environment variables.

mod common;
mod net;
mod netx;

use net::*;
use netx::*;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

/// Waits until `cond` holds (at most 20 s); how long it took.
fn arrives(cond: impl Fn() -> bool) -> Option<Duration> {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(20) {
        if cond() {
            return Some(t.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

#[test]
fn changes_arrive_without_a_run() {
    solo("watch", Net::Watch, 2, &[1], &[MODE_D], |r| {
        let (a, b) = (r.n(0).clone(), r.n(1).clone());
        a.file("old.txt", "old\n", 0o644, T0);
        b.file("old.txt", "old\n", 0o644, T0);
        r.init();
        // n2 changed a file while n1's watcher was not running: the
        // start-up catch-up brings it
        b.file(
            "from_b.txt",
            "written on n2 before the start\n",
            0o644,
            T0 + 1,
        );
        r.check(1);
        let daemon = r.start_server(1, "-ii");
        // systemd's readiness protocol: READY=1 after the start-up push
        let sock_path = r.dir.join("notify.sock");
        let _ = std::fs::remove_file(&sock_path);
        let notify =
            std::os::unix::net::UnixDatagram::bind(&sock_path).expect("bind NOTIFY_SOCKET");
        notify
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        // SAFETY: one test in this binary; the watcher inherits it
        unsafe { std::env::set_var("NOTIFY_SOCKET", &sock_path) };
        let watcher = a.spawn(&[
            "--watch".into(),
            "--delay".into(),
            "0.3".into(),
            "-v".into(),
        ]);
        unsafe { std::env::remove_var("NOTIFY_SOCKET") };
        let mut buf = [0u8; 64];
        let got = notify.recv(&mut buf).map(|n| buf[..n].to_vec());
        r.expect(
            got.as_deref().ok() == Some(&b"READY=1"[..]),
            format!("READY=1 on NOTIFY_SOCKET after the start-up: {got:?}"),
        );
        // the start-up (check, catch-up, push) is over when a first
        // change gets through
        a.file("new.txt", "new\n", 0o644, T0 + 1);
        let first = arrives(|| b.read("new.txt").as_deref() == Some(&b"new\n"[..]));
        r.expect(first.is_some(), "a new file arrives");
        r.expect(
            a.read("from_b.txt").is_some(),
            "the start-up catch-up brought n2's change",
        );

        let mut steps: Vec<(&str, Option<Duration>)> = Vec::new();
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
        std::fs::create_dir_all(a.p("x/y/z")).expect("mkdir -p");
        std::fs::write(a.p("x/y/z/f"), "deep\n").expect("write deep");
        steps.push((
            "mkdir -p with content",
            arrives(|| b.read("x/y/z/f").as_deref() == Some(&b"deep\n"[..])),
        ));
        std::fs::remove_file(a.p("old.txt")).expect("rm");
        steps.push(("a deletion", arrives(|| !b.p("old.txt").exists())));
        std::fs::remove_dir_all(a.p("x")).expect("rm -rf");
        steps.push(("rm -rf of a subtree", arrives(|| !b.p("x").exists())));
        std::fs::rename(a.p("new.txt"), a.p("renamed.txt")).expect("rename");
        steps.push((
            "a file renamed",
            arrives(|| b.p("renamed.txt").exists() && !b.p("new.txt").exists()),
        ));
        std::fs::create_dir(a.p("d1")).expect("mkdir");
        std::fs::write(a.p("d1/f"), "in d1\n").expect("write");
        steps.push(("a new directory", arrives(|| b.p("d1/f").exists())));
        std::fs::rename(a.p("d1"), a.p("d2")).expect("rename dir");
        steps.push((
            "a directory renamed",
            arrives(|| b.read("d2/f").as_deref() == Some(&b"in d1\n"[..]) && !b.p("d1").exists()),
        ));
        std::fs::remove_file(a.p("renamed.txt")).expect("rm");
        std::os::unix::fs::symlink("d2/f", a.p("renamed.txt")).expect("symlink");
        steps.push((
            "a file turned symlink",
            arrives(|| std::fs::symlink_metadata(b.p("renamed.txt")).is_ok_and(|m| m.is_symlink())),
        ));
        for (what, took) in steps {
            r.expect(took.is_some(), format!("{what} arrives within 20 s"));
        }

        // the peer down and back: its files arrive without a new change
        r.stop_daemon(1, daemon);
        a.file(
            "while_down.txt",
            "written while n2 was down\n",
            0o644,
            T0 + 5,
        );
        std::thread::sleep(Duration::from_millis(1500));
        let daemon = r.start_server(1, "-ii");
        r.expect(
            arrives(|| b.read("while_down.txt").is_some()).is_some(),
            "a file written while the peer was down arrives when it is back",
        );

        // --status sees the daemon; a second one on the same database is
        // refused
        let st = r.cmd(0, args!["--status", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap_or_default();
        r.expect(
            v["watching"] == true,
            format!("--status: watching while it runs: {v}"),
        );
        let second = r.cmd(0, args!["--watch"]);
        r.expect(
            second.code == Some(1)
                && common::show(&second.stderr)
                    .contains("Another csync2 --watch runs on this database"),
            format!(
                "a second watcher is refused: {}",
                common::show(&second.stderr)
            ),
        );

        // SIGTERM: exit 0 within a few seconds
        unsafe { libc::kill(watcher.pid as i32, libc::SIGTERM) };
        let d = watcher.wait_until(Instant::now() + Duration::from_secs(10));
        r.expect(
            d.code == Some(0),
            format!("the watcher stops on SIGTERM with exit 0: {}", d.status()),
        );
        r.stop_daemon(1, daemon);
        let st = r.cmd(0, args!["--status", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap_or_default();
        r.expect(
            v["watching"] == false,
            format!("--status: not watching after it stopped: {v}"),
        );
        let o = r.recheck("n2 -cr", 1);
        let dirty = r.dirty(o, 1);
        r.expect(
            dirty.is_empty(),
            format!("n2's database agrees with its files ({} rows)", dirty.len()),
        );
    });
}

/// SIGHUP: a configuration that does not load is reported and the daemon
/// goes on with the old one; one that loads restarts the daemon in place
/// (same pid), and what the new configuration includes arrives.
#[test]
fn sighup_reloads_the_configuration() {
    const CFG: &str = "nossl * *;\ngroup g {\n    host {N1} {N2};\n    key g.key;\n    include {SYNC};\n    exclude *.skip;\n}\n";
    solo("watchreload", Net::WatchReload, 2, &[1], &[MODE_D], |r| {
        r.config(&CFG.replace("    exclude *.skip;\n", ""));
        let (a, b) = (r.n(0).clone(), r.n(1).clone());
        // only the watcher's host excludes them (the server takes them)
        let tls = r.transport == Transport::Tls;
        let own = |text: String| {
            if tls {
                text.replace("nossl * *;\n", "")
            } else {
                text
            }
        };
        let (with, without) = (
            own(r.subst(CFG)),
            own(r.subst(&CFG.replace("    exclude *.skip;\n", ""))),
        );
        a.write_etc("csync2.cfg", &with);
        a.file("base.txt", "base\n", 0o644, T0);
        b.file("base.txt", "base\n", 0o644, T0);
        r.init();
        let daemon = r.start_server(1, "-ii");
        let watcher = a.spawn(&[
            "--watch".into(),
            "--delay".into(),
            "0.2".into(),
            "-v".into(),
        ]);
        a.file("one.txt", "one\n", 0o644, T0 + 1);
        r.expect(
            arrives(|| b.read("one.txt").is_some()).is_some(),
            "a file arrives before the reload",
        );
        a.file("held.skip", "excluded for now\n", 0o644, T0 + 1);
        // a broken configuration: reported, the daemon keeps its own
        a.write_etc("csync2.cfg", "group g {\n    host nonsense\n");
        unsafe { libc::kill(watcher.pid as i32, libc::SIGHUP) };
        a.file("two.txt", "two\n", 0o644, T0 + 2);
        r.expect(
            arrives(|| b.read("two.txt").is_some()).is_some(),
            "after a SIGHUP with a broken configuration, changes still arrive",
        );
        // the fixed configuration without the exclude: a restart in place
        a.write_etc("csync2.cfg", &without);
        unsafe { libc::kill(watcher.pid as i32, libc::SIGHUP) };
        r.expect(
            arrives(|| b.read("held.skip").is_some()).is_some(),
            "after a SIGHUP with a new configuration, a file it no longer excludes arrives",
        );
        a.file("three.txt", "three\n", 0o644, T0 + 3);
        let three = arrives(|| b.read("three.txt").is_some()).is_some();
        unsafe { libc::kill(watcher.pid as i32, libc::SIGTERM) };
        let d = watcher.wait_until(Instant::now() + Duration::from_secs(10));
        r.expect(
            three,
            format!(
                "the restarted daemon goes on watching:\n{}",
                common::show(&d.stderr)
            ),
        );
        r.expect(
            d.code == Some(0),
            format!(
                "the same process stops on SIGTERM with exit 0: {}",
                d.status()
            ),
        );
        let err = common::show(&d.stderr);
        r.expect(
            err.contains("does not load") && err.contains("Restarting with the new configuration."),
            format!("the log says what happened to each SIGHUP:\n{err}"),
        );
        r.stop_daemon(1, daemon);
    });
}
