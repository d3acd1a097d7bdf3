//! The state on PostgreSQL (`-D pgsql://…`, doc/state.md §1.8): ours and
//! the real csync2 on one private server (tests/common/dbserver.rs), the
//! same output and the same rows; a database written by either is used by
//! the other; bad URLs, servers and credentials end in one line.

mod common;

use common::Which::{Ours, Real};
use common::dbcase::{Local, Srv, both, fails_cleanly};
use common::dbserver::{PASSWORD, Pg};
use common::idx::DbSrv;

/// A tree with the names that need encoding or are not UTF-8.
fn fill(l: &Local) {
    l.file(b"a", b"one\n");
    l.file(b"sp ace", b"two\n");
    l.file(b"per%cent:colon", b"x");
    l.file(b"lat\xe9", b"latin-1 name");
    l.file(b"sub/deep/f", b"deep");
    l.file(b"sub/g", b"g");
    l.file(b"skip/no", b"excluded");
    l.file(b"act1", b"action");
}

#[test]
fn local_modes_match_the_real_one() {
    let pg = Pg::start(DbSrv::PgLocal);
    let l = Local::new("pglocal");
    fill(&l);
    let dbs = ("real_db", "ours_db");
    let tree = l.p("");
    let run = |args: &[&str]| both(&l, &pg, "postgres", dbs, args);
    run(&["-cIr", &tree]);
    assert_eq!(pg.dump(dbs.0), pg.dump(dbs.1), "after -cIr");
    l.file(b"a", b"changed content\n");
    l.file(b"new", b"new");
    run(&["-cr", &tree]);
    run(&["-M"]);
    run(&["-L"]);
    let sub = l.p("sub");
    run(&["-h", &sub]);
    run(&["-h", &sub]);
    run(&["-h", &l.p("new")]);
    run(&["-H"]);
    assert_eq!(pg.dump(dbs.0), pg.dump(dbs.1), "after -h");
    l.file(b"sub/g", b"g changed");
    run(&["-c"]);
    run(&["-H"]);
    run(&["-f", &l.p("a")]);
    run(&["-M"]);
    run(&["-m", &l.p("sp ace")]);
    run(&["-M"]);
    run(&["-C", "r", "-R"]);
    run(&["-M"]);
    run(&["-L"]);
    let (r, o) = (pg.dump(dbs.0), pg.dump(dbs.1));
    assert_eq!(r, o, "tables after every mode");
    assert!(
        r["file"]
            .as_ref()
            .unwrap()
            .iter()
            .any(|f| f.contains("lat")),
        "the Latin-1 name has its row: {r:?}"
    );
    // the same tables, columns and indexes as the real one creates
    let schema = |db: &str| {
        pg.psql(
            db,
            "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns \
             WHERE table_schema = 'public' ORDER BY 1, ordinal_position",
        ) + &pg.psql(
            db,
            "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 2",
        )
    };
    assert_eq!(
        schema(dbs.0).replace("real_db", "DB"),
        schema(dbs.1).replace("ours_db", "DB")
    );
}

