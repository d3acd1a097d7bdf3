//! Differential tests of the local (network-free) modes: the real csync2 and
//! ours run on the same tree with their own databases; stdout, exit codes,
//! important stderr lines and every database row must agree.
//!
//! Validate the harness by running the reference against itself:
//! `CSYNC2_DIFF_OURS=/usr/sbin/csync2 cargo test --test local_diff`.

#![allow(clippy::useless_vec)] // args! builds a Vec by design

mod common;

use common::*;
use std::ffi::OsString;

/// One group: local host, a peer and a slave peer, the whole tree.
const CFG_BASIC: &str = "
group g1 {
    host h1.local.test h2.local.test (h3.local.test);
    key g1.key;
    include {TREE};
}
";

fn basic(name: &str) -> Env {
    let env = Env::new(name);
    env.config(CFG_BASIC);
    env
}

fn tree(env: &Env) -> OsString {
    env.tree.clone().into_os_string()
}

/// Assert a fact about the REAL binary's database (guards the scenario).
fn expect_real_rows(env: &Env, table: &str, n: usize) {
    let d = env.dump(Which::Real);
    assert_eq!(
        d.rows(table).len(),
        n,
        "scenario expectation: REAL's `{table}` table should have {n} rows, has {}: {:#?}",
        d.rows(table).len(),
        d.names(table).iter().map(|n| show(n)).collect::<Vec<_>>()
    );
}

// ---------------------------------------------------------------------------
// File types
// ---------------------------------------------------------------------------

#[test]
fn init_all_file_types() {
    let env = basic("init_all_file_types");
    env.populate_all_types("");
    // a sparse 5 GB file (size beyond 32 bits) with an mtime beyond 2^32
    env.file("sparse-5g", "", 0o644, T0);
    std::fs::OpenOptions::new()
        .write(true)
        .open(env.p("sparse-5g"))
        .unwrap()
        .set_len(5_000_000_000)
        .unwrap();
    env.mtime("sparse-5g", 5_000_000_000);
    env.step_expect(args!["-cIr", tree(&env)], 0);
    expect_real_rows(&env, "file", 17);
    expect_real_rows(&env, "dirty", 0);
    env.step_expect(args!["-L"], 0);
    env.step_expect(args!["-M"], 2);
    env.step_expect(args!["-H"], 2);
}

#[test]
fn check_all_file_types_marks_dirty() {
    let env = basic("check_all_file_types_marks_dirty");
    env.populate_all_types("");
    env.step_expect(args!["-cr", tree(&env)], 0);
    // 16 entries x 2 peers (the slave h3 gets dirty rows too)
    expect_real_rows(&env, "dirty", 32);
    env.step_expect(args!["-M"], 0);
    env.step_expect(args!["-L"], 0);
    // nothing changed: a second check must not change anything
    env.step_expect(args!["-cr", tree(&env)], 0);
    expect_real_rows(&env, "dirty", 32);
}

#[test]
fn file_types_in_subdir_nonrecursive_checks() {
    let env = basic("file_types_nonrecursive");
    env.mkdir("sub", 0o755);
    env.populate_all_types("sub");
    // each entry checked on its own, without -r
    for n in [
        "sub",
        "sub/regular.txt",
        "sub/empty",
        "sub/setuid-exec",
        "sub/dir",
        "sub/emptydir",
        "sub/link",
        "sub/dangling",
        "sub/link-odd",
        "sub/dirlink",
        "sub/fifo",
        "sub/chardev",
        "sub/blockdev",
        "sub/bigdev",
        "sub/socket",
    ] {
        env.step_expect(args!["-c", env.t(n)], 0);
    }
    expect_real_rows(&env, "file", 15);
    env.step_expect(args!["-L"], 0);
    env.step_expect(args!["-M"], 0);
}

// ---------------------------------------------------------------------------
// Hard names
// ---------------------------------------------------------------------------

#[test]
fn hard_names() {
    let env = basic("hard_names");
    let names = env.populate_hard_names("");
    env.step_expect(args!["-cr", tree(&env)], 0);
    expect_real_rows(&env, "file", names.len() + 2);
    env.step_expect(args!["-L"], 0);
    env.step_expect(args!["-M"], 0);
    env.step_expect(args!["-S", HOST, PEER2], 0);
    env.step_expect(args!["-o", "-r", tree(&env)], 0);
    // single-file operations on hard names
    for n in &names {
        env.step(args!["-c", env.t(n)]);
        env.step(args!["-f", env.t(n)]);
    }
    env.step_expect(args!["-M"], 0);
    for n in names.iter().take(6) {
        env.step(args!["-h", env.t(n)]);
    }
    env.step_expect(args!["-H"], 0);
    env.step_expect(args!["-c"], 0);
    env.step_expect(args!["-H"], 2);
}

#[test]
fn hard_names_modify_and_delete() {
    let env = basic("hard_names_modify");
    let names = env.populate_hard_names("");
    env.step_expect(args!["-cIr", tree(&env)], 0);
    for (i, n) in names.iter().enumerate() {
        if i % 2 == 0 {
            env.remove(n);
        } else if std::fs::symlink_metadata(env.p(n)).unwrap().is_file() {
            env.file(n, "changed content!\n", 0o600, T0 + 1000);
        }
    }
    env.step_expect(args!["-cr", tree(&env)], 0);
    env.step_expect(args!["-M"], 0);
    env.step_expect(args!["-L"], 0);
    for n in names.iter().take(8) {
        env.step(args!["-m", env.t(n)]);
    }
    env.step_expect(args!["-M"], 0);
}

#[test]
fn deep_path_4k() {
    let env = basic("deep_path_4k");
    let comp = "d".repeat(200);
    let mut rel = String::new();
    // keep the absolute path of the deepest file a little below 4095 bytes
    while env.tree.as_os_str().len() + rel.len() + 201 + 60 < 4040 {
        if !rel.is_empty() {
            rel.push('/');
        }
        rel.push_str(&comp);
        env.mkdir(&rel, 0o755);
    }
    env.file(
        format!("{rel}/file with space and : and %"),
        "deep",
        0o644,
        T0,
    );
    let long_name = format!(
        "{rel}/{}",
        "f".repeat(4090 - env.tree.as_os_str().len() - rel.len() - 2)
    );
    env.file(&long_name, "deeper", 0o644, T0);
    assert!(env.p(&long_name).as_os_str().len() >= 4080);
    env.step_expect(args!["-cr", tree(&env)], 0);
    env.step_expect(args!["-L"], 0);
    env.step_expect(args!["-M"], 0);
    env.step(args!["-c", env.t(&long_name)]);
    env.step(args!["-m", env.t(&long_name)]);
    env.step(args!["-h", "-r", env.t(&rel)]);
    env.step_expect(args!["-H"], 0);
    env.remove(&long_name);
    env.step_expect(args!["-c"], 0);
    env.step_expect(args!["-M"], 0);
    env.step_expect(args!["-o", "-r", tree(&env)], 0);
}

// ---------------------------------------------------------------------------
// Change detection after mutations
// ---------------------------------------------------------------------------

fn init_env(name: &str) -> Env {
    let env = basic(name);
    env.populate_all_types("");
    env.step_expect(args!["-cIr", tree(&env)], 0);
    env
}

#[test]
fn cr_after_create() {
    let env = init_env("cr_after_create");
    env.file("new.txt", "new", 0o644, T0 + 100);
    env.mkdir("newdir", 0o750);
    env.file("newdir/a", "a", 0o644, T0 + 101);
    env.mkdir("newdir/sub", 0o755);
    env.symlink("newdir/sub/l", "../a");
    env.fifo("dir/newfifo", 0o600, T0 + 102);
    env.socket("dir/newsock", 0o777, T0 + 103);
    env.step_expect(args!["-cr", tree(&env)], 0);
    expect_real_rows(&env, "dirty", 2 * 7);
    env.step_expect(args!["-M"], 0);
    env.step_expect(args!["-L"], 0);
}

#[test]
fn cr_after_modify() {
    let env = init_env("cr_after_modify");
    env.file("regular.txt", "hello world, longer\n", 0o644, T0); // size change only
    env.mtime("empty", T0 + 500); // mtime change only
    env.file("dir/inner.txt", "INNER", 0o640, T0 + 3); // same size, same mtime: invisible
    env.mtime("fifo", T0 - 100_000_000_000); // far in the past
    env.step_expect(args!["-cr", tree(&env)], 0);
    expect_real_rows(&env, "dirty", 2 * 3);
    env.step_expect(args!["-M"], 0);
    env.step_expect(args!["-L"], 0);
    env.mtime("regular.txt", -100); // before the epoch
    env.step_expect(args!["-cr", tree(&env)], 0);
    env.step_expect(args!["-L"], 0);
}

