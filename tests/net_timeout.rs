//! Client timeouts (`--timeout`): a peer that accepts the connection and
//! never answers, and a peer whose port is closed, do not keep the client
//! from serving the others; the silent peer is named, its rows stay dirty,
//! the run ends soon after the timeout with exit 1.
//!
//! Needs root; see `tests/net_interop.rs` for the environment variables.

mod common;
mod net;
mod netx;

use net::*;
use netx::*;
use std::time::{Duration, Instant};

fn rows_towards(r: &Run, o: usize, peer: &str) -> (usize, usize) {
    let d = r.dirty(o, 0);
    let to_peer = d.iter().filter(|(_, p)| common::show(p) == peer).count();
    (to_peer, d.len() - to_peer)
}

#[test]
fn silent_peer_and_closed_port() {
    solo("timeout", Net::Timeout, 3, &[1, 2], &[MODE_D], |r| {
        r.config(
            "nossl * *;\ngroup all {\n    host {N1} {N2} {N3};\n    key g.key;\n    \
             include {SYNC};\n}\n",
        );
        let a = r.n(0).clone();
        let n3 = r.n(2).clone();
        a.file("one.txt", "one\n", 0o644, T0);
        a.mkdir("d", 0o755);
        a.file("d/two.txt", "two\n", 0o644, T0);

        // n3 accepts and says nothing (rows: the tree's root, one.txt, d, d/two.txt)
        let silent = Silent::start(&n3);
        let t = Instant::now();
        let o = exchange(
            r,
            "-x, n3 silent",
            0,
            &[1],
            "-iii",
            args!["-x", "--timeout", "2"],
        );
        let took = t.elapsed();
        let conns = silent.stop();
        r.expect_code(o, 1);
        r.expect(conns > 0, "the client connected to the silent peer");
        let err = common::show(&r.client(o).stderr);
        r.expect(
            err.contains(&format!(
                "{} accepted the connection but sent nothing for 2 seconds.",
                n3.name
            )) || err.contains(&format!("ERROR: {} sent nothing for 2 seconds", n3.name)),
            format!("the silent peer {} is named with the timeout", n3.name),
        );
        r.expect(
            took < Duration::from_secs(30),
            format!("the run ends soon after the timeout (took {took:?})"),
        );
        let (to_n3, others) = rows_towards(r, o, &n3.name);
        r.expect(
            to_n3 == 4 && others == 0,
            format!("only the rows towards n3 stay dirty ({to_n3} towards n3, {others} others)"),
        );
        let want = r.tree(o, 0).clone();
        let got = r.tree(o, 1).clone();
        let d = diff_trees(&want, &got, "sender", "n2");
        r.expect(d.is_empty(), format!("n2 got everything: {d:?}"));

        // --status: n2 synced, n3 pending with its error
        let st = r.cmd(0, args!["--status", "--json"]);
        r.expect(
            st.code == Some(0),
            format!("--status exits 0: {}", st.status()),
        );
        let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap_or_default();
        let peer = |name: &str| {
            v["peers"]
                .as_array()
                .and_then(|a| a.iter().find(|p| p["name"] == name))
                .cloned()
                .unwrap_or_default()
        };
        let (p2, p3) = (peer(&r.n(1).name), peer(&n3.name));
        r.expect(
            v["host"] == r.n(0).name.as_str() && v["watching"] == false,
            format!("--status names this host and no daemon: {v}"),
        );
        r.expect(
            p2["pending"] == 0 && p2["last_sync"].is_string() && p2["last_error"].is_null(),
            format!("n2: nothing pending, synced, no error: {p2}"),
        );
        r.expect(
            p3["pending"] == 4 && p3["last_sync"].is_null() && p3["last_error"].is_string(),
            format!("n3: 4 pending, never synced, its error: {p3}"),
        );

        // -T with the silent peer: it ends, and says which peer was silent
        let silent = Silent::start(&n3);
        let t = Instant::now();
        let d = r.cmd(0, args!["-T", "--timeout", "1.5"]);
        let took = t.elapsed();
        silent.stop();
        r.expect(
            took < Duration::from_secs(30) && d.code.is_some(),
            format!(
                "-T ends despite the silent peer (took {took:?}, {})",
                d.status()
            ),
        );
        r.expect(
            common::show(&d.stderr).contains(&format!(
                "{} accepted the connection but sent nothing for 1.5 seconds.",
                n3.name
            )),
            "-T names the silent peer",
        );

        // nothing listens on n3's port: refused at once
        a.file("three.txt", "three\n", 0o644, T0 + 5);
        let t = Instant::now();
        let o = exchange(
            r,
            "-x, n3 closed",
            0,
            &[1],
            "-iii",
            args!["-x", "--timeout", "2"],
        );
        let took = t.elapsed();
        r.expect_code(o, 1);
        r.expect_line(
            o,
            &format!("ERROR: Connection to remote host `{}' failed.", n3.name),
        );
        r.expect(
            took < Duration::from_secs(30),
            format!("a closed port fails fast (took {took:?})"),
        );
        let (to_n3, others) = rows_towards(r, o, &n3.name);
        r.expect(
            to_n3 == 5 && others == 0,
            format!("only the rows towards n3 stay dirty ({to_n3} towards n3, {others} others)"),
        );
    });
}
