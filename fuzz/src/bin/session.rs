//! The server's command handling of one session
//! (`server::session::Session::run`) after CONFIG: every input is the
//! client's byte stream, after a fixed `HELLO localhost` line so that it
//! gets past identification. The replies are discarded.
//!
//! Each run starts from the same state: an empty in-memory database and
//! an empty tree `$C2FUZZ_DIR/tree` (default `/dev/shm/c2fuzz`), which
//! the fixed config below synchronises, with a `%tree%` prefix for it, a
//! second tree where localhost is a slave, and backups.
//!
//! The session writes, removes, renames and chowns files for real, and
//! paths from the input are not confined to the tree, so this target
//! refuses to run as root (`run.sh session …` runs it as `nobody`).
//! Set `C2FUZZ_ALLOW_ROOT=1` only inside a throw-away container.
use csync2::config::parser::{ParseOptions, parse_bytes};
use csync2::db::{Db, Location};
use csync2::protocol::conn::Conn;
use csync2::server::Peer;
use csync2::server::session::Session;
use std::io::{Cursor, Read, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

/// The group key (KEY1 of the protocol captures, a throw-away test key).
const KEY: &str = "pVFfA2D_o0gsDFZQhWOAfAkb22tAJGsbGDgrh1.0yy45hqbQw4WU.J_HVu2G4039";

/// Input from the fuzzer, output to nowhere (to stderr with
/// `C2FUZZ_SHOW=1`, to look at what an input does).
struct Mem(Cursor<Vec<u8>>, bool);

impl Read for Mem {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Mem {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.1 {
            std::io::stderr().write_all(buf)?;
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn fresh_dir(p: &Path) {
    // an input may have left a file, symlink, fifo… where the directory was
    if let Ok(m) = std::fs::symlink_metadata(p)
        && !m.is_dir()
    {
        let _ = std::fs::remove_file(p);
    }
    match std::fs::remove_dir_all(p) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        // something the session made that cannot be removed: chmod the
        // directories and try again
        Err(_) => {
            let _ = std::process::Command::new("chmod")
                .args(["-R", "u+rwx"])
                .arg(p)
                .status();
            let _ = std::fs::remove_dir_all(p);
        }
    }
    std::fs::create_dir_all(p).expect("create the tree");
}

/// The session changed nothing outside the tree that it may change: the
/// directory around the trees holds only what the harness made, the key
/// is unchanged, and the slave tree is empty (every change to it is
/// refused: localhost is a slave there). A panic here is a path escape
/// (or a permission bug), not a harness error.
fn confined(root: &Path, key: &[u8]) {
    for e in std::fs::read_dir(root).expect("read C2FUZZ_DIR") {
        let name = e.expect("read C2FUZZ_DIR").file_name();
        assert!(
            ["backup", "key", "slave", "tree"]
                .iter()
                .any(|n| name == *n),
            "path escape: {name:?} appeared beside the tree"
        );
    }
    assert!(
        std::fs::read(root.join("key")).ok().as_deref() == Some(key),
        "path escape: the key file beside the tree changed"
    );
    let slave = root.join("slave");
    let m = std::fs::symlink_metadata(&slave).expect("path escape: the slave tree went");
    assert!(m.is_dir(), "path escape: the slave tree was replaced");
    assert!(
        std::fs::read_dir(&slave)
            .expect("read the slave tree")
            .next()
            .is_none(),
        "a change in the slave tree was not refused"
    );
}

fn main() {
    if unsafe { libc_geteuid() } == 0 && std::env::var_os("C2FUZZ_ALLOW_ROOT").is_none() {
        eprintln!(
            "session target: refusing to run as root (the session changes files for real); \
             run it as an unprivileged user (fuzz/run.sh does) or set C2FUZZ_ALLOW_ROOT=1"
        );
        std::process::exit(2);
    }
    let root =
        PathBuf::from(std::env::var_os("C2FUZZ_DIR").unwrap_or_else(|| "/dev/shm/c2fuzz".into()));
    let root = root.to_str().expect("C2FUZZ_DIR must be UTF-8").to_string();
    std::fs::create_dir_all(&root).expect("create C2FUZZ_DIR");
    std::fs::write(format!("{root}/key"), format!("{KEY}\n")).expect("write the key");
    let text = format!(
        "nossl * *;\n\
         prefix tree {{ on fuzzhost: {root}/tree; }}\n\
         group fuzz {{\n\
         \thost fuzzhost localhost;\n\
         \tkey {root}/key;\n\
         \tinclude {root}/tree;\n\
         \tinclude %tree%;\n\
         \texclude {root}/tree/excluded;\n\
         \texclude *.tmp;\n\
         \tbackup-directory {root}/backup;\n\
         \tbackup-generations 3;\n\
         \tauto younger;\n\
         }}\n\
         group slave {{\n\
         \thost fuzzhost (localhost);\n\
         \tkey {root}/key;\n\
         \tinclude {root}/slave;\n\
         }}\n"
    );
    let sysdir = Path::new(&root);
    let opts = ParseOptions {
        myhostname: b"fuzzhost",
        sysdir,
        only_groups: None,
        only_peers: None,
    };
    let cfg = parse_bytes(&sysdir.join("csync2.cfg"), text.as_bytes(), &opts)
        .unwrap_or_else(|e| panic!("fuzz config: {e:?}"));
    let peer = Peer {
        addr: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        cert: None,
    };
    assert!(
        peer.resolves_to(b"localhost"),
        "localhost must resolve to 127.0.0.1"
    );
    let loc = Location::Sqlite {
        shown: "sqlite3://:memory:".to_string(),
        path: PathBuf::from(":memory:"),
    };
    let dirs: Vec<PathBuf> = ["tree", "slave", "backup"]
        .iter()
        .map(|d| sysdir.join(d))
        .collect();
    let key = std::fs::read(sysdir.join("key")).expect("read the key");
    let show = std::env::var_os("C2FUZZ_SHOW").is_some();
    afl::fuzz!(|data: &[u8]| {
        for d in &dirs {
            fresh_dir(d);
        }
        let mut db = Db::open(&loc, 1, false, true).expect("in-memory database");
        let mut cfg = cfg.clone();
        let mut input = b"HELLO localhost\n".to_vec();
        input.extend_from_slice(data);
        let mut conn = Conn::new(Box::new(Mem(Cursor::new(input), show)));
        let _ = Session::new(&mut cfg, &mut db, &mut conn, &peer, false).run();
        let _ = db.commit();
        confined(sysdir, &key);
    });
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}