#[test]
fn cr_after_delete() {
    let env = init_env("cr_after_delete");
    env.remove("regular.txt");
    env.remove("dir");
    env.remove("socket");
    env.remove("dangling");
    env.step_expect(args!["-cr", tree(&env)], 0);
    expect_real_rows(&env, "file", 16 - 5);
    env.step_expect(args!["-M"], 0);
    env.step_expect(args!["-L"], 0);
}

#[test]
fn cr_init_after_delete_marks_nothing() {
    let env = init_env("cr_init_after_delete");
    env.remove("dir");
    env.file("other.txt", "x", 0o644, T0);
    env.step_expect(args!["-cIr", tree(&env)], 0);
    expect_real_rows(&env, "dirty", 0);
    env.step_expect(args!["-M"], 2);
    env.step_expect(args!["-L"], 0);
}

#[test]
fn cr_after_chmod() {
    let env = init_env("cr_after_chmod");
    env.chmod("regular.txt", 0o600);
    env.chmod("dir", 0o700);
    env.chmod("fifo", 0o666);
    env.chmod("chardev", 0o1644);
    env.chmod("setuid-exec", 0o755);
    env.step_expect(args!["-cr", tree(&env)], 0);
    expect_real_rows(&env, "dirty", 2 * 5);
    env.step_expect(args!["-M"], 0);
    env.step_expect(args!["-L"], 0);
}

#[test]
fn cr_after_chown() {
    let env = init_env("cr_after_chown");
    env.chown("regular.txt", 1234, 5678);
    env.chown("link", 1234, 0); // lchown of a symlink
    env.chown("dir", 0, 5678);
    env.chown("empty", 3_000_000_000, 4_294_967_294); // > 2^31: negative in checktxt
    env.step_expect(args!["-cr", tree(&env)], 0);
    expect_real_rows(&env, "dirty", 2 * 4);
    env.step_expect(args!["-M"], 0);
    env.step_expect(args!["-L"], 0);
}

#[test]
fn cr_after_symlink_retarget() {
    let env = init_env("cr_after_symlink_retarget");
    env.retarget("link", "dir/inner.txt");
    env.retarget("dangling", "still/dangling with space");
    env.retarget("dirlink", "dir"); // same target: no change
    env.step_expect(args!["-cr", tree(&env)], 0);
    expect_real_rows(&env, "dirty", 2 * 2);
    env.step_expect(args!["-M"], 0);
    env.step_expect(args!["-L"], 0);
}

#[test]
fn cr_after_type_change() {
    let env = init_env("cr_after_type_change");
    env.remove("regular.txt");
    env.mkdir("regular.txt", 0o755);
    env.remove("fifo");
    env.file("fifo", "now a file", 0o644, T0 + 4);
    env.remove("link");
    env.file("link", "now a file", 0o644, T0);
    env.remove("dir"); // directory with content becomes a file
    env.file("dir", "was a directory", 0o644, T0);
    env.remove("emptydir");
    env.symlink("emptydir", "dir");
    env.step_expect(args!["-cr", tree(&env)], 0);
    env.step_expect(args!["-M"], 0);
    env.step_expect(args!["-L"], 0);
}

#[test]
fn cr_dir_replaced_by_symlink() {
    let env = init_env("cr_dir_replaced_by_symlink");
    env.mkdir("other", 0o755);
    env.file("other/inner.txt", "inner", 0o640, T0 + 3);
    env.step_expect(args!["-cIr", tree(&env)], 0);
    // dir/inner.txt now sits below a symlinked directory: counts as removed
    env.remove("dir");
    env.symlink("dir", "other");
    env.step_expect(args!["-cr", tree(&env)], 0);
    env.step_expect(args!["-M"], 0);
    env.step_expect(args!["-L"], 0);
    // a non-recursive check of a name below the symlink
    env.step(args!["-c", env.t("dir/inner.txt")]);
    env.step_expect(args!["-L"], 0);
}

#[test]
fn batching_flags_do_not_change_results() {
    // enough statements to cross csync2's BEGIN/COMMIT batching thresholds
    let env = basic("batching_flags");
    for i in 0..250 {
        env.file(format!("f{i:03}"), format!("{i}"), 0o644, T0 + i);
    }
    env.step_expect(args!["-cr", tree(&env)], 0);
    for i in 0..250 {
        env.mtime(format!("f{i:03}"), T0 + 1000 + i);
    }
    env.step_expect(args!["-B", "-cr", tree(&env)], 0);
    for i in (0..250).step_by(2) {
        env.remove(format!("f{i:03}"));
    }
    env.step_expect(args!["-A", "-cr", tree(&env)], 0);
    env.step_expect(args!["-B", "-A", "-m", "-r", tree(&env)], 0);
    env.step_expect(args!["-M"], 0);
    env.step_expect(args!["-L"], 0);
}

#[test]
fn check_nonrecursive() {
    let env = basic("check_nonrecursive");
    env.populate_all_types("");
    // directory without -r: only the directory itself
    env.step_expect(args!["-c", env.t("dir")], 0);
    expect_real_rows(&env, "file", 1);
    env.step_expect(args!["-c", env.t("dir/inner.txt")], 0);
    // a file that does not exist and is not in the DB: silently ignored
    env.step_expect(args!["-c", env.t("nonexistent")], 0);
    // several arguments at once, one of them twice
    env.step_expect(
        args![
            "-c",
            env.t("regular.txt"),
            env.t("link"),
            env.t("regular.txt")
        ],
        0,
    );
    env.step_expect(args!["-L"], 0);
    // removal of a checked file, non-recursive
    env.remove("regular.txt");
    env.step_expect(args!["-c", env.t("regular.txt")], 0);
    // removal below a directory is not seen by a non-recursive check of the dir
    env.remove("dir/inner.txt");
    env.step_expect(args!["-c", env.t("dir")], 0);
    env.step_expect(args!["-L"], 0);
    env.step_expect(args!["-M"], 0);
    env.step_expect(args!["-cr", env.t("dir")], 0);
    env.step_expect(args!["-M"], 0);
}

#[test]
fn removal_range_boundaries() {
    // the removal pass selects `N` and `N/...` by a range on the *encoded*
    // names; siblings sorting next to `d/` must not be touched
    let env = basic("removal_range_boundaries");
    let names = [
        "d", "d-x", "d.x", "d0", "d x", "d:x", "d%x", "d$", "d\\", "dd", "d\u{e4}", "e",
    ];
    for n in names {
        env.mkdir(n, 0o755);
        env.file(format!("{n}/f"), n, 0o644, T0);
        env.file(format!("{n}/f g"), n, 0o644, T0);
    }
    env.file("d/sub:1", "x", 0o644, T0);
    env.step_expect(args!["-cIr", tree(&env)], 0);
    for n in names {
        env.remove(n);
    }
    env.step_expect(args!["-cr", env.t("d")], 0);
    expect_real_rows(&env, "dirty", 2 * 4);
    env.step_expect(args!["-M"], 0);
    env.step_expect(args!["-L"], 0);
    env.step_expect(args!["-m", "-r", env.t("d x")], 0);
    env.step_expect(args!["-f", "-r", env.t("d x")], 0);
    env.step_expect(args!["-c", env.t("d:x")], 0);
    env.step_expect(args!["-cr", env.t("d%x")], 0);
    env.step_expect(args!["-M"], 0);
    env.step_expect(args!["-L"], 0);
    env.step_expect(args!["-cr", tree(&env)], 0);
    env.step_expect(args!["-M"], 0);
    env.step_expect(args!["-L"], 0);
}

#[test]
fn check_root_recursive() {
    let env = basic("check_root_recursive");
    env.populate_all_types("");
    env.step_expect(args!["-cr", "/"], 0);
    env.step_expect(args!["-L"], 0);
    env.remove("dir");
    env.step_expect(args!["-c", "-r", "/"], 0);
    env.step_expect(args!["-M"], 0);
    env.step_expect(args!["-f", "-r", "/"], 0);
    env.step_expect(args!["-M"], 0);
    env.step_expect(args!["-m", "-r", "/"], 0);
    env.step_expect(args!["-M"], 0);
}

// ---------------------------------------------------------------------------
// Hints
// ---------------------------------------------------------------------------

#[test]
fn hints_then_check() {
    let env = basic("hints_then_check");
    env.populate_all_types("");
    env.step_expect(args!["-H"], 2);
    env.step_expect(args!["-h", env.t("regular.txt")], 0);
    env.step_expect(args!["-h", "-r", env.t("dir")], 0);
    env.step_expect(args!["-h", env.t("dir")], 0); // same name, other flag: 2 rows
    env.step_expect(args!["-h", env.t("dir")], 0); // duplicate: ignored
    env.step_expect(args!["-h", env.t("nonexistent")], 0);
    env.step_expect(args!["-h", "-r", tree(&env), env.t("fifo")], 0);
    env.step_expect(args!["-h", "/tmp/outside-of-config"], 0); // warning, still stored
    expect_real_rows(&env, "hint", 7);
    env.step_expect(args!["-H"], 0);
    env.step_expect(args!["-c"], 0);
    expect_real_rows(&env, "hint", 0);
    env.step_expect(args!["-H"], 2);
    env.step_expect(args!["-M"], 0);
    env.step_expect(args!["-L"], 0);
    // -r is ignored for -c without files; -I applies to hints
    env.file("regular.txt", "changed!", 0o644, T0 + 50);
    env.step_expect(args!["-h", env.t("regular.txt")], 0);
    env.step_expect(args!["-c", "-r", "-I"], 0);
    env.step_expect(args!["-M"], 0);
    env.step_expect(args!["-L"], 0);
}

