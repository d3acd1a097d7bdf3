//! Server-side backups (`backup-directory`, `backup-generations`;
//! state.md §5.5, config.md §5.6) over the network.
//!
//! `backups_generations` is a differential run (see `tests/net/mod.rs`):
//! trees, databases, outputs and protocol traces must agree with REAL →
//! REAL. The backup directories lie outside the synchronised trees (in each
//! node's run directory) and are checked per server implementation: the
//! real server keeps only `<base>` and `<base>.<N-1>` and nothing at all
//! for N = 1 (Q15); ours deliberately keeps all N generations: `<base>` =
//! the content before the latest update, `<base>.1` the one before, … up
//! to `<base>.<N-1>` (N = 1: just `<base>`).
//!
//! `backup_directory_is_a_file` runs only with our server: the real one
//! answers PATCH with a bare OK and then waits for the client forever, and
//! answers DEL with OK without deleting (Q28/Q29). Ours must refuse both
//! with an error reply, leave the files alone and not hang.
//!
//! Needs root; see `tests/net_interop.rs` for the environment variables.

mod common;
mod net;
mod netx;

use net::*;
use netx::*;
use std::path::PathBuf;

const GENERATIONS: [u32; 4] = [1, 2, 3, 5];
const UPDATES: usize = 6;

fn version(j: usize) -> String {
    format!("version {j} of the file{}\n", "+".repeat(j))
}

/// The backup directory of group N on node `i`.
fn bak(r: &Run, i: usize, n: u32) -> PathBuf {
    r.n(i).dir.join(format!("bak{n}"))
}

/// Where the backups of `<sync>/g<N>/sub/f.txt` go: the full real path
/// mirrored below the backup directory.
fn bak_sub(r: &Run, i: usize, n: u32) -> PathBuf {
    let sync = r.sync.to_string_lossy().into_owned();
    bak(r, i, n).join(format!("{}/g{n}/sub", sync.trim_start_matches('/')))
}

/// The expected contents of the backup file names after `k` backups of
/// versions 0, 1, …, k-1 (oldest first) with N generations.
fn expected(real: bool, n: u32, k: usize) -> Vec<(String, String)> {
    let v: Vec<String> = (0..k).map(version).collect();
    let mut out = Vec::new();
    if real {
        // Q15: `<base>` = the latest, `<base>.<N-1>` = the one before; no
        // backups at all for N = 1
        if n > 1 && k >= 1 {
            out.push(("f.txt".to_string(), v[k - 1].clone()));
            if k >= 2 {
                out.push((format!("f.txt.{}", n - 1), v[k - 2].clone()));
            }
        }
    } else {
        for i in 0..(n as usize).min(k) {
            let name = if i == 0 {
                "f.txt".to_string()
            } else {
                format!("f.txt.{i}")
            };
            out.push((name, v[k - 1 - i].clone()));
        }
    }
    out.sort();
    out
}

/// Check the backup directories of the receiver after `k` backups.
fn check_backups(r: &mut Run, k: usize, when: &str) {
    let real = r.runs_real(1);
    for n in GENERATIONS {
        let dir = bak_sub(r, 1, n);
        let l = listing(&dir);
        let got: Vec<(String, String)> = l
            .iter()
            .map(|(name, (_, c))| {
                (
                    name.clone(),
                    c.as_ref()
                        .map(|c| String::from_utf8_lossy(c).into_owned())
                        .unwrap_or_else(|| "<directory>".into()),
                )
            })
            .collect();
        let want = expected(real, n, k);
        r.expect(
            got == want,
            format!(
                "{when}: {} server, N = {n}: backups in {} should be {want:?}, got {got:?}",
                if real {
                    "real (Q15 layout)"
                } else {
                    "our (all generations)"
                },
                dir.display()
            ),
        );
        // the copies get the original's mode
        let modes: Vec<String> = l
            .iter()
            .filter(|(_, (m, _))| *m != 0o640)
            .map(|(name, (m, _))| format!("{name} {m:o}"))
            .collect();
        r.expect(
            modes.is_empty(),
            format!("{when}: N = {n}: backup copies have mode 640: {modes:?}"),
        );
        if !want.is_empty() {
            // mirrored directories get the original's mode
            let m = std::fs::metadata(&dir).map(|m| {
                use std::os::unix::fs::MetadataExt;
                m.mode() & 0o7777
            });
            r.expect(
                matches!(m, Ok(0o750)),
                format!("{when}: N = {n}: mirrored directory `sub` has mode 750: {m:?}"),
            );
        }
    }
    // the sender never makes backups
    for n in GENERATIONS {
        let d = bak(r, 0, n);
        r.expect(
            !d.exists(),
            format!("the sender has no backup directory {}", d.display()),
        );
    }
}

