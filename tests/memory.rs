//! Memory that does not grow with the tree (issue 16): the same mode on a
//! tree of 20,000 and of 200,000 small files must peak at about the same
//! resident size. Covered so far: the check (`-cIr` on a fresh database,
//! `-cr` with nothing changed, `-cr` after every file changed).

use std::path::{Path, PathBuf};
use std::process::Command;

const PEER: &str = "p2.memory.test";

struct Tree {
    base: PathBuf,
    tree: PathBuf,
}

impl Tree {
    /// `files` small files, 100 per directory, two levels deep.
    fn new(tag: &str, files: usize) -> Tree {
        let base = std::env::temp_dir().join(format!("c2mem-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let tree = base.join("tree");
        std::fs::create_dir_all(base.join("etc")).unwrap();
        std::fs::create_dir_all(base.join("db")).unwrap();
        for i in 0..files {
            let d = tree.join(format!("a{:03}/b{:03}", i / 10_000, (i / 100) % 100));
            if i % 100 == 0 {
                std::fs::create_dir_all(&d).unwrap();
            }
            std::fs::write(d.join(format!("file-with-a-longish-name-{i:07}.txt")), b"x").unwrap();
        }
        std::fs::write(base.join("etc/mem.key"), [b'k'; 64]).unwrap();
        std::fs::write(
            base.join("etc/csync2.cfg"),
            format!(
                "group g {{ host h1.memory.test {PEER}; key mem.key; include {}; }}\n",
                tree.display()
            ),
        )
        .unwrap();
        Tree { base, tree }
    }

    /// Runs csync2 ARGS TREE; its peak resident size in KiB.
    fn peak(&self, args: &[&str]) -> u64 {
        let mut c = Command::new(env!("CARGO_BIN_EXE_csync2"));
        c.env("CSYNC2_SYSTEM_DIR", self.base.join("etc"))
            .args(["-N", "h1.memory.test", "-D"])
            .arg(self.base.join("db"))
            .args(args)
            .arg(&self.tree);
        peak_of(c)
    }

    fn touch_all(&self) {
        walk(&self.tree, &mut |p| std::fs::write(p, b"changed").unwrap());
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

fn walk(dir: &Path, f: &mut dyn FnMut(&Path)) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            walk(&e.path(), f);
        } else {
            f(&e.path());
        }
    }
}

/// Runs the command in a child of a fresh thread-free helper: wait4's
/// rusage gives the child's own peak (ru_maxrss, KiB).
fn peak_of(mut c: Command) -> u64 {
    let child = c.spawn().expect("start csync2");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, by pid
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    assert_eq!(r, pid, "wait4");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{c:?} failed: status {status}"
    );
    std::mem::forget(child);
    ru.ru_maxrss as u64
}

#[test]
fn check_memory_does_not_grow_with_the_tree() {
    let small = Tree::new("small", 20_000);
    let big = Tree::new("big", 200_000);
    let mut report = String::new();
    let mut grew = Vec::new();
    let mut step = |what: &str, f: &dyn Fn(&Tree) -> u64| {
        let (s, b) = (f(&small), f(&big));
        report.push_str(&format!(
            "{what}: {s} KiB at 20,000 files, {b} KiB at 200,000\n"
        ));
        // the database's page cache and allocator slack may differ a little;
        // a per-file cost of even 40 bytes would add 7 MiB
        if b > s + 4 * 1024 {
            grew.push(what.to_string());
        }
    };
    step("-cIr, fresh database", &|t| t.peak(&["-cIr"]));
    step("-cr, nothing changed", &|t| t.peak(&["-cr"]));
    step("-cr, every file changed", &|t| {
        t.touch_all();
        t.peak(&["-cr"])
    });
    eprint!("{report}");
    assert!(
        grew.is_empty(),
        "memory grew with the tree in {grew:?}:\n{report}"
    );
}
