//! Conflicts and their resolution over the network (state.md §4.5–4.6,
//! protocol.md §3.6), as differential runs of the harness in
//! `tests/net/mod.rs`: (a) REAL → REAL is the reference, (b) REAL client →
//! OURS server, (c) OURS client → REAL server and (d) OURS → OURS must agree
//! with it (exit codes, important output lines, the real client's protocol
//! trace, every node's tree and database), plain and over TLS.
//!
//! `tests/net_interop.rs` already covers `auto none` (`conflict`), `-f`
//! then `-u` (`force_after_conflict`) and `auto younger` with a win, a loss
//! and a removal (`auto_resolve`). Here: every other `auto` method with
//! both outcomes and the ties, changes against deletions in both
//! directions (the peer's file gone counts as a win for the comparing
//! methods, a local removal never wins them), left/right by host order,
//! and slave hosts (the master always wins on a slave; a slave's own push
//! is refused and the master marks the file for it).
//!
//! Needs root; see `tests/net_interop.rs` for the environment variables.

mod common;
mod net;
mod netx;

use net::*;

/// What happened to one file before the push (everything else starts as
/// `original\n`, mtime T0, on both nodes).
#[derive(Clone, Copy, Debug)]
enum Case {
    /// changed on both sides: (content, mtime) on the sender and on the
    /// receiver
    Both(&'static str, i64, &'static str, i64),
    /// removed on the sender, changed on the receiver
    SenderRemoved(&'static str, i64),
    /// changed on the sender, removed on the receiver
    ReceiverRemoved(&'static str, i64),
}

#[derive(Clone, Copy, Debug)]
struct F {
    path: &'static str,
    case: Case,
    /// whether the sender wins the conflict
    win: bool,
}

fn f(path: &'static str, case: Case, win: bool) -> F {
    F { path, case, win }
}

use Case::*;

/// One group per subdirectory: `(subdir, host statement, auto setting)`.
fn groups_cfg(groups: &[(&str, &str, &str)]) -> String {
    let mut s = String::from("nossl * *;\n");
    for (dir, hosts, auto) in groups {
        s.push_str(&format!(
            "group g_{dir} {{\n    host {hosts};\n    key g.key;\n    include {{SYNC}}/{dir};\n    auto {auto};\n}}\n"
        ));
    }
    s
}

/// Set up `files`, optionally `-cr` on the receiver, push `-x` from node 0
/// to node 1 and check every file's outcome: a won file arrives (or its
/// deletion does) and is clean on both sides; a lost one stays untouched
/// on the receiver and dirty on both sides. `won` maps each subdirectory to
/// the test name of its `Auto-resolving conflict: Won '<name>' test.`
/// lines (one per win).
fn scenario(r: &mut Run, cfg: &str, files: &[F], receiver_checks: bool, won: &[(&str, &str)]) {
    r.config(cfg);
    for i in 0..2 {
        let n = r.n(i).clone();
        for x in files {
            let dir = x.path.split('/').next().expect("subdir");
            if !n.p(dir).exists() {
                n.mkdir(dir, 0o755);
            }
            n.file(x.path, "original\n", 0o644, T0);
        }
    }
    r.init();
    let (a, p) = (r.n(0).clone(), r.n(1).clone());
    for x in files {
        match x.case {
            Both(sc, st, pc, pt) => {
                a.file(x.path, sc, 0o644, st);
                p.file(x.path, pc, 0o644, pt);
            }
            SenderRemoved(pc, pt) => {
                a.remove(x.path);
                p.file(x.path, pc, 0o644, pt);
            }
            ReceiverRemoved(sc, st) => {
                a.file(x.path, sc, 0o644, st);
                p.remove(x.path);
            }
        }
    }
    if receiver_checks {
        r.check(1);
    }
    let o = r.push("push -x", args!["-x"]);
    let losses = files.iter().filter(|x| !x.win).count();
    let wins = files.len() - losses;
    r.expect_code(o, if losses > 0 { 1 } else { 0 });
    if losses > 0 {
        r.expect_line(o, &format!("Finished with {losses} errors."));
    }
    let mut names: Vec<&str> = won.iter().map(|(_, n)| *n).collect();
    names.dedup();
    let err = common::show(&r.client(o).stderr);
    for name in names {
        let want = files
            .iter()
            .filter(|x| x.win && won.iter().any(|(d, n)| *n == name && x.path.starts_with(d)))
            .count();
        let line = format!("Auto-resolving conflict: Won '{name}' test.");
        let got = err.matches(&line).count();
        r.expect(want == got, format!("{want} lines `{line}`, got {got}"));
    }
    let any = err.matches("Auto-resolving conflict: Won '").count();
    r.expect(
        any == wins,
        format!("{wins} `Auto-resolving conflict: Won` lines in all, got {any}"),
    );
    for x in files {
        let got = r.entry(o, 1, x.path).and_then(|e| e.content.clone());
        let got_s = got.as_ref().map(|g| common::show(g));
        let want: Option<&str> = match (x.case, x.win) {
            (Both(sc, ..), true) | (ReceiverRemoved(sc, _), true) => Some(sc),
            (Both(_, _, pc, _), false) | (SenderRemoved(pc, _), false) => Some(pc),
            (SenderRemoved(..), true) | (ReceiverRemoved(..), false) => None,
        };
        r.expect(
            got.as_deref() == want.map(str::as_bytes),
            format!(
                "{} ({:?}, sender {}) on the receiver: want {want:?}, got {got_s:?}",
                x.path,
                x.case,
                if x.win { "wins" } else { "loses" }
            ),
        );
        if x.win {
            if let (Some(e), Both(_, st, ..) | ReceiverRemoved(_, st)) =
                (r.entry(o, 1, x.path), x.case)
            {
                let ok = e.mtime == Some(st);
                r.expect(ok, format!("{}: the sender's mtime {st} arrives", x.path));
            }
            r.expect(
                !r.is_dirty(o, 0, x.path),
                format!("{} (won) is clean on the sender", x.path),
            );
            r.expect(
                !r.is_dirty(o, 1, x.path),
                format!("{} (won) is clean on the receiver (FLUSH)", x.path),
            );
        } else {
            r.expect(
                r.is_dirty(o, 0, x.path),
                format!("{} (lost) stays dirty on the sender", x.path),
            );
            r.expect(
                r.is_dirty(o, 1, x.path),
                format!("{} (lost) is dirty on the receiver", x.path),
            );
        }
    }
}

/// `auto first`: the pushing host wins changes, deletions and changes of a
/// file the peer deleted; `auto none` (written out) loses all three. The
/// receiver never runs a check: its server-side check finds its changes.
#[test]
fn auto_first_and_none() {
    differential("autofirst", Net::Autofirst, 2, &[1], |r| {
        let cfg = groups_cfg(&[
            ("first", "{N1} {N2}", "first"),
            ("none", "{N1} {N2}", "none"),
        ]);
        let files = [
            f(
                "first/mod.txt",
                Both("sender\n", T0 + 10, "receiver, longer\n", T0 + 20),
                true,
            ),
            f("first/del.txt", SenderRemoved("receiver\n", T0 + 20), true),
            f("first/gone.txt", ReceiverRemoved("sender\n", T0 + 10), true),
            f(
                "none/mod.txt",
                Both("sender\n", T0 + 20, "receiver\n", T0 + 10),
                false,
            ),
            f("none/del.txt", SenderRemoved("receiver\n", T0 + 20), false),
            f("none/gone.txt", ReceiverRemoved("sender\n", T0 + 10), false),
        ];
        scenario(r, &cfg, &files, false, &[("first", "first")]);
    });
}

/// `auto younger` ties lose and a peer-deleted file wins (GETTM -1); `auto
/// older`: the older file wins, the newer loses, a tie wins, a removal
/// loses, a peer-deleted file wins. Then `-f` on the lost change and the
/// lost removal, and `-u`: both win; the unforced loser loses again.
#[test]
fn auto_younger_older() {
    differential("autoage", Net::Autoage, 2, &[1], |r| {
        let cfg = groups_cfg(&[
            ("younger", "{N1} {N2}", "younger"),
            ("older", "{N1} {N2}", "older"),
        ]);
        let files = [
            f(
                "younger/tie.txt",
                Both("sender\n", T0 + 50, "receiver\n", T0 + 50),
                false,
            ),
            f(
                "younger/gone.txt",
                ReceiverRemoved("sender\n", T0 + 10),
                true,
            ),
            f(
                "older/win.txt",
                Both("sender\n", T0 + 100, "receiver\n", T0 + 200),
                true,
            ),
            f(
                "older/lose.txt",
                Both("sender\n", T0 + 200, "receiver\n", T0 + 100),
                false,
            ),
            f(
                "older/tie.txt",
                Both("sender\n", T0 + 50, "receiver\n", T0 + 50),
                true,
            ),
            f(
                "older/del.txt",
                SenderRemoved("receiver\n", T0 + 300),
                false,
            ),
            f("older/gone.txt", ReceiverRemoved("sender\n", T0 + 10), true),
        ];
        scenario(
            r,
            &cfg,
            &files,
            true,
            &[("younger", "younger/older"), ("older", "younger/older")],
        );
        // forced: the lost change and the lost removal win with -f, -u
        let (l, d) = (r.n(0).s("older/lose.txt"), r.n(0).s("older/del.txt"));
        r.cmd_ok(0, args!["-f", l, d], 0);
        let o = r.push("push -u (forced)", args!["-u"]);
        r.expect_code(o, 1);
        r.expect_line(o, "Finished with 1 errors.");
        let got = r
            .entry(o, 1, "older/lose.txt")
            .and_then(|e| e.content.clone());
        r.expect(
            got.as_deref() == Some(b"sender\n".as_slice()),
            "the forced older/lose.txt arrives",
        );
        r.expect(
            r.entry(o, 1, "older/del.txt").is_none(),
            "the forced removal of older/del.txt arrives",
        );
        for f in ["older/lose.txt", "older/del.txt"] {
            r.expect(!r.is_dirty(o, 0, f), format!("{f} is clean on the sender"));
            r.expect(
                !r.is_dirty(o, 1, f),
                format!("{f} is clean on the receiver"),
            );
        }
        r.expect(
            r.is_dirty(o, 0, "younger/tie.txt"),
            "the unforced younger/tie.txt still loses",
        );
    });
}

/// `auto bigger` (GETSZ): bigger wins, smaller loses, a tie loses, a
/// removal loses, a peer-deleted file wins; `auto smaller` the other way
/// round, a tie wins.
#[test]
fn auto_bigger_smaller() {
    differential("autosize", Net::Autosize, 2, &[1], |r| {
        let cfg = groups_cfg(&[
            ("bigger", "{N1} {N2}", "bigger"),
            ("smaller", "{N1} {N2}", "smaller"),
        ]);
        let files = [
            f(
                "bigger/win.txt",
                Both("sender, bigger\n", T0 + 10, "receiver\n", T0 + 20),
                true,
            ),
            f(
                "bigger/lose.txt",
                Both("sender\n", T0 + 20, "receiver, bigger\n", T0 + 10),
                false,
            ),
            f(
                "bigger/tie.txt",
                Both("sender 1\n", T0 + 20, "receiver\n", T0 + 10),
                false,
            ),
            f(
                "bigger/del.txt",
                SenderRemoved("receiver\n", T0 + 20),
                false,
            ),
            f(
                "bigger/gone.txt",
                ReceiverRemoved("sender\n", T0 + 10),
                true,
            ),
            f(
                "smaller/win.txt",
                Both("sender\n", T0 + 10, "receiver, bigger\n", T0 + 20),
                true,
            ),
            f(
                "smaller/lose.txt",
                Both("sender, bigger\n", T0 + 20, "receiver\n", T0 + 10),
                false,
            ),
            f(
                "smaller/tie.txt",
                Both("sender 1\n", T0 + 10, "receiver\n", T0 + 20),
                true,
            ),
            f(
                "smaller/del.txt",
                SenderRemoved("receiver\n", T0 + 20),
                false,
            ),
        ];
        scenario(
            r,
            &cfg,
            &files,
            true,
            &[("bigger", "bigger/smaller"), ("smaller", "bigger/smaller")],
        );
    });
}

/// `auto left` / `auto right`: the host written further left (right) in
/// the group's host statement wins, for changes and for removals alike.
/// Groups l1/r1 list the sender first, l2/r2 list it last.
#[test]
fn auto_left_right() {
    differential("autoside", Net::Autoside, 2, &[1], |r| {
        let cfg = groups_cfg(&[
            ("l1", "{N1} {N2}", "left"),
            ("l2", "{N2} {N1}", "left"),
            ("r1", "{N1} {N2}", "right"),
            ("r2", "{N2} {N1}", "right"),
        ]);
        let mut files = Vec::new();
        for (d, win) in [("l1", true), ("l2", false), ("r1", false), ("r2", true)] {
            let m: &'static str = Box::leak(format!("{d}/mod.txt").into_boxed_str());
            let x: &'static str = Box::leak(format!("{d}/del.txt").into_boxed_str());
            files.push(f(m, Both("sender\n", T0 + 10, "receiver\n", T0 + 20), win));
            files.push(f(x, SenderRemoved("receiver\n", T0 + 20), win));
        }
        scenario(
            r,
            &cfg,
            &files,
            true,
            &[("l", "left/right"), ("r", "left/right")],
        );
    });
}

/// A slave (`host {N1} ({N2});`, the receiver in parentheses) takes
/// everything from the master: new files, and conflicting changes and
/// deletions are won by the master ("master/slave", with `auto none`).
#[test]
fn slave_receives() {
    differential("slaverecv", Net::Slaverecv, 2, &[1], |r| {
        let cfg = "nossl * *;\ngroup g {\n    host {N1} ({N2});\n    key g.key;\n    include {SYNC};\n}\n";
        let files = [
            f(
                "d/mod.txt",
                Both("master\n", T0 + 10, "slave change\n", T0 + 20),
                true,
            ),
            f("d/del.txt", SenderRemoved("slave change\n", T0 + 20), true),
            f("d/gone.txt", ReceiverRemoved("master\n", T0 + 10), true),
        ];
        scenario(r, cfg, &files, true, &[("d", "master/slave")]);
        // a new file and a second push without conflicts
        let a = r.n(0).clone();
        a.file("d/new.txt", "new on the master\n", 0o640, T0 + 30);
        a.file("d/mod.txt", "master again\n", 0o644, T0 + 40);
        let o = r.push("push -x (no conflicts)", args!["-x"]);
        r.expect_code(o, 0);
        r.expect_same_trees(o, 0, 1);
        r.expect(r.dirty(o, 0).is_empty(), "no dirty rows left on the master");
    });
}

/// A slave's own push is refused (`Permission denied for slave!`, one
/// error per file), its changes do not arrive, and the master marks the
/// files dirty towards the slave so that its own version goes back.
#[test]
fn slave_push_refused() {
    differential("slavepush", Net::Slavepush, 2, &[1], |r| {
        r.config(
            "nossl * *;\ngroup g {\n    host ({N1}) {N2};\n    key g.key;\n    include {SYNC};\n}\n",
        );
        for i in 0..2 {
            let n = r.n(i).clone();
            n.file("f.txt", "original\n", 0o644, T0);
            n.file("g.txt", "original\n", 0o644, T0);
        }
        r.init();
        let a = r.n(0).clone();
        a.file("f.txt", "changed on the slave\n", 0o644, T0 + 10);
        a.file("new.txt", "new on the slave\n", 0o644, T0 + 20);
        let s = a.s("");
        r.cmd_ok(0, args!["-cr", s], 0);
        let o = r.push("slave pushes -u", args!["-u"]);
        r.expect_code(o, 1);
        r.expect_line(o, "Finished with 2 errors.");
        let f = r.entry(o, 1, "f.txt").and_then(|e| e.content.clone());
        r.expect(
            f.as_deref() == Some(b"original\n".as_slice()),
            "f.txt is unchanged on the master",
        );
        r.expect(
            r.entry(o, 1, "new.txt").is_none(),
            "new.txt does not arrive",
        );
        for x in ["f.txt", "new.txt"] {
            r.expect(r.is_dirty(o, 0, x), format!("{x} stays dirty on the slave"));
        }
        r.expect(
            r.is_dirty(o, 1, "f.txt"),
            "the master marks f.txt dirty towards the slave",
        );
        if r.mode.client == Imp::Real {
            let n = wire(r.client(o))
                .iter()
                .filter(|e| e.peer_starts("Permission denied for slave!"))
                .count();
            r.expect(
                n == 2,
                format!("2 `Permission denied for slave!` replies, got {n}"),
            );
        }
        if r.mode.client == Imp::Ours {
            // each error line is followed by what it means and what to do
            let err = common::show(&r.client(o).stderr);
            let n = err
                .matches("Hint: n2.slavepush.test has this host as a slave")
                .count();
            r.expect(n == 2, format!("2 hint lines naming the peer, got {n}"));
        }
    });
}

/// The same change made on both sides (content, mode and mtime), checked
/// on both: the push finds nothing to send and is not a conflict; an
/// identical new file on both sides too. Both sides end clean.
#[test]
fn same_change_both_sides() {
    differential("samechange", Net::Samechange, 2, &[1], |r| {
        for i in 0..2 {
            r.n(i).file("f.txt", "original\n", 0o644, T0);
        }
        r.init();
        for i in 0..2 {
            let n = r.n(i).clone();
            n.file("f.txt", "the same new text\n", 0o640, T0 + 50);
            n.file("new.txt", "new on both\n", 0o644, T0 + 60);
            r.check(i);
        }
        let o = r.push("push -x", args!["-x"]);
        r.expect_code(o, 0);
        r.expect_same_trees(o, 0, 1);
        for f in ["f.txt", "new.txt"] {
            r.expect(!r.is_dirty(o, 0, f), format!("{f} is clean on the sender"));
        }
    });
}