/// Backups with N = 1, 2, 3 and 5 generations (one group per N, each
/// with its own directory): six successive updates of one file, then its
/// deletion, pushed one by one; after each push the receiver's backup
/// directories are checked. A new file and a directory are never backed
/// up.
#[test]
fn backups_generations() {
    differential("backups", Net::Backups, 2, &[1], |r| {
        let mut cfg = String::from("nossl * *;\n");
        for n in GENERATIONS {
            cfg.push_str(&format!(
                "group g{n} {{\n    host {{N1}} {{N2}};\n    key g.key;\n    include {{SYNC}}/g{n};\n    \
                 backup-directory {{DIR}}/bak{n};\n    backup-generations {n};\n}}\n"
            ));
        }
        node_config(r, &cfg);
        for i in 0..2 {
            let x = r.n(i).clone();
            for n in GENERATIONS {
                x.mkdir(format!("g{n}"), 0o755);
                x.mkdir(format!("g{n}/sub"), 0o750);
                x.file(format!("g{n}/sub/f.txt"), version(0), 0o640, T0);
            }
        }
        r.init();
        let a = r.n(0).clone();
        for j in 1..=UPDATES {
            for n in GENERATIONS {
                a.file(
                    format!("g{n}/sub/f.txt"),
                    version(j),
                    0o640,
                    T0 + 10 * j as i64,
                );
                if j == 1 {
                    a.file(format!("g{n}/new.txt"), "new\n", 0o644, T0);
                    a.mkdir(format!("g{n}/newdir"), 0o755);
                }
            }
            let o = r.push(&format!("update {j}"), args!["-x"]);
            unglue_servers(r, o);
            r.expect_code(o, 0);
            r.expect_same_trees(o, 0, 1);
            check_backups(r, j, &format!("after update {j}"));
        }
        for n in GENERATIONS {
            a.remove(format!("g{n}/sub/f.txt"));
            a.remove(format!("g{n}/new.txt"));
            a.remove(format!("g{n}/newdir"));
        }
        let o = r.push("delete", args!["-x"]);
        unglue_servers(r, o);
        r.expect_code(o, 0);
        r.expect_same_trees(o, 0, 1);
        check_backups(r, UPDATES + 1, "after the deletion");
        // new.txt was backed up only at its deletion; newdir never
        let real = r.runs_real(1);
        for n in GENERATIONS {
            let sync = r.sync.to_string_lossy().into_owned();
            let top = bak(r, 1, n).join(format!("{}/g{n}", sync.trim_start_matches('/')));
            let names: Vec<String> = listing(&top)
                .into_iter()
                .filter(|(k, _)| !k.starts_with("sub"))
                .map(|(k, (_, c))| format!("{k}={}", common::show(&c.unwrap_or_default())))
                .collect();
            let want: Vec<String> = if real && n == 1 {
                Vec::new()
            } else {
                vec!["new.txt=new\\n".to_string()]
            };
            r.expect(
                names == want,
                format!("N = {n}: besides sub/, the backup of g{n} holds {want:?}: {names:?}"),
            );
        }
    });
}