#[test]
fn hints_relative_and_odd_names() {
    let env = basic("hints_relative");
    env.file("a b.txt", "x", 0o644, T0);
    env.mkdir("d", 0o755);
    env.symlink("dl", "d");
    // cwd is the scenario base directory
    env.step(args![
        "-h",
        "tree/a b.txt",
        "tree//d/../a b.txt",
        "./tree/./d/",
        "tree/dl/x",
        "tree/dl/"
    ]);
    env.step(args!["-h", "-r", "tree/.", ".", "tree/nonexist/../d"]);
    env.step_expect(args!["-H"], 0);
    env.step_expect(args!["-c"], 0);
    env.step_expect(args!["-L"], 0);
}

// ---------------------------------------------------------------------------
// Marking and forcing
// ---------------------------------------------------------------------------

#[test]
fn mark_and_force() {
    let env = basic("mark_and_force");
    env.populate_all_types("");
    env.step_expect(args!["-cIr", tree(&env)], 0);
    env.step_expect(args!["-m", env.t("regular.txt")], 0);
    env.step_expect(args!["-m", env.t("does-not-exist")], 0);
    env.step_expect(args!["-M"], 0);
    env.step_expect(args!["-f", env.t("regular.txt")], 0);
    env.step_expect(args!["-f", env.t("not-dirty")], 0); // no row: nothing happens
    env.step_expect(args!["-M"], 0);
    env.step_expect(args!["-m", "-r", env.t("dir")], 0);
    env.step_expect(args!["-f", "-r", env.t("dir")], 0);
    env.step_expect(args!["-M"], 0);
    env.step_expect(args!["-F", "-m", env.t("link")], 0);
    env.step_expect(args!["-M"], 0);
    // re-marking resets the force flag (Q9)
    env.step_expect(args!["-m", env.t("regular.txt")], 0);
    env.step_expect(args!["-M"], 0);
    env.step_expect(args!["-F", "-m", "-r", tree(&env)], 0);
    env.step_expect(args!["-M"], 0);
    env.step_expect(args!["-m", "-r", tree(&env)], 0);
    env.step_expect(args!["-M"], 0);
}

#[test]
fn mark_outside_and_relative() {
    let env = basic("mark_outside_and_relative");
    env.populate_all_types("");
    env.step_expect(args!["-cIr", tree(&env)], 0);
    env.step_expect(args!["-m", "/tmp/outside-of-config"], 0);
    env.step_expect(args!["-m", "tree/regular.txt", "tree/dir/../link"], 0);
    env.step_expect(args!["-f", "tree/link"], 0);
    env.step_expect(args!["-m", "-r", "tree/dir/"], 0);
    env.step_expect(args!["-M"], 0);
}

// ---------------------------------------------------------------------------
// Listings and exit codes
// ---------------------------------------------------------------------------

#[test]
fn listings_empty_exit_2() {
    let env = basic("listings_empty_exit_2");
    env.step_expect(args!["-L"], 2);
    env.step_expect(args!["-M"], 2);
    env.step_expect(args!["-H"], 2);
    env.step_expect(args!["-S", HOST, PEER2], 2);
    // modifiers that do not apply are ignored
    env.step_expect(args!["-M", "-r", "-d"], 2);
    env.step_expect(args!["-L", "-v"], 2);
}

#[test]
fn list_pairs() {
    let env = Env::new("list_pairs");
    env.config(
        "
group ga {
    host h1.local.test@me-a h2.local.test@peer-two (h3.local.test);
    key g1.key;
    include {TREE}/a;
}
group gb {
    host h2.local.test h1.local.test h4.local.test;
    key g2.key;
    include {TREE}/b;
}
",
    );
    env.mkdir("a", 0o755);
    env.mkdir("b", 0o755);
    env.file("a/x", "x", 0o644, T0);
    env.file("b/y", "y", 0o644, T0);
    env.step_expect(args!["-cr", tree(&env)], 0);
    env.step_expect(args!["-M"], 0);
    for (my, peer) in [
        ("me-a", "peer-two"),
        ("me-a", "h3.local.test"),
        ("me-a", "h2.local.test"),
        (HOST, "h2.local.test"),
        (HOST, "h4.local.test"),
        (HOST, "peer-two"),
        ("ME-A", "peer-two"),
        ("h2.local.test", HOST),
        ("nobody", "nobody"),
    ] {
        env.step(args!["-S", my, peer]);
    }
}

#[test]
fn usage_errors() {
    let env = basic("usage_errors");
    env.step_expect(args![], 1); // no mode at all
    env.step_expect(args!["-v"], 1);
    env.step_expect(args!["-L", "x"], 1);
    env.step_expect(args!["-cc"], 1);
    env.step_expect(args!["-L", "-M"], 1);
    env.step_expect(args!["-S", HOST], 1);
    env.step_expect(args!["-Q"], 1);
    env.step_expect(args!["-T", "a", "b", "c", "d"], 1);
    // argv[0] substitution: without -N/-D
    let (r, o) = env.run_both_raw(&[]);
    env.assert_same(&r, &o);
}

#[test]
fn lock_file() {
    let env = basic("lock_file");
    env.write_etc("csync2.lock", "");
    env.step_expect(args!["-L"], 1);
    env.step_expect(args!["-cr", tree(&env)], 1);
    env.step_expect(args!["-bogus"], 1);
}

#[test]
fn not_a_member() {
    let env = Env::new("not_a_member");
    env.config("group g { host h2.local.test h3.local.test; key g1.key; include {TREE}; }\n");
    env.step_expect(args!["-L"], 1);
    env.step_expect(args!["-cr", tree(&env)], 1);
    // -G deactivating the only member group
    env.config(CFG_BASIC);
    env.step_expect(args!["-G", "other", "-L"], 1);
    env.step_expect(args!["-G", "g1", "-L"], 2);
}

/// A peer name that does not resolve: `-xv` prints the real client's two
/// lines about it, the connection error, and leaves the rows dirty.
#[test]
fn unresolvable_peer() {
    let env = Env::new("unresolvable_peer");
    env.config(
        "nossl * *;\n\
         group g { host h1.local.test nosuchhost.invalid; key g1.key; include {TREE}; }\n",
    );
    env.file("f", "f", 0o644, T0);
    let (r, o) = env.run_both(&args!["-xv"]);
    assert_eq!((r.code, o.code), (Some(1), Some(1)));
    let lines = |out: &common::Output| -> Vec<String> {
        out.stderr_str()
            .lines()
            .map(|l| l.trim_start().to_string())
            .filter(|l| !l.starts_with("Marking file as dirty"))
            .collect()
    };
    assert_eq!(lines(&o), lines(&r), "ours / real");
    assert!(
        lines(&o)
            .iter()
            .any(|l| l.starts_with("Cannot resolve peername, getaddrinfo: ")),
        "{:?}",
        lines(&o)
    );
    env.step_expect(args!["-M"], 0);
}

#[test]
fn hostname_is_lowercased() {
    let env = basic("hostname_is_lowercased");
    env.file("f", "f", 0o644, T0);
    env.set_host("H1.Local.TEST");
    env.step_expect(args!["-cr", tree(&env)], 0);
    env.step_expect(args!["-M"], 0);
}

#[test]
fn config_name_option() {
    let env = Env::new("config_name_option");
    env.config_named("csync2_abc.cfg", CFG_BASIC);
    env.file("f", "f", 0o644, T0);
    env.step_expect(args!["-C", "abc", "-cr", tree(&env)], 0);
    env.step_expect(args!["-C", "abc", "-M"], 0);
    env.step_expect(args!["-C", "ABC", "-M"], 1);
    env.step_expect(args!["-M"], 1); // csync2.cfg missing
}

