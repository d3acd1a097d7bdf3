//! Several hosts (state.md §4.1–4.2, §9 "peer down"): five nodes, a
//! four-host group and an overlapping group with another host set; one
//! host is down during a `-x` run and catches up on the next one. A
//! differential run (see `tests/net/mod.rs`): n1 runs the client, n2–n5
//! the server implementation (`-iii` each).
//!
//! Needs root; see `tests/net_interop.rs` for the environment variables.

mod common;
mod net;
mod netx;

use net::*;
use netx::*;

const CFG: &str = "nossl * *;
group all {
    host {N1} {N2} {N3} {N4};
    key g.key;
    include {SYNC};
    exclude {SYNC}/five;
}
group five {
    host {N1} {N3} {N5};
    key h.key;
    include {SYNC}/shared;
    include {SYNC}/five;
}
";

/// The entries of node `i`'s tree in observation `o` below one of
/// `dirs` (the directories themselves included).
fn part(r: &Run, o: usize, i: usize, dirs: &[&str]) -> Tree {
    r.tree(o, i)
        .iter()
        .filter(|(p, _)| {
            dirs.iter().any(|d| {
                p.as_slice() == d.as_bytes()
                    || (p.starts_with(d.as_bytes()) && p.get(d.len()) == Some(&b'/'))
            })
        })
        .map(|(p, e)| (p.clone(), e.clone()))
        .collect()
}

/// Node `i` holds exactly the sender's entries below `dirs`.
fn expect_part(r: &mut Run, o: usize, i: usize, dirs: &[&str], what: &str) {
    let want = part(r, o, 0, dirs);
    let got = part(r, o, i, dirs);
    let d = diff_trees(&want, &got, "sender", r.n(i).short());
    r.expect(
        d.is_empty() && !want.is_empty(),
        format!(
            "{what}: {} has the sender's {dirs:?}: {d:?}",
            r.n(i).short()
        ),
    );
}

/// Node `i` has nothing below `dirs`.
fn expect_none(r: &mut Run, o: usize, i: usize, dirs: &[&str], what: &str) {
    let got: Vec<String> = part(r, o, i, dirs)
        .keys()
        .map(|k| common::show(k))
        .collect();
    r.expect(
        got.is_empty(),
        format!(
            "{what}: {} has nothing of {dirs:?}: {got:?}",
            r.n(i).short()
        ),
    );
}

/// The real client's delta temp files (created in the directory of the
/// file being sent) give its own new directories the wall-clock mtime in
/// the middle of a run, so the peers after the first get that mtime in
/// `SETIME` for a new directory: those exchanges are not compared
/// (directory mtimes are not compared in the trees either).
fn ignore_dir_setime(r: &mut Run, o: usize) {
    let sync = r.sync.to_string_lossy().into_owned();
    for d in ["shared", "five", "sub"] {
        for key in [KEY1, KEY2] {
            let needle = format!("SETIME {key} {sync}/{d} ");
            r.ignore(o, Ignore::Wire(needle.into_bytes()));
        }
    }
}

/// n3 is in both groups and down during the first `-x`: the other peers
/// get their files (n2 and n4 the four-host group's, n5 the overlapping
/// group's), the rows towards n3 stay dirty and the run fails; the next
/// `-x` after n3 is back brings it up to date together with a new change
/// for everybody.
#[test]
fn host_down_catches_up() {
    differential("multihost", Net::Multihost, 5, &[1, 2, 3, 4], |r| {
        r.config(CFG);
        for i in 0..5 {
            r.n(i).clone().file("base.txt", "base\n", 0o644, T0);
        }
        r.init();
        let a = r.n(0).clone();
        a.file("top.txt", "top\n", 0o644, T0 + 1);
        a.mkdir("shared", 0o750);
        a.file("shared/s.txt", "shared v1\n", 0o640, T0 + 2);
        a.mkdir("five", 0o755);
        a.file("five/f.txt", "five\n", 0o644, T0 + 3);
        a.mkdir("sub", 0o700);
        a.file("sub/deep.txt", "deep\n", 0o600, T0 + 4);

        let o = exchange(r, "-x with n3 down", 0, &[1, 3, 4], "-iii", args!["-x"]);
        ignore_dir_setime(r, o);
        r.expect_code(o, 1);
        let n3 = r.n(2).name.clone();
        r.expect_line(
            o,
            &format!("ERROR: Connection to remote host `{n3}' failed."),
        );
        r.expect_line(o, "Host stays in dirty state. Try again later...");
        r.expect_line(o, "Finished with 1 errors.");
        let when = "n3 down";
        for i in [1, 3] {
            expect_part(r, o, i, &["top.txt", "shared", "sub"], when);
            expect_none(r, o, i, &["five"], when);
        }
        expect_part(r, o, 4, &["shared", "five"], when);
        expect_none(r, o, 4, &["top.txt", "sub"], when);
        expect_none(r, o, 2, &["top.txt", "shared", "five", "sub"], when);
        let mut left: Vec<(String, String)> = r
            .dirty(o, 0)
            .into_iter()
            .map(|(f, p)| {
                let f = common::show(&f);
                let s = r.sync.to_string_lossy().into_owned();
                (
                    f.strip_prefix(&s).unwrap_or(&f).to_string(),
                    common::show(&p),
                )
            })
            .collect();
        left.sort();
        let mut want: Vec<(String, String)> = [
            "/top.txt",
            "/shared",
            "/shared/s.txt",
            "/five",
            "/five/f.txt",
            "/sub",
            "/sub/deep.txt",
        ]
        .iter()
        .map(|f| (f.to_string(), n3.clone()))
        .collect();
        want.sort();
        r.expect(
            left == want,
            format!("only the rows towards n3 stay dirty: want {want:?}, got {left:?}"),
        );

        a.file("shared/s.txt", "shared v2, for everybody\n", 0o640, T0 + 20);
        let o = exchange(
            r,
            "-x with every host up",
            0,
            &[1, 2, 3, 4],
            "-iii",
            args!["-x"],
        );
        ignore_dir_setime(r, o);
        r.expect_code(o, 0);
        r.expect(r.dirty(o, 0).is_empty(), "no dirty rows left on the sender");
        let when = "n3 back";
        for i in [1, 3] {
            expect_part(r, o, i, &["top.txt", "shared", "sub"], when);
            expect_none(r, o, i, &["five"], when);
        }
        expect_part(r, o, 2, &["top.txt", "shared", "five", "sub"], when);
        expect_part(r, o, 4, &["shared", "five"], when);
        expect_none(r, o, 4, &["top.txt", "sub"], when);
        // the late host's database agrees with its files
        let o = r.recheck("n3 -cr after catching up", 2);
        let d = r.dirty(o, 2);
        r.expect(
            d.is_empty(),
            format!("n3's check finds nothing new: {} rows", d.len()),
        );
    });
}
