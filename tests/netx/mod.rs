//! Helpers shared by `tests/net_conflict.rs`, `tests/net_backup.rs`,
//! `tests/net_actions.rs`, `tests/net_compare.rs` and
//! `tests/net_multihost.rs`, on top of the harness in `tests/net/mod.rs`
//! (which they use unchanged):
//!
//! * [`node_config`]: a configuration that differs per node (`{ETC}` and
//!   `{DIR}` become the node's system directory and its private run
//!   directory, outside the synchronised tree), e.g. for backup
//!   directories and action log files;
//! * [`exchange`]: one client command against servers on several nodes at
//!   once (`-iii` or `-ii`), recorded as one observation;
//! * [`solo`]: a scenario run in chosen modes without comparing the runs
//!   with (a), for cases where the reference cannot run (the real server
//!   hangs) or where the real client's output is knowingly wrong (the runs
//!   are made by [`run_modes`], as for [`differential`]).

#![allow(dead_code)]

use crate::common::{self, show};
use crate::net::*;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Write a configuration to every node, with `{ETC}` replaced by the node's
/// system directory and `{DIR}` by its run directory (plus the usual
/// `{SYNC}`/`{N1}`… substitutions). In TLS runs the `nossl * *;` line is
/// dropped, as [`Run::config`] does. Key files come from [`Run::config`].
pub fn node_config(r: &Run, text: &str) {
    // key files, and the sanity checks of the harness
    r.config(&text.replace("{ETC}", "/etc-x").replace("{DIR}", "/dir-x"));
    for n in &r.nodes {
        let mut cfg = r.subst(text);
        cfg = cfg
            .replace("{ETC}", &n.etc.to_string_lossy())
            .replace("{DIR}", &n.dir.to_string_lossy());
        if r.transport == Transport::Tls {
            cfg = cfg
                .split_inclusive('\n')
                .filter(|l| l.trim() != "nossl * *;")
                .collect();
        }
        n.write_etc("csync2.cfg", &cfg);
    }
}

/// Start a server of kind `kind` (`-iii` or `-ii`) on every node of
/// `servers`, run `-vvv ARGS` on node `client`, then stop the servers and
/// record one observation. `-iii` servers nobody connected to are killed
/// (recorded as such); `-ii` daemons are stopped once their sessions
/// ended. The client's transport and the certificate pins are checked for
/// every server it connected to.
pub fn exchange(
    r: &mut Run,
    label: &str,
    client: usize,
    servers: &[usize],
    kind: &str,
    args: Vec<OsString>,
) -> usize {
    r.fix_mtimes();
    let procs: Vec<(usize, Proc)> = servers
        .iter()
        .map(|&s| (s, r.start_server(s, kind)))
        .collect();
    let mut full: Vec<OsString> = vec!["-vvv".into()];
    full.extend(args);
    let c = r.nodes[client].run(&full);
    r.save_output(
        &c,
        &format!("{}-client-{}", r.nodes[client].short(), slug(label)),
    );
    let line = format!(
        "{label}: {} {}: {} -> {}",
        r.nodes[client].short(),
        r.nodes[client].imp.label(),
        common::cmdline(&full),
        c.status()
    );
    r.note(line);
    let mut runs = Vec::new();
    for (s, p) in procs {
        let d = if kind == "-ii" {
            r.stop_daemon(s, p)
        } else {
            r.finish_server(s, p)
        };
        r.save_output(
            &d,
            &format!("{}-server-{}", r.nodes[s].short(), slug(label)),
        );
        let st = format!("  server {}: {}", r.nodes[s].short(), d.status());
        r.note(st);
        runs.push(ServerRun {
            node: s,
            imp: r.nodes[s].imp,
            done: d,
            unordered: kind == "-ii",
        });
    }
    let imp = r.nodes[client].imp;
    let o = r.record(
        label,
        vec![ClientRun {
            node: client,
            imp,
            done: c,
        }],
        runs,
    );
    for k in 0..servers.len() {
        let sr = &r.obs[o].servers[k];
        // a -iii server that is still listening was never contacted; for a
        // -ii daemon the client's `Connecting to host` line tells
        let contacted = if kind == "-ii" {
            wants_session(r, o, sr.node)
        } else {
            !sr.done.killed
        };
        if contacted {
            let s = sr.node;
            r.expect_transport(o, 0, s);
            r.expect_pins(o, client, s);
        }
    }
    o
}

