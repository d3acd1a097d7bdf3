//! TLS interoperability tests (protocol.md §5, transcripts T18/T18b/T18c,
//! state.md §8): pushes over `SSL` / `OK (activating_ssl).` between the real
//! csync2 and ours, with certificates made by `openssl req` as admins make
//! them, in the pairings of `tests/net_interop.rs`:
//!
//! * (a) REAL client → REAL server (the reference, where it can work),
//! * (b) REAL client → OURS server,
//! * (c) OURS client → REAL server,
//! * (d) OURS client → OURS server.
//!
//! The harness is `tests/net/mod.rs`; this file adds what TLS needs: its own
//! addresses (`127.62.<idx>.<k>`) and ports (32000 + 8·idx + slot), configs
//! without `nossl * *;`, certificate files installed into each node's
//! `CSYNC2_SYSTEM_DIR` (`csync2_ssl_key.pem`, `csync2_ssl_cert.pem`), and
//! comparisons of the TLS error lines of clients and servers.
//!
//! Per-host self-signed certificates cannot work between two real nodes: the
//! real server advertises the subject of its own certificate as the only
//! acceptable CA, so a real client whose certificate has another issuer sends
//! none (protocol.md §5.5, T18b). The per-host tests therefore use, for run
//! (a) only, the documented work-around: the real server's certificate file
//! also holds the client's certificate after its own. The pinned server
//! certificate is still the leaf, so all four runs must end with the same
//! `x509_cert` rows.
//!
//! Each per-host key-type test also runs (s): REAL → REAL with one shared
//! certificate of that type, as the csync2 documentation sets clusters up.
//!
//! Known behaviour of the real program checked here (not all of it in the
//! spec): when the server dies right after `OK (activating_ssl).` (its
//! certificate files are missing) the real client is killed by SIGPIPE in
//! the handshake without a message, where ours exits 1 with `SSL: handshake
//! failed: …`; a refused HELLO in `-u`/`-x` mode prints no `ERROR:` line in
//! the real client (only `Finished with 1 errors.`); the real server logs
//! `Peer did provide a wrong SSL X509 cetrificate.` at `-v` when the HELLO
//! pin check fails.
//!
//! `TYPE` is not used by our client yet and is not tested here.
//!
//! Needs root (mount namespaces, /etc/hosts), the real csync2 and `openssl`.
//! `CSYNC2_DIFF_KEEP=1` keeps the scenario directories
//! (`/tmp/c2net-<pid>-tls-<test>/`, certificates in `certs/`).

mod common;
mod net;

use common::idx::Tls;
use common::{show, url_encode};
use net::*;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------
// Hosts and ports of this file
// ---------------------------------------------------------------------------

/// The `count` hosts of test `idx` (1..=61): `n<k>.tls-<test>.test` at
/// `127.62.<idx>.<k>`, appended to /etc/hosts when missing (under the lock
/// file the harness uses; other lines are never touched).
fn tls_hosts(test: &str, idx: Tls, count: u8) -> Vec<Host> {
    let idx = idx.n();
    assert!((1..=61).contains(&idx), "test index out of range");
    let hs: Vec<Host> = (1..=count)
        .map(|k| Host {
            name: format!("n{k}.tls-{test}.test"),
            addr: Ipv4Addr::new(127, 62, idx, k),
        })
        .collect();
    ensure_hosts(&hs);
    hs
}

/// TCP port of test `idx`, slot `slot` (0..8): 32000 + 8·idx + slot.
fn tls_port(idx: Tls, slot: u16) -> u16 {
    let idx = idx.n();
    assert!(slot < 8 && idx <= 61);
    32000 + 8 * idx as u16 + slot + common::idx::port_offset()
}

// ---------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------

// `KeyKind`, `Cert`, `gen_cert`, `install` and `install_chain` are in the
// harness (`tests/net/mod.rs`).

fn remove_files(n: &Node, names: &[&str]) {
    for f in names {
        let _ = std::fs::remove_file(n.etc.join(f));
    }
}

/// The configuration without `nossl * *;`: every link uses TLS.
const TLS_CFG: &str = "group g {\n    host {N1} {N2};\n    key g.key;\n    include {SYNC};\n}\n";