#[test]
fn a_database_is_shared_both_ways() {
    let pg = Pg::start(DbSrv::PgSwap);
    let l = Local::new("pgswap");
    fill(&l);
    let tree = l.p("");
    let url = |db: &str| pg.url("postgres", db);
    for (first, second, db) in [(Real, Ours, "by_real"), (Ours, Real, "by_ours")] {
        let u = url(db);
        let a = l.run(first, &u, &["-cr", &tree]);
        assert_eq!(a.code, Some(0), "{db}: {}", a.stderr_str());
        // the second sees the first's rows: nothing new, the same list
        let m1 = l.run(first, &u, &["-M"]);
        let m2 = l.run(second, &u, &["-M"]);
        assert_eq!(m1.stdout, m2.stdout, "{db}: -M");
        assert!(!m1.stdout.is_empty());
        let before = pg.dump(db);
        let c = l.run(second, &u, &["-cr", &tree]);
        assert_eq!(c.code, Some(0), "{db}: {}", c.stderr_str());
        assert_eq!(
            before,
            pg.dump(db),
            "{db}: an unchanged tree changes nothing"
        );
        // a change made through the second is seen by the first
        l.file(b"sub/g", db.as_bytes());
        let c = l.run(second, &u, &["-cr", &l.p("sub")]);
        assert_eq!(c.code, Some(0), "{db}: {}", c.stderr_str());
        let h = l.run(second, &u, &["-h", &l.p("a")]);
        assert_eq!(h.code, Some(0));
        assert_eq!(
            l.run(first, &u, &["-H"]).stdout,
            l.run(second, &u, &["-H"]).stdout,
            "{db}: -H"
        );
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
    assert!(pg.databases().contains(&"by_real".to_string()));
}

#[test]
fn bad_input_ends_in_one_line() {
    let pg = Pg::start(DbSrv::PgBad);
    let l = Local::new("pgbad");
    fill(&l);
    let tree = l.p("");
    let port = pg.port;
    // nothing listens on the next slot's port
    let down = format!("pgsql://postgres:secret@127.0.0.1:{}/x", port + 90);
    fails_cleanly(
        &l,
        &down,
        &["-cr", &tree],
        &format!("pgsql://postgres@127.0.0.1:{}/x", port + 90),
        "server down",
    );
    let wrong = format!("pgsql://pwuser:wrong@127.0.0.1:{port}/x");
    let err = fails_cleanly(
        &l,
        &wrong,
        &["-M"],
        &format!("pgsql://pwuser@127.0.0.1:{port}/x"),
        "wrong password",
    );
    assert!(err.contains("password authentication failed"), "{err}");
    // the right one works
    let right = format!("pgsql://pwuser:{PASSWORD}@127.0.0.1:{port}/pwdb");
    let o = l.run(Ours, &right, &["-cr", &tree]);
    assert_eq!(o.code, Some(0), "{}", o.stderr_str());
    let nocreate = pg.url("nocreate", "newdb");
    let err = fails_cleanly(&l, &nocreate, &["-M"], &nocreate, "cannot create");
    assert!(err.contains("permission denied"), "{err}");
    let badport = "pgsql://postgres@127.0.0.1:notaport/";
    fails_cleanly(&l, badport, &["-M"], badport, "port");
    fails_cleanly(
        &l,
        "pgsqlx://u@h/",
        &["-M"],
        "Unknown database scheme: pgsqlx://u@h/",
        "scheme",
    );
    // a capitalised name works (the real one's unquoted CREATE DATABASE
    // folded it)
    let caps = pg.url("postgres", "MyDb");
    let o = l.run(Ours, &caps, &["-cr", &tree]);
    assert_eq!(o.code, Some(0), "{}", o.stderr_str());
    let o2 = l.run(Real, &caps, &["-M"]);
    assert_eq!(
        o2.code,
        Some(0),
        "the real one uses it: {}",
        o2.stderr_str()
    );
    assert_eq!(o2.stdout, l.run(Ours, &caps, &["-M"]).stdout);
    // without "//" it is a relative SQLite file, as in the real one
    let o = l.run(Ours, "pgsql:postgres@127.0.0.1/", &["-M"]);
    assert_eq!(o.code, Some(2), "{}", o.stderr_str());
    assert!(l.dir.join("pgsql:postgres@127.0.0.1").exists());
}

#[test]
fn a_server_gone_mid_run_loses_nothing() {
    let mut pg = Pg::start(DbSrv::PgGone);
    let l = Local::new("pggone");
    for i in 0..4000 {
        l.file(format!("d{}/f{i}", i % 40).as_bytes(), b"x");
    }
    let tree = l.p("");
    let url = format!("pgsql://pwuser:{PASSWORD}@127.0.0.1:{}/gone", pg.port);
    let shown = format!("pgsql://pwuser@127.0.0.1:{}/gone", pg.port);
    let mut a: Vec<std::ffi::OsString> = ["-N", "h1", "-D", &url, "-cr", &tree]
        .iter()
        .map(Into::into)
        .collect();
    a.shrink_to_fit();
    let cmd = common::csync2_command(
        Ours,
        &a,
        &[(common::setup::SYSTEM_DIR, l.etc.clone().into_os_string())],
        &l.dir,
    );
    let p = common::Proc::spawn(cmd, "ours -cr".into());
    // stop the server once the first rows are committed
    let end = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let n = std::process::Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &pg.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "gone",
            ])
            .args(["-Atc", "SELECT count(*) FROM file"])
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
    pg.stop();
    let d = p.wait_until(std::time::Instant::now() + common::TIMEOUT);
    let err = common::show_lossy(&d.stderr);
    assert_eq!(d.code, Some(1), "exit 1 when the server goes: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains(&shown) && !err.contains(PASSWORD), "{err}");
    pg.resume();
    let o = l.run(Ours, &url, &["-cr", &tree]);
    assert_eq!(
        o.code,
        Some(0),
        "the next run completes: {}",
        o.stderr_str()
    );
    let files = pg.psql("gone", "SELECT count(*) FROM file");
    let dirty = pg.psql("gone", "SELECT count(*) FROM dirty");
    // 4000 files, 40 directories and the root; dirty rows towards h2 and h3
    assert_eq!(files.trim(), "4041");
    assert_eq!(dirty.trim(), "8082");
}
