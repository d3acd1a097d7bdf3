//! Concurrent sessions on a server database (doc/state.md §1.8): many of
//! our processes meeting one fresh database at once (creating it and its
//! tables, writing the same rows), and a table locked by someone else for
//! longer than `lock-timeout`: everyone waits, nobody ends with
//! "exceedingly busy", and the rows are those of one run.

mod common;

use common::Which::Ours;
use common::dbcase::{Local, Srv};
use common::dbserver::{My, Pg};
use common::idx::DbSrv;
use std::ffi::OsString;
use std::time::{Duration, Instant};

const FILES: usize = 600;

fn spawn(l: &Local, url: &str, args: &[&str]) -> common::Proc {
    let mut a: Vec<OsString> = ["-N", "h1", "-D", url].iter().map(OsString::from).collect();
    a.extend(args.iter().map(OsString::from));
    let cmd = common::csync2_command(
        Ours,
        &a,
        &[(common::setup::SYSTEM_DIR, l.etc.clone().into_os_string())],
        &l.dir,
    );
    common::Proc::spawn(cmd, format!("ours {args:?}"))
}

fn together(l: &Local, srv: &dyn Srv, user: &str) {
    for i in 0..FILES {
        l.file(format!("d{}/f{i}", i % 6).as_bytes(), b"x");
    }
    // lock-timeout 1: SQLite's limit must not cut a server's lock wait
    let cfg = std::fs::read_to_string(l.etc.join("csync2.cfg")).unwrap();
    std::fs::write(l.etc.join("csync2.cfg"), format!("lock-timeout 1;\n{cfg}")).unwrap();
    let url = srv.url(user, "together");
    let tree = l.p("");
    let mut procs = Vec::new();
    for k in 0..8 {
        let args: Vec<String> = match k % 4 {
            0 | 1 => vec!["-cr".into(), tree.clone()],
            2 => vec!["-cr".into(), l.p(&format!("d{}", k % 6))],
            _ => vec!["-cr".into(), l.p("d1"), l.p("d2")],
        };
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        procs.push(spawn(l, &url, &a));
    }
    for p in procs {
        let d = p.wait_until(Instant::now() + Duration::from_secs(120));
        let err = common::show_lossy(&d.stderr);
        assert_eq!(d.code, Some(0), "{}: {err}", d.what);
        assert!(!err.contains("busy"), "{err}");
    }
    let dump = srv.dump("together");
    // every file and directory once, dirty towards h2 and h3 once each
    assert_eq!(dump["file"].as_ref().unwrap().len(), FILES + 7);
    assert_eq!(dump["dirty"].as_ref().unwrap().len(), 2 * (FILES + 7));
}

#[test]
fn pgsql_sessions_meet_a_fresh_database() {
    let pg = Pg::start(DbSrv::PgConc);
    let l = Local::new("pgconc");
    together(&l, &pg, "postgres");
}

#[test]
fn mysql_sessions_meet_a_fresh_database() {
    let my = My::start(DbSrv::MyConc);
    let l = Local::new("myconc");
    together(&l, &my, "root");
}

#[test]
fn pgsql_waits_for_a_locked_table() {
    let pg = Pg::start(DbSrv::PgBusy);
    let l = Local::new("pgbusy");
    for i in 0..50 {
        l.file(format!("f{i}").as_bytes(), b"x");
    }
    let cfg = std::fs::read_to_string(l.etc.join("csync2.cfg")).unwrap();
    std::fs::write(l.etc.join("csync2.cfg"), format!("lock-timeout 1;\n{cfg}")).unwrap();
    let url = pg.url("postgres", "locked");
    let o = l.run(Ours, &url, &["-M"]);
    assert_eq!(o.code, Some(2), "{}", o.stderr_str());
    // someone holds the file table for 9 s (longer than lock-timeout
    // plus pid % 7)
    let mut holder = std::process::Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &pg.port.to_string(),
            "-U",
            "postgres",
        ])
        .args(["-d", "locked", "-c"])
        .arg("BEGIN; LOCK TABLE file IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(9); COMMIT;")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    let o = l.run(Ours, &url, &["-cr", &l.p("")]);
    let waited = t.elapsed();
    holder.wait().unwrap();
    assert_eq!(o.code, Some(0), "{}", o.stderr_str());
    assert!(waited > Duration::from_secs(5), "it waited: {waited:?}");
    assert_eq!(pg.dump("locked")["file"].as_ref().unwrap().len(), 51);
}