/// Write a configuration to one node only.
fn config_one(r: &Run, i: usize, text: &str) {
    r.n(i).write_etc("csync2.cfg", &r.subst(text));
}

// ---------------------------------------------------------------------------
// Expectations
// ---------------------------------------------------------------------------

/// Node `node` has exactly one pin: node `peer`'s certificate `c`.
fn expect_pin(r: &mut Run, o: usize, node: usize, peer: usize, c: &Cert) {
    let want = vec![(show(&url_encode(r.n(peer).name.as_bytes())), c.hex.clone())];
    let got = r.pins(o, node);
    let ok = got == want;
    let short = |v: &[(String, String)]| -> Vec<String> {
        v.iter()
            .map(|(p, h)| format!("{p}|{}…({} hex digits)", &h[..h.len().min(24)], h.len()))
            .collect()
    };
    let msg = format!(
        "x509_cert of {} holds exactly the certificate of {}: want {:?}, got {:?}",
        r.n(node).short(),
        r.n(peer).short(),
        short(&want),
        short(&got)
    );
    r.expect(ok, msg);
}

fn expect_no_pins(r: &mut Run, o: usize, node: usize) {
    let got = r.pins(o, node);
    let msg = format!(
        "x509_cert of {} stays empty, got {} rows",
        r.n(node).short(),
        got.len()
    );
    r.expect(got.is_empty(), msg);
}

/// The server's stderr of observation `o` (empty when no server ran).
fn server_err(r: &Run, o: usize) -> String {
    r.obs[o]
        .servers
        .first()
        .map(|s| show(&s.done.stderr))
        .unwrap_or_default()
}

fn expect_server_line(r: &mut Run, o: usize, text: &str) {
    let ok = server_err(r, o).contains(text);
    r.expect(ok, format!("server output should contain `{text}`"));
}

fn expect_server_code(r: &mut Run, o: usize, code: i32) {
    let d = r.obs[o].servers.first().map(|s| s.done.clone());
    let ok = d.as_ref().is_some_and(|d| d.code == Some(code));
    let st = d.map(|d| d.status()).unwrap_or("no server".into());
    r.expect(ok, format!("server should exit {code}, got {st}"));
}

// ---------------------------------------------------------------------------
// TLS lines: compared between the runs in addition to the harness's lines
// ---------------------------------------------------------------------------

/// Client lines about TLS (the harness compares `ERROR…`, `Config command
/// failed` and the like already).
const CLIENT_TLS: &[&str] = &["SSL", "Peer did provide", "Adding peer x509"];
/// Server lines about TLS and identification (after the `<PID> ` prefix).
const SERVER_TLS: &[&str] = &["SSL", "Peer did provide", "Adding peer x509"];
/// Debug lines only noted when they differ.
const CLIENT_TLS_NOTE: &[&str] = &["Peer x509 certificate is: "];

fn strip_pid(l: &str) -> &str {
    if let Some(rest) = l.strip_prefix('<')
        && let Some(i) = rest.find("> ")
        && rest[..i].bytes().all(|c| c.is_ascii_digit())
    {
        return &rest[i + 2..];
    }
    l
}

/// The lines of `d` starting with one of `set` (PID prefix removed, the
/// run directory replaced by `<RUN>`), except the ignored ones.
fn tls_lines(d: &Done, set: &[&str], run_dir: &Path, ignored: &[String]) -> Vec<String> {
    let dir = run_dir.display().to_string();
    d.stderr_lines()
        .iter()
        .map(|l| strip_pid(l).replace(&dir, "<RUN>"))
        .filter(|l| set.iter().any(|p| l.starts_with(p)))
        .filter(|l| !ignored.iter().any(|t| l.contains(t.as_str())))
        .collect()
}

fn first_diff(what: &str, a: &[String], b: &[String], la: &str, lb: &str) -> Option<String> {
    if a == b {
        return None;
    }
    let i = (0..a.len().max(b.len()))
        .find(|&i| a.get(i) != b.get(i))
        .unwrap_or(0);
    let cut = |s: Option<&String>| -> String {
        match s {
            None => "<none>".into(),
            Some(s) if s.len() > 300 => format!("{}… ({} chars)", &s[..300], s.len()),
            Some(s) => s.clone(),
        }
    };
    Some(format!(
        "{what} differ ({la} {} lines, {lb} {} lines); first difference at line {}:\n        {la}: {}\n        {lb}: {}",
        a.len(),
        b.len(),
        i + 1,
        cut(a.get(i)),
        cut(b.get(i))
    ))
}

