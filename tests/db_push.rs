//! Pushes between two hosts that each keep their state on a database
//! server (doc/state.md §1.8): ours to ours, ours to the real csync2 and
//! the real one to ours, on PostgreSQL and MariaDB. The files arrive, the
//! sender's dirty rows go and the receiver's file rows come, as with
//! SQLite; a second round sends a change and a deletion.
//!
//! Needs root (addresses in /etc/hosts, mount namespaces).

mod common;
mod net;

use common::dbcase::Srv;
use common::dbserver::{My, Pg};
use common::idx::DbSrv;
use net::*;
use std::ffi::OsString;
use std::time::{Duration, Instant};

fn push(label: &str, idx: Net, client: Imp, server: Imp, srv: &dyn Srv, user: &str) {
    let hs = hosts(label, idx, 2);
    let base = base_dir(label);
    let sync = base.join("sync");
    let port = port(idx, 0);
    let mut n1 = Node::new(&hs[0], client, Role::Client, port, &base, &sync);
    let mut n2 = Node::new(&hs[1], server, Role::Server, port, &base, &sync);
    n1.db_url = Some(srv.url(user, "n1db"));
    n2.db_url = Some(srv.url(user, "n2db"));
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
        // the real one cannot create its MySQL hint table: ours makes the
        // tables first (on PostgreSQL this changes nothing)
        let d = Node {
            imp: Imp::Ours,
            ..n.clone()
        }
        .run(&[OsString::from("-M")]);
        assert!(d.code == Some(2) || d.code == Some(0), "{}", d.status());
    }
    n1.file("a", "first file\n", 0o644, T0);
    n1.mkdir("sub", 0o755);
    n1.file("sub/b", "second\n", 0o600, T0 + 1);
    n1.file("sp ace", "third\n", 0o644, T0 + 2);
    fix_dir_mtimes(&n1.tree);
    let round = |what: &str| {
        let srv_proc = n2.spawn(&[OsString::from("-iii")]);
        let srv_proc = await_listening(srv_proc, n2.addr, port, Duration::from_millis(20))
            .unwrap_or_else(|d| panic!("{what}: the server did not listen: {}", d.status()));
        let c = n1.run(&[OsString::from("-x")]);
        let s = srv_proc.wait_until(Instant::now() + TIMEOUT);
        assert_eq!(
            c.code,
            Some(0),
            "{what}: client: {}\n{}\nserver: {}",
            c.status(),
            common::show_lossy(&c.stderr),
            common::show_lossy(&s.stderr)
        );
    };
    round("first push");
    for (rel, content) in [
        ("a", "first file\n"),
        ("sub/b", "second\n"),
        ("sp ace", "third\n"),
    ] {
        assert_eq!(
            n2.read(rel).as_deref(),
            Some(content.as_bytes()),
            "{label}: {rel} arrived"
        );
    }
    let d1 = srv.dump("n1db");
    assert_eq!(
        d1["dirty"],
        Some(vec![]),
        "{label}: the sender's rows are gone"
    );
    let files2 = srv.dump("n2db")["file"].clone().unwrap();
    assert!(
        files2.iter().any(|r| r.contains("/sp%20ace|")) && files2.len() >= 5,
        "{label}: the receiver's file rows: {files2:#?}"
    );
    // a change and a deletion
    n1.file("a", "changed\n", 0o644, T0 + 10);
    n1.remove("sub/b");
    round("second push");
    assert_eq!(
        n2.read("a").as_deref(),
        Some(&b"changed\n"[..]),
        "{label}: change"
    );
    assert!(n2.read("sub/b").is_none(), "{label}: deletion");
    assert_eq!(srv.dump("n1db")["dirty"], Some(vec![]), "{label}");
    let files2 = srv.dump("n2db")["file"].clone().unwrap();
    assert!(
        !files2.iter().any(|r| r.contains("/sub/b|")),
        "{label}: the deleted file's row went: {files2:#?}"
    );
    common::dbcase::forget_records(srv);
    if !std::thread::panicking() {
        let _ = std::fs::remove_dir_all(&base);
    }
}

#[test]
fn pgsql_ours_to_ours() {
    let pg = Pg::start(DbSrv::PgPush);
    push(
        "pgpushoo",
        Net::Pgpushoo,
        Imp::Ours,
        Imp::Ours,
        &pg,
        "postgres",
    );
}

#[test]
fn pgsql_ours_to_real() {
    let pg = Pg::start(DbSrv::PgPushOr);
    push(
        "pgpushor",
        Net::Pgpushor,
        Imp::Ours,
        Imp::Real,
        &pg,
        "postgres",
    );
}

#[test]
fn pgsql_real_to_ours() {
    let pg = Pg::start(DbSrv::PgPushRo);
    push(
        "pgpushro",
        Net::Pgpushro,
        Imp::Real,
        Imp::Ours,
        &pg,
        "postgres",
    );
}

#[test]
fn mysql_ours_to_ours() {
    let my = My::start(DbSrv::MyPush);
    push("mypushoo", Net::Mypushoo, Imp::Ours, Imp::Ours, &my, "root");
}

#[test]
fn mysql_ours_to_real() {
    let my = My::start(DbSrv::MyPushOr);
    push("mypushor", Net::Mypushor, Imp::Ours, Imp::Real, &my, "root");
}