#[test]
fn keygen() {
    let env = Env::new("keygen");
    let r = env.run_raw(Which::Real, &args!["-k", env.base.join("real.key")]);
    assert_eq!(r.code, Some(0), "REAL -k failed: {}", r.stderr_str());
    let o2 = env.run_raw(Which::Ours, &args!["-k", env.base.join("ours.key")]);
    let check = |p: &std::path::Path| {
        let c = std::fs::read(p).unwrap();
        let md = std::fs::metadata(p).unwrap();
        (
            c.len(),
            c.last().copied(),
            c[..c.len().saturating_sub(1)]
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'.' || *b == b'_'),
            std::os::unix::fs::PermissionsExt::mode(&md.permissions()) & 0o7777,
        )
    };
    env.assert_same(&r, &o2);
    assert_eq!(
        check(&env.base.join("real.key")),
        (65, Some(b'\n'), true, 0o600)
    );
    assert_eq!(
        check(&env.base.join("ours.key")),
        check(&env.base.join("real.key")),
        "key file written by OURS differs in length/charset/mode"
    );
    // existing file: error, exit 1
    let r = env.run_raw(Which::Real, &args!["-k", env.base.join("real.key")]);
    let o = env.run_raw(Which::Ours, &args!["-k", env.base.join("ours.key")]);
    env.assert_same(&r, &o);
    assert_eq!(r.code, Some(1));
}

// ---------------------------------------------------------------------------
// "Parameter will be ignored"
// ---------------------------------------------------------------------------

#[test]
fn warning_outside_config() {
    let env = Env::new("warning_outside_config");
    env.config(
        "group g1 { host h1.local.test h2.local.test; key g1.key; include {TREE}/sub; exclude *.bak; }\n",
    );
    env.mkdir("sub", 0o755);
    env.file("sub/a", "a", 0o644, T0);
    env.file("sub/a.bak", "a", 0o644, T0);
    env.file("top", "t", 0o644, T0);
    let outside = env.base.join("etc");
    env.step_expect(args!["-c", outside.clone()], 0);
    env.step_expect(args!["-cr", outside.clone()], 0);
    env.step_expect(args!["-c", env.t("top")], 0);
    env.step_expect(args!["-c", env.t("sub/a.bak")], 0);
    // parent of an included path: warning without -r, none with -r
    env.step_expect(args!["-c", tree(&env)], 0);
    env.step_expect(args!["-cr", tree(&env)], 0);
    env.step_expect(args!["-h", env.t("top")], 0);
    env.step_expect(args!["-h", "-r", tree(&env)], 0);
    env.step_expect(args!["-m", env.t("top"), env.t("sub/a")], 0);
    env.step_expect(args!["-m", "-r", tree(&env)], 0);
    env.step_expect(args!["-o", env.t("top")], 0);
    env.step_expect(args!["-o", "-r", tree(&env)], 0);
    env.step_expect(args!["-f", env.t("top")], 0); // -f: no usefulness check
    env.step_expect(args!["-c", "/"], 0);
    env.step_expect(args!["-H"], 0);
    env.step_expect(args!["-M"], 0);
    env.step_expect(args!["-L"], 0);
}

// ---------------------------------------------------------------------------
// -R after config changes
// ---------------------------------------------------------------------------

#[test]
fn remove_stale_after_group_removed() {
    let env = Env::new("remove_stale_group");
    let two_groups = "
group ga { host h1.local.test h2.local.test; key g1.key; include {TREE}/a; }
group gb { host h1.local.test h3.local.test; key g2.key; include {TREE}/b; }
";
    env.config(two_groups);
    env.mkdir("a", 0o755);
    env.mkdir("b", 0o755);
    env.file("a/1", "1", 0o644, T0);
    env.file("b/2", "2", 0o644, T0);
    env.step_expect(args!["-cr", tree(&env)], 0);
    env.step(args!["-h", env.t("b/2")]);
    env.config("group ga { host h1.local.test h2.local.test; key g1.key; include {TREE}/a; }\n");
    env.step_expect(args!["-L"], 0);
    env.step_expect(args!["-M"], 0);
    env.step_expect(args!["-R", "-v"], 0);
    expect_real_rows(&env, "file", 2);
    expect_real_rows(&env, "dirty", 2);
    expect_real_rows(&env, "hint", 1);
    env.step_expect(args!["-R"], 0);
    env.step_expect(args!["-L"], 0);
}

#[test]
fn remove_stale_after_pattern_and_host_change() {
    let env = basic("remove_stale_pattern");
    env.populate_all_types("");
    env.step_expect(args!["-cr", tree(&env)], 0);
    // exclude some files, drop the slave, rename our own name in the group
    env.config(
        "group g1 { host h1.local.test h2.local.test; key g1.key; include {TREE}; exclude *dev dir; }\n",
    );
    env.step_expect(args!["-R", "-v"], 0);
    env.step_expect(args!["-M"], 0);
    env.step_expect(args!["-L"], 0);
    env.config(
        "group g1 { host h1.local.test@alias h2.local.test; key g1.key; include {TREE}; }\n",
    );
    env.step_expect(args!["-R", "-v"], 0);
    expect_real_rows(&env, "dirty", 0);
    env.step_expect(args!["-M"], 2);
}

#[test]
fn remove_with_group_option_refused() {
    let env = basic("remove_with_group_option");
    env.file("f", "f", 0o644, T0);
    env.step_expect(args!["-cr", tree(&env)], 0);
    env.step_expect(args!["-R", "-G", "g1"], 1);
    env.step_expect(args!["-M"], 0);
}

// ---------------------------------------------------------------------------
// Compare mode (-o)
// ---------------------------------------------------------------------------

#[test]
fn compare_mode_listing() {
    let env = Env::new("compare_mode_listing");
    env.config(
        "
group g1 {
    host h1.local.test h2.local.test;
    key g1.key;
    include {TREE}/sub/deep;
    compare {TREE}/other {TREE}/sub2;
}
group g2 {
    host h1.local.test h3.local.test;
    key g2.key;
    compare {TREE}/only-compare;
}
",
    );
    cfgspec_tree(&env);
    env.mkdir("only-compare", 0o755);
    env.file("only-compare/z", "z", 0o644, T0);
    env.step_expect(args!["-o", "-r", tree(&env)], 0);
    env.step_expect(args!["-o", "-r", "/"], 0);
    env.step_expect(args!["-o", env.t("sub2/g.txt"), env.t("other/f.txt")], 0);
    env.step_expect(args!["-o", "-r", "-P", "h2.local.test", tree(&env)], 0);
    env.step_expect(args!["-o", "-r", "-P", "H2.LOCAL.TEST", tree(&env)], 0);
    env.step_expect(args!["-o", "-r", "-P", "h3.local.test", tree(&env)], 0);
    // -o does not touch the database; -cr ignores compare patterns
    env.step_expect(args!["-cr", tree(&env)], 0);
    env.step_expect(args!["-L"], 0);
    env.remove("other");
    env.step_expect(args!["-o", "-r", tree(&env)], 0);
    env.step_expect(args!["-L"], 0);
}

// ---------------------------------------------------------------------------
// Groups, hosts, aliases, slaves
// ---------------------------------------------------------------------------

#[test]
fn multiple_groups_and_aliases() {
    let env = Env::new("multiple_groups");
    env.config(
        "
group ga {
    host h1.local.test@c1a h2.local.test h3.local.test;
    key g1.key;
    include {TREE}/both {TREE}/a;
}
group notmine {
    host h4.local.test h5.local.test;
    key g2.key;
    include {TREE};
}
group gb {
    host (h6.local.test) h1.local.test@c1b h2.local.test@two h7.local.test;
    key g2.key;
    include {TREE}/both;
    include {TREE}/b;
    exclude *.skip;
}
group gc {
    host h1.local.test;
    key g1.key;
    include {TREE}/alone;
}
",
    );
    for d in ["both", "a", "b", "alone", "nobody"] {
        env.mkdir(d, 0o755);
        env.file(format!("{d}/f"), d, 0o644, T0);
        env.file(format!("{d}/f.skip"), d, 0o644, T0);
    }
    env.step_expect(args!["-cr", tree(&env)], 0);
    env.step_expect(args!["-M"], 0);
    env.step_expect(args!["-L"], 0);
    for (my, peer) in [
        ("c1a", "h2.local.test"),
        ("c1b", "two"),
        ("c1b", "h6.local.test"),
        (HOST, "h4.local.test"),
        (HOST, HOST),
    ] {
        env.step(args!["-S", my, peer]);
    }
    env.step_expect(args!["-G", "ga", "-M"], 0);
    env.step_expect(args!["-G", "gb,gc", "-L"], 0);
    env.step_expect(args!["-G", "gc", "-cr", tree(&env)], 0);
    env.step_expect(args!["-m", env.t("alone/f"), env.t("both/f")], 0);
    env.step_expect(args!["-M"], 0);
}

#[test]
fn local_host_listed_twice_and_slave() {
    let env = Env::new("local_host_twice");
    env.config(
        "
group g {
    host h1.local.test@first (h2.local.test) h1.local.test@second;
    host (h1.local.test) h3.local.test@x3 h3.local.test;
    key g1.key;
    include {TREE};
}
",
    );
    env.file("f", "f", 0o644, T0);
    env.step_expect(args!["-cr", tree(&env)], 0);
    env.step_expect(args!["-M"], 0);
}

