//! Pipelining between our own nodes (doc/protocol-extension.md), with many
//! files in flight at once: ours → ours must pipeline and end exactly as a
//! lock-step push; ours → real must stay in lock-step (the real server
//! answers the offer `Unknown command!`).
//!
//! Needs root; see `tests/net_interop.rs` for the environment variables.

mod common;
mod net;
mod netx;

use net::*;
use netx::*;

const MODES: [Mode; 2] = [MODE_C, MODE_D];

fn sized(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if i % 61 == 60 {
                b'\n'
            } else {
                b'a' + (x % 26) as u8
            }
        })
        .collect()
}

/// The wire the client used: pipelined with our server, lock-step with the
/// real one.
fn expect_wire(r: &mut Run, o: usize) {
    let err = common::show(&r.client(o).stderr);
    let pipelined = err.contains("Peer> OK (pipelining).");
    if r.mode.server == Imp::Ours {
        r.expect(pipelined, "the session with our server is pipelined");
        r.expect(err.contains("Local> X-PUT "), "files went as X-PUT");
    } else {
        r.expect(
            err.contains("Peer> Unknown command!") && !pipelined && !err.contains("X-STAT"),
            "the real server declines the offer and the session stays in lock-step",
        );
    }
}

/// 600 files in 40 directories with every kind of update at once: new,
/// identical on the peer (SETIME only), changed small (sent whole), changed
/// large (rsync delta in lock-step), symlinks, empty directories, fifos.
#[test]
fn many_files() {
    solo("pipemany", Net::Pipemany, 2, &[1], &MODES, |r| {
        let (a, b) = (r.n(0).clone(), r.n(1).clone());
        for d in 0..40 {
            let dir = format!("d{d:02}");
            a.mkdir(&dir, 0o755);
            // the peer has some of the directories already
            if d % 2 == 0 {
                b.mkdir(&dir, 0o755);
            }
            for f in 0..15 {
                let rel = format!("{dir}/f{f:02}.txt");
                let size = [0, 1, 100, 2048, 5000, 40_000][(d + f) % 6];
                let body = sized(size, (d * 100 + f) as u64);
                a.file(&rel, &body, 0o644, T0 + f as i64);
                match (d * 15 + f) % 10 {
                    // the same file on the peer: already up to date
                    0 if d % 2 == 0 => b.file(&rel, &body, 0o644, T0 + f as i64),
                    // an older version there
                    1 if d % 2 == 0 => b.file(&rel, sized(size + 7, 9), 0o600, T0 - 100),
                    _ => {}
                }
            }
            if d % 5 == 0 {
                a.symlink(format!("{dir}/link"), format!("f0{}.txt", d % 10));
                a.mkdir(format!("{dir}/empty"), 0o700);
                a.fifo(format!("{dir}/pipe"), 0o640, T0);
            }
        }
        // large files changed in place: deltas
        for k in 0..3 {
            let rel = format!("big{k}.dat");
            let mut body = sized(400_000, 77 + k);
            b.file(&rel, &body, 0o644, T0);
            body[200_000..200_100].fill(b'#');
            a.file(&rel, &body, 0o644, T0 + 50);
        }
        let s = b.s("");
        r.cmd_ok(1, vec!["-cIr".into(), s], 0);
        let o = r.push("push -x (600 files)", args!["-x"]);
        r.expect_code(o, 0);
        r.expect_same_trees(o, 0, 1);
        r.expect(r.dirty(o, 0).is_empty(), "no dirty rows left on the sender");
        expect_wire(r, o);
        r.recheck_clean();
    });
}

/// A dry run of a tree whose directories the peer lacks: nothing changes,
/// every file is listed once as `?M`, and the pass is not started over per
/// missing directory (which marked rows and took dirs × files requests).
#[test]
fn dry_run_new_tree() {
    solo("pipedry", Net::Pipedry, 2, &[1], &MODES, |r| {
        let a = r.n(0).clone();
        // more files below each missing directory than the pipeline holds
        for d in 0..2 {
            a.mkdir(format!("n{d}"), 0o755);
            a.mkdir(format!("n{d}/sub"), 0o755);
            for f in 0..500 {
                a.file(format!("n{d}/sub/f{f}"), sized(300, f), 0o644, T0);
            }
        }
        let o = r.push("push -x -d", args!["-x", "-d"]);
        let c = r.client(o).clone();
        r.expect(
            c.code == Some(0),
            format!("the dry run ends without errors: {}", c.status()),
        );
        r.expect(r.entry(o, 1, "n0").is_none(), "nothing reached the peer");
        let dirty = r.dirty(o, 0).len();
        r.expect(dirty >= 1004, format!("every row stays dirty ({dirty})"));
        // one line per row: `?M` for the new tree, `?S` for the root
        let out = c.stdout_lines();
        let m = out.iter().filter(|l| l.starts_with("?M: ")).count();
        let same = out.iter().filter(|l| l.starts_with("?S: ")).count();
        r.expect(
            m >= 1004 && m + same == dirty,
            format!("{dirty} `?M`/`?S` lines, got {m} + {same}"),
        );
        r.expect(
            !common::show(&c.stderr).contains("missing parent dir"),
            "no pass started over for a missing directory",
        );
    });
}