#[test]
fn mysql_real_to_ours() {
    let my = My::start(DbSrv::MyPushRo);
    push("mypushro", Net::Mypushro, Imp::Real, Imp::Ours, &my, "root");
}

/// TLS, `-T` and `--status` with both hosts' state on a server: the
/// certificates are pinned in `x509_cert`, the databases compare in sync,
/// and the status shows the push.
fn tls_compare_status(label: &str, idx: Net, srv: &dyn Srv, user: &str) {
    let hs = hosts(label, idx, 2);
    let base = base_dir(label);
    let sync = base.join("sync");
    let port = port(idx, 0);
    let mut n1 = Node::new(&hs[0], Imp::Ours, Role::Client, port, &base, &sync);
    let mut n2 = Node::new(&hs[1], Imp::Ours, Role::Server, port, &base, &sync);
    n1.db_url = Some(srv.url(user, "t1db"));
    n2.db_url = Some(srv.url(user, "t2db"));
    let certs = base.join("certs");
    let c1 = host_cert(&certs, &hs[0], 0, KeyKind::P256);
    let c2 = host_cert(&certs, &hs[1], 1, KeyKind::P256);
    install(&n1, &c1);
    install(&n2, &c2);
    for n in [&n1, &n2] {
        n.write_etc(
            "csync2.cfg",
            &format!(
                "group g {{\n    host {} {};\n    key g.key;\n    include {};\n}}\n",
                hs[0].name,
                hs[1].name,
                sync.display()
            ),
        );
        n.write_etc("g.key", KEY1);
    }
    n1.file("a", "tls file\n", 0o644, T0);
    fix_dir_mtimes(&n1.tree);
    let serve = |what: &str| {
        let p = n2.spawn(&[OsString::from("-iii")]);
        await_listening(p, n2.addr, port, Duration::from_millis(20))
            .unwrap_or_else(|d| panic!("{what}: the server did not listen: {}", d.status()))
    };
    let s = serve("push");
    let c = n1.run(&[OsString::from("-x")]);
    let sd = s.wait_until(Instant::now() + TIMEOUT);
    assert_eq!(
        c.code,
        Some(0),
        "{label}: {}\n{}",
        common::show_lossy(&c.stderr),
        common::show_lossy(&sd.stderr)
    );
    assert_eq!(n2.read("a").as_deref(), Some(&b"tls file\n"[..]));
    let pinned = |db: &str| srv.dump(db)["x509_cert"].clone().unwrap();
    assert_eq!(pinned("t1db").len(), 1, "{label}: n1 pinned n2");
    assert!(
        pinned("t1db")[0].ends_with(&c2.hex),
        "{label}: n2's certificate"
    );
    assert!(
        pinned("t2db")[0].ends_with(&c1.hex),
        "{label}: n1's certificate"
    );
    // -T: the two databases agree (exit 2)
    let s = serve("compare");
    let t = n1.run(&[OsString::from("-T")]);
    s.wait_until(Instant::now() + TIMEOUT);
    assert_eq!(
        t.code,
        Some(2),
        "{label}: -T: {}",
        common::show_lossy(&t.stdout)
    );
    // --status: nothing pending, a last sync
    let st = n1.run(&[OsString::from("--status")]);
    let text = String::from_utf8_lossy(&st.stdout);
    assert!(
        text.contains("0 pending") && !text.contains("last sync never"),
        "{label}: {text}"
    );
    // a change recorded here and not pushed: -T --json names it in one
    // object per line (exit 0: differences), -TT FILE shows the diff
    n1.file("a", "changed on n1\n", 0o644, T0 + 5);
    let c = n1.run(&[OsString::from("-c"), sync.join("a").into_os_string()]);
    assert_eq!(c.code, Some(0), "{label}: -c: {}", c.status());
    let s = serve("compare --json");
    let t = n1.run(&[OsString::from("-T"), OsString::from("--json")]);
    s.wait_until(Instant::now() + TIMEOUT);
    let objects: Vec<serde_json::Value> = String::from_utf8_lossy(&t.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        t.code == Some(0) && objects.len() == 1 && objects[0].to_string().contains("/a\""),
        "{label}: -T --json: {} {} {} / n1 files {:?} / n2 files {:?}",
        t.status(),
        common::show_lossy(&t.stdout),
        common::show_lossy(&t.stderr),
        srv.dump("t1db")["file"],
        srv.dump("t2db")["file"]
    );
    let s = serve("diff");
    let t = n1.run(&[OsString::from("-TT"), sync.join("a").into_os_string()]);
    s.wait_until(Instant::now() + TIMEOUT);
    let out = String::from_utf8_lossy(&t.stdout);
    assert!(
        out.contains("+changed on n1") && out.contains("-tls file"),
        "{label}: -TT a: {} {out}",
        t.status()
    );
    common::dbcase::forget_records(srv);
    if !std::thread::panicking() {
        let _ = std::fs::remove_dir_all(&base);
    }
}

#[test]
fn pgsql_tls_compare_status() {
    let pg = Pg::start(DbSrv::PgTls);
    tls_compare_status("pgtls", Net::Pgtls, &pg, "postgres");
}

#[test]
fn mysql_tls_compare_status() {
    let my = My::start(DbSrv::MyTls);
    tls_compare_status("mytls", Net::Mytls, &my, "root");
}
