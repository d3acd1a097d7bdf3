//! Hostile clients against our server: a raw protocol client that holds a
//! group's key and a listed host address tries every path escape and every
//! kind of broken input on a stand-alone `-ii` server, and checks after each
//! attempt that nothing outside what the request may legitimately change was
//! touched.
//!
//! The requirement (path safety and hostile input):
//!
//! * the receiver resolves every path beneath the group's roots without
//!   following symlinks in any component and refuses `..`, `.`, empty
//!   components, a trailing slash, relative names, NUL and names outside its
//!   includes, for every command that touches the file system (PATCH, MK*,
//!   DEL, SET*, the reads SIG/GETTM/GETSZ/TYPE, and our extension's
//!   X-PUT/X-STAT); a refused request changes nothing anywhere;
//! * overlong lines, binary junk, wrong keys, unknown hosts, hosts of another
//!   group, slaves pushing, bad `octet-stream` lengths, truncated or corrupt
//!   deltas, clients that stall or disconnect at every point of a transfer:
//!   a clear error reply or a closed connection, no temporary file left, no
//!   crash, and the `-ii` server keeps serving the next client; idle
//!   connections time out.
//!
//! Layout (per test, on the harness of `tests/net/mod.rs`): node n1 runs our
//! server (`-ii -v`, its own system and database directories, its private
//! tree bind-mounted on `<base>/sync` in its mount namespace, working
//! directory `<base>`). The private tree is the "area":
//!
//! ```text
//! tree/            the group's include (exclude tree/excl)
//!   file d/ d/f excl/ excl/f
//!   link -> ../outside        abs -> <sync>/outside
//!   flink -> ../outside/secret
//!   dlink -> d                (a symlinked directory inside the tree)
//!   dangling -> ../outside/created    dangabs -> <sync>/outside/created2
//! outside/         secret (0600, distinctive content, size and mtime)
//!   dir/ dir/inner  empty/
//! ptree/           the root of prefix %p% (include %p%)
//! othertree/       another group's include (hosts n1 n3, other key)
//! tree2/           a sibling whose name starts with the include's
//! ```
//!
//! Hosts: n2 is the group's peer (the hostile client), n3 is only in the
//! other group, n4 is a slave of the group, n5 is in no group.
//!
//! Each case takes a checksum of the whole `<base>` (lstat, never following
//! symlinks: type, mode, owner, size, link count, inode, mtime and ctime in
//! nanoseconds, SHA-256 of regular files, link targets; the server's
//! database compared by content), runs one or a few connections, waits until
//! the server's session processes have ended, and compares: only the paths
//! the case allows may differ (a refused request: nothing; a failed
//! transfer: only the times of tree/, where its temporary file came and
//! went), no temporary file (`.NAME.XXXXXX`) may exist anywhere, no reply
//! may contain the outside files' content, and the daemon must still run.
//! After a case that changed anything the area and the database are
//! rebuilt, so every case starts from the same state. Every test starts and
//! ends with a good client (SIG, PATCH of a new file, BYE).
//!
//! Besides the commands of the real protocol, the suite tries our pipelining
//! extension (X-PUT, X-STAT) and a directory swapped for a symlink while a
//! PATCH into it waits for its delta (by a second session, and on disk).
//!
//! Expected replies (after the path-safety work): invalid names →
//! `Permission denied!`; a change through a symlinked directory → an error
//! line; SIG through a symlinked directory → `OK (not_found).`, `---`,
//! `octet-stream 0`, `OK (cmd_finished).`; GETTM/GETSZ → `-1`; TYPE → no
//! content. Idle connections: `CSYNC2_IDLE_TIMEOUT=2` in the server's
//! environment, closed within [`IDLE_TEST_MAX`]; the default (600 s) is a unit
//! test.
//!
//! Needs root (mount namespaces, /etc/hosts, chown). `CSYNC2_DIFF_KEEP=1`
//! keeps `/tmp/c2net-<pid>-hostile-*/` (with `report.txt`). Run with
//! `cargo test --release --test net_hostile -- --nocapture` to see every
//! case's reply.

mod common;
mod net;

use common::{show, url_encode};
use net::*;
use sha2::{Digest, Sha256};
use socket2::{Domain, Protocol, SockRef, Socket, Type};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpStream};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// Constants
// ---------------------------------------------------------------------------

/// Hosts `n<k>.hostile.test` at 127.61.67.<k>, ports `port(67, slot)`.
const TEST_A: &str = "hostile";
const IDX_A: Net = Net::Hostile;
/// More ports: `n<k>.hostileb.test` at 127.61.68.<k>.
const TEST_B: &str = "hostileb";
const IDX_B: Net = Net::Hostileb;

const NHOSTS: u8 = 5;
/// n1: our server
const SERVER: usize = 0;
/// n2: a peer of group g (knows its key)
const CLIENT: usize = 1;
/// n3: only in group `other`
const OTHER: usize = 2;
/// n4: a slave of group g
const SLAVE: usize = 3;
/// n5: in no group
const STRANGER: usize = 4;

const KEY_G: &str = common::KEY1;
const KEY_H: &str = common::KEY2;

/// The environment variable that shortens the idle timeout (seconds).
const IDLE_ENV: &str = "CSYNC2_IDLE_TIMEOUT";
/// Its value in the idle tests …
const IDLE_TEST_SECS: &str = "2";
/// … and how soon the server must then have closed an idle connection.
/// (A write that fills the socket buffer waits once for part of it to go,
/// then once more for nothing: twice the timeout.)
const IDLE_TEST_MAX: Duration = Duration::from_secs(10);
/// How long a reply (or the end of a connection) may take.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a session process may live on after its client went away.
const SESSION_END_MAX: Duration = Duration::from_secs(10);

/// outside/secret: distinctive content, size and mtime
const SECRET_MARK: &[u8] = b"TOP-SECRET-";
const SECRET_SIZE: usize = 4321;
const SECRET_MTIME: i64 = 1_234_567_890;
/// outside/dir/inner
const INNER_MARK: &[u8] = b"INNER-SECRET-";
/// what a hostile PATCH writes when it is (wrongly) accepted
const HOSTILE: &[u8] = b"HOSTILE-WRITE\n";
/// tree/file
const INSIDE: &[u8] = b"inside file, old content\n";

const CFG: &str = "nossl * *;
group g {
    host {N1} {N2} ({N4});
    key g.key;
    include {SYNC}/tree;
    include %p%;
    exclude {SYNC}/tree/excl;
}
group other {
    host {N1} {N3};
    key h.key;
    include {SYNC}/othertree;
}
prefix p {
    on {N1}: {SYNC}/ptree;
}
";

/// Every command of the real protocol that names a file.
const ALL: [&str; 17] = [
    "SIG", "TYPE", "GETTM", "GETSZ", "PATCH", "MKDIR", "MKCHR", "MKBLK", "MKFIFO", "MKLINK",
    "MKSOCK", "DEL", "SETOWN", "SETMOD", "SETIME", "FLUSH", "MARK",
];
/// The reading commands.
const READS: [&str; 4] = ["SIG", "TYPE", "GETTM", "GETSZ"];
/// The commands that change the file system.
const WRITES: [&str; 11] = [
    "PATCH", "MKDIR", "MKCHR", "MKBLK", "MKFIFO", "MKLINK", "MKSOCK", "DEL", "SETOWN", "SETMOD",
    "SETIME",
];

const NOT_FOUND: &[u8] = b"OK (not_found).\n---\noctet-stream 0\nOK (cmd_finished).\n";
const MINUS_ONE: &[u8] = b"OK (data_follows).\n-1\n";
const DATA_FOLLOWS: &[u8] = b"OK (data_follows).\n";
const DENIED: &str = "Permission denied!";

/// The arguments after the file name that a hostile request sends.
fn extra_for(cmd: &str) -> &'static str {
    match cmd {
        "MKLINK" => "/etc",
        "MKCHR" | "MKBLK" => "259",
        "SETOWN" => "4242 4242",
        // 04777
        "SETMOD" => "2559",
        "SETIME" => "12345",
        _ => "",
    }
}

fn secret_content() -> Vec<u8> {
    let mut v = SECRET_MARK.to_vec();
    v.extend(pseudo_text(SECRET_SIZE - SECRET_MARK.len(), 67));
    v
}

// ---------------------------------------------------------------------------
// The area
// ---------------------------------------------------------------------------

/// Builds the area (the server's private tree) in `a`; `sync` is where it is
/// mounted in the server's namespace; `big`: size of tree/big (0: none).
fn build_area(a: &Path, sync: &str, big: usize) {
    let p = |rel: &str| a.join(rel);
    let file = |rel: &str, data: &[u8], mode: u32, mtime: i64| {
        std::fs::write(p(rel), data).unwrap_or_else(|e| panic!("write {rel}: {e}"));
        common::set_mode(&p(rel), mode);
        common::set_mtime(&p(rel), mtime);
    };
    let dir = |rel: &str, mode: u32| {
        std::fs::create_dir(p(rel)).unwrap_or_else(|e| panic!("mkdir {rel}: {e}"));
        common::set_mode(&p(rel), mode);
    };
    let link = |rel: &str, target: &str| {
        std::os::unix::fs::symlink(target, p(rel)).unwrap_or_else(|e| panic!("ln {rel}: {e}"));
        common::set_mtime(&p(rel), DIR_MTIME);
    };
    std::os::unix::fs::lchown(a, Some(0), Some(0)).expect("chown area");
    common::set_mode(a, 0o755);
    dir("tree", 0o755);
    file("tree/file", INSIDE, 0o644, T0);
    dir("tree/d", 0o755);
    file("tree/d/f", b"d/f old content\n", 0o644, T0);
    dir("tree/excl", 0o755);
    file("tree/excl/f", b"excluded\n", 0o644, T0);
    link("tree/link", "../outside");
    link("tree/abs", &format!("{sync}/outside"));
    link("tree/flink", "../outside/secret");
    link("tree/dlink", "d");
    link("tree/dangling", "../outside/created");
    link("tree/dangabs", &format!("{sync}/outside/created2"));
    if big > 0 {
        file("tree/big", &pseudo_random(big, 7), 0o644, T0);
    }
    dir("outside", 0o755);
    file("outside/secret", &secret_content(), 0o600, SECRET_MTIME);
    dir("outside/dir", 0o755);
    let mut inner = INNER_MARK.to_vec();
    inner.extend_from_slice(b"inner file\n");
    file("outside/dir/inner", &inner, 0o644, SECRET_MTIME);
    dir("outside/empty", 0o700);
    dir("ptree", 0o755);
    file("ptree/pf", b"prefix file\n", 0o644, T0);
    dir("othertree", 0o755);
    file("othertree/of", b"other group's file\n", 0o644, T0);
    dir("tree2", 0o755);
    file("tree2/t2", b"sibling\n", 0o644, T0);
    for d in [
        "tree/d",
        "tree/excl",
        "tree",
        "outside/dir",
        "outside/empty",
        "outside",
        "ptree",
        "othertree",
        "tree2",
    ] {
        common::set_mtime(&p(d), DIR_MTIME);
    }
    common::set_mtime(a, DIR_MTIME);
}

/// Empties the area (not the directory itself: it is a mount source).
fn clear_dir(a: &Path) {
    for e in std::fs::read_dir(a).expect("read area").flatten() {
        let p = e.path();
        let md = std::fs::symlink_metadata(&p).expect("lstat");
        if md.is_dir() {
            std::fs::remove_dir_all(&p).unwrap_or_else(|e| panic!("rm -r {}: {e}", p.display()));
        } else {
            std::fs::remove_file(&p).unwrap_or_else(|e| panic!("rm {}: {e}", p.display()));
        }
    }
}

// ---------------------------------------------------------------------------
// Checksum of the whole base directory
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq)]
struct Ent {
    kind: &'static str,
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    sha: Option<String>,
    target: Option<Vec<u8>>,
}

