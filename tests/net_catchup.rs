//! `csync2 --catch-up` (issue 14): a host that was down asks its peers to
//! push what they hold dirty for it, over the connection it opens. A
//! csync2-rs peer pushes (plain and TLS); a real csync2 peer cannot be
//! asked and is named with what to run instead; a server with
//! `CSYNC2_NO_CATCHUP` and an asker with the wrong key get nothing.
//!
//! Needs root; see `tests/net_interop.rs` for the environment variables.

mod common;
mod net;
mod netx;

use net::*;
use netx::*;

const CFG: &str = "nossl * *;
group all {
    host {N1} {N2} {N3};
    key g.key;
    include {SYNC};
}
";

/// Runs `--catch-up -v` on n1 with the servers of n2 and n3 up.
fn ask(r: &mut Run, label: &str) -> usize {
    exchange(r, label, 0, &[1, 2], "-iii", args!["--catch-up"])
}

/// The files node `node` holds dirty for node `towards`.
fn dirty_for(r: &Run, o: usize, node: usize, towards: usize) -> Vec<String> {
    r.dirty(o, node)
        .iter()
        .filter(|(_, p)| common::show(p) == r.n(towards).name)
        .map(|(f, _)| common::show(f))
        .collect()
}

fn has(r: &Run, o: usize, node: usize, rel: &str) -> bool {
    r.tree(o, node)
        .keys()
        .any(|k| k.as_slice() == rel.as_bytes())
}