/// 200 changed files, 5 of them also changed on the peer: those 5 are
/// refused and stay dirty, the rest arrive.
#[test]
fn conflicts_among_many() {
    solo("pipeconflict", Net::Pipeconflict, 2, &[1], &MODES, |r| {
        for i in 0..2 {
            let n = r.n(i).clone();
            for f in 0..200 {
                n.file(format!("f{f:03}"), format!("base {f}\n"), 0o644, T0);
            }
        }
        r.init();
        let (a, b) = (r.n(0).clone(), r.n(1).clone());
        for f in 0..200 {
            a.file(format!("f{f:03}"), format!("sender {f}\n"), 0o644, T0 + 10);
        }
        let clash = [3, 50, 51, 120, 199];
        for f in clash {
            b.file(
                format!("f{f:03}"),
                format!("receiver {f}\n"),
                0o644,
                T0 + 20,
            );
        }
        r.check(1);
        let o = r.push("push -x (5 conflicts)", args!["-x"]);
        r.expect_code(o, 1);
        r.expect_line(o, "Finished with 5 errors.");
        for f in 0..200 {
            let rel = format!("f{f:03}");
            let want = if clash.contains(&f) {
                format!("receiver {f}\n")
            } else {
                format!("sender {f}\n")
            };
            let got = r.entry(o, 1, &rel).and_then(|e| e.content.clone());
            if got.as_deref() != Some(want.as_bytes()) {
                r.expect(
                    false,
                    format!("{rel} on the receiver: {got:?}, want {want:?}"),
                );
            }
            let dirty = r.is_dirty(o, 0, &rel);
            r.expect(
                dirty == clash.contains(&f),
                format!("{rel} dirty on the sender: {dirty}"),
            );
        }
        expect_wire(r, o);
    });
}

/// Deletions go ahead too (X-STAT, then DEL, without waiting): 300 files
/// in 20 directories and a directory whose file the peer changed (a
/// conflict, won by `auto first`: resolved in lock-step, and the
/// directory's DEL, refused while the file was still there, is sent
/// again afterwards).
#[test]
fn many_deletions() {
    solo("pipedel", Net::Pipedel, 2, &[1], &MODES, |r| {
        r.config(
            "nossl * *;\ngroup g {\n    host {N1} {N2};\n    key g.key;\n    \
             include {SYNC};\n    auto first;\n}\n",
        );
        let (a, b) = (r.n(0).clone(), r.n(1).clone());
        for d in 0..20 {
            a.mkdir(format!("d{d:02}"), 0o755);
            for f in 0..15 {
                a.file(
                    format!("d{d:02}/f{f:02}"),
                    sized(100 + f, d as u64),
                    0o644,
                    T0,
                );
            }
        }
        a.mkdir("c", 0o755);
        a.file("c/x", "changed on the peer too\n", 0o644, T0);
        let o = r.push("push -x (the tree)", args!["-x"]);
        r.expect_code(o, 0);
        // the peer changes c/x: a conflict when it is deleted here
        b.file("c/x", "the peer's own change\n", 0o600, T0 + 5);
        for d in 0..20 {
            a.remove(format!("d{d:02}"));
        }
        a.remove("c");
        let o = r.push("push -x (deletions)", args!["-x"]);
        r.expect_code(o, 0);
        r.expect_same_trees(o, 0, 1);
        r.expect(r.dirty(o, 0).is_empty(), "no dirty rows left on the sender");
        r.expect_line(o, "Auto-resolving conflict: Won 'first' test.");
        let err = common::show(&r.client(o).stderr);
        if r.mode.server == Imp::Ours {
            r.expect(
                err.contains("Local> X-STAT ") && err.contains("Local> DEL "),
                "deletions went as X-STAT and DEL",
            );
        }
        r.recheck_clean();
    });
}
