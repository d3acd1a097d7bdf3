//! Actions over the network (state.md §6, config.md §5.7), as a
//! differential run (see `tests/net/mod.rs`). The commands write into log
//! files in each node's system directory (outside the synchronised trees);
//! after every step both nodes' logs are checked against what the spec
//! says, in every run:
//!
//! * the receiving server runs the actions whose pattern matches an updated
//!   or deleted file, once per session, after the files arrived (`cat %%`
//!   shows the new content), except `do-local-only` ones;
//! * the sender's own check runs only `do-local` and `do-local-only`
//!   actions;
//! * the first `%%` becomes the space-joined list of URL-encoded names, a
//!   later `%%` stays literal;
//! * an action row left in the database by an interrupted run is executed
//!   by the next csync2 invocation of any mode (`-M` here), on the client's
//!   and on the server's implementation.
//!
//! The order of the names in a list is not meaningful (config.md §5.7):
//! lists are compared as sets.
//!
//! Needs root; see `tests/net_interop.rs` for the environment variables.

mod common;
mod net;
mod netx;

use net::*;
use netx::*;

const CFG: &str = "nossl * *;
group g {
    host {N1} {N2};
    key g.key;
    include {SYNC};
    action {
        pattern {SYNC}/act/*;
        exec \"echo remote: %% literal: %%\";
        logfile \"{ETC}/remote.log\";
    }
    action {
        pattern {SYNC}/act/cat.txt;
        exec \"cat %%\";
        logfile \"{ETC}/cat.log\";
    }
    action {
        pattern {SYNC}/loc;
        exec \"echo local: %%\";
        logfile \"{ETC}/local.log\";
        do-local;
    }
    action {
        pattern {SYNC}/only;
        exec \"echo local-only: %%\";
        logfile \"{ETC}/localonly.log\";
        do-local-only;
    }
}
";

/// One expected line of an action log: `<prefix><names><suffix>`, the
/// names (tree-relative, URL-encoded as csync2 does) in any order.
#[derive(Clone, Debug)]
struct Line {
    prefix: &'static str,
    names: Vec<&'static str>,
    suffix: &'static str,
}

fn line(prefix: &'static str, names: &[&'static str], suffix: &'static str) -> Line {
    Line {
        prefix,
        names: names.to_vec(),
        suffix,
    }
}

/// Compare the action log `log` of node `i` with the expected lines (the
/// log is read and removed, so that each step sees its own output).
fn check_log(r: &mut Run, i: usize, log: &str, want: &[Line], when: &str) {
    let path = r.n(i).etc.join(log);
    let text = std::fs::read(&path).unwrap_or_default();
    let _ = std::fs::remove_file(&path);
    let got: Vec<String> = text
        .split(|&c| c == b'\n')
        .filter(|l| !l.is_empty())
        .map(common::show)
        .collect();
    let sync = r.sync.to_string_lossy().into_owned();
    let ok = got.len() == want.len()
        && got.iter().zip(want).all(|(g, w)| {
            let Some(mid) = g
                .strip_prefix(w.prefix)
                .and_then(|m| m.strip_suffix(w.suffix))
            else {
                return false;
            };
            let mut a: Vec<&str> = mid.split(' ').filter(|s| !s.is_empty()).collect();
            let mut b: Vec<String> = w.names.iter().map(|n| format!("{sync}/{n}")).collect();
            a.sort();
            b.sort();
            a == b
        });
    let who = r.n(i).short().to_string();
    r.expect(
        ok,
        format!("{when}: {who}'s {log} should hold {want:?} (names below {sync}), got {got:?}"),
    );
}

#[test]
fn actions() {
    differential("actions", Net::Actions, 2, &[1], |r| {
        node_config(r, CFG);
        for i in 0..2 {
            let n = r.n(i).clone();
            for d in ["act", "loc", "only", "other"] {
                n.mkdir(d, 0o755);
            }
            n.file("act/a.txt", "a\n", 0o644, T0);
        }
        r.init();
        let a = r.n(0).clone();
        a.file("act/a.txt", "a changed\n", 0o644, T0 + 10);
        a.file("act/x y.txt", "x y\n", 0o644, T0 + 11);
        a.file("act/cat.txt", "the synced content\n", 0o644, T0 + 12);
        a.file("loc/l.txt", "l\n", 0o644, T0 + 13);
        a.file("only/o.txt", "o\n", 0o644, T0 + 14);
        a.file("other/n.txt", "n\n", 0o644, T0 + 15);
        let o = r.push("push -x", args!["-x"]);
        r.expect_code(o, 0);
        r.expect_same_trees(o, 0, 1);
        let when = "after the first push";
        // the receiver: every non-local-only action, once, after the sync
        check_log(
            r,
            1,
            "remote.log",
            &[line(
                "remote: ",
                &["act/a.txt", "act/x%20y.txt", "act/cat.txt"],
                " literal: %%",
            )],
            when,
        );
        check_log(
            r,
            1,
            "cat.log",
            &[line("the synced content", &[], "")],
            when,
        );
        check_log(
            r,
            1,
            "local.log",
            &[line("local: ", &["loc/l.txt"], "")],
            when,
        );
        check_log(r, 1, "localonly.log", &[], when);
        // the sender: only the local ones, from its check
        check_log(r, 0, "remote.log", &[], when);
        check_log(r, 0, "cat.log", &[], when);
        check_log(
            r,
            0,
            "local.log",
            &[line("local: ", &["loc/l.txt"], "")],
            when,
        );
        check_log(
            r,
            0,
            "localonly.log",
            &[line("local-only: ", &["only/o.txt"], "")],
            when,
        );
        for i in 0..2 {
            let n = r.obs[o].dbs[i]
                .as_ref()
                .map(|d| d.rows("action").len())
                .unwrap_or(0);
            r.expect(n == 0, format!("no action rows left on node {i}: {n}"));
        }

        // a change and a deletion: one more run of the remote action
        a.file("act/a.txt", "a changed again\n", 0o644, T0 + 20);
        a.remove("act/x y.txt");
        let o = r.push("push -x (change and deletion)", args!["-x"]);
        r.expect_code(o, 0);
        r.expect_same_trees(o, 0, 1);
        let when = "after the second push";
        check_log(
            r,
            1,
            "remote.log",
            &[line(
                "remote: ",
                &["act/a.txt", "act/x%20y.txt"],
                " literal: %%",
            )],
            when,
        );
        for (i, log) in [
            (0, "remote.log"),
            (0, "local.log"),
            (0, "localonly.log"),
            (1, "cat.log"),
            (1, "local.log"),
            (1, "localonly.log"),
        ] {
            check_log(r, i, log, &[], when);
        }

        // an interrupted run left action rows behind: the next invocation
        // of any mode (-M, nothing dirty: exit 2) runs them
        for i in 0..2 {
            let n = r.n(i).clone();
            let enc = |b: &[u8]| String::from_utf8(common::url_encode(b)).expect("utf-8");
            let log = n.etc.join("pending.log");
            n.sql(&format!(
                "INSERT INTO action (filename, command, logfile) VALUES ('{}', '{}', '{}'); \
                 INSERT INTO action (filename, command, logfile) VALUES ('{}', '{}', '{}');",
                enc(n.s("act/p 1").as_encoded_bytes()),
                enc(b"echo pending: %%"),
                enc(log.as_os_str().as_encoded_bytes()),
                enc(n.s("act/p2").as_encoded_bytes()),
                enc(b"echo pending: %%"),
                enc(log.as_os_str().as_encoded_bytes()),
            ));
            r.cmd_ok(i, args!["-M"], 2);
        }
        let o = r.record("-M on both nodes", Vec::new(), Vec::new());
        for i in 0..2 {
            check_log(
                r,
                i,
                "pending.log",
                &[line("pending: ", &["act/p%201", "act/p2"], "")],
                "after -M",
            );
            let n = r.obs[o].dbs[i]
                .as_ref()
                .map(|d| d.rows("action").len())
                .unwrap_or(0);
            r.expect(
                n == 0,
                format!("-M on node {i} emptied the action table: {n}"),
            );
        }
    });
}
