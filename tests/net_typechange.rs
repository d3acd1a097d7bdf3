//! Type changes between our own nodes, in one run each: a regular file
//! that becomes a directory with content, a directory that becomes a file,
//! a file that becomes a symlink, a symlink that becomes a directory with
//! content, and a directory that becomes a symlink, and back. Sent while
//! the check walks (`-x`) and by the pipelined update (`-c`, then `-u`).
//! The pipelined path answered `Not a directory` for the content of a file
//! turned directory until the next run healed it.
//!
//! Needs root; see `tests/net_interop.rs` for the environment variables.

mod common;
mod net;
mod netx;

use net::*;
use netx::*;

/// The entries both sets of changes start from and go back to.
fn first_shape(a: &Node) {
    a.file("f2d", "a file that becomes a directory\n", 0o644, T0);
    a.mkdir("d2f", 0o755);
    a.file(
        "d2f/x",
        "inside a directory that becomes a file\n",
        0o644,
        T0,
    );
    a.file("f2l", "a file that becomes a symlink\n", 0o600, T0);
    a.symlink("l2d", "f2l");
    a.mkdir("d2l", 0o750);
    a.file(
        "d2l/y",
        "inside a directory that becomes a symlink\n",
        0o644,
        T0,
    );
}

/// Every entry of `first_shape` changes its type.
fn second_shape(a: &Node, t: i64) {
    a.remove("f2d");
    a.mkdir("f2d", 0o755);
    a.file("f2d/inner", "now inside\n", 0o644, t);
    a.mkdir("f2d/sub", 0o700);
    a.file("f2d/sub/deep", "deeper\n", 0o640, t);
    a.remove("d2f");
    a.file("d2f", "a directory turned file\n", 0o644, t);
    a.remove("f2l");
    a.symlink("f2l", "d2f");
    a.remove("l2d");
    a.mkdir("l2d", 0o755);
    a.file("l2d/z", "a symlink turned directory\n", 0o644, t);
    a.remove("d2l");
    a.symlink("d2l", "f2d/inner");
}

/// Back again: each entry of `second_shape` changes its type once more.
fn back_to_first(a: &Node, t: i64) {
    for e in ["f2d", "d2f", "f2l", "l2d", "d2l"] {
        a.remove(e);
    }
    first_shape(a);
    a.file("f2d", "a directory turned file again\n", 0o644, t);
}

fn expect_synced(r: &mut Run, o: usize, what: &str) {
    r.expect_code(o, 0);
    r.expect_same_trees(o, 0, 1);
    let left = r.dirty(o, 0);
    r.expect(
        left.is_empty(),
        format!(
            "{what}: no dirty rows left on the sender: {} left",
            left.len()
        ),
    );
    let err = common::show(&r.client(o).stderr);
    r.expect(
        !err.contains("Not a directory") && !err.contains("While syncing"),
        format!("{what}: no file failed"),
    );
}

#[test]
fn every_type_change_in_one_run() {
    solo("typechange", Net::Typechange, 2, &[1], &[MODE_D], |r| {
        let a = r.n(0).clone();
        first_shape(&a);
        let o = r.push("first push", args!["-x"]);
        expect_synced(r, o, "first push");

        // sent while the check walks
        second_shape(&a, T0 + 10);
        let o = r.push("-x: every type changes", args!["-x"]);
        expect_synced(r, o, "-x, first set");
        back_to_first(&a, T0 + 20);
        let o = r.push("-x: and back", args!["-x"]);
        expect_synced(r, o, "-x, back");

        // the pipelined update alone (the check runs before, no stream)
        let s = a.s("");
        second_shape(&a, T0 + 30);
        r.cmd_ok(0, vec!["-cr".into(), s.clone()], 0);
        let o = r.push("-u: every type changes", args!["-u"]);
        expect_synced(r, o, "-u, first set");
        back_to_first(&a, T0 + 40);
        r.cmd_ok(0, vec!["-cr".into(), s], 0);
        let o = r.push("-u: and back", args!["-u"]);
        expect_synced(r, o, "-u, back");
        let err = common::show(&r.client(o).stderr);
        r.expect(
            err.contains("Peer> OK (pipelining)."),
            "the session was pipelined",
        );
        r.recheck_clean();
    });
}
