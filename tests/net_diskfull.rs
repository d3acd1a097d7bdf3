//! A receiver whose file system is full: the client's error names the
//! cause (`No space left on device`) and the peer, the peer's old version
//! of a changed file stays intact, no temporary file is left behind, and
//! the rows stay dirty for the next run. Both ways a file travels between
//! our nodes: whole (`X-PUT`, a new file) and as an rsync delta (`PATCH`,
//! a large changed file).
//!
//! Needs root; see `tests/net_interop.rs` for the environment variables.

mod common;
mod net;
mod netx;

use net::*;
use netx::*;

#[test]
fn receiver_disk_full() {
    solo("diskfull", Net::Diskfull, 2, &[1], &[MODE_D], |r| {
        // the receiver's tree: 2 MiB in all
        let _fs = Tmpfs::mount(&r.n(1).tree, "csync2-diskfull", "2m");
        let (a, b) = (r.n(0).clone(), r.n(1).clone());
        // the new root is known to the receiver's database as it is
        r.init();
        let old = pseudo_random(300_000, 7);
        a.file("small.txt", "small\n", 0o644, T0);
        a.file("changed.bin", &old, 0o644, T0);
        let o = r.push("push (fits)", args!["-x"]);
        r.expect_code(o, 0);
        r.expect_same_trees(o, 0, 1);

        a.file("new.bin", pseudo_random(3 << 20, 8), 0o644, T0 + 1);
        a.file("changed.bin", pseudo_random(2_500_000, 9), 0o644, T0 + 2);
        let o = r.push("push (does not fit)", args!["-x"]);
        r.expect_code(o, 1);
        let sync = r.sync.to_string_lossy().into_owned();
        for f in ["new.bin", "changed.bin"] {
            r.expect_line(
                o,
                &format!("While syncing file {sync}/{f}: No space left on device"),
            );
        }
        r.expect_line(
            o,
            &format!(
                "Hint: the file system on {} is full: free space there (its old version of the file is unchanged).",
                b.name
            ),
        );
        r.expect(
            b.read("changed.bin").as_deref() == Some(old.as_slice()),
            "the receiver's old changed.bin is intact",
        );
        r.expect(
            b.read("new.bin").is_none(),
            "no partial new.bin on the receiver",
        );
        let names: Vec<String> = std::fs::read_dir(&b.tree)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        r.expect(
            names
                .iter()
                .all(|n| !n.starts_with(".csync2-tmp") && !n.starts_with(".new.bin")),
            format!("no temporary file left on the receiver: {names:?}"),
        );
        let dirty: Vec<String> = r.dirty(o, 0).iter().map(|(f, _)| common::show(f)).collect();
        r.expect(
            dirty.len() == 2,
            format!("both files stay dirty for the next run: {dirty:?}"),
        );
    });
}