#[test]
fn mysql_waits_for_a_locked_table() {
    let my = My::start(DbSrv::MyBusy);
    let l = Local::new("mybusy");
    for i in 0..50 {
        l.file(format!("f{i}").as_bytes(), b"x");
    }
    let url = my.url("root", "locked");
    let o = l.run(Ours, &url, &["-M"]);
    assert_eq!(o.code, Some(2), "{}", o.stderr_str());
    let mut holder = std::process::Command::new("mariadb")
        .arg("--no-defaults")
        .arg(format!("--socket={}", my.socket().display()))
        .args(["-u", "root", "locked", "-e"])
        .arg("LOCK TABLES file WRITE; SELECT SLEEP(9); UNLOCK TABLES;")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    let o = l.run(Ours, &url, &["-cr", &l.p("")]);
    let waited = t.elapsed();
    holder.wait().unwrap();
    assert_eq!(o.code, Some(0), "{}", o.stderr_str());
    assert!(waited > Duration::from_secs(5), "it waited: {waited:?}");
    assert_eq!(my.dump("locked")["file"].as_ref().unwrap().len(), 51);
}

/// A transaction the server aborts (deadlock_detected, here raised by a
/// trigger twice, exactly as PostgreSQL reports a real one) runs again and
/// completes: every row is there once.
#[test]
fn pgsql_aborted_transaction_runs_again() {
    let pg = Pg::start(DbSrv::PgDeadlock);
    let l = Local::new("pgdeadlock");
    for i in 0..100 {
        l.file(format!("f{i:03}").as_bytes(), b"x");
    }
    let url = pg.url("postgres", "deadlock");
    let o = l.run(Ours, &url, &["-M"]);
    assert_eq!(o.code, Some(2), "{}", o.stderr_str());
    // a sequence is not rolled back with the transaction: two failures
    pg.psql(
        "deadlock",
        "CREATE SEQUENCE fails; \
         CREATE FUNCTION abort_twice() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN IF NEW.filename LIKE '%/f010' AND nextval('fails') <= 2 THEN \
         RAISE EXCEPTION 'deadlock detected (test)' USING ERRCODE = '40P01'; END IF; \
         RETURN NEW; END $$; \
         CREATE TRIGGER abort_twice BEFORE INSERT ON file FOR EACH ROW EXECUTE FUNCTION abort_twice()",
    );
    let o = l.run(Ours, &url, &["-vv", "-cr", &l.p("")]);
    let err = o.stderr_str();
    assert_eq!(o.code, Some(0), "{err}");
    let again: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("running it again"))
        .collect();
    assert_eq!(again.len(), 2, "two replays: {again:?}");
    assert_eq!(
        pg.psql("deadlock", "SELECT last_value FROM fails").trim(),
        "3"
    );
    let dump = pg.dump("deadlock");
    assert_eq!(dump["file"].as_ref().unwrap().len(), 101);
    assert_eq!(dump["dirty"].as_ref().unwrap().len(), 202);
}

/// The same on MariaDB: a deadlock error (1213) twice, then success.
#[test]
fn mysql_aborted_transaction_runs_again() {
    let my = My::start(DbSrv::MyDeadlock);
    let l = Local::new("mydeadlock");
    for i in 0..100 {
        l.file(format!("f{i:03}").as_bytes(), b"x");
    }
    let url = my.url("root", "deadlock");
    let o = l.run(Ours, &url, &["-M"]);
    assert_eq!(o.code, Some(2), "{}", o.stderr_str());
    // MyISAM keeps its rows when the transaction is rolled back
    my.sql(
        "deadlock",
        "CREATE TABLE fails (n INT) ENGINE=MyISAM;\n\
         DELIMITER //\n\
         CREATE TRIGGER abort_twice BEFORE INSERT ON file FOR EACH ROW BEGIN \
         IF NEW.filename LIKE '%/f010' THEN INSERT INTO fails VALUES (1); \
         IF (SELECT count(*) FROM fails) <= 2 THEN \
         SIGNAL SQLSTATE '40001' SET MYSQL_ERRNO = 1213, MESSAGE_TEXT = 'Deadlock found (test)'; \
         END IF; END IF; END //\n\
         DELIMITER ;",
    );
    let o = l.run(Ours, &url, &["-vv", "-cr", &l.p("")]);
    let err = o.stderr_str();
    assert_eq!(o.code, Some(0), "{err}");
    let again: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("running it again"))
        .collect();
    assert_eq!(again.len(), 2, "two replays: {again:?}");
    assert_eq!(my.sql("deadlock", "SELECT count(*) FROM fails").trim(), "3");
    let dump = my.dump("deadlock");
    assert_eq!(dump["file"].as_ref().unwrap().len(), 101);
    assert_eq!(dump["dirty"].as_ref().unwrap().len(), 202);
}