#[test]
fn catch_up_from_peers() {
    solo("catchup", Net::Catchup, 3, &[1, 2], &[MODE_D], |r| {
        // n3 runs the real csync2
        r.nodes[2].imp = Imp::Real;
        r.config(CFG);
        for i in 0..3 {
            r.n(i).clone().file("base.txt", "base\n", 0o644, T0);
        }
        r.init();
        // n1 is down: n2 and n3 change files and mark them dirty for it
        let (n2, n3) = (r.n(1).clone(), r.n(2).clone());
        n2.file("from2.txt", "written on n2\n", 0o644, T0 + 1);
        n2.mkdir("dir2", 0o750);
        n2.file("dir2/deep.txt", "deep on n2\n", 0o600, T0 + 2);
        n3.file("from3.txt", "written on n3\n", 0o644, T0 + 3);
        r.check(1);
        r.check(2);

        let o = ask(r, "--catch-up");
        r.expect_code(o, 1);
        let out = String::from_utf8_lossy(&r.client(o).stdout).into_owned();
        r.expect(
            out.contains(&format!("Catch-up from {}: ", n2.name)),
            format!("one line for n2 on stdout: {out:?}"),
        );
        r.expect_line(
            o,
            &format!(
                "ERROR: Catch-up from {} is not possible: it runs a csync2 that cannot be asked. Run 'csync2 -x' on {} instead.",
                n3.name, n3.name
            ),
        );
        for f in ["from2.txt", "dir2", "dir2/deep.txt"] {
            r.expect(has(r, o, 0, f), format!("n1 got {f} from n2"));
        }
        r.expect(!has(r, o, 0, "from3.txt"), "nothing from the real peer");
        let left = dirty_for(r, o, 1, 0);
        r.expect(
            left.is_empty(),
            format!("n2 holds nothing dirty for n1 any more: {left:?}"),
        );
        // n1 applied it as its server would: its database agrees
        let c = r.recheck("n1 -cr after the catch-up", 0);
        let d = r.dirty(c, 0);
        r.expect(
            d.is_empty(),
            format!("n1's check finds nothing new ({} rows)", d.len()),
        );

        // both changed one file while cut off: a conflict, never overwritten
        let n1 = r.n(0).clone();
        n1.file("base.txt", "changed on n1 while cut off\n", 0o644, T0 + 10);
        n2.file("base.txt", "changed on n2 meanwhile\n", 0o644, T0 + 11);
        r.check(0);
        r.check(1);
        let o = ask(r, "--catch-up with a conflict");
        r.expect(
            r.n(0).read("base.txt").as_deref() == Some(&b"changed on n1 while cut off\n"[..]),
            "n1's own change is kept",
        );
        let pending = |r: &Run, node: usize, towards: usize| {
            r.dirty(o, node)
                .iter()
                .any(|(f, p)| f.ends_with(b"/base.txt") && common::show(p) == r.n(towards).name)
        };
        r.expect(
            pending(r, 0, 1) && pending(r, 1, 0),
            "the conflict stays dirty on both sides (listed by -M)",
        );

        // the server refuses: nothing is sent
        n2.file("refused.txt", "not sent\n", 0o644, T0 + 4);
        r.check(1);
        // SAFETY: this test binary runs one test; the server inherits it
        unsafe { std::env::set_var("CSYNC2_NO_CATCHUP", "1") };
        let fast = r.start_server(1, "-iii");
        unsafe { std::env::remove_var("CSYNC2_NO_CATCHUP") };
        let d = r.cmd(0, args!["--catch-up", "-P", n2.name.clone()]);
        r.finish_server(1, fast);
        r.expect(
            d.code == Some(1),
            format!("a refused catch-up exits 1: {}", d.status()),
        );
        r.expect(
            common::show(&d.stderr).contains(&format!(
                "ERROR: Catch-up from {} refused: Catch-up requests are disabled on this server.",
                n2.name
            )),
            "the refusal names the peer and the reason",
        );
        r.expect(r.n(0).read("refused.txt").is_none(), "nothing was sent");

        // the asker holds the wrong key: nothing is sent either
        let mut wrong = CFG.replace("key g.key;", "key h.key;");
        if r.transport == Transport::Tls {
            wrong = wrong.replace("nossl * *;\n", "");
        }
        r.n(0).write_etc("csync2.cfg", &r.subst(&wrong));
        let fast = r.start_server(1, "-iii");
        let d = r.cmd(0, args!["--catch-up", "-P", n2.name.clone()]);
        r.finish_server(1, fast);
        r.expect(
            d.code == Some(1),
            format!("a wrong key exits 1: {}", d.status()),
        );
        r.expect(
            common::show(&d.stderr).contains(&format!(
                "ERROR: Catch-up from {} refused: Permission denied!",
                n2.name
            )),
            format!("the wrong key is refused: {}", common::show(&d.stderr)),
        );
        r.expect(r.n(0).read("refused.txt").is_none(), "nothing was sent");

        // a foreign host: n2's configuration does not list n1
        r.config(CFG);
        let mut foreign = CFG.replace("host {N1} {N2} {N3};", "host {N2} {N3};");
        if r.transport == Transport::Tls {
            foreign = foreign.replace("nossl * *;\n", "");
        }
        n2.write_etc("csync2.cfg", &r.subst(&foreign));
        let fast = r.start_server(1, "-iii");
        let d = r.cmd(0, args!["--catch-up", "-P", n2.name.clone()]);
        r.finish_server(1, fast);
        r.expect(
            d.code == Some(1),
            format!("a foreign host exits 1: {}", d.status()),
        );
        r.expect(
            r.n(0).read("refused.txt").is_none(),
            "nothing was sent to a foreign host",
        );

        // a rebuilt host: database and files lost, then -cIr and --full
        r.config(CFG);
        let n1 = r.n(0).clone();
        for e in std::fs::read_dir(&n1.tree).expect("n1's tree").flatten() {
            n1.remove(e.file_name().as_encoded_bytes());
        }
        let _ = std::fs::remove_dir_all(&n1.db);
        std::fs::create_dir_all(&n1.db).expect("n1's database directory");
        r.cmd_ok(0, args!["-cIr", n1.s("")], 0);
        let fast = r.start_server(1, "-iii");
        let d = r.cmd(0, args!["--catch-up", "--full", "-P", n2.name.clone()]);
        r.finish_server(1, fast);
        r.expect(
            d.code == Some(0),
            format!("--full succeeds: {}", common::show(&d.stderr)),
        );
        let o = r.recheck("n1 -cr after --full", 0);
        for f in [
            "base.txt",
            "from2.txt",
            "refused.txt",
            "dir2",
            "dir2/deep.txt",
        ] {
            r.expect(has(r, o, 0, f), format!("--full brought {f} back"));
        }
        let d = r.dirty(o, 0);
        r.expect(
            d.is_empty(),
            format!("n1's database agrees with its files ({} rows)", d.len()),
        );
    });
}