impl Ent {
    fn bare(kind: &'static str) -> Ent {
        Ent {
            kind,
            mode: 0,
            uid: 0,
            gid: 0,
            nlink: 0,
            ino: 0,
            size: 0,
            mtime: (0, 0),
            ctime: (0, 0),
            sha: None,
            target: None,
        }
    }

    fn describe(&self) -> String {
        let mut s = format!(
            "{} mode={:o} uid={} gid={} size={} nlink={} ino={} mtime={}.{:09} ctime={}.{:09}",
            self.kind,
            self.mode,
            self.uid,
            self.gid,
            self.size,
            self.nlink,
            self.ino,
            self.mtime.0,
            self.mtime.1,
            self.ctime.0,
            self.ctime.1
        );
        if let Some(h) = &self.sha {
            let _ = write!(s, " sha256={}…", &h[..16]);
        }
        if let Some(t) = &self.target {
            let _ = write!(s, " -> {}", show(t));
        }
        s
    }
}

fn sha256_file(p: &Path) -> String {
    let mut h = Sha256::new();
    match std::fs::File::open(p) {
        Ok(mut f) => {
            let mut buf = vec![0u8; 1 << 20];
            loop {
                match f.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => h.update(&buf[..n]),
                    Err(e) => return format!("<read error {e}>"),
                }
            }
        }
        Err(e) => return format!("<open error {e}>"),
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Path (relative to the base, bytes) → entry.
type Sum = BTreeMap<Vec<u8>, Ent>;

/// What the walk treats specially: the database directories (entry names
/// only; the databases are compared by content) and the run directory (the
/// harness writes command outputs there).
struct SumSpec<'a> {
    db_dirs: &'a [PathBuf],
    out_dir: &'a Path,
}

fn checksum(base: &Path, spec: &SumSpec) -> Sum {
    let mut s = Sum::new();
    sum_walk(base, b"", spec, &mut s);
    s
}

fn join_rel(rel: &[u8], name: &[u8]) -> Vec<u8> {
    let mut r = rel.to_vec();
    if !r.is_empty() {
        r.push(b'/');
    }
    r.extend_from_slice(name);
    r
}

fn sum_walk(path: &Path, rel: &[u8], spec: &SumSpec, s: &mut Sum) {
    let Ok(md) = std::fs::symlink_metadata(path) else {
        return;
    };
    let ft = md.file_type();
    let special = spec.db_dirs.iter().any(|d| d == path) || path == spec.out_dir;
    let mut e = Ent {
        kind: kind_of(ft),
        mode: md.mode(),
        uid: md.uid(),
        gid: md.gid(),
        nlink: md.nlink(),
        ino: md.ino(),
        size: md.size(),
        mtime: (md.mtime(), md.mtime_nsec()),
        ctime: (md.ctime(), md.ctime_nsec()),
        sha: ft.is_file().then(|| sha256_file(path)),
        target: if ft.is_symlink() {
            std::fs::read_link(path)
                .ok()
                .map(|t| t.as_os_str().as_bytes().to_vec())
        } else {
            None
        },
    };
    if special {
        e.size = 0;
        e.nlink = 0;
        e.mtime = (0, 0);
        e.ctime = (0, 0);
    }
    s.insert(rel.to_vec(), e);
    if !ft.is_dir() {
        return;
    }
    let mut names: Vec<Vec<u8>> = std::fs::read_dir(path)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().as_bytes().to_vec())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let is_db = spec.db_dirs.iter().any(|d| d == path);
    for n in names {
        let p = path.join(std::ffi::OsStr::from_bytes(&n));
        let r = join_rel(rel, &n);
        if is_db {
            if [&b"-journal"[..], b"-wal", b"-shm"]
                .iter()
                .any(|x| n.ends_with(x))
            {
                continue;
            }
            let k = std::fs::symlink_metadata(&p)
                .map(|m| kind_of(m.file_type()))
                .unwrap_or("?");
            s.insert(r, Ent::bare(k));
            continue;
        }
        if path == spec.out_dir && std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_file()) {
            continue;
        }
        sum_walk(&p, &r, spec, s);
    }
}

/// Differences outside `allow` (`x` allows the entry x, `x/` allows x and
/// everything below it, `x~` allows only new mtime and ctime of x: a
/// directory in which a temporary file came and went).
fn diff_sums(a: &Sum, b: &Sum, allow: &[Vec<u8>]) -> Vec<String> {
    let allowed = |k: &[u8]| {
        allow.iter().any(|x| {
            if let Some(dir) = x.strip_suffix(b"/") {
                k == dir || k.starts_with(x)
            } else {
                k == x.as_slice()
            }
        })
    };
    let times_only = |k: &[u8], x: &Ent, y: &Ent| {
        let mut t = k.to_vec();
        t.push(b'~');
        allow.contains(&t)
            && Ent {
                mtime: y.mtime,
                ctime: y.ctime,
                ..x.clone()
            } == *y
    };
    let keys: BTreeSet<&Vec<u8>> = a.keys().chain(b.keys()).collect();
    let mut v = Vec::new();
    for k in keys {
        if allowed(k) {
            continue;
        }
        match (a.get(k), b.get(k)) {
            (Some(x), Some(y)) if x == y || times_only(k, x, y) => {}
            (Some(x), Some(y)) => v.push(format!(
                "{} changed: was {}, now {}",
                show(k),
                x.describe(),
                y.describe()
            )),
            (Some(x), None) => v.push(format!("{} disappeared (was {})", show(k), x.describe())),
            (None, Some(y)) => v.push(format!("{} appeared: {}", show(k), y.describe())),
            (None, None) => {}
        }
    }
    v
}

/// Entries named like the server's temporary files: `.NAME.XXXXXX`.
fn temp_names(s: &Sum) -> Vec<String> {
    s.keys()
        .filter(|k| {
            let name = k.rsplit(|&b| b == b'/').next().unwrap_or(k);
            let n = name.len();
            name.first() == Some(&b'.')
                && n >= 9
                && name[n - 7] == b'.'
                && name[n - 6..].iter().all(|c| c.is_ascii_alphanumeric())
        })
        .map(|k| show(k))
        .collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// What a reply must never contain: the outside files' content, the
/// secret's check text.
fn leaks(got: &[u8]) -> Vec<String> {
    let size = format!("size={SECRET_SIZE}");
    let mut v = Vec::new();
    for (m, what) in [
        (SECRET_MARK, "the content of outside/secret"),
        (INNER_MARK, "the content of outside/dir/inner"),
        (size.as_bytes(), "the check text of outside/secret"),
    ] {
        if contains(got, m) {
            v.push(format!("LEAK: the replies contain {what}"));
        }
    }
    v
}

fn cut(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_string();
    }
    let mut i = n;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    format!("{}… ({} bytes)", &s[..i], s.len())
}

// ---------------------------------------------------------------------------
// The raw protocol client
// ---------------------------------------------------------------------------

trait Io: Read + Write + Send {}
impl<T: Read + Write + Send> Io for T {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// EOF or reset
    Closed,
    /// nothing within the time allowed
    Timeout,
}

impl End {
    fn text(self) -> &'static str {
        match self {
            End::Closed => "<connection closed>",
            End::Timeout => "<no reply within the time allowed>",
        }
    }
}

/// One connection from a node's address: plain text, or TLS after `SSL`.
struct Wire {
    tcp: TcpStream,
    io: Box<dyn Io>,
    /// received, not yet consumed
    buf: Vec<u8>,
    /// everything received
    got: Vec<u8>,
}

impl Wire {
    fn connect(src: Ipv4Addr, dst: SocketAddrV4, rcvbuf: Option<usize>) -> Result<Wire, String> {
        let sock = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))
            .map_err(|e| format!("socket: {e}"))?;
        if let Some(n) = rcvbuf {
            sock.set_recv_buffer_size(n)
                .map_err(|e| format!("SO_RCVBUF: {e}"))?;
        }
        sock.bind(&SocketAddr::V4(SocketAddrV4::new(src, 0)).into())
            .map_err(|e| format!("bind to {src}: {e}"))?;
        sock.connect_timeout(&SocketAddr::V4(dst).into(), Duration::from_secs(5))
            .map_err(|e| format!("connect to {dst}: {e}"))?;
        let tcp: TcpStream = sock.into();
        let _ = tcp.set_nodelay(true);
        tcp.set_read_timeout(Some(REPLY_TIMEOUT))
            .map_err(|e| e.to_string())?;
        let io = Box::new(tcp.try_clone().map_err(|e| e.to_string())?);
        Ok(Wire {
            tcp,
            io,
            buf: Vec::new(),
            got: Vec::new(),
        })
    }

    fn fill(&mut self) -> Result<(), End> {
        let mut b = vec![0u8; 64 * 1024];
        loop {
            match self.io.read(&mut b) {
                Ok(0) => return Err(End::Closed),
                Ok(n) => {
                    self.buf.extend_from_slice(&b[..n]);
                    self.got.extend_from_slice(&b[..n]);
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(End::Timeout);
                }
                Err(_) => return Err(End::Closed),
            }
        }
    }

    /// One line, without its LF.
    fn line(&mut self) -> Result<Vec<u8>, End> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let l = self.buf[..i].to_vec();
                self.buf.drain(..=i);
                return Ok(l);
            }
            self.fill()?;
        }
    }

    fn exact(&mut self, n: usize) -> Result<Vec<u8>, End> {
        while self.buf.len() < n {
            self.fill()?;
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// A blob: `octet-stream N` and N bytes (N <= 0: nothing follows).
    fn blob(&mut self) -> Result<Vec<u8>, End> {
        let h = self.line()?;
        let n = h
            .strip_prefix(b"octet-stream ".as_slice())
            .and_then(|n| std::str::from_utf8(n).ok())
            .and_then(|n| n.trim().parse::<i64>().ok())
            .ok_or(End::Closed)?;
        if n <= 0 {
            return Ok(Vec::new());
        }
        self.exact(n as usize)
    }

    fn send(&mut self, b: &[u8]) -> Result<(), End> {
        self.io
            .write_all(b)
            .and_then(|_| self.io.flush())
            .map_err(|_| End::Closed)
    }

    /// Reads until the server closes the connection, for at most `max`:
    /// Ok(how long it took).
    fn eof_within(&mut self, max: Duration) -> Result<Duration, End> {
        let t0 = Instant::now();
        loop {
            let left = max.saturating_sub(t0.elapsed());
            if left.is_zero() {
                let _ = self.tcp.set_read_timeout(Some(REPLY_TIMEOUT));
                return Err(End::Timeout);
            }
            let _ = self.tcp.set_read_timeout(Some(left));
            match self.fill() {
                Ok(()) => {}
                Err(End::Closed) => {
                    let _ = self.tcp.set_read_timeout(Some(REPLY_TIMEOUT));
                    return Ok(t0.elapsed());
                }
                Err(End::Timeout) => {}
            }
        }
    }

    /// CONFIG (default configuration) and HELLO.
    fn start(&mut self, name: &str) -> Result<(), String> {
        self.config()?;
        self.hello(name)
    }

    fn config(&mut self) -> Result<(), String> {
        self.expect_line(b"CONFIG \n", "OK (cmd_finished).")
    }

    fn hello(&mut self, name: &str) -> Result<(), String> {
        self.expect_line(format!("HELLO {name}\n").as_bytes(), "OK (cmd_finished).")
    }

    fn expect_line(&mut self, req: &[u8], want: &str) -> Result<(), String> {
        self.send(req)
            .map_err(|e| format!("sending {}: {}", show(req), e.text()))?;
        match self.line() {
            Ok(l) if l == want.as_bytes() => Ok(()),
            Ok(l) => Err(format!(
                "{} was answered `{}` (expected `{want}`)",
                show(req).trim_end_matches("\\n"),
                show(&l)
            )),
            Err(e) => Err(format!("no answer to {}: {}", show(req), e.text())),
        }
    }

    /// Half-closes and expects the server to end the session.
    fn finish(&mut self) -> Vec<String> {
        let _ = self.tcp.shutdown(Shutdown::Write);
        match self.eof_within(REPLY_TIMEOUT) {
            Ok(_) => Vec::new(),
            Err(_) => vec![format!(
                "the server kept the connection open {REPLY_TIMEOUT:?} after the client's EOF"
            )],
        }
    }

    /// Closes with FIN (`rst` false) or with a reset.
    fn drop_now(self, rst: bool) {
        if rst {
            let _ = SockRef::from(&self.tcp).set_linger(Some(Duration::ZERO));
        } else {
            let _ = self.tcp.shutdown(Shutdown::Both);
        }
    }

    /// `SSL`, `OK (activating_ssl).`, then a TLS handshake with `id`.
    fn start_tls(&mut self, id: &TlsId) -> Result<(), String> {
        self.expect_line(b"SSL\n", "OK (activating_ssl).")?;
        let cfg = tls_config(id)?;
        let name = rustls::pki_types::ServerName::try_from("csync2".to_string())
            .map_err(|e| e.to_string())?;
        let conn = rustls::ClientConnection::new(cfg, name).map_err(|e| e.to_string())?;
        let sock = self.tcp.try_clone().map_err(|e| e.to_string())?;
        let mut s = rustls::StreamOwned::new(conn, sock);
        while s.conn.is_handshaking() {
            s.conn
                .complete_io(&mut s.sock)
                .map_err(|e| format!("TLS handshake: {e}"))?;
        }
        self.io = Box::new(s);
        Ok(())
    }
}

/// A TLS client identity (PEM files).
#[derive(Clone, Debug)]
struct TlsId {
    cert: PathBuf,
    key: PathBuf,
}

#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn tls_config(id: &TlsId) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cert_pem = std::fs::read(&id.cert).map_err(|e| e.to_string())?;
    let key_pem = std::fs::read(&id.key).map_err(|e| e.to_string())?;
    let certs = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| e.to_string())?
        .ok_or("no private key")?;
    let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_client_auth_cert(certs, key)
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(cfg))
}