/// Differences in the TLS lines of two observations (runs `ra`, `rb`);
/// `notes` receives the differences that are only noted.
fn compare_tls(a: &Obs, ra: &Run, b: &Obs, rb: &Run, notes: &mut Vec<String>) -> Vec<String> {
    let (la, lb) = (format!("({})", ra.mode.tag), format!("({})", rb.mode.tag));
    let ign = |kind: fn(&Ignore) -> Option<&String>| -> Vec<String> {
        a.ignore
            .iter()
            .chain(&b.ignore)
            .filter_map(kind)
            .cloned()
            .collect()
    };
    let ign_c = ign(|i| match i {
        Ignore::ClientLines(t) => Some(t),
        _ => None,
    });
    let ign_s = ign(|i| match i {
        Ignore::ServerLines(t) => Some(t),
        _ => None,
    });
    let mut v = Vec::new();
    for (ca, cb) in a.clients.iter().zip(&b.clients) {
        let lines = |d: &Done, r: &Run, set: &[&str]| tls_lines(d, set, &r.dir, &ign_c);
        if let Some(d) = first_diff(
            "client TLS lines",
            &lines(&ca.done, ra, CLIENT_TLS),
            &lines(&cb.done, rb, CLIENT_TLS),
            &la,
            &lb,
        ) {
            v.push(d);
        }
        let (da, db) = (
            lines(&ca.done, ra, CLIENT_TLS_NOTE),
            lines(&cb.done, rb, CLIENT_TLS_NOTE),
        );
        if da != db {
            let first = |v: &[String]| -> String {
                v.first()
                    .map(|l| format!("`{}…`", &l[..l.len().min(40)]))
                    .unwrap_or_else(|| "nothing".into())
            };
            notes.push(format!(
                "step `{}`: client -vv TLS lines: {la} {} ({} lines), {lb} {} ({} lines)",
                a.label,
                first(&da),
                da.len(),
                first(&db),
                db.len()
            ));
        }
    }
    for (sa, sb) in a.servers.iter().zip(&b.servers) {
        if let Some(d) = first_diff(
            "server TLS lines",
            &tls_lines(&sa.done, SERVER_TLS, &ra.dir, &ign_s),
            &tls_lines(&sb.done, SERVER_TLS, &rb.dir, &ign_s),
            &la,
            &lb,
        ) {
            v.push(d);
        }
    }
    v
}

// ---------------------------------------------------------------------------
// Runner
// ---------------------------------------------------------------------------

/// Run (s): REAL → REAL with a shared certificate (key-type check).
const MODE_S: Mode = Mode {
    tag: 's',
    client: Imp::Real,
    server: Imp::Real,
};

fn slot(m: Mode) -> u16 {
    "abcds".find(m.tag).expect("known mode tag") as u16
}

struct Ctx {
    test: String,
    idx: Tls,
    hosts: Vec<Host>,
    base: PathBuf,
}

impl Ctx {
    fn new(test: &str, idx: Tls) -> Ctx {
        let hosts = tls_hosts(test, idx, 2);
        let base = base_dir(&format!("tls-{test}"));
        Ctx {
            test: format!("tls-{test}"),
            idx,
            hosts,
            base,
        }
    }

    fn certs(&self) -> PathBuf {
        self.base.join("certs")
    }

    fn cert(&self, label: &str, kind: KeyKind, subj: &str) -> Cert {
        gen_cert(&self.certs(), label, kind, subj)
    }

    /// A certificate with CN = the host name of node `i`.
    fn host_cert(&self, i: usize, kind: KeyKind) -> Cert {
        let name = &self.hosts[i].name;
        self.cert(&format!("n{}", i + 1), kind, &format!("/CN={name}"))
    }

