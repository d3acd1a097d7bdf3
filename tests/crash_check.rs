//! A `-cr` killed at any point must never leave a changed file recorded as
//! clean: whenever the file table holds a file's new check text, its dirty
//! rows for every peer must exist too (state.md Q25). Batched and with -B.

use csync2::config::Ignore;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const PEERS: [&str; 2] = ["p2.crash.test", "p3.crash.test"];

struct Setup {
    base: PathBuf,
    tree: PathBuf,
}

impl Setup {
    fn new(tag: &str, files: usize) -> Setup {
        let base = std::env::temp_dir().join(format!("c2crash-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let tree = base.join("tree");
        std::fs::create_dir_all(base.join("etc")).unwrap();
        std::fs::create_dir_all(base.join("db")).unwrap();
        for i in 0..files {
            let d = tree.join(format!("d{:02}", i % 40));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join(format!("f{i:05}")), b"x").unwrap();
        }
        std::fs::write(base.join("etc/crash.key"), [b'k'; 64]).unwrap();
        std::fs::write(
            base.join("etc/csync2.cfg"),
            format!(
                "group g {{ host h1.crash.test {}; key crash.key; include {}; }}\n",
                PEERS.join(" "),
                tree.display()
            ),
        )
        .unwrap();
        Setup { base, tree }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_csync2"));
        c.env("CSYNC2_SYSTEM_DIR", self.base.join("etc"))
            .arg("-N")
            .arg("h1.crash.test")
            .arg("-D")
            .arg(self.base.join("db"))
            .args(args)
            .arg(&self.tree)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    }

    fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.base.join("db/h1.crash.test.db3")).unwrap()
    }

    /// Every file row equal to the disk state has dirty rows for all peers.
    /// Returns how many files were recorded as changed.
    fn assert_consistent(&self) -> usize {
        let db = self.db();
        let ok: String = db
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
        let mut st = db.prepare("SELECT filename, checktxt FROM file").unwrap();
        let rows: Vec<(Vec<u8>, Vec<u8>)> = st
            .query_map([], |r| {
                Ok((
                    r.get_ref(0)?.as_bytes()?.to_vec(),
                    r.get_ref(1)?.as_bytes()?.to_vec(),
                ))
            })
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        let mut changed = 0;
        for (name_enc, text_enc) in rows {
            let name = csync2::urlenc::decode(&name_enc);
            if !name.starts_with(b"/")
                || std::fs::symlink_metadata(Path::new(std::ffi::OsStr::from_bytes(&name)))
                    .map(|m| m.is_dir())
                    .unwrap_or(true)
            {
                continue;
            }
            let disk = csync2::checktxt::for_path(&name, &Ignore::default()).unwrap();
            if csync2::urlenc::decode(&text_enc) != disk {
                continue;
            }
            changed += 1;
            for peer in PEERS {
                let n: i64 = db
                    .query_row(
                        "SELECT count(*) FROM dirty WHERE filename = ?1 AND peername = ?2",
                        rusqlite::params![
                            rusqlite::types::Value::Text(
                                String::from_utf8_lossy(&name_enc).into_owned()
                            ),
                            peer
                        ],
                        |r| r.get(0),
                    )
                    .unwrap();
                assert_eq!(
                    n,
                    1,
                    "{} is recorded with its new state but not dirty for {peer}",
                    String::from_utf8_lossy(&name)
                );
            }
        }
        changed
    }
}

fn kill_during_check(tag: &str, extra: &[&str]) {
    let files = 3000;
    let s = Setup::new(tag, files);
    assert!(s.cmd(&["-cIr"]).status().unwrap().success());
    // Change every file's size, so each is "changed" and gets dirty rows.
    for e in std::fs::read_dir(&s.tree).unwrap() {
        for f in std::fs::read_dir(e.unwrap().path()).unwrap() {
            std::fs::write(f.unwrap().path(), b"changed").unwrap();
        }
    }
    let mut args = vec!["-cr"];
    args.extend_from_slice(extra);
    let mut killed_midway = 0;
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    for round in 0..12 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let delay = Duration::from_millis(5 + rng % (40 + round * 25));
        let mut child = s.cmd(&args).spawn().unwrap();
        std::thread::sleep(delay);
        let finished = child.try_wait().unwrap().is_some();
        let _ = child.kill();
        let _ = child.wait();
        let changed = s.assert_consistent();
        if !finished && changed < files {
            killed_midway += 1;
        }
        if changed == files {
            break;
        }
    }
    // The kills must really have hit a run in progress at least once.
    assert!(killed_midway > 0, "no run was interrupted midway");
    // A complete run afterwards leaves every file dirty for every peer.
    assert!(s.cmd(&args).status().unwrap().success());
    assert_eq!(s.assert_consistent(), files);
    std::fs::remove_dir_all(&s.base).unwrap();
}

#[test]
fn killed_check_never_loses_a_mark() {
    kill_during_check("batched", &[]);
}

#[test]
fn killed_check_never_loses_a_mark_without_batching() {
    kill_during_check("nobatch", &["-B"]);
}

/// Several processes meeting a fresh database at once all succeed (the
/// schema is created once, under the write lock), and the result is one
/// complete database. Repeated, since the race is narrow.
#[test]
fn concurrent_first_use_of_a_fresh_database() {
    let s = Setup::new("fresh", 200);
    for round in 0..10 {
        let _ = std::fs::remove_file(s.base.join("db/h1.crash.test.db3"));
        let children: Vec<_> = (0..8)
            .map(|i| {
                let mut c = s.cmd(if i % 2 == 0 { &["-cr"] } else { &["-cIr"] });
                c.stderr(Stdio::piped());
                c.spawn().unwrap()
            })
            .collect();
        for c in children {
            let out = c.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "round {round}: {} — {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let db = s.db();
        let files: i64 = db
            .query_row("SELECT count(*) FROM file", [], |r| r.get(0))
            .unwrap();
        // the 200 files, their 40 directories and the tree itself
        assert_eq!(files, 241, "round {round}");
    }
    std::fs::remove_dir_all(&s.base).unwrap();
}