/// A delta that rebuilds `data` from literals only (any basis).
fn literal_delta(data: &[u8]) -> Vec<u8> {
    let mut d = vec![0x72, 0x73, 0x02, 0x36];
    for c in data.chunks(1 << 20) {
        d.push(0x43);
        d.extend_from_slice(&(c.len() as u32).to_be_bytes());
        d.extend_from_slice(c);
    }
    d.push(0);
    d
}

/// `octet-stream N` and the bytes.
fn blob(data: &[u8]) -> Vec<u8> {
    let mut v = format!("octet-stream {}\n", data.len()).into_bytes();
    v.extend_from_slice(data);
    v
}

/// One request and everything it got back.
#[derive(Default)]
struct Attempt {
    /// the first reply line
    first: Vec<u8>,
    /// what followed it: TYPE's data, GETTM/GETSZ's number, SIG's check
    /// text, PATCH's final line
    rest: Vec<u8>,
    /// every byte received for this request
    got: Vec<u8>,
    /// how the connection ended, if it did
    end: Option<End>,
    /// the request was carried out (a final OK)
    accepted: bool,
}

impl Attempt {
    fn summary(&self) -> String {
        let mut s = format!("`{}`", cut(&show(&self.got), 300));
        if let Some(e) = self.end {
            let _ = write!(s, " {}", e.text());
        }
        s
    }
}

/// Sends `line` (and, for a PATCH that gets `OK (send_data).`, a delta that
/// writes `payload`) and reads the whole answer as the command defines it.
fn attempt(w: &mut Wire, line: &[u8], payload: &[u8]) -> Attempt {
    let start = w.got.len();
    let cmd = line
        .split(|&b| b == b' ' || b == b'\n')
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    let mut a = Attempt::default();
    let r = (|| -> Result<(), End> {
        w.send(line)?;
        a.first = w.line()?;
        let first = a.first.clone();
        a.accepted = first.starts_with(b"OK");
        match cmd.as_slice() {
            b"PATCH" if first == b"OK (send_data)." => {
                a.accepted = false;
                w.blob()?;
                w.send(&blob(&literal_delta(payload)))?;
                a.rest = w.line()?;
                a.accepted = a.rest.starts_with(b"OK");
            }
            b"SIG" if first.starts_with(b"OK (") => {
                a.rest = w.line()?;
                w.blob()?;
                let fin = w.line()?;
                a.accepted = fin.starts_with(b"OK");
            }
            b"TYPE" if first == b"OK (data_follows)." => {
                let _ = w.eof_within(REPLY_TIMEOUT);
                a.rest = w.buf.drain(..).collect();
                return Err(End::Closed);
            }
            b"GETTM" | b"GETSZ" if first == b"OK (data_follows)." => {
                a.rest = w.line()?;
            }
            b"X-STAT" if first == b"OK (data_follows)." => {
                a.rest = w.line()?;
                w.line()?;
            }
            _ => {}
        }
        Ok(())
    })();
    if let Err(e) = r {
        a.end = Some(e);
    }
    a.got = w.got[start..].to_vec();
    a
}

/// A request line: `CMD KEY NAME [EXTRA]`; an empty name is left out (and
/// its extra arguments too, which would become the name).
fn req_line(cmd: &str, key: &str, name: &[u8], extra: &str) -> Vec<u8> {
    let mut v = format!("{cmd} {key}").into_bytes();
    if !name.is_empty() {
        v.push(b' ');
        v.extend_from_slice(name);
        if !extra.is_empty() {
            v.push(b' ');
            v.extend_from_slice(extra.as_bytes());
        }
    }
    v.push(b'\n');
    v
}

fn expect_first(a: &Attempt, want: &str) -> Vec<String> {
    if a.first == want.as_bytes() {
        Vec::new()
    } else {
        vec![format!("expected `{want}`, got {}", a.summary())]
    }
}

fn expect_got(a: &Attempt, want: &[u8]) -> Vec<String> {
    if a.got == want {
        Vec::new()
    } else {
        vec![format!("expected `{}`, got {}", show(want), a.summary())]
    }
}

/// An error line (not `OK`), not just a closed connection.
fn expect_refused(a: &Attempt) -> Vec<String> {
    if a.first.starts_with(b"OK") || a.accepted || a.first.is_empty() {
        vec![format!("expected an error line, got {}", a.summary())]
    } else {
        Vec::new()
    }
}

// ---------------------------------------------------------------------------
// The fixture: one server, its area, the cases
// ---------------------------------------------------------------------------

struct Setup {
    test: &'static str,
    idx: Net,
    slot: u16,
    label: &'static str,
    /// size of tree/big (0: none)
    big: usize,
    /// extra environment of the server
    env: Vec<(&'static str, String)>,
    tls: bool,
}

impl Setup {
    fn new(label: &'static str, slot: u16) -> Setup {
        Setup {
            test: TEST_A,
            idx: IDX_A,
            slot,
            label,
            big: 0,
            env: Vec::new(),
            tls: false,
        }
    }
}

/// Which changes a case allows: area-relative paths (`x` the entry, `x/`
/// the entry and everything below), and whether the database may change.
struct Rules {
    allow: Vec<String>,
    db: bool,
}

impl Rules {
    fn strict() -> Rules {
        Rules {
            allow: Vec::new(),
            db: false,
        }
    }
    /// A failed transfer into tree/: its temporary file may come and go.
    fn transfer() -> Rules {
        Rules::allow(&["tree~"], false)
    }
    fn allow(paths: &[&str], db: bool) -> Rules {
        Rules {
            allow: paths.iter().map(|s| s.to_string()).collect(),
            db,
        }
    }
}

/// What a case observed on the wire.
struct Out {
    /// every byte the server sent in this case
    got: Vec<u8>,
    /// how it went, for the report
    summary: String,
    problems: Vec<String>,
}

impl Out {
    fn of(a: &Attempt, problems: Vec<String>) -> Out {
        Out {
            got: a.got.clone(),
            summary: a.summary(),
            problems,
        }
    }
    fn failed(problem: String) -> Out {
        Out {
            got: Vec::new(),
            summary: String::new(),
            problems: vec![problem],
        }
    }
}

struct CaseResult {
    label: String,
    summary: String,
    problems: Vec<String>,
}

/// A request of one connection: from node `src`, after CONFIG and HELLO.
struct Req {
    src: usize,
    cmd: &'static str,
    key: &'static str,
    /// the name as sent (URL-encoded)
    name: Vec<u8>,
    extra: String,
}

impl Req {
    /// A hostile request of the group's peer with the group's key.
    fn new(cmd: &'static str, name: Vec<u8>) -> Req {
        Req {
            src: CLIENT,
            cmd,
            key: KEY_G,
            name,
            extra: extra_for(cmd).to_string(),
        }
    }
    fn by(mut self, src: usize) -> Req {
        self.src = src;
        self
    }
    fn key(mut self, key: &'static str) -> Req {
        self.key = key;
        self
    }
    fn line(&self) -> Vec<u8> {
        req_line(self.cmd, self.key, &self.name, &self.extra)
    }
}

struct Fx {
    label: String,
    run: Run,
    base: PathBuf,
    sync: String,
    area: PathBuf,
    big: usize,
    env: Vec<(&'static str, String)>,
    daemon: Option<Proc>,
    /// entries of the base directory at set-up
    top: BTreeSet<OsString>,
    /// TLS client identities by node (TLS fixtures)
    tls: BTreeMap<usize, TlsId>,
    results: Vec<CaseResult>,
    goods: usize,
    restores: usize,
}

impl Fx {
    fn new(su: Setup) -> Fx {
        let hs = hosts(su.test, su.idx, NHOSTS);
        let base = base_dir(su.label);
        let mode = Mode {
            tag: 'h',
            client: Imp::Ours,
            server: Imp::Ours,
        };
        let mut run = Run::new(su.label, mode, &hs, &[SERVER], &base, port(su.idx, su.slot));
        let cfg = if su.tls {
            CFG.replace("nossl * *;\n", "")
        } else {
            CFG.to_string()
        };
        run.config(&cfg);
        let area = run.nodes[SERVER].tree.clone();
        let sync = run.sync.to_string_lossy().into_owned();
        build_area(&area, &sync, su.big);
        let mut tls = BTreeMap::new();
        if su.tls {
            let dir = base.join("certs");
            let c = host_cert(&dir, &hs[SERVER], 0, KeyKind::P256);
            install(&run.nodes[SERVER], &c);
            for i in [CLIENT, OTHER, SLAVE, STRANGER] {
                let c = host_cert(&dir, &hs[i], i, KeyKind::P256);
                tls.insert(
                    i,
                    TlsId {
                        cert: c.cert,
                        key: c.key,
                    },
                );
            }
        }
        let s = run.nodes[SERVER].s("");
        run.cmd_ok(SERVER, vec!["-cIr".into(), s], 0);
        assert!(
            run.problems.is_empty(),
            "set-up of {} failed: {:?}",
            su.label,
            run.problems
        );
        let top = std::fs::read_dir(&base)
            .expect("read base")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        let mut fx = Fx {
            label: su.label.to_string(),
            run,
            base,
            sync,
            area,
            big: su.big,
            env: su.env,
            daemon: None,
            top,
            tls,
            results: Vec::new(),
            goods: 0,
            restores: 0,
        };
        fx.start_daemon();
        fx
    }

    fn start_daemon(&mut self) {
        let n = &self.run.nodes[SERVER];
        let mut cmd = n.command(&["-ii".into(), "-v".into()]);
        cmd.current_dir(&self.base);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let p = Proc::spawn(cmd, format!("{} daemon", self.label));
        let p = await_listening(p, n.addr, n.port, Duration::from_millis(5)).unwrap_or_else(|d| {
            panic!(
                "[{}] our -ii server did not start listening on {}:{}: {}\n{}",
                self.label,
                n.addr,
                n.port,
                d.status(),
                show(&d.stderr)
            )
        });
        self.daemon = Some(p);
    }

