//! The state on MySQL/MariaDB (`-D mysql://…`, doc/state.md §1.8): ours
//! and the real csync2 on one private MariaDB with Debian's defaults
//! (utf8mb4, case-insensitive collation), the real one's bugs there fixed
//! (doc/differences.md), a database used by both binaries both ways, and
//! bad input in one line.

mod common;

use common::Which::{Ours, Real};
use common::dbcase::{Local, Srv, both, fails_cleanly};
use common::dbserver::{My, PASSWORD};
use common::idx::DbSrv;

fn fill_plain(l: &Local) {
    l.file(b"a", b"one\n");
    l.file(b"sp ace", b"two\n");
    l.file(b"per%cent:colon", b"x");
    l.file(b"sub/deep/f", b"deep");
    l.file(b"sub/g", b"g");
    l.file(b"skip/no", b"excluded");
    l.file(b"act1", b"action");
}

/// Names the real one's own tables cannot keep apart or store.
fn fill_hard(l: &Local) {
    l.file(b"c/case", b"1");
    l.file(b"c/CASE", b"2");
    l.file(b"c/cafe", b"3");
    l.file("c/café".as_bytes(), b"4");
    l.file(b"c/lat\xe9", b"5");
}

#[test]
fn local_modes_match_the_real_one() {
    let my = My::start(DbSrv::MyLocal);
    let l = Local::new("mylocal");
    fill_plain(&l);
    fill_hard(&l);
    let dbs = ("real_db", "ours_db");
    // ours creates both databases' tables (the real one cannot create the
    // hint table); the real one then works on them
    for db in [dbs.0, dbs.1] {
        let o = l.run(Ours, &my.url("root", db), &["-M"]);
        assert_eq!(o.code, Some(2), "{}", o.stderr_str());
    }
    let tree = l.p("");
    let run = |args: &[&str]| both(&l, &my, "root", dbs, args);
    run(&["-cIr", &tree]);
    assert_eq!(my.dump(dbs.0), my.dump(dbs.1), "after -cIr");
    l.file(b"a", b"changed content\n");
    l.file(b"new", b"new");
    run(&["-cr", &tree]);
    run(&["-M"]);
    run(&["-L"]);
    run(&["-f", &l.p("a")]);
    run(&["-m", &l.p("sp ace")]);
    run(&["-M"]);
    run(&["-C", "r", "-R"]);
    run(&["-M"]);
    run(&["-L"]);
    let (r, o) = (my.dump(dbs.0), my.dump(dbs.1));
    assert_eq!(r, o, "tables after every mode");
    // case- and accent-distinct and Latin-1 names: a row each
    let files = o["file"].clone().unwrap();
    for n in ["c/case|", "c/CASE|", "c/cafe|", "c/café|", "c/lat"] {
        assert!(
            files.iter().any(|f| f.contains(n)),
            "{n} has its row: {files:#?}"
        );
    }
    // hints work (the real one's unquoted `recursive` cannot)
    let u = my.url("root", dbs.1);
    let h = l.run(Ours, &u, &["-h", &l.p("sub")]);
    assert_eq!(h.code, Some(0), "{}", h.stderr_str());
    let hh = l.run(Ours, &u, &["-H"]);
    assert!(String::from_utf8_lossy(&hh.stdout).contains("/sub"));
    l.file(b"sub/g", b"changed");
    let c = l.run(Ours, &u, &["-c"]);
    assert_eq!(c.code, Some(0), "{}", c.stderr_str());
    assert!(l.run(Ours, &u, &["-H"]).stdout.is_empty());
}

#[test]
fn a_database_is_shared_both_ways() {
    let my = My::start(DbSrv::MySwap);
    let l = Local::new("myswap");
    fill_plain(&l);
    let tree = l.p("");
    // the real one's first run on a fresh database creates three tables
    // and fails on the fourth; ours then creates the missing ones
    let u = my.url("root", "by_real");
    let first = l.run(Real, &u, &["-cr", &tree]);
    assert_eq!(first.code, Some(1), "the real one's hint bug");
    assert!(my.dump("by_real")["hint"].is_none());
    let o = l.run(Ours, &u, &["-M"]);
    assert_eq!(o.code, Some(2), "{}", o.stderr_str());
    assert!(my.dump("by_real")["hint"].is_some());
    for (first, second, db) in [(Real, Ours, "by_real"), (Ours, Real, "by_ours")] {
        let u = my.url("root", db);
        let a = l.run(first, &u, &["-cr", &tree]);
        assert_eq!(a.code, Some(0), "{db}: {}", a.stderr_str());
        let m1 = l.run(first, &u, &["-M"]);
        let m2 = l.run(second, &u, &["-M"]);
        assert_eq!(m1.stdout, m2.stdout, "{db}: -M");
        assert!(!m1.stdout.is_empty());
        let before = my.dump(db);
        let c = l.run(second, &u, &["-cr", &tree]);
        assert_eq!(c.code, Some(0), "{db}: {}", c.stderr_str());
        assert_eq!(
            before,
            my.dump(db),
            "{db}: an unchanged tree changes nothing"
        );
        l.file(b"sub/g", db.as_bytes());
        let c = l.run(second, &u, &["-cr", &l.p("sub")]);
        assert_eq!(c.code, Some(0), "{db}: {}", c.stderr_str());
        let f = l.run(first, &u, &["-f", &l.p("sub/g")]);
        assert_eq!(f.code, Some(0), "{db}: {}", f.stderr_str());
        let m = l.run(second, &u, &["-M"]);
        let text = String::from_utf8_lossy(&m.stdout);
        assert!(
            text.lines()
                .any(|x| x.starts_with("force") && x.ends_with("sub/g")),
            "{db}: the first's -f is seen by the second: {text}"
        );
    }
}