    /// Run `scenario` once per mode (node 1 is the server) and compare every
    /// run with the first; panics with a report on any problem or
    /// difference. `CSYNC2_NET_MODES` restricts the runs after the first.
    fn differential(&self, modes: &[Mode], scenario: impl Fn(&mut Run)) {
        let mut modes = modes.to_vec();
        if let Ok(sel) = std::env::var("CSYNC2_NET_MODES") {
            let first = modes[0];
            modes.retain(|m| *m == first || sel.contains(m.tag));
        }
        let mut runs = Vec::new();
        for mode in modes {
            let mut run = Run::new(
                &self.test,
                mode,
                &self.hosts,
                &[1],
                &self.base,
                tls_port(self.idx, slot(mode)),
            );
            run.config(TLS_CFG);
            run_scenario(&mut run, &scenario);
            runs.push(run);
        }
        let mut report = String::new();
        for run in &runs {
            for p in &run.problems {
                let _ = writeln!(report, "{} {p}", run.mode.describe());
            }
        }
        let mut notes = Vec::new();
        let a = &runs[0];
        for b in &runs[1..] {
            let mut diffs = String::new();
            if a.obs.len() != b.obs.len() {
                let _ = writeln!(
                    diffs,
                    "  different number of steps: ({}) {}, ({}) {}",
                    a.mode.tag,
                    a.obs.len(),
                    b.mode.tag,
                    b.obs.len()
                );
            }
            for (oa, ob) in a.obs.iter().zip(&b.obs) {
                let mut d = compare_obs(oa, a.mode, ob, b.mode, &b.nodes, &mut notes);
                d.extend(compare_tls(oa, a, ob, b, &mut notes));
                if !d.is_empty() {
                    let _ = writeln!(diffs, "  step `{}`:", oa.label);
                    for x in d {
                        let _ = writeln!(diffs, "    - {}", x.trim_end());
                    }
                }
            }
            if !diffs.is_empty() {
                let _ = writeln!(
                    report,
                    "\n{} differs from {}:\n{diffs}  history of ({}):",
                    b.mode.describe(),
                    a.mode.describe(),
                    b.mode.tag
                );
                for h in &b.history {
                    let _ = writeln!(report, "      {h}");
                }
            }
        }
        notes.sort();
        notes.dedup();
        for n in &notes {
            eprintln!("[{}] note: {n}", self.test);
        }
        if !report.is_empty() {
            let _ = std::fs::write(self.base.join("report.txt"), &report);
            panic!(
                "\n=== net_tls `{}` (directory {} kept; each run's outputs are in its <tag>/ subdirectory) ===\n{report}",
                self.test,
                self.base.display()
            );
        }
    }

    fn done(&self) {
        if std::env::var_os("CSYNC2_DIFF_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.base);
        }
    }
}

/// Whether the run's client (server) is the real program; also true for
/// "ours" when the harness is validated with `CSYNC2_DIFF_OURS` pointing at
/// the real binary.
fn real_client(r: &Run) -> bool {
    r.mode.client == Imp::Real || ours_is_real()
}

fn real_server(r: &Run) -> bool {
    r.mode.server == Imp::Real || ours_is_real()
}

fn all_modes() -> Vec<Mode> {
    vec![MODE_A, MODE_B, MODE_C, MODE_D]
}

// ---------------------------------------------------------------------------
// Scenario 1: every key type, per-host self-signed certificates
// ---------------------------------------------------------------------------

/// Both nodes hold `changed.txt`; node 1 then gets a new file, a change, a
/// symlink and a directory with a file, and pushes them (`-x`).
fn push_files(r: &mut Run) -> usize {
    for i in 0..2 {
        let n = r.n(i).clone();
        n.file("changed.txt", "old contents\n", 0o644, T0);
        n.file("same.txt", "same\n", 0o600, T0);
    }
    r.init();
    let a = r.n(0).clone();
    a.file("new.txt", "a new file\n", 0o644, T0 + 1);
    a.file("changed.txt", "new contents, longer\n", 0o640, T0 + 2);
    a.symlink("link", "new.txt");
    a.mkdir("dir", 0o750);
    a.file("dir/inner.txt", pseudo_text(3000, 5), 0o644, T0 + 3);
    let o = r.push("push -x over TLS", args!["-x"]);
    r.expect_code(o, 0);
    r.expect_same_trees(o, 0, 1);
    let left: Vec<String> = r.dirty(o, 0).iter().map(|(f, _)| show(f)).collect();
    r.expect(
        left.is_empty(),
        format!("the sender has no dirty rows left: {left:?}"),
    );
    o
}