    fn dst(&self) -> SocketAddrV4 {
        let n = &self.run.nodes[SERVER];
        SocketAddrV4::new(n.addr, n.port)
    }

    fn addr(&self, i: usize) -> Ipv4Addr {
        self.run.nodes[i].addr
    }

    fn name(&self, i: usize) -> String {
        self.run.nodes[i].name.clone()
    }

    /// `<sync>/<rel>`, URL-encoded for the wire.
    fn w(&self, rel: &str) -> Vec<u8> {
        url_encode(format!("{}/{rel}", self.sync).as_bytes())
    }

    /// A connection from node `src` (TLS fixtures: after the handshake).
    fn connect(&self, src: usize) -> Result<Wire, String> {
        let mut w = Wire::connect(self.addr(src), self.dst(), None)?;
        if let Some(id) = self.tls.get(&src) {
            w.start_tls(id)?;
        }
        Ok(w)
    }

    /// A connection from node `src` after CONFIG and `HELLO <its name>`.
    fn session(&self, src: usize) -> Result<Wire, String> {
        let mut w = self.connect(src)?;
        w.start(&self.name(src))?;
        Ok(w)
    }

    fn sum(&self) -> Sum {
        let db_dirs: Vec<PathBuf> = self.run.nodes.iter().map(|n| n.db.clone()).collect();
        checksum(
            &self.base,
            &SumSpec {
                db_dirs: &db_dirs,
                out_dir: &self.run.dir,
            },
        )
    }

    fn db(&self) -> Result<common::DbDump, String> {
        self.run.nodes[SERVER].dump()
    }

    fn daemon_pid(&self) -> u32 {
        self.daemon.as_ref().map(|p| p.pid).unwrap_or(0)
    }

    /// Waits until the daemon has no session process left.
    fn sessions_end(&self, max: Duration) -> bool {
        let pid = self.daemon_pid();
        common::poll_until(Instant::now() + max, Duration::from_millis(2), || {
            session_pids(pid).is_empty()
        })
    }

    /// Area-relative paths → base-relative checksum keys.
    fn keys(&self, allow: &[String]) -> Vec<Vec<u8>> {
        let prefix = self
            .area
            .strip_prefix(&self.base)
            .expect("area below base")
            .as_os_str()
            .as_bytes()
            .to_vec();
        allow
            .iter()
            .map(|a| join_rel(&prefix, a.as_bytes()))
            .collect()
    }

    /// One case: `f` talks to the server; afterwards nothing outside
    /// `rules` may have changed.
    fn case(&mut self, label: &str, rules: Rules, f: impl FnOnce(&mut Fx) -> Out) {
        let before = self.sum();
        let db0 = self.db();
        let mut out = f(self);
        out.problems.extend(leaks(&out.got));
        if !self.sessions_end(SESSION_END_MAX) {
            out.problems.push(format!(
                "the session process was still running {SESSION_END_MAX:?} after the client \
                 went away (pids {:?})",
                session_pids(self.daemon_pid())
            ));
        }
        let after = self.sum();
        let db1 = self.db();
        for d in diff_sums(&before, &after, &self.keys(&rules.allow)) {
            out.problems.push(d);
        }
        for t in temp_names(&after) {
            out.problems
                .push(format!("temporary file left behind: {t}"));
        }
        if !rules.db && db0 != db1 {
            let d = match (&db0, &db1) {
                (Ok(a), Ok(b)) => common::diff_dumps(a, b),
                (a, b) => format!(
                    "before: {:?}, after: {:?}",
                    a.as_ref().map(|_| "exists"),
                    b.as_ref().map(|_| "exists")
                ),
            };
            out.problems
                .push(format!("the server's database changed:\n{}", d.trim_end()));
        }
        let dead = self.daemon.as_mut().is_none_or(|p| p.exited());
        if dead {
            let d = self.daemon.take().map(|p| p.kill());
            out.problems.push(format!(
                "the -ii server died: {}; stderr tail: {}",
                d.as_ref().map(|d| d.status()).unwrap_or_default(),
                d.as_ref()
                    .map(|d| cut(&show(&d.stderr), 2000))
                    .unwrap_or_default()
            ));
            self.start_daemon();
        } else if !listening(self.addr(SERVER), self.run.nodes[SERVER].port) {
            out.problems
                .push("the -ii server no longer listens".to_string());
        }
        let pass = out.problems.is_empty();
        eprintln!(
            "[{}] {} {label}: {}",
            self.label,
            if pass { "PASS" } else { "FAIL" },
            out.summary
        );
        for p in &out.problems {
            eprintln!("[{}]      - {}", self.label, cut(p, 2000));
        }
        self.results.push(CaseResult {
            label: label.to_string(),
            summary: out.summary,
            problems: out.problems,
        });
        if before != after || db0 != db1 {
            self.restore();
        }
    }

    /// Rebuilds the area and the database after a case that changed them.
    fn restore(&mut self) {
        self.restores += 1;
        for e in std::fs::read_dir(&self.base).expect("read base").flatten() {
            if !self.top.contains(&e.file_name()) {
                let p = e.path();
                if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
                    let _ = std::fs::remove_dir_all(&p);
                } else {
                    let _ = std::fs::remove_file(&p);
                }
            }
        }
        clear_dir(&self.area);
        build_area(&self.area, &self.sync, self.big);
        self.run.nodes[SERVER].sql("DELETE FROM dirty;");
        let s = self.run.nodes[SERVER].s("");
        let n = self.run.problems.len();
        self.run.cmd_ok(SERVER, vec!["-cIr".into(), s], 0);
        assert_eq!(
            n,
            self.run.problems.len(),
            "[{}] re-initialising the database failed: {:?}",
            self.label,
            self.run.problems
        );
    }

    /// One connection from `req.src`: CONFIG, HELLO, the request.
    fn cmd_case(
        &mut self,
        label: &str,
        req: Req,
        rules: Rules,
        check: impl FnOnce(&Attempt) -> Vec<String>,
    ) {
        self.case(label, rules, |fx| {
            let mut w = match fx.session(req.src) {
                Ok(w) => w,
                Err(e) => return Out::failed(format!("could not start the session: {e}")),
            };
            let a = attempt(&mut w, &req.line(), HOSTILE);
            let mut problems = check(&a);
            if a.end.is_none() {
                problems.extend(w.finish());
            }
            Out::of(&a, problems)
        });
    }

    /// A good client still gets served: SIG of tree/file, PATCH of a new
    /// file (its content must arrive), BYE.
    fn good(&mut self, label: &str) {
        self.goods += 1;
        let rel = format!("tree/good-{}", self.goods);
        let content = format!("good client {}\n", self.goods).into_bytes();
        let rules = Rules::allow(&["tree", &rel], true);
        self.case(label, rules, |fx| {
            let mut w = match fx.session(CLIENT) {
                Ok(w) => w,
                Err(e) => return Out::failed(format!("the good client's session: {e}")),
            };
            let mut problems = Vec::new();
            let file = fx.w("tree/file");
            let a = attempt(&mut w, &req_line("SIG", KEY_G, &file, ""), b"");
            if a.first != b"OK (data_follows)." || !contains(&a.rest, b"type=reg") || !a.accepted {
                problems.push(format!("SIG tree/file: {}", a.summary()));
            }
            let b = attempt(&mut w, &req_line("PATCH", KEY_G, &fx.w(&rel), ""), &content);
            if !b.accepted {
                problems.push(format!("PATCH {rel}: {}", b.summary()));
            }
            if let Err(e) = w.expect_line(b"BYE\n", "OK (cu_later).") {
                problems.push(e);
            }
            problems.extend(w.finish());
            match std::fs::read(fx.area.join(&rel)) {
                Ok(c) if c == content => {}
                Ok(c) => problems.push(format!("{rel} holds `{}`", show(&c))),
                Err(e) => problems.push(format!("{rel} did not arrive: {e}")),
            }
            let mut got = a.got.clone();
            got.extend_from_slice(&b.got);
            Out {
                got,
                summary: format!("SIG {} / PATCH {}", a.summary(), b.summary()),
                problems,
            }
        });
    }