// ---------------------------------------------------------------------------
// Prefixes
// ---------------------------------------------------------------------------

#[test]
fn prefix_basic() {
    let env = Env::new("prefix_basic");
    env.config(
        "
prefix p {
    on h9.*: /nonexistent/elsewhere;
    on h1.local.test: {TREE}/sub/;
    on *: /also/ignored;
}
group g {
    host h1.local.test h2.local.test;
    key g1.key;
    include %p%;
    exclude %p%/skip;
}
",
    );
    env.mkdir("sub", 0o755);
    // symlinks under a prefix: see prefix_symlink_target_quirk_q12
    env.populate_types("sub", false);
    env.mkdir("sub/skip", 0o755);
    env.file("sub/skip/x", "x", 0o644, T0);
    env.file("outside", "o", 0o644, T0);
    env.step_expect(args!["-cr", tree(&env)], 0);
    env.step_expect(args!["-L"], 0);
    env.step_expect(args!["-M"], 0);
    env.step_expect(args!["-o", "-r", env.t("sub")], 0);
    env.step_expect(args!["-o", "-r", tree(&env)], 0);
    env.step_expect(args!["-f", env.t("sub/regular.txt")], 0);
    env.step_expect(args!["-f", "-r", env.t("sub/dir")], 0);
    env.step_expect(args!["-M"], 0);
    env.file("sub/regular.txt", "changed content", 0o644, T0 + 9);
    env.chmod("sub/fifo", 0o600);
    env.step_expect(args!["-c", env.t("sub/regular.txt")], 0);
    env.step_expect(args!["-c", env.t("sub/fifo")], 0);
    env.step_expect(args!["-L"], 0);
    env.remove("sub/dir");
    env.step_expect(args!["-h", "-r", env.t("sub")], 0);
    env.step_expect(args!["-H"], 0);
    env.step_expect(args!["-c"], 0);
    env.step_expect(args!["-M"], 0);
    env.step_expect(args!["-m", env.t("sub/fifo"), env.t("sub")], 0);
    env.step_expect(args!["-m", "-r", env.t("sub")], 0);
    env.step_expect(args!["-M"], 0);
    env.step_expect(args!["-S", HOST, PEER2], 0);
}

/// state.md Q12: the checktxt of a symlink under a prefix has an empty
/// `target=` (readlink is tried on the `%p%/…` name), so retargeting it is
/// never detected.
#[test]
fn prefix_symlink_target_quirk_q12() {
    // Deliberate difference (doc/differences.md, state.md Q12): the real
    // csync2 records `target=` (empty) for symlinks under a prefix; we record
    // the target. Everything else must agree.
    let env = Env::new("prefix_symlink_q12");
    env.config(
        "prefix p { on h1.local.test: {TREE}/sub; }\n\
         group g { host h1.local.test h2.local.test; key g1.key; include %p%; }\n",
    );
    env.mkdir("sub", 0o755);
    env.file("sub/f", "f", 0o644, T0);
    env.symlink("sub/link", "f");
    env.symlink("sub/dangling", "nowhere");
    let (r, o) = env.run_both(&args!["-cIr", tree(&env)]);
    assert_eq!((r.code, o.code), (Some(0), Some(0)));
    let text_of = |w: Which, name: &[u8]| -> Vec<u8> {
        let d = env.dump(w);
        let row = d
            .rows("file")
            .iter()
            .find(|r| r[0].text().map(url_decode).as_deref() == Some(name))
            .unwrap_or_else(|| panic!("{} has no row {}", w.label(), show(name)))
            .clone();
        url_decode(row[1].text().unwrap())
    };
    let real = text_of(Which::Real, b"%p%/link");
    let ours = text_of(Which::Ours, b"%p%/link");
    assert!(real.ends_with(b":type=lnk:target="), "{}", show(&real));
    assert!(ours.ends_with(b":type=lnk:target=f"), "{}", show(&ours));
    // the quirk is the only difference: the plain rows agree
    assert_eq!(
        text_of(Which::Real, b"%p%/f"),
        text_of(Which::Ours, b"%p%/f")
    );
    // a retarget is noticed by ours (marked dirty), never by the real one
    env.retarget("sub/link", "nowhere");
    let (r, o) = env.run_both(&args!["-cr", tree(&env)]);
    assert_eq!((r.code, o.code), (Some(0), Some(0)));
    expect_real_rows(&env, "dirty", 0);
    let ours_dirty = env.dump(Which::Ours).names("dirty");
    assert_eq!(ours_dirty, vec![b"%p%/link".to_vec()]);
    assert!(text_of(Which::Ours, b"%p%/link").ends_with(b"target=nowhere"));
}

/// A `-cr DIR` whose DIR lies *above* a prefix path reaches the prefix's
/// files only through the walk ("Prefix matched"); the REAL csync2 runs no
/// removal pass for `%q%` then and misses the deletion until the prefix path
/// itself or `/` is checked. Ours notices it at once (doc/differences.md).
#[test]
fn prefix_removal_below_argument() {
    let env = Env::new("prefix_removal_below_arg");
    env.config(
        "prefix q { on h1.local.test: {TREE}/sub/b; }\n\
         group g { host h1.local.test h2.local.test; key g1.key; include %q%; }\n",
    );
    env.mkdir("sub", 0o755);
    env.mkdir("sub/b", 0o755);
    env.file("sub/b/g", "g", 0o644, T0);
    env.file("sub/b/h", "h", 0o644, T0);
    env.step_expect(args!["-cIr", tree(&env)], 0);
    env.remove("sub/b/g");
    let (r, o) = env.run_both(&args!["-cr", env.t("sub")]);
    assert_eq!((r.code, o.code), (Some(0), Some(0)));
    expect_real_rows(&env, "dirty", 0);
    let ours = env.dump(Which::Ours);
    assert_eq!(ours.names("dirty"), vec![b"%q%/g".to_vec()]);
    assert!(!ours.names("file").contains(&b"%q%/g".to_vec()));
    // once the real one checks the prefix path itself, both agree again
    env.step_expect(args!["-cr", env.t("sub/b")], 0);
    env.step_expect(args!["-M"], 0);
    env.remove("sub/b/h");
    env.step_expect(args!["-cr", "/"], 0);
    env.step_expect(args!["-M"], 0);
    env.step_expect(args!["-L"], 0);
}

/// `-crv /` after a deletion under a prefix: the prefix's own pass marks
/// it, and `/`'s removal pass leaves `%p%` rows alone, so `Marking file as
/// dirty` appears once, as with the real csync2.
#[test]
fn prefix_deletion_marked_once_from_root() {
    let env = Env::new("prefix_deletion_once");
    env.config(
        "prefix p { on h1.local.test: {TREE}/sub; }\n\
         group g { host h1.local.test h2.local.test; key g1.key; include %p%; }\n",
    );
    env.mkdir("sub", 0o755);
    env.mkdir("sub/docs", 0o755);
    env.file("sub/docs/notes.txt", "n", 0o644, T0);
    env.step_expect(args!["-cr", "/"], 0);
    env.remove("sub/docs/notes.txt");
    let (r, o) = env.run_both(&args!["-crv", "/"]);
    assert_eq!((r.code, o.code), (Some(0), Some(0)));
    let marks = |out: &common::Output| {
        out.stderr_str()
            .lines()
            .filter(|l| l.contains("Marking file as dirty: %p%/docs/notes.txt"))
            .count()
    };
    assert_eq!((marks(&r), marks(&o)), (1, 1), "real / ours");
    env.step_expect(args!["-M"], 0);
}

#[test]
fn prefix_not_defined_for_host() {
    let env = Env::new("prefix_not_defined_for_host");
    let cfg = |on: &str| {
        format!(
            "prefix p {{ on {on}: {{TREE}}/sub; }}\n\
             group g {{ host h1.local.test h2.local.test; key g1.key; include %p%; }}\n"
        )
    };
    env.config(&cfg("h1.local.test"));
    env.mkdir("sub", 0o755);
    env.file("sub/f", "f", 0o644, T0);
    env.step_expect(args!["-cr", tree(&env)], 0);
    env.step_expect(args!["-M"], 0);
    // the prefix no longer has a path on this host
    env.config(&cfg("h9.local.test"));
    env.step_expect(args!["-L"], 0); // %p% patterns still match stored names
    env.step_expect(args!["-M"], 0);
    env.step_expect(args!["-cr", tree(&env)], 0);
    env.step_expect(args!["-c"], 0);
    env.step_expect(args!["-cr", "/"], 1); // Prefix 'p' is not defined for host
    env.step_expect(args!["-R", "-v"], 0);
    env.step_expect(args!["-m", env.t("sub/f")], 0);
    env.step_expect(args!["-f", "-r", "/"], 0);
    env.step_expect(args!["-M"], 0);
    env.step_expect(args!["-o", "-r", tree(&env)], 0);
}