fn per_host(test: &str, idx: Tls, kind: KeyKind) {
    let ctx = Ctx::new(test, idx);
    let c1 = ctx.host_cert(0, kind);
    let c2 = ctx.host_cert(1, kind);
    ctx.differential(&all_modes(), |r| {
        install(r.n(0), &c1);
        if real_client(r) && real_server(r) {
            // §5.5: the real server must list the client's certificate
            // among its CA names, or the real client sends none
            install_chain(r.n(1), &c2, &[&c2, &c1]);
        } else {
            install(r.n(1), &c2);
        }
        let o = push_files(r);
        expect_pin(r, o, 0, 1, &c2);
        expect_pin(r, o, 1, 0, &c1);
        let line = format!("Adding peer x509 certificate to db: {}", c2.hex);
        r.expect_line(o, &line);
        r.recheck_clean();
    });
    // (s): the real program with one certificate of this type on both
    // nodes, as its documentation sets clusters up
    let shared = ctx.cert("shared", kind, CLUSTER_SUBJ);
    ctx.differential(&[MODE_S], |r| {
        install(r.n(0), &shared);
        install(r.n(1), &shared);
        let o = push_files(r);
        expect_pin(r, o, 0, 1, &shared);
        expect_pin(r, o, 1, 0, &shared);
    });
    ctx.done();
}

#[test]
fn per_host_rsa1024() {
    per_host("rsa1024", Tls::Rsa1024, KeyKind::Rsa1024);
}

#[test]
fn per_host_rsa2048() {
    per_host("rsa2048", Tls::Rsa2048, KeyKind::Rsa2048);
}

#[test]
fn per_host_rsa4096() {
    per_host("rsa4096", Tls::Rsa4096, KeyKind::Rsa4096);
}

#[test]
fn per_host_p256() {
    per_host("p256", Tls::P256, KeyKind::P256);
}

#[test]
fn per_host_p384() {
    per_host("p384", Tls::P384, KeyKind::P384);
}

#[test]
fn per_host_ed25519() {
    per_host("ed25519", Tls::Ed25519, KeyKind::Ed25519);
}

// ---------------------------------------------------------------------------
// Scenario 2: one certificate shared by both nodes, all four pairings
// ---------------------------------------------------------------------------

/// A subject every shared or replacement certificate has: the real client
/// sends its certificate only when its issuer is the real server's subject.
const CLUSTER_SUBJ: &str = "/O=csync2 cluster";

#[test]
fn shared_rsa2048() {
    let ctx = Ctx::new("shared", Tls::Shared);
    let c = ctx.cert("shared", KeyKind::Rsa2048, CLUSTER_SUBJ);
    ctx.differential(&all_modes(), |r| {
        install(r.n(0), &c);
        install(r.n(1), &c);
        let o = push_files(r);
        expect_pin(r, o, 0, 1, &c);
        expect_pin(r, o, 1, 0, &c);
        r.recheck_clean();
        // a second session with the pins in place
        let a = r.n(0).clone();
        a.file("second.txt", "second push\n", 0o644, T0 + 10);
        let o = r.push("second push -x", args!["-x"]);
        r.expect_code(o, 0);
        r.expect_same_trees(o, 0, 1);
        expect_pin(r, o, 0, 1, &c);
        expect_pin(r, o, 1, 0, &c);
    });
    ctx.done();
}