    /// Stops the daemon, checks its log, and panics with every failed case.
    fn finish(mut self) {
        let p = self.daemon.take().expect("daemon");
        let d = self.run.stop_daemon(SERVER, p);
        let err = show(&d.stderr);
        let mut general = Vec::new();
        for l in d.stderr_lines() {
            if l.contains("panicked") || l.contains("RUST_BACKTRACE") {
                general.push(format!("the server log shows a panic: {l}"));
            }
        }
        for p in &self.run.problems {
            general.push(format!("harness: {p}"));
        }
        let failed: Vec<&CaseResult> = self
            .results
            .iter()
            .filter(|r| !r.problems.is_empty())
            .collect();
        let mut report = String::new();
        let _ = writeln!(
            report,
            "{}: {} cases, {} failed, {} restores",
            self.label,
            self.results.len(),
            failed.len(),
            self.restores
        );
        for r in &self.results {
            let _ = writeln!(
                report,
                "{} {}: {}",
                if r.problems.is_empty() {
                    "PASS"
                } else {
                    "FAIL"
                },
                r.label,
                r.summary
            );
            for p in &r.problems {
                let _ = writeln!(report, "     - {p}");
            }
        }
        for g in &general {
            let _ = writeln!(report, "GENERAL: {g}");
        }
        let _ = writeln!(report, "\n--- server log ---\n{}", err.replace("\\n", "\n"));
        let _ = std::fs::write(self.base.join("report.txt"), &report);
        if failed.is_empty() && general.is_empty() {
            if std::env::var_os("CSYNC2_DIFF_KEEP").is_none() {
                let _ = std::fs::remove_dir_all(&self.base);
            }
            return;
        }
        let mut msg = format!(
            "\n=== {}: {} of {} cases failed (report: {}) ===\n",
            self.label,
            failed.len(),
            self.results.len(),
            self.base.join("report.txt").display()
        );
        for r in failed {
            let _ = writeln!(msg, "FAIL {}: {}", r.label, cut(&r.summary, 400));
            for p in &r.problems {
                let _ = writeln!(msg, "     - {}", cut(p, 1500));
            }
        }
        for g in &general {
            let _ = writeln!(msg, "GENERAL: {g}");
        }
        panic!("{msg}");
    }
}

/// Live processes whose parent is `pid` (the daemon's session processes).
fn session_pids(pid: u32) -> Vec<u32> {
    if pid == 0 {
        return Vec::new();
    }
    children_with_state(pid)
        .into_iter()
        .filter(|&(_, state)| state != 'Z')
        .map(|(p, _)| p)
        .collect()
}

// ---------------------------------------------------------------------------
// Invalid names
// ---------------------------------------------------------------------------

/// Names every command must refuse with `Permission denied!`: (what, the
/// name; `{S}` is the sync root; a leading `=` marks a name sent exactly as
/// written, every other name is URL-encoded).
const BAD_NAMES: &[(&str, &str)] = &[
    ("`..` into a sibling", "{S}/tree/../outside/secret"),
    ("`..` to a new sibling name", "{S}/tree/../outside/new"),
    ("`..` two levels up", "{S}/tree/d/../../outside/secret"),
    ("`..` as the last component", "{S}/tree/.."),
    ("`..` and back into the tree", "{S}/tree/../tree/file"),
    ("`..` above the sync root", "{S}/tree/../../escape"),
    ("`..` after a prefix", "%p%/../outside/secret"),
    ("a prefix and `..`", "%p%/.."),
    ("URL-encoded `..`", "={S}/tree/%2E%2E/outside/secret"),
    (
        "URL-encoded slashes and `..`",
        "={S}/tree%2F..%2Foutside%2Fsecret",
    ),
    ("a `.` component", "{S}/tree/./file"),
    ("`.` as the last component", "{S}/tree/."),
    ("a `.` component in a new name", "{S}/tree/d/./new"),
    ("an empty component", "{S}/tree//file"),
    ("an empty component above the include", "{S}//tree/new"),
    ("a trailing slash on a directory", "{S}/tree/d/"),
    ("a trailing slash on a file", "{S}/tree/file/"),
    ("a relative name", "{R}/tree/new"),
    ("a relative name from the working directory", "tree/new"),
    ("NUL inside the name", "={S}/tree/a%00b"),
    ("NUL then `..`", "={S}/tree/file%00/../../outside/secret"),
    ("NUL at the end", "={S}/tree/new%00"),
    ("outside every include", "{S}/outside/secret"),
    ("outside every include, new", "{S}/outside/new"),
    ("a sibling sharing the include's prefix", "{S}/tree2/t2"),
    ("a new name in that sibling", "{S}/tree2/new"),
    ("the sync root above the includes", "{S}"),
    ("an excluded file", "{S}/tree/excl/f"),
    ("a new name in an excluded directory", "{S}/tree/excl/new"),
    ("an excluded directory", "{S}/tree/excl"),
    ("an unknown prefix", "%q%/x"),
    ("another group's tree", "{S}/othertree/of"),
    ("an empty name", ""),
];

/// A [`BAD_NAMES`] template as sent (`{R}`: the sync root without its
/// leading slash).
fn bad_name(fx: &Fx, template: &str) -> Vec<u8> {
    let (raw, t) = match template.strip_prefix('=') {
        Some(t) => (true, t),
        None => (false, template),
    };
    let t = t.replace("{S}", &fx.sync).replace("{R}", &fx.sync[1..]);
    if raw {
        t.into_bytes()
    } else {
        url_encode(t.as_bytes())
    }
}

#[test]
fn invalid_names_are_refused() {
    let mut fx = Fx::new(Setup::new("hostile-names", 0));
    fx.good("good client first");
    let mut names: Vec<(&str, Vec<u8>, &[&'static str])> = BAD_NAMES
        .iter()
        .map(|&(what, t)| (what, bad_name(&fx, t), &ALL[..]))
        .collect();
    names.push(("/etc/passwd", b"/etc/passwd".to_vec(), &READS[..]));
    for (what, name, cmds) in names {
        for &cmd in cmds {
            let label = format!("{cmd} with {what} (`{}`)", show(&name));
            fx.cmd_case(&label, Req::new(cmd, name.clone()), Rules::strict(), |a| {
                expect_first(a, DENIED)
            });
        }
    }
    fx.good("good client still served");
    fx.finish();
}

// ---------------------------------------------------------------------------
// Symlinks
// ---------------------------------------------------------------------------

#[test]
fn symlinks_are_not_followed() {
    let mut fx = Fx::new(Setup::new("hostile-symlinks", 1));
    fx.good("good client first");

    // reads through a symlinked directory reveal nothing
    for rel in [
        "tree/link/secret",
        "tree/abs/secret",
        "tree/link/dir/inner",
        "tree/link/dir",
        "tree/dlink/f",
    ] {
        let name = fx.w(rel);
        fx.cmd_case(
            &format!("SIG through a symlinked directory: {rel}"),
            Req::new("SIG", name.clone()),
            Rules::strict(),
            |a| expect_got(a, NOT_FOUND),
        );
        for cmd in ["GETTM", "GETSZ"] {
            fx.cmd_case(
                &format!("{cmd} through a symlinked directory: {rel}"),
                Req::new(cmd, name.clone()),
                Rules::strict(),
                |a| expect_got(a, MINUS_ONE),
            );
        }
        fx.cmd_case(
            &format!("TYPE through a symlinked directory: {rel}"),
            Req::new("TYPE", name.clone()),
            Rules::strict(),
            |a| {
                let mut p = expect_got(a, DATA_FOLLOWS);
                if a.end != Some(End::Closed) {
                    p.push("the server did not end the session after TYPE".into());
                }
                p
            },
        );
    }

    // changes through a symlinked directory are refused
    for rel in [
        "tree/link/secret",
        "tree/link/new",
        "tree/abs/secret",
        "tree/abs/new",
        "tree/link/dir",
        "tree/link/dir/inner",
        "tree/link/empty",
        "tree/dlink/f",
        "tree/dlink/new",
    ] {
        let name = fx.w(rel);
        for cmd in WRITES {
            fx.cmd_case(
                &format!("{cmd} through a symlinked directory: {rel}"),
                Req::new(cmd, name.clone()),
                Rules::strict(),
                expect_refused,
            );
        }
    }

    // the last component is a symlink to a file outside
    let flink = fx.w("tree/flink");
    fx.cmd_case(
        "SIG of a symlink to an outside file",
        Req::new("SIG", flink.clone()),
        Rules::strict(),
        |a| {
            if contains(&a.got, b"type=reg") {
                vec![format!("describes the target: {}", a.summary())]
            } else {
                Vec::new()
            }
        },
    );
    fx.cmd_case(
        "TYPE of a symlink to an outside file",
        Req::new("TYPE", flink.clone()),
        Rules::strict(),
        |_| Vec::new(),
    );
    fx.cmd_case(
        "GETSZ of a symlink to an outside file",
        Req::new("GETSZ", flink.clone()),
        Rules::strict(),
        |a| {
            if a.rest == SECRET_SIZE.to_string().as_bytes() {
                vec![format!("LEAK: the target's size: {}", a.summary())]
            } else {
                Vec::new()
            }
        },
    );
    fx.cmd_case(
        "GETTM of a symlink to an outside file",
        Req::new("GETTM", flink.clone()),
        Rules::strict(),
        |a| {
            if a.rest == SECRET_MTIME.to_string().as_bytes() {
                vec![format!("LEAK: the target's mtime: {}", a.summary())]
            } else {
                Vec::new()
            }
        },
    );
    for cmd in ["SETMOD", "SETOWN", "SETIME"] {
        fx.cmd_case(
            &format!("{cmd} of a symlink to an outside file"),
            Req::new(cmd, flink.clone()),
            Rules::allow(&["tree/flink"], true),
            |_| Vec::new(),
        );
    }
    for cmd in [
        "PATCH", "DEL", "MKDIR", "MKFIFO", "MKLINK", "MKSOCK", "MKCHR",
    ] {
        let area = fx.area.clone();
        fx.cmd_case(
            &format!("{cmd} on a symlink to an outside file"),
            Req::new(cmd, flink.clone()),
            Rules::allow(&["tree", "tree/flink/"], true),
            move |a| {
                // the link may be replaced inside the tree, nothing else
                let p = area.join("tree/flink");
                match std::fs::symlink_metadata(&p) {
                    Ok(m) if m.is_file() => {
                        let c = std::fs::read(&p).unwrap_or_default();
                        if cmd == "PATCH" && c == HOSTILE {
                            Vec::new()
                        } else {
                            vec![format!(
                                "tree/flink became a file holding `{}` ({})",
                                cut(&show(&c), 60),
                                a.summary()
                            )]
                        }
                    }
                    _ => Vec::new(),
                }
            },
        );
    }

    // dangling symlinks: nothing may be created at their targets
    for rel in ["tree/dangling", "tree/dangabs"] {
        let name = fx.w(rel);
        for cmd in ["PATCH", "SETMOD", "SETOWN", "SETIME", "MKDIR", "MKFIFO"] {
            let allow = ["tree".to_string(), format!("{rel}/")];
            let allow: Vec<&str> = allow.iter().map(String::as_str).collect();
            fx.cmd_case(
                &format!("{cmd} on a dangling symlink to outside: {rel}"),
                Req::new(cmd, name.clone()),
                Rules::allow(&allow, true),
                |_| Vec::new(),
            );
        }
        fx.cmd_case(
            &format!("TYPE of a dangling symlink: {rel}"),
            Req::new("TYPE", name.clone()),
            Rules::strict(),
            |_| Vec::new(),
        );
    }

    // the last component is a symlink to a directory outside
    for rel in ["tree/link", "tree/abs"] {
        let name = fx.w(rel);
        let allow = ["tree".to_string(), format!("{rel}/")];
        let allow: Vec<&str> = allow.iter().map(String::as_str).collect();
        for cmd in [
            "SETMOD", "SETOWN", "SETIME", "DEL", "MKDIR", "PATCH", "MKSOCK", "MKLINK",
        ] {
            fx.cmd_case(
                &format!("{cmd} on a symlink to an outside directory: {rel}"),
                Req::new(cmd, name.clone()),
                Rules::allow(&allow, true),
                |_| Vec::new(),
            );
        }
    }
    fx.good("good client still served");
    fx.finish();
}

// ---------------------------------------------------------------------------
// Protocol junk, identification and permissions
// ---------------------------------------------------------------------------

/// Whether any reply line starts with `OK`.
fn any_ok(got: &[u8]) -> bool {
    got.split(|&b| b == b'\n').any(|l| l.starts_with(b"OK"))
}

#[test]
fn junk_and_strangers_are_refused() {
    let mut fx = Fx::new(Setup::new("hostile-junk", 2));
    fx.good("good client first");
    let s = fx.sync.clone();
    let new = fx.w("tree/new");
    let escape = fx.w("tree/../outside/new");

    // before CONFIG
    let mut long = vec![b'A'; 20_000];
    long.push(b'\n');
    let pre: Vec<(&str, Vec<u8>, bool)> = vec![
        ("an overlong first line", long.clone(), false),
        (
            "an overlong first line without LF, then EOF",
            vec![b'A'; 20_000],
            true,
        ),
        (
            "binary junk as the first line",
            pseudo_random(4096, 3),
            true,
        ),
        ("NUL bytes as the first line", vec![0u8; 300], true),
        (
            "HELLO before CONFIG",
            format!("HELLO {}\n", fx.name(CLIENT)).into_bytes(),
            false,
        ),
        (
            "PATCH before CONFIG",
            req_line("PATCH", KEY_G, &escape, ""),
            false,
        ),
        (
            "CONFIG with `..`",
            b"CONFIG ../../etc/passwd\n".to_vec(),
            false,
        ),
        (
            "CONFIG with encoded `..`",
            b"CONFIG %2E%2E%2Fg\n".to_vec(),
            false,
        ),
        (
            "CONFIG with an absolute path",
            format!("CONFIG {s}/tree/file\n").into_bytes(),
            false,
        ),
        ("CONFIG with NUL", b"CONFIG a%00b\n".to_vec(), false),
        ("CONFIG of a missing file", b"CONFIG nope\n".to_vec(), false),
        (
            "CONFIG with an overlong name",
            {
                let mut v = b"CONFIG ".to_vec();
                v.extend(vec![b'a'; 5000]);
                v.push(b'\n');
                v
            },
            false,
        ),
        (
            "SSL on a server without a certificate",
            b"SSL\n".to_vec(),
            false,
        ),
    ];
    for (what, bytes, half_close) in pre {
        fx.case(&format!("before CONFIG: {what}"), Rules::strict(), |fx| {
            let mut w = match fx.connect(CLIENT) {
                Ok(w) => w,
                Err(e) => return Out::failed(e),
            };
            let _ = w.send(&bytes);
            if half_close {
                let _ = w.tcp.shutdown(Shutdown::Write);
            }
            let mut problems = Vec::new();
            if w.eof_within(REPLY_TIMEOUT).is_err() {
                problems.push(format!(
                    "the connection was still open after {REPLY_TIMEOUT:?}"
                ));
            }
            // `SSL` is answered `OK (activating_ssl).`, nothing else is OK
            let ok = any_ok(&w.got) && !(bytes == b"SSL\n" && w.got == b"OK (activating_ssl).\n");
            if ok {
                problems.push("an OK reply".into());
            }
            Out {
                summary: format!("`{}`", cut(&show(&w.got), 200)),
                got: w.got.clone(),
                problems,
            }
        });
    }

    // in the session
    let mut long_sig = req_line("SIG", KEY_G, &fx.w("tree/"), "");
    long_sig.pop();
    long_sig.extend(vec![b'a'; 20_000]);
    long_sig.push(b'\n');
    let mut long_patch = req_line("PATCH", KEY_G, &fx.w("tree/"), "");
    long_patch.pop();
    long_patch.extend(vec![b'x'; 17_000]);
    long_patch.push(b'\n');
    let mut junk = pseudo_random(4096, 11);
    junk.push(b'\n');
    let mut raw_nul = req_line("PATCH", KEY_G, &fx.w("tree/fi"), "");
    raw_nul.pop();
    raw_nul.extend_from_slice(b"\0le\n");
    let session: Vec<(&str, Vec<u8>)> = vec![
        ("an overlong SIG line", long_sig),
        ("an overlong PATCH line", long_patch),
        ("binary junk", junk),
        ("a raw NUL in the name", raw_nul),
        (
            "an unknown command with a path",
            req_line("FROB", KEY_G, &escape, ""),
        ),
        (
            "X-PUT without the pipelining negotiation",
            req_line(
                "X-PUT",
                KEY_G,
                &fx.w("tree/../outside/xd"),
                "dir - 0 0 16877 12345",
            ),
        ),
        ("CONFIG again", b"CONFIG \n".to_vec()),
        ("SSL in the session", b"SSL\n".to_vec()),
    ];
    for (what, bytes) in session {
        fx.case(&format!("in the session: {what}"), Rules::strict(), |fx| {
            let mut w = match fx.session(CLIENT) {
                Ok(w) => w,
                Err(e) => return Out::failed(e),
            };
            let start = w.got.len();
            let _ = w.send(&bytes);
            let _ = w.tcp.shutdown(Shutdown::Write);
            let mut problems = Vec::new();
            if w.eof_within(REPLY_TIMEOUT).is_err() {
                problems.push(format!(
                    "the connection was still open {REPLY_TIMEOUT:?} after the client's EOF"
                ));
            }
            let got = w.got[start..].to_vec();
            if any_ok(&got) {
                problems.push("an OK reply".into());
            }
            Out {
                summary: format!("`{}`", cut(&show(&got), 200)),
                got,
                problems,
            }
        });
    }

    // a flood of refused requests in one write
    fx.case("300 pipelined `..` PATCH requests", Rules::strict(), |fx| {
        let mut w = match fx.session(CLIENT) {
            Ok(w) => w,
            Err(e) => return Out::failed(e),
        };
        let one = req_line("PATCH", KEY_G, &fx.w("tree/../outside/flood"), "");
        let all: Vec<u8> = one.repeat(300);
        let start = w.got.len();
        let mut problems = Vec::new();
        if w.send(&all).is_err() {
            problems.push("the server closed the connection".into());
        }
        for i in 0..300 {
            match w.line() {
                Ok(l) if l == DENIED.as_bytes() => {}
                Ok(l) => {
                    problems.push(format!("reply {}: `{}`", i + 1, show(&l)));
                    break;
                }
                Err(e) => {
                    problems.push(format!("reply {}: {}", i + 1, e.text()));
                    break;
                }
            }
        }
        problems.extend(w.finish());
        let got = w.got[start..].to_vec();
        Out {
            summary: format!("{} bytes of replies", got.len()),
            got,
            problems,
        }
    });

    // before HELLO
    let dear = format!("Dear {}, please identify first.", fx.addr(CLIENT));
    for (cmd, name) in [
        ("PATCH", new.clone()),
        ("MKDIR", new.clone()),
        ("MKLINK", new.clone()),
        ("DEL", fx.w("tree/file")),
        ("SETMOD", fx.w("tree/file")),
        ("SETIME", fx.w("tree/file")),
        ("SIG", fx.w("tree/file")),
        ("TYPE", fx.w("tree/file")),
        ("GETSZ", fx.w("tree/file")),
        ("FLUSH", fx.w("tree/file")),
        ("MARK", fx.w("tree/file")),
    ] {
        let dear = dear.clone();
        fx.case(&format!("{cmd} before HELLO"), Rules::strict(), |fx| {
            let mut w = match fx.connect(CLIENT) {
                Ok(w) => w,
                Err(e) => return Out::failed(e),
            };
            if let Err(e) = w.config() {
                return Out::failed(e);
            }
            let a = attempt(&mut w, &Req::new(cmd, name).line(), HOSTILE);
            let mut p = expect_first(&a, &dear);
            if a.end.is_none() {
                p.extend(w.finish());
            }
            Out::of(&a, p)
        });
    }

    // failed identification
    let nosuch = "nosuch.hostile.invalid".to_string();
    let other_name = fx.name(OTHER);
    let own_name = fx.name(CLIENT);
    let hellos: Vec<(&str, Vec<String>)> = vec![
        ("HELLO with an unknown host", vec![nosuch.clone()]),
        ("HELLO with another host's name", vec![other_name.clone()]),
        (
            "a failed second HELLO drops the identity",
            vec![own_name.clone(), nosuch.clone()],
        ),
    ];
    for (what, names) in hellos {
        let dear = dear.clone();
        let new = new.clone();
        fx.case(what, Rules::strict(), |fx| {
            let mut w = match fx.connect(CLIENT) {
                Ok(w) => w,
                Err(e) => return Out::failed(e),
            };
            if let Err(e) = w.config() {
                return Out::failed(e);
            }
            let mut p = Vec::new();
            for (i, n) in names.iter().enumerate() {
                let want = if i + 1 < names.len() {
                    "OK (cmd_finished)."
                } else {
                    "Identification failed!"
                };
                if let Err(e) = w.expect_line(format!("HELLO {n}\n").as_bytes(), want) {
                    p.push(e);
                }
            }
            let a = attempt(&mut w, &Req::new("PATCH", new).line(), HOSTILE);
            p.extend(expect_first(&a, &dear));
            if a.end.is_none() {
                p.extend(w.finish());
            }
            Out::of(&a, p)
        });
    }

    // identified, but not allowed
    for (who, src, key) in [
        (
            "a host of another group, with the group's key",
            OTHER,
            KEY_G,
        ),
        ("a host of another group, with its own key", OTHER, KEY_H),
        ("a host in no group", STRANGER, KEY_G),
        ("the peer with the other group's key", CLIENT, KEY_H),
        ("the peer with a wrong key", CLIENT, "WRONGKEY"),
        (
            "the peer with a truncated key",
            CLIENT,
            &KEY_G[..KEY_G.len() - 1],
        ),
        ("the peer with an empty key", CLIENT, "%20"),
    ] {
        for (cmd, rel) in [
            ("PATCH", "tree/new"),
            ("PATCH", "tree/file"),
            ("MKDIR", "tree/new"),
            ("DEL", "tree/file"),
            ("SETMOD", "tree/file"),
            ("SIG", "tree/file"),
            ("TYPE", "tree/file"),
            ("GETSZ", "tree/file"),
        ] {
            let name = fx.w(rel);
            fx.cmd_case(
                &format!("{cmd} {rel} by {who}"),
                Req::new(cmd, name).by(src).key(key),
                Rules::strict(),
                |a| expect_first(a, DENIED),
            );
        }
    }

    // a slave pushing: refused; the server may mark the file dirty
    for (cmd, rel) in [
        ("PATCH", "tree/d/f"),
        ("PATCH", "tree/d/new"),
        ("MKDIR", "tree/d/new"),
        ("DEL", "tree/d/f"),
        ("SETMOD", "tree/d/f"),
        ("SETOWN", "tree/d/f"),
        ("SETIME", "tree/d/f"),
        ("MKLINK", "tree/d/new"),
    ] {
        let name = fx.w(rel);
        fx.cmd_case(
            &format!("{cmd} {rel} by a slave"),
            Req::new(cmd, name).by(SLAVE),
            Rules::allow(&[], true),
            |a| expect_first(a, "Permission denied for slave!"),
        );
    }
    fx.good("good client still served");
    fx.finish();
}

// ---------------------------------------------------------------------------
// Bad blobs and deltas
// ---------------------------------------------------------------------------

fn be(n: u64, width: usize) -> Vec<u8> {
    n.to_be_bytes()[8 - width..].to_vec()
}

const MAGIC: [u8; 4] = [0x72, 0x73, 0x02, 0x36];

fn delta(parts: &[&[u8]]) -> Vec<u8> {
    let mut v = MAGIC.to_vec();
    for p in parts {
        v.extend_from_slice(p);
    }
    v
}

/// What a client sends after PATCH's signature: (what, bytes, half-close
/// afterwards).
fn bad_payloads() -> Vec<(&'static str, Vec<u8>, bool)> {
    let good = literal_delta(&pseudo_text(3000, 5));
    let mut huge_start = b"octet-stream 99999999999999\n".to_vec();
    huge_start.extend(delta(&[&[0x44], &be(1 << 40, 8)]));
    huge_start.extend(pseudo_random(64 * 1024, 9));
    let mut short = b"octet-stream 1000\n".to_vec();
    short.extend_from_slice(&good[..500]);
    let mut overlong_header = b"octet-stream ".to_vec();
    overlong_header.extend(vec![b'0'; 200]);
    overlong_header.extend_from_slice(b"5\n");
    let mut under = b"octet-stream 10\n".to_vec();
    under.extend_from_slice(&good);
    vec![
        ("a negative length", b"octet-stream -5\n".to_vec(), false),
        ("length -1", b"octet-stream -1\n".to_vec(), false),
        ("ERROR instead of a blob", b"ERROR\n".to_vec(), false),
        (
            "a huge length, then EOF",
            b"octet-stream 99999999999999\n".to_vec(),
            true,
        ),
        (
            "a huge length, 64 KiB of a huge literal, then EOF",
            huge_start,
            true,
        ),
        (
            "a length beyond 64 bits",
            b"octet-stream 18446744073709551616\n".to_vec(),
            false,
        ),
        (
            "a non-numeric length",
            b"octet-stream abc\n".to_vec(),
            false,
        ),
        ("an overlong blob header", overlong_header, false),
        (
            "garbage instead of a header",
            b"\x00\x01binary\xff\n".to_vec(),
            false,
        ),
        ("an empty blob", b"octet-stream 0\n".to_vec(), false),
        ("a delta of only the magic", blob(&MAGIC), false),
        (
            "a delta without its end command",
            blob(&delta(&[&[0x41, 5], b"hello"])),
            false,
        ),
        (
            "a literal longer than the blob",
            blob(&delta(&[&[0x43], &be(1000, 4), &[b'x'; 10]])),
            false,
        ),
        (
            "garbage bytes of the announced length",
            blob(&pseudo_random(1024, 13)),
            false,
        ),
        ("a bad command byte", blob(&delta(&[&[0x60, 0]])), false),
        (
            "a copy beyond the basis",
            blob(&delta(&[&[0x51], &be(1 << 40, 8), &[10, 0]])),
            false,
        ),
        (
            "a copy of 2^64-1 bytes",
            blob(&delta(&[&[0x48, 0], &be(u64::MAX, 8), &[0]])),
            false,
        ),
        (
            "a literal of 2^64-1 bytes",
            blob(&delta(&[&[0x44], &be(u64::MAX, 8), &[b'y'; 100], &[0]])),
            false,
        ),
        ("the blob shorter than announced, then EOF", short, true),
        ("the header shorter than the delta", under, false),
    ]
}

#[test]
fn bad_deltas_change_nothing() {
    let mut fx = Fx::new(Setup::new("hostile-blobs", 3));
    fx.good("good client first");
    for (what, payload, half_close) in bad_payloads() {
        fx.case(&format!("PATCH with {what}"), Rules::transfer(), |fx| {
            let mut w = match fx.session(CLIENT) {
                Ok(w) => w,
                Err(e) => return Out::failed(e),
            };
            let start = w.got.len();
            let mut p = Vec::new();
            let r = (|| -> Result<(), End> {
                w.send(&req_line("PATCH", KEY_G, &fx.w("tree/file"), ""))?;
                let l = w.line()?;
                if l != b"OK (send_data)." {
                    p.push(format!("PATCH tree/file was answered `{}`", show(&l)));
                    return Ok(());
                }
                w.blob()?;
                w.send(&payload)?;
                if half_close {
                    let _ = w.tcp.shutdown(Shutdown::Write);
                }
                let l = w.line()?;
                if l.starts_with(b"OK") {
                    p.push(format!("the bad delta was answered `{}`", show(&l)));
                }
                Ok(())
            })();
            match r {
                Ok(()) | Err(End::Closed) => {}
                Err(End::Timeout) => p.push(format!(
                    "neither a reply nor the end of the connection within {REPLY_TIMEOUT:?}"
                )),
            }
            if r.is_ok() {
                p.extend(w.finish());
            }
            let got = w.got[start..].to_vec();
            Out {
                summary: format!("`{}`", cut(&show(&got), 300)),
                got,
                problems: p,
            }
        });
    }
    fx.good("good client still served");
    fx.finish();
}

// ---------------------------------------------------------------------------
// Disconnects at every point of a PATCH
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Point {
    AfterCommand,
    AfterSendData,
    MidSignature,
    AfterSignature,
    AfterHeader,
    MidDelta,
    AfterDelta,
}

/// A PATCH of `rel` (new content `new`) that stops at `stop`; Ok(true)
/// when it got there, with the connection still open.
fn patch_until(
    w: &mut Wire,
    name: &[u8],
    new: &[u8],
    stop: Point,
    p: &mut Vec<String>,
) -> Result<bool, End> {
    w.send(&req_line("PATCH", KEY_G, name, ""))?;
    if stop == Point::AfterCommand {
        return Ok(true);
    }
    let l = w.line()?;
    if l != b"OK (send_data)." {
        p.push(format!("PATCH was answered `{}`", show(&l)));
        return Ok(false);
    }
    if stop == Point::AfterSendData {
        return Ok(true);
    }
    let h = w.line()?;
    let n: usize = std::str::from_utf8(h.strip_prefix(b"octet-stream ".as_slice()).unwrap_or(b""))
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    if stop == Point::MidSignature {
        w.exact(n / 2)?;
        return Ok(true);
    }
    w.exact(n)?;
    if stop == Point::AfterSignature {
        return Ok(true);
    }
    let d = literal_delta(new);
    w.send(format!("octet-stream {}\n", d.len()).as_bytes())?;
    if stop == Point::AfterHeader {
        return Ok(true);
    }
    w.send(&d[..d.len() / 2])?;
    if stop == Point::MidDelta {
        return Ok(true);
    }
    w.send(&d[d.len() / 2..])?;
    Ok(true)
}

#[test]
fn disconnects_leave_no_trace() {
    let mut su = Setup::new("hostile-disconnect", 4);
    su.big = 256 * 1024;
    let mut fx = Fx::new(su);
    fx.good("good client first");
    let new = pseudo_random(300 * 1024, 21);
    for stop in [
        Point::AfterCommand,
        Point::AfterSendData,
        Point::MidSignature,
        Point::AfterSignature,
        Point::AfterHeader,
        Point::MidDelta,
        Point::AfterDelta,
    ] {
        for rst in [false, true] {
            let complete = stop == Point::AfterDelta;
            let rules = if complete {
                Rules::allow(&["tree", "tree/big"], true)
            } else {
                Rules::transfer()
            };
            let label = format!(
                "PATCH tree/big, {} {stop:?}",
                if rst { "reset" } else { "closed" }
            );
            let new = new.clone();
            fx.case(&label, rules, |fx| {
                let mut w = match fx.session(CLIENT) {
                    Ok(w) => w,
                    Err(e) => return Out::failed(e),
                };
                let start = w.got.len();
                let mut p = Vec::new();
                match patch_until(&mut w, &fx.w("tree/big"), &new, stop, &mut p) {
                    Ok(_) => {}
                    Err(e) => p.push(format!("before the disconnect: {}", e.text())),
                }
                let got = w.got[start..].to_vec();
                w.drop_now(rst);
                if complete {
                    // the whole delta was sent: old or new, never a mix
                    if !fx.sessions_end(SESSION_END_MAX) {
                        p.push("the session did not end".into());
                    }
                    let c = std::fs::read(fx.area.join("tree/big")).unwrap_or_default();
                    let old = pseudo_random(256 * 1024, 7);
                    if c != old && c != new {
                        p.push(format!(
                            "tree/big is neither old nor new ({} bytes)",
                            c.len()
                        ));
                    }
                }
                Out {
                    summary: format!("{} bytes received", got.len()),
                    got,
                    problems: p,
                }
            });
        }
    }
    fx.good("good client still served");
    fx.finish();
}

// ---------------------------------------------------------------------------
// Idle and stalling clients
// ---------------------------------------------------------------------------

/// Where an idle client stops.
#[derive(Clone, Copy, Debug)]
enum Stall {
    Connected,
    AfterConfig,
    AfterHello,
    PartialLine,
    Patch(Point),
}

#[test]
fn idle_connections_time_out() {
    let mut su = Setup::new("hostile-idle", 5);
    su.env = vec![(IDLE_ENV, IDLE_TEST_SECS.to_string())];
    su.big = 16 << 20;
    let mut fx = Fx::new(su);
    fx.good("good client first");
    let new = pseudo_random(64 * 1024, 23);
    for stall in [
        Stall::Connected,
        Stall::AfterConfig,
        Stall::AfterHello,
        Stall::PartialLine,
        Stall::Patch(Point::AfterSignature),
        Stall::Patch(Point::AfterHeader),
        Stall::Patch(Point::MidDelta),
    ] {
        let new = new.clone();
        fx.case(
            &format!("idle client ({stall:?}), {IDLE_ENV}={IDLE_TEST_SECS}"),
            Rules::transfer(),
            |fx| {
                let mut w = match fx.connect(CLIENT) {
                    Ok(w) => w,
                    Err(e) => return Out::failed(e),
                };
                let mut p = Vec::new();
                let me = fx.name(CLIENT);
                let r = match stall {
                    Stall::Connected => Ok(()),
                    Stall::AfterConfig => w.config(),
                    Stall::AfterHello => w.start(&me),
                    Stall::PartialLine => w.start(&me).and_then(|_| {
                        let mut l = req_line("PATCH", KEY_G, &fx.w("tree/file"), "");
                        l.truncate(l.len() - 5);
                        w.send(&l).map_err(|e| e.text().to_string())
                    }),
                    Stall::Patch(point) => w.start(&me).and_then(|_| {
                        patch_until(&mut w, &fx.w("tree/file"), &new, point, &mut p)
                            .map(|_| ())
                            .map_err(|e| e.text().to_string())
                    }),
                };
                if let Err(e) = r {
                    p.push(e);
                }
                let summary = match w.eof_within(IDLE_TEST_MAX) {
                    Ok(t) => format!("closed by the server after {:.1} s", t.as_secs_f64()),
                    Err(_) => {
                        p.push(format!(
                            "the server kept the idle connection open for {IDLE_TEST_MAX:?}"
                        ));
                        "still open".to_string()
                    }
                };
                let got = w.got.clone();
                w.drop_now(false);
                Out {
                    summary,
                    got,
                    problems: p,
                }
            },
        );
    }

    // a client that does not read: TYPE of 16 MiB with a tiny receive window
    fx.case(
        "TYPE of a 16 MiB file, the client reads nothing",
        Rules::strict(),
        |fx| {
            let mut w = match Wire::connect(fx.addr(CLIENT), fx.dst(), Some(4096)) {
                Ok(w) => w,
                Err(e) => return Out::failed(e),
            };
            let mut p = Vec::new();
            if let Err(e) = w.start(&fx.name(CLIENT)) {
                return Out::failed(e);
            }
            let _ = w.send(&req_line("TYPE", KEY_G, &fx.w("tree/big"), ""));
            let t0 = Instant::now();
            let ended = fx.sessions_end(IDLE_TEST_MAX);
            let summary = if ended {
                format!("session ended after {:.1} s", t0.elapsed().as_secs_f64())
            } else {
                p.push(format!(
                    "the session blocked in writing was still running after {IDLE_TEST_MAX:?}"
                ));
                "still running".to_string()
            };
            w.drop_now(true);
            Out {
                summary,
                got: Vec::new(),
                problems: p,
            }
        },
    );

    // slow but never idle for long: served to the end
    fx.case(
        "a slow client pausing 1 s between requests is served",
        Rules::strict(),
        |fx| {
            let mut w = match fx.session(CLIENT) {
                Ok(w) => w,
                Err(e) => return Out::failed(e),
            };
            let mut p = Vec::new();
            for i in 0..4 {
                std::thread::sleep(Duration::from_secs(1));
                let a = attempt(
                    &mut w,
                    &req_line("GETSZ", KEY_G, &fx.w("tree/file"), ""),
                    b"",
                );
                let want = INSIDE.len().to_string();
                if a.first != b"OK (data_follows)." || a.rest != want.as_bytes() {
                    p.push(format!("GETSZ number {}: {}", i + 1, a.summary()));
                    break;
                }
            }
            if let Err(e) = w.expect_line(b"BYE\n", "OK (cu_later).") {
                p.push(e);
            }
            p.extend(w.finish());
            Out {
                summary: format!("`{}`", cut(&show(&w.got), 200)),
                got: w.got.clone(),
                problems: p,
            }
        },
    );
    fx.good("good client still served");
    fx.finish();
}

// ---------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------

#[test]
fn tls_smoke() {
    let mut su = Setup::new("hostile-tls", 6);
    su.tls = true;
    let mut fx = Fx::new(su);
    // the first session pins the client's certificate
    fx.good("good TLS client first");
    let escape = fx.w("tree/../outside/secret");
    fx.cmd_case(
        "TLS: PATCH with `..`",
        Req::new("PATCH", escape.clone()),
        Rules::strict(),
        |a| expect_first(a, DENIED),
    );
    fx.cmd_case(
        "TLS: PATCH through a symlinked directory",
        Req::new("PATCH", fx.w("tree/link/secret")),
        Rules::strict(),
        expect_refused,
    );
    fx.cmd_case(
        "TLS: SETMOD through a symlinked directory",
        Req::new("SETMOD", fx.w("tree/abs/secret")),
        Rules::strict(),
        expect_refused,
    );
    fx.cmd_case(
        "TLS: TYPE through a symlinked directory",
        Req::new("TYPE", fx.w("tree/link/secret")),
        Rules::strict(),
        |a| expect_got(a, DATA_FOLLOWS),
    );
    let dear = format!("Dear {}, please identify first.", fx.addr(CLIENT));
    {
        let dear = dear.clone();
        let escape = escape.clone();
        fx.case(
            "plain-text HELLO on a TLS-only server",
            Rules::strict(),
            |fx| {
                let mut w = match Wire::connect(fx.addr(CLIENT), fx.dst(), None) {
                    Ok(w) => w,
                    Err(e) => return Out::failed(e),
                };
                let mut p = Vec::new();
                if let Err(e) = w.config() {
                    return Out::failed(e);
                }
                let me = fx.name(CLIENT);
                if let Err(e) = w.expect_line(
                    format!("HELLO {me}\n").as_bytes(),
                    "SSL encrypted connection expected!",
                ) {
                    p.push(e);
                }
                let a = attempt(&mut w, &req_line("PATCH", KEY_G, &escape, ""), HOSTILE);
                p.extend(expect_first(&a, &dear));
                if a.end.is_none() {
                    p.extend(w.finish());
                }
                Out::of(&a, p)
            },
        );
    }
    {
        let dir = fx.base.join("certs/other");
        let hs = hosts(TEST_A, IDX_A, NHOSTS);
        let c = host_cert(&dir, &hs[CLIENT], 7, KeyKind::P256);
        let other = TlsId {
            cert: c.cert,
            key: c.key,
        };
        let new = fx.w("tree/new");
        fx.case(
            "TLS: another certificate for the pinned host name",
            Rules::strict(),
            |fx| {
                let mut w = match Wire::connect(fx.addr(CLIENT), fx.dst(), None) {
                    Ok(w) => w,
                    Err(e) => return Out::failed(e),
                };
                if let Err(e) = w.start_tls(&other).and_then(|_| w.config()) {
                    return Out::failed(e);
                }
                let mut p = Vec::new();
                let me = fx.name(CLIENT);
                if let Err(e) =
                    w.expect_line(format!("HELLO {me}\n").as_bytes(), "Identification failed!")
                {
                    p.push(e);
                }
                let a = attempt(&mut w, &req_line("PATCH", KEY_G, &new, ""), HOSTILE);
                p.extend(expect_first(&a, &dear));
                if a.end.is_none() {
                    p.extend(w.finish());
                }
                Out::of(&a, p)
            },
        );
    }
    fx.case(
        "TLS: garbage instead of a handshake",
        Rules::strict(),
        |fx| {
            let mut w = match Wire::connect(fx.addr(CLIENT), fx.dst(), None) {
                Ok(w) => w,
                Err(e) => return Out::failed(e),
            };
            let mut p = Vec::new();
            if let Err(e) = w.expect_line(b"SSL\n", "OK (activating_ssl).") {
                p.push(e);
            }
            let _ = w.send(&pseudo_random(2048, 17));
            if w.eof_within(REPLY_TIMEOUT).is_err() {
                p.push("the connection stayed open".into());
            }
            Out {
                summary: format!("`{}`", cut(&show(&w.got), 200)),
                got: w.got.clone(),
                problems: p,
            }
        },
    );
    fx.case("TLS: disconnect mid-PATCH", Rules::transfer(), |fx| {
        let mut w = match fx.session(CLIENT) {
            Ok(w) => w,
            Err(e) => return Out::failed(e),
        };
        let mut p = Vec::new();
        let new = pseudo_random(8000, 3);
        if let Err(e) = patch_until(&mut w, &fx.w("tree/file"), &new, Point::MidDelta, &mut p) {
            p.push(e.text().to_string());
        }
        let got = w.got.clone();
        w.drop_now(true);
        Out {
            summary: format!("{} bytes received", got.len()),
            got,
            problems: p,
        }
    });
    fx.good("good TLS client still served");
    fx.finish();
}

// ---------------------------------------------------------------------------
// Our pipelining extension (X-STAT, X-PUT)
// ---------------------------------------------------------------------------

/// A pipelined session: CONFIG, `X-CSYNC2RS-PIPELINE 1`, HELLO.
fn x_session(fx: &Fx) -> Result<Wire, String> {
    let mut w = fx.connect(CLIENT)?;
    w.config()?;
    w.expect_line(b"X-CSYNC2RS-PIPELINE 1\n", "OK (pipelining).")?;
    w.hello(&fx.name(CLIENT))?;
    Ok(w)
}

/// `X-PUT KEY NAME KIND ARG 0 0 MODE MTIME` (and, for `reg`, `content` as
/// a blob, or `raw` bytes instead of a well-formed blob).
fn x_put_line(name: &[u8], kind: &str, content: &[u8]) -> Vec<u8> {
    let (arg, mode) = match kind {
        "reg" => ("-", 0o104755),
        "dir" => ("-", 0o40755),
        "link" => ("..%2F..%2Fetc", 0o120777),
        "fifo" => ("-", 0o10644),
        "chr" => ("259", 0o20644),
        _ => ("-", 0o140644),
    };
    let mut v = req_line(
        "X-PUT",
        KEY_G,
        name,
        &format!("{kind} {arg} 0 0 {mode} 12345"),
    );
    if kind == "reg" {
        v.extend(blob(content));
    }
    v
}

fn x_case(
    fx: &mut Fx,
    label: &str,
    line: Vec<u8>,
    rules: Rules,
    check: fn(&Attempt) -> Vec<String>,
) {
    fx.case(label, rules, |fx| {
        let mut w = match x_session(fx) {
            Ok(w) => w,
            Err(e) => return Out::failed(format!("pipelined session: {e}")),
        };
        let a = attempt(&mut w, &line, b"");
        let mut p = check(&a);
        if a.end.is_none() {
            p.extend(w.finish());
        }
        Out::of(&a, p)
    });
}

#[test]
fn extension_commands_are_safe() {
    let mut fx = Fx::new(Setup::new("hostile-ext", 7));
    fx.good("good client first");
    let names: Vec<(&str, Vec<u8>)> = BAD_NAMES
        .iter()
        .map(|&(what, t)| (what, bad_name(&fx, t)))
        .collect();
    for (what, name) in &names {
        for kind in ["reg", "dir", "link", "fifo"] {
            x_case(
                &mut fx,
                &format!("X-PUT {kind} with {what}"),
                x_put_line(name, kind, HOSTILE),
                Rules::strict(),
                |a| expect_first(a, DENIED),
            );
        }
        x_case(
            &mut fx,
            &format!("X-STAT with {what}"),
            req_line("X-STAT", KEY_G, name, "-"),
            Rules::strict(),
            |a| expect_first(a, DENIED),
        );
    }
    for rel in [
        "tree/link/secret",
        "tree/link/new",
        "tree/abs/secret",
        "tree/link/dir",
        "tree/dlink/new",
    ] {
        let name = fx.w(rel);
        for kind in ["reg", "dir", "link", "fifo", "sock", "chr"] {
            x_case(
                &mut fx,
                &format!("X-PUT {kind} through a symlinked directory: {rel}"),
                x_put_line(&name, kind, HOSTILE),
                Rules::strict(),
                expect_refused,
            );
        }
        x_case(
            &mut fx,
            &format!("X-STAT through a symlinked directory: {rel}"),
            req_line("X-STAT", KEY_G, &name, "-"),
            Rules::strict(),
            |a| {
                if a.first == b"OK (data_follows)." {
                    vec![format!("describes the outside entry: {}", a.summary())]
                } else {
                    Vec::new()
                }
            },
        );
    }
    for rel in ["tree/flink", "tree/dangling", "tree/dangabs", "tree/link"] {
        let name = fx.w(rel);
        let allow = ["tree".to_string(), format!("{rel}/")];
        let allow: Vec<&str> = allow.iter().map(String::as_str).collect();
        x_case(
            &mut fx,
            &format!("X-PUT reg on a symlink to outside: {rel}"),
            x_put_line(&name, "reg", HOSTILE),
            Rules::allow(&allow, true),
            |_| Vec::new(),
        );
    }
    // bad blobs of X-PUT reg
    let file = fx.w("tree/file");
    let line = |rest: &[u8]| {
        let mut v = req_line("X-PUT", KEY_G, &file, "reg - 0 0 33188 12345");
        v.extend_from_slice(rest);
        v
    };
    let mut short = b"octet-stream 1000\n".to_vec();
    short.extend(vec![b'z'; 400]);
    for (what, bytes, half_close) in [
        ("a negative length", line(b"octet-stream -5\n"), false),
        (
            "a huge length, then EOF",
            line(b"octet-stream 99999999999999\n"),
            true,
        ),
        ("a short blob, then EOF", line(&short), true),
        ("a non-numeric length", line(b"octet-stream x\n"), false),
    ] {
        fx.case(
            &format!("X-PUT reg tree/file with {what}"),
            Rules::transfer(),
            |fx| {
                let mut w = match x_session(fx) {
                    Ok(w) => w,
                    Err(e) => return Out::failed(e),
                };
                let start = w.got.len();
                let mut p = Vec::new();
                let _ = w.send(&bytes);
                if half_close {
                    let _ = w.tcp.shutdown(Shutdown::Write);
                }
                match w.line() {
                    Ok(l) if l.starts_with(b"OK") => p.push(format!("answered `{}`", show(&l))),
                    Ok(_) | Err(End::Closed) => {}
                    Err(End::Timeout) => p.push("no reply and no end of the connection".into()),
                }
                if !half_close {
                    p.extend(w.finish());
                }
                let got = w.got[start..].to_vec();
                Out {
                    summary: format!("`{}`", cut(&show(&got), 200)),
                    got,
                    problems: p,
                }
            },
        );
    }
    fx.good("good client still served");
    fx.finish();
}

// ---------------------------------------------------------------------------
// A directory swapped for a symlink in the middle of a PATCH
// ---------------------------------------------------------------------------

#[test]
fn directory_swapped_mid_patch() {
    let mut su = Setup::new("hostile-race", 0);
    su.test = TEST_B;
    su.idx = IDX_B;
    let mut fx = Fx::new(su);
    fx.good("good client first");
    let sync = fx.sync.clone();
    for (how, target) in [
        (
            "by a second session, relative link",
            "../outside".to_string(),
        ),
        (
            "by a second session, absolute link",
            format!("{sync}/outside"),
        ),
        ("on disk, relative link", "../outside".to_string()),
    ] {
        let on_disk = how.starts_with("on disk");
        fx.case(
            &format!("PATCH tree/rd/x while tree/rd becomes a symlink {how}"),
            Rules::allow(&["tree/"], true),
            |fx| {
                let mut p = Vec::new();
                let mut swap_note = String::new();
                let mut a = match fx.session(CLIENT) {
                    Ok(w) => w,
                    Err(e) => return Out::failed(e),
                };
                let rd = fx.w("tree/rd");
                if let Err(e) =
                    a.expect_line(&req_line("MKDIR", KEY_G, &rd, ""), "OK (cmd_finished).")
                {
                    return Out::failed(e);
                }
                let x = fx.w("tree/rd/x");
                let r = (|| -> Result<(), End> {
                    a.send(&req_line("PATCH", KEY_G, &x, ""))?;
                    let l = a.line()?;
                    if l != b"OK (send_data)." {
                        p.push(format!("PATCH tree/rd/x: `{}`", show(&l)));
                        return Err(End::Closed);
                    }
                    a.blob()?;
                    Ok(())
                })();
                if r.is_err() {
                    return Out::failed(format!("PATCH did not start: {p:?}"));
                }
                if on_disk {
                    let d = fx.area.join("tree/rd");
                    let _ = std::fs::rename(&d, fx.area.join("tree/rd-moved"));
                    let _ = std::os::unix::fs::symlink(&target, &d);
                } else {
                    let mut b = match fx.session(CLIENT) {
                        Ok(w) => w,
                        Err(e) => return Out::failed(e),
                    };
                    let t = url_encode(target.as_bytes());
                    let d = attempt(&mut b, &req_line("DEL", KEY_G, &rd, ""), b"");
                    let m = attempt(
                        &mut b,
                        &req_line("MKLINK", KEY_G, &rd, &String::from_utf8_lossy(&t)),
                        b"",
                    );
                    if !d.accepted || !m.accepted {
                        swap_note = format!(
                            " (the swap by a second session did not happen: DEL {} MKLINK {})",
                            d.summary(),
                            m.summary()
                        );
                    }
                    let _ = b.finish();
                }
                let r = (|| -> Result<Vec<u8>, End> {
                    a.send(&blob(&literal_delta(b"RACE-WRITE\n")))?;
                    a.line()
                })();
                let summary = match &r {
                    Ok(l) => format!("final reply `{}`{swap_note}", show(l)),
                    Err(e) => format!("{}{swap_note}", e.text()),
                };
                if r.is_ok() {
                    p.extend(a.finish());
                }
                Out {
                    summary,
                    got: a.got.clone(),
                    problems: p,
                }
            },
        );
    }
    fx.good("good client still served");
    fx.finish();
}