#[test]
fn bad_input_ends_in_one_line() {
    let my = My::start(DbSrv::MyBad);
    let l = Local::new("mybad");
    fill_plain(&l);
    let tree = l.p("");
    let port = my.port;
    let down = format!("mysql://root:secret@127.0.0.1:{}/x", port + 90);
    fails_cleanly(
        &l,
        &down,
        &["-cr", &tree],
        &format!("mysql://root@127.0.0.1:{}/x", port + 90),
        "server down",
    );
    let wrong = format!("mysql://pwuser:wrong@127.0.0.1:{port}/x");
    let err = fails_cleanly(
        &l,
        &wrong,
        &["-M"],
        &format!("mysql://pwuser@127.0.0.1:{port}/x"),
        "wrong password",
    );
    assert!(err.contains("Access denied"), "{err}");
    let right = format!("mysql://pwuser:{PASSWORD}@127.0.0.1:{port}/pwdb");
    let o = l.run(Ours, &right, &["-cr", &tree]);
    assert_eq!(o.code, Some(0), "{}", o.stderr_str());
    let nocreate = my.url("nocreate", "newdb");
    let err = fails_cleanly(&l, &nocreate, &["-M"], &nocreate, "cannot create");
    assert!(err.contains("denied"), "{err}");
    fails_cleanly(
        &l,
        "mysqlx://u@h/",
        &["-M"],
        "Unknown database scheme: mysqlx://u@h/",
        "scheme",
    );
}

#[test]
fn a_server_gone_mid_run_loses_nothing() {
    let mut my = My::start(DbSrv::MyGone);
    let l = Local::new("mygone");
    for i in 0..4000 {
        l.file(format!("d{}/f{i}", i % 40).as_bytes(), b"x");
    }
    let tree = l.p("");
    let url = format!("mysql://pwuser:{PASSWORD}@127.0.0.1:{}/gone", my.port);
    let shown = format!("mysql://pwuser@127.0.0.1:{}/gone", my.port);
    let a: Vec<std::ffi::OsString> = ["-N", "h1", "-D", &url, "-cr", &tree]
        .iter()
        .map(Into::into)
        .collect();
    let cmd = common::csync2_command(
        Ours,
        &a,
        &[(common::setup::SYSTEM_DIR, l.etc.clone().into_os_string())],
        &l.dir,
    );
    let p = common::Proc::spawn(cmd, "ours -cr".into());
    let end = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let n = std::process::Command::new("mariadb")
            .arg("--no-defaults")
            .arg(format!("--socket={}", my.socket().display()))
            .args([
                "-u",
                "root",
                "-N",
                "-B",
                "-e",
                "SELECT count(*) FROM gone.file",
            ])
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .trim()
                    .parse::<u32>()
                    .ok()
            })
            .unwrap_or(0);
        if n >= 20 {
            break;
        }
        assert!(std::time::Instant::now() < end, "no rows appear");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    my.stop();
    let d = p.wait_until(std::time::Instant::now() + common::TIMEOUT);
    let err = common::show_lossy(&d.stderr);
    assert_eq!(d.code, Some(1), "exit 1 when the server goes: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains(&shown) && !err.contains(PASSWORD), "{err}");
    my.resume();
    let o = l.run(Ours, &url, &["-cr", &tree]);
    assert_eq!(
        o.code,
        Some(0),
        "the next run completes: {}",
        o.stderr_str()
    );
    let files = my.sql("gone", "SELECT count(*) FROM file");
    let dirty = my.sql("gone", "SELECT count(*) FROM dirty");
    assert_eq!(files.trim(), "4041");
    assert_eq!(dirty.trim(), "8082");
}