#[test]
fn prefix_and_real_path_patterns() {
    let env = Env::new("prefix_and_real_path");
    env.config(
        "
group g {
    host h1.local.test h2.local.test;
    key g1.key;
    include %p%/a {TREE}/sub/b;
    include \"%q%\";
}
prefix p { on h1.local.test: {TREE}/sub; }
prefix q { on h1.local.test: {TREE}/sub/b; }
prefix unused { on h2.local.test: /x; }
",
    );
    env.mkdir("sub", 0o755);
    env.mkdir("sub/a", 0o755);
    env.mkdir("sub/b", 0o755);
    env.file("sub/a/f", "f", 0o644, T0);
    env.file("sub/b/g", "g", 0o644, T0);
    env.step_expect(args!["-cr", tree(&env)], 0);
    env.step_expect(args!["-L"], 0);
    env.step_expect(args!["-M"], 0);
    env.step_expect(args!["-o", "-r", env.t("sub/b")], 0);
    env.step_expect(args!["-c", env.t("sub/b/g")], 0);
    env.step_expect(args!["-m", env.t("sub/b/g")], 0);
    env.step_expect(args!["-M"], 0);
    env.file("sub/a/f", "changed", 0o644, T0 + 1);
    env.remove("sub/b/g");
    env.step_expect(args!["-cr", env.t("sub/b")], 0);
    env.step_expect(args!["-cr", env.t("sub")], 0);
    env.step_expect(args!["-M"], 0);
    env.step_expect(args!["-L"], 0);
}

// ---------------------------------------------------------------------------
// Pattern semantics
// ---------------------------------------------------------------------------

/// The tree of config.md §6.8.
fn cfgspec_tree(env: &Env) {
    for f in ["a.txt", "b.conf", ".hidden", "x~", "sp ace.txt"] {
        env.file(f, f, 0o644, T0);
    }
    for d in ["other", "sub", "sub/.dot", "sub/deep", "sub2"] {
        env.mkdir(d, 0o755);
    }
    for f in [
        "other/f.txt",
        "sub/c.txt",
        "sub/c.conf",
        "sub/.dot/e.txt",
        "sub/deep/d.txt",
        "sub2/g.txt",
    ] {
        env.file(f, f, 0o644, T0);
    }
}

#[test]
fn pattern_matrix() {
    let cases: &[&str] = &[
        "include {TREE}; exclude *~ .*;",
        "include {TREE}; exclude {TREE}/sub; include {TREE}/sub/deep;",
        "include {TREE}/sub/deep; exclude {TREE}/sub; include {TREE};",
        "include {TREE}; exclude *.txt; include a.txt;",
        "include {TREE}; include a.txt; exclude *.txt;",
        "include {TREE}; exclude {TREE}/sub; include *.conf;",
        "include {TREE}; exclude sub;",
        "include {TREE}/sub/.dot/e.txt; exclude .*;",
        "include /;",
        "include {BASE}/*/a.txt;",
        "include {BASE}/tree/*.txt;",
        "include {BASE}/**/a.txt;",
        "include {BASE}/tr**/*.txt;",
        "include {TREE}/[ab].*;",
        "include {TREE}/[!ab]*;",
        "include {TREE}/?.txt {TREE}/sub/?.*;",
        "include {BASE}/TREE;",
        "include {TREE}/sub///;",
        "include {TREE}; exclude tree/a.txt;",
        "include {TREE}; exclude *; include *.txt;",
        "include {TREE}; exclude *; include *.txt tree sub deep;",
        "include \"{TREE}/sp ace.txt\" {TREE}/sub/deep/d.txt;",
        "include {TREE}; exclude \\*.txt x\\~;",
        "include {TREE}; exclude {TREE}/sub*;",
        "include {TREE}/**; exclude {TREE}/sub/**/*.txt;",
        "include {TREE}; include \"\"; exclude;",
    ];
    for (i, pats) in cases.iter().enumerate() {
        let env = Env::new(&format!("pattern_matrix{i}"));
        env.config(&format!(
            "group g {{ host h1.local.test h2.local.test; key g1.key; {pats} }}\n"
        ));
        cfgspec_tree(&env);
        env.step(args!["-cr", tree(&env)]);
        env.step(args!["-L"]);
        env.step(args!["-o", "-r", tree(&env)]);
        env.step(args!["-c", env.t("sub/c.txt")]);
        env.step(args!["-c", env.t(".hidden")]);
        env.step(args!["-L"]);
        env.step(args!["-M"]);
    }
}

#[test]
fn compare_statement_bug() {
    let env = Env::new("compare_statement_bug");
    // all but the last compare pattern become include patterns (config.md §5.4)
    env.config(
        "group g { host h1.local.test h2.local.test; key g1.key; include {TREE}/sub/deep; compare {TREE}/other {TREE}/sub2; }\n",
    );
    cfgspec_tree(&env);
    env.step_expect(args!["-cr", tree(&env)], 0);
    env.step_expect(args!["-L"], 0);
    env.step_expect(args!["-o", "-r", tree(&env)], 0);
}

#[test]
fn ignore_settings() {
    let env = Env::new("ignore_settings");
    env.config(
        "ignore uid; ignore gid mod;\ngroup g { host h1.local.test h2.local.test; key g1.key; include {TREE}; }\n",
    );
    env.populate_all_types("");
    env.step_expect(args!["-cIr", tree(&env)], 0);
    env.step_expect(args!["-L"], 0);
    env.chown("regular.txt", 1234, 5678);
    env.chmod("empty", 0o777);
    env.chown("dir", 1234, 5678);
    env.step_expect(args!["-cr", tree(&env)], 0);
    expect_real_rows(&env, "dirty", 0);
    env.step_expect(args!["-M"], 2);
    // only one ignore left: every file changes
    env.config(
        "ignore mod;\ngroup g { host h1.local.test h2.local.test; key g1.key; include {TREE}; }\n",
    );
    env.step_expect(args!["-cr", tree(&env)], 0);
    env.step_expect(args!["-M"], 0);
    env.step_expect(args!["-L"], 0);
    env.config("ignore uid gid;\ngroup g { host h1.local.test h2.local.test; key g1.key; include {TREE}; }\n");
    env.step_expect(args!["-cIr", tree(&env)], 0);
    env.step_expect(args!["-L"], 0);
}

// ---------------------------------------------------------------------------
// Argument normalisation
// ---------------------------------------------------------------------------

#[test]
fn argument_normalisation() {
    let env = basic("argument_normalisation");
    env.populate_all_types("");
    std::os::unix::fs::symlink(&env.tree, env.base.join("treelink")).unwrap();
    // cwd is the scenario base directory
    for a in [
        "tree//dir/../regular.txt",
        "treelink/empty",
        "./tree/./dir/inner.txt",
        "tree/dir/",
        "tree/nonexist/../fifo",
        "tree/dirlink/inner.txt",
        "treelink/",
        "tree/.",
        "tree/link",
        "tree/../tree/socket",
        "tree/regular.txt/x", // below a file
        "tree/regular.txt/",
    ] {
        env.step(args!["-c", a]);
    }
    env.step_expect(args!["-L"], 0);
    env.step(args!["-m", "treelink/chardev", "tree/dirlink/inner.txt"]);
    env.step_expect(args!["-M"], 0);
    env.step(args!["-cr", "treelink/"]);
    env.step(args!["-cr", "treelink/dir/.."]);
    env.step(args!["-o", "-r", "tree/dir/"]);
    env.step_expect(args!["-L"], 0);
    env.step(args!["-c", "//tmp//..//tmp/"]);
    // (an argument whose `..` climbs to `/`, e.g. `/tmp/..`, makes the REAL
    // csync2 abort with "getrealfn: Assertion `st_mark != 0' failed": avoided)
    env.step(args!["-h", "..", "//", "/.", "/tmp/../tmp", "tree/../../"]);
    env.step_expect(args!["-H"], 0);
    // option permutation and "--"
    env.step(args![env.t("regular.txt"), "-c"]);
    env.step(args!["-c", "--", env.t("empty")]);
}

// ---------------------------------------------------------------------------
// Actions
// ---------------------------------------------------------------------------