/// T18b, for the record: per-host certificates between two real nodes
/// without the CA-list work-around fail; the server requires a certificate
/// the client did not send.
#[test]
fn per_host_real_pair_needs_ca_list() {
    let ctx = Ctx::new("realpair", Tls::Realpair);
    let c1 = ctx.host_cert(0, KeyKind::Rsa2048);
    let c2 = ctx.host_cert(1, KeyKind::Rsa2048);
    ctx.differential(&[MODE_A], |r| {
        install(r.n(0), &c1);
        install(r.n(1), &c2);
        r.n(0).file("f.txt", "f\n", 0o644, T0);
        r.init();
        r.n(0).file("f.txt", "changed\n", 0o644, T0 + 1);
        let o = r.push("push -x", args!["-x"]);
        // after `Config command failed.` the client's close_notify may hit
        // the reset connection: SIGPIPE kills it, or it exits 1
        let d = r.client(o).clone();
        r.expect(
            d.code == Some(1) || d.signal == Some(13),
            format!("client exits 1 or dies of SIGPIPE, got {}", d.status()),
        );
        r.expect_line(o, "Config command failed.");
        expect_server_line(
            r,
            o,
            "SSL: handshake failed: Certificate is required. (GNUTLS_E_CERTIFICATE_REQUIRED)",
        );
        // TLS 1.3: the client pinned the server before the server judged it
        expect_pin(r, o, 0, 1, &c2);
        expect_no_pins(r, o, 1);
        let kept = r.is_dirty(o, 0, "f.txt");
        r.expect(kept, "f.txt stays dirty");
    });
    ctx.done();
}

// ---------------------------------------------------------------------------
// Scenario 3: pinning (T18c, state.md §8)
// ---------------------------------------------------------------------------

#[test]
fn pinning() {
    let ctx = Ctx::new("pinning", Tls::Pinning);
    let shared = ctx.cert("shared", KeyKind::Rsa2048, CLUSTER_SUBJ);
    let new_server = ctx.cert("new-server", KeyKind::Rsa2048, CLUSTER_SUBJ);
    let new_client = ctx.cert("new-client", KeyKind::Rsa2048, CLUSTER_SUBJ);
    ctx.differential(&all_modes(), |r| {
        install(r.n(0), &shared);
        install(r.n(1), &shared);
        let a = r.n(0).clone();
        a.file("one.txt", "one\n", 0o644, T0);
        let o = r.push("first push: both sides pin", args!["-x"]);
        r.expect_code(o, 0);
        r.expect_same_trees(o, 0, 1);
        expect_pin(r, o, 0, 1, &shared);
        expect_pin(r, o, 1, 0, &shared);

        // the server's certificate changes: the client refuses it
        install(r.n(1), &new_server);
        a.file("two.txt", "two\n", 0o644, T0 + 1);
        let o = r.push("server certificate replaced", args!["-x"]);
        r.expect_code(o, 1);
        r.expect_line(o, "Peer did provide a wrong SSL X509 cetrificate.");
        // with a pin row present, -vv shows the peer's actual certificate
        r.expect_line(o, &format!("Peer x509 certificate is: {}", new_server.hex));
        let kept = r.is_dirty(o, 0, "two.txt");
        r.expect(kept, "two.txt stays dirty on the client");
        r.expect(
            r.entry(o, 1, "two.txt").is_none(),
            "two.txt did not reach the server",
        );
        expect_pin(r, o, 0, 1, &shared);
        expect_pin(r, o, 1, 0, &shared);

        // the client's certificate changes: the server refuses HELLO
        install(r.n(1), &shared);
        install(r.n(0), &new_client);
        let o = r.push("client certificate replaced", args!["-x"]);
        // the refusal is on the wire (client -vvv trace); the server logs
        // the reason at -v
        r.expect_line(o, "Peer> Identification failed!");
        expect_server_line(r, o, "Peer did provide a wrong SSL X509 cetrificate.");
        r.expect_code(o, 1);
        let kept = r.is_dirty(o, 0, "two.txt");
        r.expect(kept, "two.txt stays dirty on the client");
        r.expect(
            r.entry(o, 1, "two.txt").is_none(),
            "two.txt did not reach the server",
        );
        expect_pin(r, o, 0, 1, &shared);
        expect_pin(r, o, 1, 0, &shared);

        // the admin deletes the stale pin: the new certificate is pinned
        let name = r.n(0).name.clone();
        r.n(1)
            .sql(&format!("DELETE FROM x509_cert WHERE peername = '{name}'"));
        let o = r.push("stale pin deleted by hand", args!["-x"]);
        r.expect_code(o, 0);
        r.expect_same_trees(o, 0, 1);
        expect_pin(r, o, 0, 1, &shared);
        expect_pin(r, o, 1, 0, &new_client);
    });
    ctx.done();
}

// ---------------------------------------------------------------------------
// Scenario 4: `nossl` on one side only
// ---------------------------------------------------------------------------