/// Five hosts: n1 was down while n2, n3 and n4 added whole trees, changed
/// types and modes and deleted files; n1's own server is not running; it
/// catches up from all three at once, while n5 is down (named, exit 1, the
/// others served).
#[test]
fn catch_up_from_several_while_one_is_down() {
    solo(
        "catchup4",
        Net::Catchup4,
        5,
        &[1, 2, 3, 4],
        &[MODE_D],
        |r| {
            r.config(
                "nossl * *;\ngroup all {\n    host {N1} {N2} {N3} {N4} {N5};\n    key g.key;\n    \
             include {SYNC};\n}\n",
            );
            for i in 0..5 {
                let n = r.n(i).clone();
                n.file("keep.txt", "everywhere\n", 0o644, T0);
                n.file("gone2.txt", "deleted on n2\n", 0o644, T0);
                n.file("mode3.txt", "mode changes on n3\n", 0o644, T0);
                n.file("f2d", "becomes a directory on n2\n", 0o644, T0);
            }
            r.init();
            let (n1, n2, n3, n4) = (
                r.n(0).clone(),
                r.n(1).clone(),
                r.n(2).clone(),
                r.n(3).clone(),
            );
            n2.mkdir("tree2", 0o755);
            n2.mkdir("tree2/sub", 0o700);
            for k in 0..20 {
                n2.file(
                    format!("tree2/sub/f{k:02}"),
                    pseudo_text(500 + k, k as u64),
                    0o644,
                    T0 + 1,
                );
            }
            n2.remove("gone2.txt");
            n2.remove("f2d");
            n2.mkdir("f2d", 0o755);
            n2.file("f2d/inside", "inside\n", 0o644, T0 + 2);
            n3.file("mode3.txt", "mode changes on n3\n", 0o600, T0);
            n3.symlink("link3", "keep.txt");
            n4.file("from4.txt", "written on n4\n", 0o640, T0 + 3);
            for i in 1..4 {
                r.check(i);
            }

            let o = exchange(
                r,
                "--catch-up, n5 down",
                0,
                &[1, 2, 3],
                "-iii",
                args!["--catch-up"],
            );
            r.expect_code(o, 1);
            let n5 = r.n(4).name.clone();
            r.expect_line(
                o,
                &format!("ERROR: Connection to remote host `{n5}' failed."),
            );
            let out = String::from_utf8_lossy(&r.client(o).stdout).into_owned();
            for p in [&n2.name, &n3.name, &n4.name] {
                r.expect(
                    out.contains(&format!("Catch-up from {p}: ")),
                    format!("a line for {p}: {out:?}"),
                );
            }
            for f in [
                "tree2/sub/f00",
                "tree2/sub/f19",
                "f2d/inside",
                "link3",
                "from4.txt",
            ] {
                r.expect(has(r, o, 0, f), format!("n1 got {f}"));
            }
            r.expect(!has(r, o, 0, "gone2.txt"), "n2's deletion reached n1");
            r.expect(
                n1.p("f2d").is_dir()
                    && std::fs::symlink_metadata(n1.p("link3")).is_ok_and(|m| m.is_symlink()),
                "the type changes reached n1",
            );
            r.expect(
                std::fs::metadata(n1.p("mode3.txt")).is_ok_and(|m| {
                    std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777 == 0o600
                }),
                "n3's mode change reached n1",
            );
            for i in 1..4 {
                let left = dirty_for(r, o, i, 0);
                r.expect(
                    left.is_empty(),
                    format!("{} holds nothing dirty for n1: {left:?}", r.n(i).short()),
                );
            }
            let c = r.recheck("n1 -cr", 0);
            let d = r.dirty(c, 0);
            r.expect(
                d.is_empty(),
                format!("n1's database agrees with its files ({} rows)", d.len()),
            );
        },
    );
}

/// A catch-up while another peer pushes to the same host: n1's server
/// receives n2's `-x` while n1's `--catch-up` receives from n3, both
/// writing n1's database at once; everything arrives and n1's database
/// agrees with its files.
#[test]
fn catch_up_while_another_peer_pushes() {
    solo("catchupx", Net::Catchupx, 3, &[0, 1, 2], &[MODE_D], |r| {
        r.config(CFG);
        for i in 0..3 {
            r.n(i).clone().file("base.txt", "base\n", 0o644, T0);
        }
        r.init();
        let (n2, n3) = (r.n(1).clone(), r.n(2).clone());
        n2.mkdir("by2", 0o755);
        n3.mkdir("by3", 0o755);
        for k in 0..200 {
            n2.file(format!("by2/f{k:03}"), pseudo_text(2000, k), 0o644, T0 + 1);
            n3.file(
                format!("by3/f{k:03}"),
                pseudo_text(2000, 1000 + k),
                0o644,
                T0 + 1,
            );
        }
        r.check(2);
        r.fix_mtimes();
        // n1 serves n2's push and asks n3, at the same time
        let s1 = r.start_server(0, "-iii");
        let s3 = r.start_server(2, "-iii");
        let push = r
            .n(1)
            .spawn(&["-x".into(), "-P".into(), r.n(0).name.clone().into()]);
        let ask = r
            .n(0)
            .spawn(&["--catch-up".into(), "-P".into(), n3.name.clone().into()]);
        let end = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let (push, ask) = (push.wait_until(end), ask.wait_until(end));
        r.finish_server(0, s1);
        r.finish_server(2, s3);
        r.expect(
            push.code == Some(0),
            format!("n2's push succeeds: {}", common::show(&push.stderr)),
        );
        r.expect(
            ask.code == Some(0),
            format!("the catch-up succeeds: {}", common::show(&ask.stderr)),
        );
        let o = r.recheck("n1 -cr", 0);
        for k in [0, 199] {
            for d in ["by2", "by3"] {
                let f = format!("{d}/f{k:03}");
                r.expect(has(r, o, 0, &f), format!("n1 got {f}"));
            }
        }
        let d = r.dirty(o, 0);
        r.expect(
            d.is_empty(),
            format!("n1's database agrees with its files ({} rows)", d.len()),
        );
    });
}