#[test]
fn local_actions() {
    let env = Env::new("local_actions");
    env.config(
        "
group g {
    host h1.local.test h2.local.test;
    key g1.key;
    include {TREE};
    action {
        pattern {TREE}/act;
        exec \"echo local %% %% >> $C2LOG\";
        do-local;
    }
    action {
        exec \"echo remote-only %% >> $C2LOG\";
    }
    action {
        pattern **.txt;
        exec \"echo txt %% >> $C2LOG\";
        logfile \"{BASE}/ignored.log\";
        do-local-only;
    }
}
",
    );
    let log_real = env.base.join("log_real");
    let log_ours = env.base.join("log_ours");
    env.env_real
        .borrow_mut()
        .push(("C2LOG".into(), log_real.clone().into_os_string()));
    env.env_ours
        .borrow_mut()
        .push(("C2LOG".into(), log_ours.clone().into_os_string()));
    env.mkdir("act", 0o755);
    env.file("act/a b.txt", "1", 0o644, T0);
    env.file("act/c", "1", 0o644, T0);
    env.file("other.txt", "1", 0o644, T0);
    env.file("other", "1", 0o644, T0);
    let compare_logs = |what: &str| {
        let read = |p: &std::path::Path| {
            let s = std::fs::read(p).unwrap_or_default();
            let _ = std::fs::remove_file(p);
            let mut lines: Vec<Vec<u8>> = s
                .split(|&c| c == b'\n')
                .filter(|l| !l.is_empty())
                .map(|l| {
                    // names in %% come in an unspecified order
                    let mut w: Vec<&[u8]> = l.split(|&c| c == b' ').collect();
                    w[1..].sort();
                    w.join(&b' ')
                })
                .collect();
            lines.sort();
            lines
        };
        let r = read(&log_real);
        let o = read(&log_ours);
        if std::env::var_os("CSYNC2_DIFF_TRACE").is_some() {
            eprintln!("[local_actions] action log after {what}:");
            for l in &r {
                eprintln!("    {}", show(l));
            }
        }
        assert_eq!(
            r.iter().map(|l| show(l)).collect::<Vec<_>>(),
            o.iter().map(|l| show(l)).collect::<Vec<_>>(),
            "action output after `{what}` differs (left REAL, right OURS)"
        );
        r.len()
    };
    env.step_expect(args!["-cr", tree(&env)], 0);
    assert!(compare_logs("-cr") > 0, "REAL ran no action");
    expect_real_rows(&env, "action", 0);
    env.step_expect(args!["-m", env.t("act/c")], 0);
    compare_logs("-m");
    env.file("act/c", "changed", 0o644, T0 + 1);
    env.step_expect(args!["-cIr", tree(&env)], 0);
    assert_eq!(compare_logs("-cIr"), 0, "-I must not schedule actions");
    // a pending action row is executed by any later run, even -L
    for which in [Which::Real, Which::Ours] {
        let c = rusqlite::Connection::open(env.db_file(which)).unwrap();
        let enc = |b: &[u8]| String::from_utf8(url_encode(b)).unwrap();
        c.execute_batch(&format!(
            "INSERT INTO action (filename, command, logfile) VALUES ('{}', '{}', '{}')",
            enc(env.p("pending file").as_os_str().as_encoded_bytes()),
            enc(b"echo pending %% >> $C2LOG"),
            enc(b"/dev/null"),
        ))
        .unwrap();
    }
    env.step_expect(args!["-L"], 0);
    assert_eq!(compare_logs("-L with pending action"), 1);
}

// ---------------------------------------------------------------------------
// Cross-implementation database compatibility
// ---------------------------------------------------------------------------

#[test]
fn real_db_roundtrip() {
    let env = basic("real_db_roundtrip");
    env.populate_all_types("");
    let names = env.populate_hard_names("dir");
    // 1. the REAL csync2 creates and populates a database
    let real_only = |args: Vec<OsString>| {
        let o = env.run(Which::Real, &args);
        assert_eq!(
            o.code,
            Some(0),
            "REAL {}: {}",
            cmdline(&o.args),
            o.stderr_str()
        );
    };
    real_only(args!["-cIr", tree(&env)]);
    env.file("regular.txt", "modified by step 1", 0o644, T0 + 10);
    env.chown("empty", 1234, 5678);
    env.remove("socket");
    env.retarget("link", "empty");
    real_only(args!["-cr", tree(&env)]);
    real_only(args!["-m", env.t("fifo")]);
    real_only(args!["-F", "-m", env.t(&names[3])]);
    real_only(args!["-h", env.t("dir")]);
    real_only(args!["-h", "-r", env.t("emptydir")]);
    // 2. OURS takes over that database; REAL continues on a copy of it
    env.copy_db(Which::Real, Which::Ours);
    assert!(env.diff_databases().is_empty());
    env.step_expect(args!["-L"], 0);
    env.step_expect(args!["-M"], 0);
    env.step_expect(args!["-H"], 0);
    env.file("dir/inner.txt", "modified by step 2", 0o644, T0 + 20);
    env.remove(&names[0]);
    env.file("new file", "new", 0o644, T0 + 21);
    env.step_expect(args!["-cr", tree(&env)], 0);
    env.step_expect(args!["-c"], 0); // hints
    env.step_expect(args!["-M"], 0);
    env.step_expect(args!["-L"], 0);
    env.step_expect(args!["-f", env.t("regular.txt")], 0);
    // 3. the REAL csync2 reads back what OURS wrote
    env.copy_db(Which::Ours, Which::Real);
    let before = env.dump(Which::Real);
    env.step_expect(args!["-L"], 0);
    env.step_expect(args!["-M"], 0);
    env.step_expect(args!["-H"], 2);
    env.step_expect(args!["-cr", tree(&env)], 0);
    let after = env.dump(Which::Real);
    assert!(
        diff_dumps(&before, &after).is_empty(),
        "REAL found changes in a database written by OURS although nothing changed on disk:\n{}",
        diff_dumps(&before, &after)
    );
    env.step_expect(args!["-R"], 0);
    env.step_expect(args!["-M"], 0);
}

// ---------------------------------------------------------------------------
// fnmatch details
// ---------------------------------------------------------------------------

fn fnmatch_tree(env: &Env) {
    for f in [
        "a.txt",
        "b.TXT",
        "c[1].txt",
        "star*name",
        "q?mark",
        "back\\slash",
        ".dot",
        "-dash",
        "]bracket",
        "!bang",
        "^caret",
        "x",
        "sp ace",
        "\u{e4}.txt",
    ] {
        env.file(f, f, 0o644, T0);
    }
    env.file(b"\xff.bin", "ff", 0o644, T0);
    for d in ["sub", "sub/deeper", "Sub2", ".hid"] {
        env.mkdir(d, 0o755);
    }
    for f in [
        "sub/x.txt",
        "sub/deeper/y.txt",
        "sub/deeper/z.dat",
        "Sub2/w.txt",
        ".hid/h.txt",
    ] {
        env.file(f, f, 0o644, T0);
    }
}

#[test]
fn fnmatch_matrix() {
    let exclude_patterns: &[&str] = &[
        "*.[tT][xX][tT]",
        "[!a]*.txt",
        "[^a]*.txt",
        "[a-c]*",
        "[[:upper:]]*",
        "[[:alpha:][:digit:]].txt",
        "*[[:space:]]*",
        "*[[:punct:]]*",
        "\\*",
        "star\\*name",
        "*\\**",
        "c\\[1\\].txt",
        "c[[]1].txt",
        "[",
        "[a",
        "]*",
        "[]]*",
        "[!]]*",
        "[a-]*",
        "[]-a]*",
        "?",
        "??????",
        "q?mark",
        "back\\\\slash",
        "back\\slash",
        "*\\",
        ".*",
        "*.",
        "*",
        "\u{e4}*",
        "?.txt",
        "[\u{e4}].txt",
        "[\\xff]*",
        "{TREE}/sub/*",
        "{TREE}/*/*.txt",
        "{TREE}/s*b",
        "{TREE}/s?b/",
        "{TREE}/**.txt",
        "{TREE}/sub/**/y.txt",
        "{TREE}/**/",
        "{TREE}/*",
        "{TREE}/[sS]ub*",
        "{TREE}/sub/deeper/*.dat",
        "{TREE}//sub",
        "{TREE}/./sub",
        "{BASE}/tree",
    ];
    let mut i = 0;
    let mut run = |cfg: String| {
        let env = Env::new(&format!("fnmatch_matrix{i}"));
        i += 1;
        env.config(&format!(
            "group g {{ host h1.local.test h2.local.test; key g1.key; {cfg} }}\n"
        ));
        fnmatch_tree(&env);
        env.step(args!["-cr", tree(&env)]);
        env.step(args!["-L"]);
        env.step(args!["-o", "-r", tree(&env)]);
        env.step(args!["-c", env.t("sub/deeper/y.txt"), env.t("c[1].txt")]);
        env.step(args!["-L"]);
    };
    for p in exclude_patterns {
        run(format!("include {{TREE}}; exclude \"{p}\";"));
    }
    for p in exclude_patterns.iter().filter(|p| p.starts_with('{')) {
        run(format!("include \"{p}\";"));
        run(format!("compare \"{p}\";"));
    }
}

