//! `--watch`, its start-up catch-up and `--status` with both hosts' state
//! on a database server (PostgreSQL, MariaDB): what n2 changed before
//! n1's watcher started comes with the catch-up, what changes on n1 after
//! it started arrives on n2, `--status --json` sees the daemon and no
//! pending file, and SIGTERM ends it with exit 0.
//!
//! Needs root (addresses in /etc/hosts).

mod common;
mod net;

use common::dbcase::Srv;
use common::dbserver::{My, Pg};
use common::idx::DbSrv;
use net::*;
use std::ffi::OsString;
use std::time::{Duration, Instant};

fn args(a: &[&str]) -> Vec<OsString> {
    a.iter().map(OsString::from).collect()
}

/// Polls `cond` for up to 20 s.
fn within(cond: impl FnMut() -> bool) -> bool {
    common::wait::poll_until(
        Instant::now() + Duration::from_secs(20),
        Duration::from_millis(50),
        cond,
    )
}

fn watch(label: &str, idx: Net, srv: &dyn Srv, user: &str) {
    let hs = hosts(label, idx, 2);
    let base = base_dir(label);
    let sync = base.join("sync");
    let port = port(idx, 0);
    let mut n1 = Node::new(&hs[0], Imp::Ours, Role::Client, port, &base, &sync);
    let mut n2 = Node::new(&hs[1], Imp::Ours, Role::Server, port, &base, &sync);
    n1.db_url = Some(srv.url(user, "w1db"));
    n2.db_url = Some(srv.url(user, "w2db"));
    for n in [&n1, &n2] {
        n.write_etc(
            "csync2.cfg",
            &format!(
                "nossl * *;\ngroup g {{\n    host {} {};\n    key g.key;\n    include {};\n}}\n",
                hs[0].name,
                hs[1].name,
                sync.display()
            ),
        );
        n.write_etc("g.key", KEY1);
        n.file("base.txt", "base\n", 0o644, T0);
        fix_dir_mtimes(&n.tree);
        let d = n.run(&args(&["-cIr", &sync.to_string_lossy()]));
        assert_eq!(d.code, Some(0), "{label}: -cIr: {}", d.status());
    }
    // n2 changes a file while n1's watcher is not running
    n2.file("from_n2.txt", "written on n2\n", 0o644, T0 + 1);
    let d = n2.run(&args(&["-cr", &sync.to_string_lossy()]));
    assert_eq!(d.code, Some(0), "{label}: n2 -cr: {}", d.status());
    let server = n2.spawn(&args(&["-ii"]));
    let server = await_listening(server, n2.addr, port, Duration::from_millis(20))
        .unwrap_or_else(|d| panic!("{label}: n2's server did not listen: {}", d.status()));
    let watcher = n1.spawn(&args(&["--watch", "--delay", "0.2", "-v"]));
    let caught_up = within(|| n1.read("from_n2.txt").as_deref() == Some(&b"written on n2\n"[..]));
    n1.file("live.txt", "written on n1 while watching\n", 0o644, T0 + 2);
    let live =
        within(|| n2.read("live.txt").as_deref() == Some(&b"written on n1 while watching\n"[..]));
    let status_ok = within(|| {
        let st = n1.run(&args(&["--status", "--json"]));
        let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap_or_default();
        v["watching"] == true
            && v["peers"][0]["pending"] == 0
            && !v["peers"][0]["last_sync"].is_null()
    });
    // SAFETY: our own child, by pid
    unsafe { libc::kill(watcher.pid as i32, libc::SIGTERM) };
    let w = watcher.wait_until(Instant::now() + Duration::from_secs(10));
    let s = server.kill();
    let report = format!(
        "watcher: {}\n{}\nserver: {}",
        w.status(),
        common::show_lossy(&w.stderr),
        common::show_lossy(&s.stderr)
    );
    assert!(
        caught_up,
        "{label}: the start-up catch-up brought n2's file\n{report}"
    );
    assert!(
        live,
        "{label}: a file written on n1 arrived on n2\n{report}"
    );
    assert!(
        status_ok,
        "{label}: --status --json: watching, nothing pending, a last sync\n{report}"
    );
    assert_eq!(
        w.code,
        Some(0),
        "{label}: SIGTERM ends the watcher with exit 0\n{report}"
    );
    assert_eq!(
        srv.dump("w1db")["dirty"],
        Some(vec![]),
        "{label}: n1 has nothing dirty"
    );
    common::dbcase::forget_records(srv);
    if !std::thread::panicking() {
        let _ = std::fs::remove_dir_all(&base);
    }
}

#[test]
fn pgsql_watch() {
    let pg = Pg::start(DbSrv::PgWatch);
    watch("dbwatchpg", Net::Dbwatchpg, &pg, "postgres");
}

#[test]
fn mysql_watch() {
    let my = My::start(DbSrv::MyWatch);
    watch("dbwatchmy", Net::Dbwatchmy, &my, "root");
}
