//! One client, four peers at once (issue 13): three run our server, one
//! the real csync2. Every kind of change reaches all four in one `-x`; the
//! client's lines come in one block per peer, in the documented order
//! (descending peer names, as the real client serves them); a client
//! killed in the middle of a run leaves every database consistent and the
//! next run completes.
//!
//! Needs root; see `tests/net_interop.rs` for the environment variables.

mod common;
mod net;
mod netx;

use net::*;
use netx::*;
use std::time::{Duration, Instant};

/// The peer each `Updating …`/`Deleting …` line of the client is about,
/// in order.
fn peers_in_order(err: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for l in err.lines() {
        let l =
            l.trim_start_matches(|c: char| c == '<' || c.is_ascii_digit() || c == '>' || c == ' ');
        if !(l.starts_with("Updating ") || l.starts_with("Deleting ")) || !l.ends_with(" ...") {
            continue;
        }
        let Some(at) = l.rfind(" on ") else { continue };
        let peer = l[at + 4..l.len() - 4].to_string();
        if out.last() != Some(&peer) {
            out.push(peer);
        }
    }
    out
}

fn expect_all_synced(r: &mut Run, o: usize, what: &str) {
    for i in 1..5 {
        let want = r.tree(o, 0).clone();
        let got = r.tree(o, i).clone();
        let d = diff_trees(&want, &got, "sender", r.n(i).short());
        r.expect(
            d.is_empty(),
            format!("{what}: {} has the sender's tree: {d:?}", r.n(i).short()),
        );
    }
    let left = r.dirty(o, 0);
    r.expect(
        left.is_empty(),
        format!(
            "{what}: no dirty rows left on the sender ({} left)",
            left.len()
        ),
    );
}

#[test]
fn four_peers_at_once() {
    solo(
        "manypeers",
        Net::Manypeers,
        5,
        &[1, 2, 3, 4],
        &[MODE_D],
        |r| {
            // n5 runs the real csync2: served in lock-step beside ours
            r.nodes[4].imp = Imp::Real;
            r.config(
                "nossl * *;\ngroup all {\n    host {N1} {N2} {N3} {N4} {N5};\n    \
                 key g.key;\n    include {SYNC};\n}\n",
            );
            let a = r.n(0).clone();
            // a shared starting point: on every node, known to every database
            for i in 0..5 {
                let n = r.n(i).clone();
                n.mkdir("keep", 0o755);
                n.file("keep/same.txt", "same everywhere\n", 0o644, T0);
                n.file("keep/old.txt", pseudo_text(300_000, 1), 0o644, T0);
                n.file("gone.txt", "to be deleted\n", 0o644, T0);
                n.file("mode.txt", "mode changes\n", 0o644, T0);
                n.file("f2d", "becomes a directory\n", 0o644, T0);
            }
            r.init();

            // every kind of change at once
            a.file("new.txt", "a new file\n", 0o644, T0 + 1);
            a.mkdir("newdir", 0o750);
            a.mkdir("newdir/sub", 0o700);
            a.file("newdir/sub/deep.txt", pseudo_text(5000, 2), 0o600, T0 + 2);
            a.symlink("newdir/link", "sub/deep.txt");
            a.fifo("newdir/pipe", 0o640, T0 + 3);
            let mut body = pseudo_text(300_000, 1);
            body[150_000..150_050].fill(b'#');
            a.file("keep/old.txt", body, 0o644, T0 + 4); // a delta
            a.remove("gone.txt");
            a.file("mode.txt", "mode changes\n", 0o600, T0 + 5);
            a.remove("f2d");
            a.mkdir("f2d", 0o755);
            a.file("f2d/inside", "inside\n", 0o644, T0 + 6);

            let o = exchange(r, "-x to four peers", 0, &[1, 2, 3, 4], "-iii", args!["-x"]);
            r.expect_code(o, 0);
            expect_all_synced(r, o, "-x to four peers");
            let err = String::from_utf8_lossy(&r.client(o).stderr).into_owned();
            let order = peers_in_order(&err);
            let mut want: Vec<String> = (1..5).map(|i| r.n(i).name.clone()).collect();
            want.sort();
            want.reverse();
            r.expect(
                order == want,
                format!("one block of lines per peer, in descending name order: {order:?}"),
            );

            // a client killed in the middle of a run
            for k in 0..40 {
                a.file(
                    format!("newdir/many{k:02}.bin"),
                    pseudo_random(200_000, 100 + k),
                    0o644,
                    T0 + 10,
                );
            }
            r.fix_mtimes();
            let servers: Vec<(usize, Proc)> =
                (1..5).map(|i| (i, r.start_server(i, "-iii"))).collect();
            let client = r.n(0).spawn(&["-x".into()]);
            std::thread::sleep(Duration::from_millis(150));
            let killed = client.kill();
            for (i, p) in servers {
                r.finish_server(i, p);
            }
            r.note(format!("client killed: {}", killed.status()));
            // every database agrees with its files: a check of each node
            // finds only what the kill left half-sent, and the next run
            // completes everything
            let t = Instant::now();
            let o = exchange(
                r,
                "-x after the kill",
                0,
                &[1, 2, 3, 4],
                "-iii",
                args!["-x"],
            );
            r.expect_code(o, 0);
            expect_all_synced(r, o, "-x after the kill");
            r.expect(
                t.elapsed() < Duration::from_secs(60),
                "the completing run finishes",
            );
            for i in 1..5 {
                let o = r.recheck("peer -cr after the runs", i);
                let d = r.dirty(o, i);
                r.expect(
                    d.is_empty(),
                    format!(
                        "{}'s database agrees with its files ({} rows marked)",
                        r.n(i).short(),
                        d.len()
                    ),
                );
            }
        },
    );
}