/// Whether the client of observation `o` printed `Connecting to host` for
/// node `s`.
fn wants_session(r: &Run, o: usize, s: usize) -> bool {
    let want = format!("Connecting to host {} ", r.nodes[s].name);
    show(&r.obs[o].clients[0].done.stderr).contains(&want)
}

fn slug(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(40)
        .collect()
}

/// Run `scenario` in `modes` (for every transport of [`transports`]) and
/// fail with every run's problems; the runs are not compared with each
/// other. Ports: slot `k` for the k-th mode, `4 + k` over TLS (see
/// [`run_modes`], shared with [`differential`]).
pub fn solo(
    test: &str,
    idx: Net,
    nhosts: u8,
    servers: &[usize],
    modes: &[Mode],
    scenario: impl Fn(&mut Run),
) {
    let sel = std::env::var("CSYNC2_NET_MODES").ok();
    let skip = |mode: &Mode| {
        if let Some(s) = &sel
            && !s.contains(mode.tag)
        {
            return true;
        }
        if mode.client == Imp::Ours && !ours_client_available() {
            eprintln!(
                "[{test}] note: our client is not implemented: run ({}) skipped",
                mode.tag
            );
            return true;
        }
        false
    };
    let (base, groups) = run_modes(test, idx, nhosts, servers, modes, skip, &scenario);
    let mut report = String::new();
    for run in groups.iter().flatten() {
        if !run.problems.is_empty() {
            let _ = writeln!(report, "\n{}:", run.describe());
            for p in &run.problems {
                let _ = writeln!(report, "  - {p}");
            }
            let _ = writeln!(report, "  history:");
            for h in &run.history {
                let _ = writeln!(report, "      {h}");
            }
        }
        for n in &run.notes {
            eprintln!("[{test}] {} note: {n}", run.describe());
        }
    }
    conclude(
        &base,
        &report,
        &format!("`{test}` (directory {} kept)", base.display()),
    );
}

/// A regular file below a directory: relative path → (mode & 07777,
/// content). Directories are listed with `None` content.
pub type Listing = BTreeMap<String, (u32, Option<Vec<u8>>)>;

/// Everything below `root` (empty when it does not exist).
pub fn listing(root: &Path) -> Listing {
    let mut out = Listing::new();
    fn walk(p: &Path, rel: &str, out: &mut Listing) {
        let Ok(rd) = std::fs::read_dir(p) else {
            return;
        };
        let mut names: Vec<_> = rd.flatten().map(|e| e.file_name()).collect();
        names.sort();
        for n in names {
            let path = p.join(&n);
            let r = if rel.is_empty() {
                show(n.as_bytes())
            } else {
                format!("{rel}/{}", show(n.as_bytes()))
            };
            let Ok(md) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if md.is_dir() {
                out.insert(r.clone(), (md.mode() & 0o7777, None));
                walk(&path, &r, out);
            } else {
                out.insert(r, (md.mode() & 0o7777, std::fs::read(&path).ok()));
            }
        }
    }
    walk(root, "", &mut out);
    out
}

/// A listing as readable text.
pub fn show_listing(l: &Listing) -> String {
    l.iter()
        .map(|(k, (m, c))| match c {
            Some(c) => format!("{k} ({m:o}) \"{}\"", show(c)),
            None => format!("{k}/ ({m:o})"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The real server prints some `-v` messages without a newline (the backup
/// messages `mkpath full path: …`, `mkdir parent dir: …`), so the next
/// message (`<PID> Updated …`) is glued to them and would not be found at
/// the start of a line. Split every server output of observation `o`
/// before each `<PID> ` prefix that does not start a line (harmless for
/// outputs that have none).
pub fn unglue_servers(r: &mut Run, o: usize) {
    for s in &mut r.obs[o].servers {
        s.done.stderr = unglue(&s.done.stderr);
    }
}

pub fn unglue(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len() + 64);
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'<' && i > 0 && b[i - 1] != b'\n' {
            let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if digits > 0 && b[i + 1 + digits..].starts_with(b"> ") {
                out.push(b'\n');
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}