const NOSSL_ALL: &str = "nossl * *;\n";

#[test]
fn nossl_one_side() {
    let ctx = Ctx::new("nossl", Tls::Nossl);
    let c = ctx.cert("shared", KeyKind::Rsa2048, CLUSTER_SUBJ);
    ctx.differential(&all_modes(), |r| {
        install(r.n(0), &c);
        install(r.n(1), &c);
        let a = r.n(0).clone();
        a.file("one.txt", "one\n", 0o644, T0);

        // only the client has `nossl * *;`: it connects in plain text
        config_one(r, 0, &format!("{NOSSL_ALL}{TLS_CFG}"));
        let o = r.push("nossl on the client only", args!["-x"]);
        r.expect_line(o, "Connecting to host");
        r.expect_line(o, "(PLAIN)");
        r.expect_line(o, "Peer> SSL encrypted connection expected!");
        r.expect_code(o, 1);
        let kept = r.is_dirty(o, 0, "one.txt");
        r.expect(kept, "one.txt stays dirty on the client");
        expect_no_pins(r, o, 0);
        expect_no_pins(r, o, 1);

        // `nossl N1 N2;` on both nodes: the rule has a direction, so the
        // client (N1 -> N2) goes plain while the server (N2, peer N1)
        // still expects TLS
        let rule = format!("nossl {{N1}} {{N2}};\n{TLS_CFG}");
        r.config(&rule);
        let o = r.push("directional nossl rule on both nodes", args!["-x"]);
        r.expect_line(o, "(PLAIN)");
        r.expect_line(o, "Peer> SSL encrypted connection expected!");
        r.expect_code(o, 1);
        let kept = r.is_dirty(o, 0, "one.txt");
        r.expect(kept, "one.txt stays dirty on the client");

        // only the server has `nossl * *;`: the client asks for TLS, which
        // the server always grants
        r.config(TLS_CFG);
        config_one(r, 1, &format!("{NOSSL_ALL}{TLS_CFG}"));
        let o = r.push("nossl on the server only", args!["-x"]);
        r.expect_line(o, "(SSL)");
        r.expect_code(o, 0);
        r.expect_same_trees(o, 0, 1);
        expect_pin(r, o, 0, 1, &c);
        expect_pin(r, o, 1, 0, &c);
    });
    ctx.done();
}

// ---------------------------------------------------------------------------
// Scenario 5: missing certificate files
// ---------------------------------------------------------------------------

const KEY_PEM: &str = "csync2_ssl_key.pem";
const CERT_PEM: &str = "csync2_ssl_cert.pem";

/// The real program's message when its key or certificate file cannot be
/// read (protocol.md §5.3), for the system directory of node `i`.
fn load_failure(r: &Run, i: usize) -> String {
    let sys = r.n(i).etc.display().to_string();
    format!(
        "SSL: failed to use key file {sys}/{KEY_PEM} and/or certificate file {sys}/{CERT_PEM}: \
         Error while reading file. (GNUTLS_E_FILE_ERROR)"
    )
}

/// The server dies right after `OK (activating_ssl).`: the real client is
/// killed by SIGPIPE in the handshake before it prints anything; ours exits
/// 1 with `SSL: handshake failed: …` (whose reason depends on whether the
/// server closed before or after the ClientHello arrived).
fn server_died_after_activating(r: &mut Run, o: usize) {
    r.ignore(o, Ignore::ClientCode);
    r.ignore(o, Ignore::ClientLines("SSL: handshake failed: ".into()));
    let d = r.client(o).clone();
    if real_client(r) {
        r.expect(
            d.signal == Some(13) && d.code.is_none(),
            format!("the real client is killed by SIGPIPE, got {}", d.status()),
        );
        r.expect(
            !show(&d.stderr).contains("SSL: handshake failed"),
            "the real client prints no handshake error",
        );
    } else {
        r.expect_code(o, 1);
        r.expect_line(o, "SSL: handshake failed: ");
    }
    let kept = r.is_dirty(o, 0, "one.txt");
    r.expect(kept, "one.txt stays dirty on the client");
    expect_no_pins(r, o, 0);
    expect_no_pins(r, o, 1);
}