#[test]
fn host_names_case_and_odd_lists() {
    let env = Env::new("host_names_case");
    env.config(
        "
group G1 {
    host H1.LOCAL.TEST H2.Local.Test@Peer-TWO;
    host;
    host ();
    host (H3.LOCAL.TEST@SLAVE-x);
    key g1.key;
    include {TREE}/a;
    include;
    exclude;
    compare;
}
group {
    host h1.local.test h4.local.test h4.local.test h2.local.test@peer-two;
    key g2.key;
    include {TREE}/a {TREE}/b;
}
group {
    host h5.local.test;
    key g2.key;
    include {TREE};
}
group \"quoted name\" {
    host \"h1.local.test\"@\"ME\" h6.local.test;
    key g1.key;
    include \"{TREE}/b\";
}
",
    );
    for d in ["a", "b", "c"] {
        env.mkdir(d, 0o755);
        env.file(format!("{d}/f"), d, 0o644, T0);
    }
    env.step_expect(args!["-cr", tree(&env)], 0);
    env.step_expect(args!["-M"], 0);
    env.step_expect(args!["-L"], 0);
    for (my, peer) in [
        (HOST, "peer-two"),
        (HOST, "slave-x"),
        (HOST, "h4.local.test"),
        ("me", "h6.local.test"),
        ("ME", "h6.local.test"),
    ] {
        env.step(args!["-S", my, peer]);
    }
    env.step_expect(args!["-G", "group_1", "-M"], 0);
    env.step_expect(args!["-G", "quoted name,G1", "-M"], 0);
    env.step_expect(args!["-G", "g1", "-M"], 1);
    env.step_expect(args!["-G", "group_2", "-M"], 1);
}

#[test]
fn actions_with_prefixes_and_removals() {
    let env = Env::new("actions_prefixes");
    env.config(
        "
prefix p { on h1.local.test: {TREE}/sub; }
group g {
    host h1.local.test h2.local.test;
    key g1.key;
    include %p% {TREE}/top;
    action {
        pattern %p%/x*;
        exec \"echo px %% >> $C2LOG\" \"echo second %% %% >> $C2LOG\";
        do-local;
    }
    action {
        pattern {TREE}/top;
        pattern **/y;
        exec \"echo top %% >> $C2LOG\";
        logfile \"/dev/null\";
        do-local-only;
    }
}
",
    );
    let log_real = env.base.join("log_real");
    let log_ours = env.base.join("log_ours");
    env.env_real
        .borrow_mut()
        .push(("C2LOG".into(), log_real.clone().into_os_string()));
    env.env_ours
        .borrow_mut()
        .push(("C2LOG".into(), log_ours.clone().into_os_string()));
    let logs = |what: &str| {
        let read = |p: &std::path::Path| {
            let s = std::fs::read(p).unwrap_or_default();
            let _ = std::fs::remove_file(p);
            let mut lines: Vec<String> = s
                .split(|&c| c == b'\n')
                .filter(|l| !l.is_empty())
                .map(|l| {
                    let mut w: Vec<&[u8]> = l.split(|&c| c == b' ').collect();
                    w[1..].sort();
                    show(&w.join(&b' '))
                })
                .collect();
            lines.sort();
            lines
        };
        let (r, o) = (read(&log_real), read(&log_ours));
        assert_eq!(
            r, o,
            "action output after `{what}` differs (left REAL, right OURS)"
        );
        r.len()
    };
    env.mkdir("sub", 0o755);
    env.mkdir("top", 0o755);
    env.file("sub/x1", "1", 0o644, T0);
    env.file("sub/x 2%%", "1", 0o644, T0);
    env.file("sub/y", "1", 0o644, T0);
    env.file("top/y", "1", 0o644, T0);
    env.file("top/z", "1", 0o644, T0);
    env.step_expect(args!["-cr", tree(&env)], 0);
    assert!(logs("-cr") >= 3, "REAL ran fewer actions than expected");
    env.remove("sub/x1");
    env.remove("top/y");
    // (not `-cr TREE`: see prefix_removal_below_argument)
    env.step_expect(args!["-cr", env.t("sub"), env.t("top")], 0);
    logs("-cr after removals");
    env.step_expect(args!["-m", env.t("sub/x 2%%"), env.t("top")], 0);
    logs("-m");
    env.step_expect(args!["-M"], 0);
}

#[test]
fn misc_argument_forms() {
    let env = basic("misc_argument_forms");
    env.populate_all_types("");
    env.chmod("dir", 0o1777);
    env.chmod("emptydir", 0o2750);
    // -r on a file, -m on a directory without -r, repeated and overlapping args
    env.step_expect(args!["-cr", env.t("regular.txt")], 0);
    env.step_expect(args!["-cr", env.t("dir"), tree(&env), env.t("dir")], 0);
    env.step_expect(args!["-m", env.t("dir")], 0);
    env.step_expect(args!["-M"], 0);
    env.step_expect(args!["-f", "-r", env.t("regular.txt")], 0);
    // a symlink to a directory as argument: not followed
    env.step_expect(args!["-cr", env.t("dirlink")], 0);
    env.step_expect(args!["-o", "-r", env.t("dirlink")], 0);
    env.step_expect(args!["-m", "-r", env.t("dirlink")], 0);
    env.step_expect(args!["-M"], 0);
    env.step_expect(args!["-L"], 0);
    // -o without -r on a directory, -o of a missing file
    env.step_expect(args!["-o", env.t("dir"), env.t("missing")], 0);
    // -h -r then -c -I; the same hint with both flags
    env.remove("dir/inner.txt");
    env.step_expect(args!["-h", "-r", env.t("dir")], 0);
    env.step_expect(args!["-h", env.t("dir")], 0);
    env.step_expect(args!["-c", "-I"], 0);
    env.step_expect(args!["-M"], 0);
    env.step_expect(args!["-L"], 0);
}

#[test]
fn locale_does_not_matter() {
    // the real csync2 never calls setlocale(): fnmatch and scandir order are
    // bytewise even under a UTF-8 locale
    let env = Env::new("locale_does_not_matter");
    env.extra_env
        .borrow_mut()
        .push(("LC_ALL".into(), "C.UTF-8".into()));
    env.config(
        "group g { host h1.local.test h2.local.test; key g1.key; include {TREE}; exclude ?.txt [[:alpha:]]x; }\n",
    );
    for f in [
        "\u{e4}.txt",
        "a.txt",
        "\u{e4}x",
        "bx",
        "B",
        "a",
        "\u{c4}",
        "Z",
    ] {
        env.file(f, f, 0o644, T0);
    }
    env.step_expect(args!["-o", "-r", tree(&env)], 0);
    env.step_expect(args!["-cr", tree(&env)], 0);
    env.step_expect(args!["-L"], 0);
}

/// The comparison machinery itself: storage classes, raw bytes and
/// multiplicities must all count as differences.
#[test]
fn harness_detects_differences() {
    let dir = std::env::temp_dir().join(format!("c2d-harness-self-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mk = |name: &str, sql: &str| {
        let p = dir.join(name);
        let c = rusqlite::Connection::open(&p).unwrap();
        c.execute_batch(
            "CREATE TABLE file (\tfilename, checktxt,\tUNIQUE ( filename ) ON CONFLICT REPLACE)",
        )
        .unwrap();
        c.execute_batch(sql).unwrap();
        dump_db(&p).unwrap()
    };
    let text = mk("text.db", "INSERT INTO file VALUES ('/a%20b', 'v1')");
    let text2 = mk("text2.db", "INSERT INTO file VALUES ('/a%20b', 'v1')");
    let blob = mk("blob.db", "INSERT INTO file VALUES (x'2f6125323062', 'v1')");
    let int = mk("int.db", "INSERT INTO file VALUES ('/a%20b', 1)");
    let raw = mk(
        "raw.db",
        "INSERT INTO file VALUES (CAST(x'2fff' AS TEXT), 'v1')",
    );
    let raw2 = mk(
        "raw2.db",
        "INSERT INTO file VALUES (CAST(x'2ffe' AS TEXT), 'v1')",
    );
    assert!(diff_dumps(&text, &text2).is_empty());
    assert!(
        !diff_dumps(&text, &blob).is_empty(),
        "TEXT vs BLOB not detected"
    );
    assert!(
        !diff_dumps(&text, &int).is_empty(),
        "TEXT vs INTEGER not detected"
    );
    let d = diff_dumps(&raw, &raw2);
    assert!(d.contains("\\xff") && d.contains("\\xfe"), "{d}");
    assert_eq!(url_decode(b"%25p%25/a%20b%zz%4"), b"%p%/a b%zz%4");
    assert_eq!(
        url_encode(b"a b:%'\"$|\\\x7f\xff"),
        b"a%20b%3A%25%27%22%24%7C%5C%7F\xff"
    );
    assert_eq!(
        important_stderr(
            b"noise\nRemoving b\nWARNING: Parameter will be ignored: /x\nRemoving a\n"
        ),
        vec![
            b"WARNING: Parameter will be ignored: /x".to_vec(),
            b"Removing a".to_vec(),
            b"Removing b".to_vec()
        ]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