/// The backup directory exists but is a regular file: our server refuses
/// PATCH and DEL with an error reply (the real one hangs, Q28/Q29, so only
/// runs with our server: (b) and (d)); nothing is overwritten or deleted,
/// both files stay dirty, the client does not hang. Once the directory is
/// fixed the next push goes through and makes the backups.
#[test]
fn backup_directory_is_a_file() {
    if ours_is_real() {
        // harness validation against the reference: it would hang (Q28)
        eprintln!("[badbackup] note: skipped, the binary under test is the real one");
        return;
    }
    solo(
        "badbackup",
        Net::Badbackup,
        2,
        &[1],
        &[MODE_B, MODE_D],
        |r| {
            node_config(
                r,
                "nossl * *;\ngroup g {\n    host {N1} {N2};\n    key g.key;\n    include {SYNC};\n    \
             backup-directory {DIR}/bad;\n    backup-generations 3;\n    \
             action {\n        exec \"echo updated: %%\";\n        logfile \"{ETC}/act.log\";\n    }\n}\n",
            );
            let badfile = r.n(1).dir.join("bad");
            std::fs::write(&badfile, "not a directory\n").expect("write bad backup dir");
            for i in 0..2 {
                let x = r.n(i).clone();
                x.file("f.txt", "old\n", 0o644, T0);
                x.file("d.txt", "to be deleted\n", 0o644, T0);
            }
            r.init();
            let a = r.n(0).clone();
            a.file("f.txt", "new\n", 0o644, T0 + 10);
            a.remove("d.txt");
            let start = std::time::Instant::now();
            let o = r.push("push -x (bad backup directory)", args!["-x"]);
            let took = start.elapsed();
            let c = r.client(o).clone();
            r.expect(
                !c.timed_out && took < std::time::Duration::from_secs(20),
                format!("the client finishes: {} after {took:?}", c.status()),
            );
            r.expect_code(o, 1);
            r.expect_line(o, "Finished with 2 errors.");
            let f = r.entry(o, 1, "f.txt").and_then(|e| e.content.clone());
            r.expect(
                f.as_deref() == Some(b"old\n".as_slice()),
                format!(
                    "f.txt is not overwritten: {:?}",
                    f.map(|x| common::show(&x))
                ),
            );
            let d = r.entry(o, 1, "d.txt").and_then(|e| e.content.clone());
            r.expect(
                d.as_deref() == Some(b"to be deleted\n".as_slice()),
                "d.txt is not deleted",
            );
            r.expect(
                r.is_dirty(o, 0, "f.txt") && r.is_dirty(o, 0, "d.txt"),
                "both files stay dirty on the sender",
            );
            let srv = r.obs[o].servers[0].done.clone();
            r.expect(
                srv.code == Some(0) && !srv.timed_out,
                format!("our server ends the session normally: {}", srv.status()),
            );
            // the server's file table still describes the old files
            let rows: Vec<(String, String)> = match &r.obs[o].dbs[1] {
                Ok(d) => d
                    .rows("file")
                    .iter()
                    .map(|row| {
                        let t = |i: usize| {
                            row.get(i)
                                .and_then(common::Val::text)
                                .map(|x| common::show(&common::url_decode(x)))
                                .unwrap_or_default()
                        };
                        (t(0), t(1))
                    })
                    .collect(),
                Err(_) => Vec::new(),
            };
            for (f, size) in [("f.txt", "size=4"), ("d.txt", "size=14")] {
                let p = common::show(r.n(1).s(f).as_encoded_bytes());
                let ok = rows.iter().any(|(n, c)| {
                    *n == p && c.contains(&format!("mtime={T0}:")) && c.ends_with(size)
                });
                r.expect(
                    ok,
                    format!("the server's file table keeps the old {f}: {rows:?}"),
                );
            }
            let updated: Vec<String> = srv
                .stderr_lines()
                .into_iter()
                .filter(|l| l.contains("Updated "))
                .collect();
            r.expect(
                updated.is_empty(),
                format!("the server reports no `Updated` file for refused commands: {updated:?}"),
            );
            r.expect(
                std::fs::read(&badfile).ok().as_deref() == Some(b"not a directory\n".as_slice()),
                "the file in the way of the backup directory is untouched",
            );
            if r.mode.client == Imp::Real {
                let w = wire(r.client(o));
                for cmd in ["PATCH ", "DEL "] {
                    let reply = w
                        .iter()
                        .find(|e| e.local_starts(cmd))
                        .map(|e| String::from_utf8_lossy(&e.peer).into_owned());
                    let ok = reply.as_deref().is_some_and(|p| {
                        !p.starts_with("OK") && p.to_ascii_lowercase().contains("backup")
                    });
                    r.expect(
                        ok,
                        format!("{cmd}is refused with an error about the backup: {reply:?}"),
                    );
                }
            }
            // nothing was updated: no action (state.md Q8: actions should
            // follow real updates)
            let log = r.n(1).etc.join("act.log");
            let act = std::fs::read(&log).unwrap_or_default();
            r.expect(
                act.is_empty(),
                format!("no action runs on the server: {:?}", common::show(&act)),
            );
            let _ = std::fs::remove_file(&log);
            // repaired: the next push goes through and backs both files up
            std::fs::remove_file(&badfile).expect("remove the bad backup directory");
            let o = r.push("push -x (backup directory repaired)", args!["-x"]);
            r.expect_code(o, 0);
            r.expect_same_trees(o, 0, 1);
            let sync = r.sync.to_string_lossy().into_owned();
            let l = listing(&badfile.join(sync.trim_start_matches('/')));
            let got: Vec<String> = l
                .iter()
                .filter_map(|(k, (_, c))| c.as_ref().map(|c| format!("{k}={}", common::show(c))))
                .collect();
            let act =
                String::from_utf8_lossy(&std::fs::read(&log).unwrap_or_default()).into_owned();
            let mut words: Vec<&str> = act.split_whitespace().collect();
            words.sort();
            let (d, f) = (
                common::show(r.n(1).s("d.txt").as_encoded_bytes()),
                common::show(r.n(1).s("f.txt").as_encoded_bytes()),
            );
            r.expect(
                words == [d.as_str(), f.as_str(), "updated:"],
                format!("the action runs once for both files after the repaired push: {act:?}"),
            );
            r.expect(
                got == ["d.txt=to be deleted\\n", "f.txt=old\\n"],
                format!("the repaired backup directory holds both old versions: {got:?}"),
            );
        },
    );
}