#[test]
fn missing_certificates() {
    let ctx = Ctx::new("nocert", Tls::Nocert);
    let c = ctx.cert("shared", KeyKind::Rsa2048, CLUSTER_SUBJ);
    ctx.differential(&all_modes(), |r| {
        install(r.n(0), &c);
        let a = r.n(0).clone();
        a.file("one.txt", "one\n", 0o644, T0);

        // no certificate files at all on the server: it answers `OK
        // (activating_ssl).`, fails to load them and exits 1
        let o = r.push("server has no key and no certificate", args!["-x"]);
        let msg = load_failure(r, 1);
        expect_server_line(r, o, &msg);
        expect_server_code(r, o, 1);
        server_died_after_activating(r, o);

        // the key is there, the certificate is not
        install(r.n(1), &c);
        remove_files(r.n(1), &[CERT_PEM]);
        let o = r.push("server has no certificate", args!["-x"]);
        let msg = load_failure(r, 1);
        expect_server_line(r, o, &msg);
        expect_server_code(r, o, 1);
        server_died_after_activating(r, o);

        // the client has none: it fails after `OK (activating_ssl).`, the
        // whole run ends with exit 1; the server sees the connection end
        // in the handshake
        install(r.n(1), &c);
        remove_files(r.n(0), &[KEY_PEM, CERT_PEM]);
        let o = r.push("client has no key and no certificate", args!["-x"]);
        let msg = load_failure(r, 0);
        r.expect_line(o, &msg);
        r.expect_code(o, 1);
        expect_server_line(
            r,
            o,
            "SSL: handshake failed: The TLS connection was non-properly terminated. \
             (GNUTLS_E_PREMATURE_TERMINATION)",
        );
        expect_server_code(r, o, 1);
        let kept = r.is_dirty(o, 0, "one.txt");
        r.expect(kept, "one.txt stays dirty on the client");
        expect_no_pins(r, o, 0);
        expect_no_pins(r, o, 1);

        // everything in place again
        install(r.n(0), &c);
        let o = r.push("certificates restored", args!["-x"]);
        r.expect_code(o, 0);
        r.expect_same_trees(o, 0, 1);
        expect_pin(r, o, 0, 1, &c);
        expect_pin(r, o, 1, 0, &c);
    });
    ctx.done();
}

// ---------------------------------------------------------------------------
// Scenario: certificates made by `csync2 --gen-cert` (our addition)
// ---------------------------------------------------------------------------

/// `csync2 --gen-cert [--rsa]` (our binary) with `dir` as the system
/// directory.
fn gen_cert_in(dir: &Path, rsa: bool) -> Cert {
    std::fs::create_dir_all(dir).expect("create certificate directory");
    let mut cmd = std::process::Command::new(Imp::Ours.bin());
    cmd.arg("--gen-cert").env("CSYNC2_SYSTEM_DIR", dir);
    if rsa {
        cmd.arg("--rsa");
    }
    let out = cmd.output().expect("run csync2 --gen-cert");
    assert!(
        out.status.success(),
        "--gen-cert in {}: {}",
        dir.display(),
        show(&out.stderr)
    );
    let cert = dir.join("csync2_ssl_cert.pem");
    Cert {
        key: dir.join("csync2_ssl_key.pem"),
        hex: der_hex(&cert),
        cert,
    }
}

/// Every pairing, also real ↔ real: the generated certificates share one
/// subject, so the real client sends its certificate to the real server.
fn generated(test: &str, idx: Tls, rsa: bool) {
    let ctx = Ctx::new(test, idx);
    let c1 = gen_cert_in(&ctx.certs().join("n1"), rsa);
    let c2 = gen_cert_in(&ctx.certs().join("n2"), rsa);
    ctx.differential(&all_modes(), |r| {
        install(r.n(0), &c1);
        install(r.n(1), &c2);
        let o = push_files(r);
        expect_pin(r, o, 0, 1, &c2);
        expect_pin(r, o, 1, 0, &c1);
        r.recheck_clean();
    });
    ctx.done();
}

#[test]
fn generated_p256() {
    generated("genp256", Tls::Genp256, false);
}

#[test]
fn generated_rsa() {
    generated("genrsa", Tls::Genrsa, true);
}
