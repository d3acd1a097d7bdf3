//! Multi-host harness for the network interoperability tests
//! (`tests/net_interop.rs`): several csync2 "hosts" on one machine, each with
//! its own loopback address, host name, system directory, database directory
//! and private tree, all synchronising the same absolute path.
//!
//! It builds on `tests/common`: processes are run by its runner
//! (`common::proc`: [`Proc`], [`Done`]; [`Imp`] is `common::Which`), node
//! directories, system-directory files and trees are made by its set-up
//! (`common::setup`), waits use `common::wait`, and every test's index
//! comes from `common::idx` ([`Net`]).
//!
//! * Every node gets an address `127.61.<test index>.<k>` and a name
//!   `n<k>.<test>.test`, appended to `/etc/hosts` once (under a file lock;
//!   other lines are never touched).
//! * Every csync2 process runs in its own mount namespace in which the
//!   node's private tree is bind-mounted on `<base>/sync`:
//!   `unshare -m --propagation private sh -c 'mount --bind "$PRIV" "$SYNC" && exec "$@"' sh csync2 …`
//! * A scenario runs once per [`Mode`] (which implementation is the client,
//!   which the server) and [`Transport`] (plain text with `nossl * *;`, or
//!   TLS) from identical starting states; every run records
//!   [`Obs`]ervations (client and server outputs, every node's tree and
//!   database) and the runs are compared with run (a), REAL → REAL, of the
//!   same transport.
//! * In a TLS run every node has its own self-signed certificate (made by
//!   `openssl req -x509`, subject `CN=<host name>`, as admins make them) in
//!   its `CSYNC2_SYSTEM_DIR`, and [`Run::config`] drops the `nossl * *;`
//!   line of every configuration. The key type depends on the test
//!   ([`tls_key`]): RSA-1024, RSA-2048, P-256, Ed25519, or mixed. When both
//!   sides are the real program, the server's certificate file also holds
//!   the other nodes' certificates (the CA-list work-around of protocol.md
//!   §5.5; the pinned certificate is still the leaf).
//!
//! Raw-protocol probes ([`probe_differential`]) send hand-written byte
//! sequences from a socket bound to a node's address, to the real server and
//! to ours, and require byte-identical replies (plain text only).
//!
//! Environment: `CSYNC2_REAL` / `CSYNC2_DIFF_OURS` (binaries, as in
//! `tests/common`), `CSYNC2_NET_MODES=abcd` (restrict the runs),
//! `CSYNC2_NET_TLS=plain|tls|both` (restrict the transports; default both),
//! `CSYNC2_DIFF_KEEP=1` (keep the scenario directories). TLS needs
//! `openssl`.

#![allow(dead_code)]

use crate::common::setup::{self, HostDirs};
use crate::common::wait::poll_until;
use crate::common::{self, DbDump, Val, show};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpStream};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The implementation of a node: the local harness's [`common::Which`].
pub use common::Which as Imp;
pub use common::idx::Net;
#[allow(unused_imports)]
pub use common::{Done, KEY1, KEY2, Proc, T0, TIMEOUT, lines};
/// Fixed mtime given to every directory before a push (directory mtimes are
/// sent with SETIME, so they must not depend on the wall clock).
pub const DIR_MTIME: i64 = T0 - 86_400;

// ---------------------------------------------------------------------------
// Implementations and run modes
// ---------------------------------------------------------------------------

/// One run of a scenario: who is the client, who is the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mode {
    pub tag: char,
    pub client: Imp,
    pub server: Imp,
}

impl Mode {
    pub fn describe(&self) -> String {
        format!(
            "({}) {} client -> {} server",
            self.tag,
            self.client.label(),
            self.server.label()
        )
    }
}

pub const MODE_A: Mode = Mode {
    tag: 'a',
    client: Imp::Real,
    server: Imp::Real,
};
pub const MODE_B: Mode = Mode {
    tag: 'b',
    client: Imp::Real,
    server: Imp::Ours,
};
pub const MODE_C: Mode = Mode {
    tag: 'c',
    client: Imp::Ours,
    server: Imp::Real,
};
pub const MODE_D: Mode = Mode {
    tag: 'd',
    client: Imp::Ours,
    server: Imp::Ours,
};

/// True when the binary under test is the reference itself (harness
/// validation with `CSYNC2_DIFF_OURS=/usr/sbin/csync2`).
pub fn ours_is_real() -> bool {
    let a = std::fs::canonicalize(common::ours_bin()).ok();
    let b = std::fs::canonicalize(common::real_bin()).ok();
    a.is_some() && a == b
}

/// Whether our binary implements the client side yet (until then `-u`
/// prints "needs the network protocol" and exits 1).
pub fn ours_client_available() -> bool {
    static AVAIL: OnceLock<bool> = OnceLock::new();
    *AVAIL.get_or_init(|| {
        let mut cmd = Command::new(common::ours_bin());
        cmd.args(["-N", "probe.invalid", "-u"])
            .env(setup::SYSTEM_DIR, "/nonexistent/csync2-net-probe")
            .env("LC_ALL", "C");
        common::captured(&mut cmd);
        let d = Proc::spawn(cmd, "client availability probe".into())
            .wait_until(Instant::now() + Duration::from_secs(10));
        !String::from_utf8_lossy(&d.stderr).contains("needs the network protocol")
    })
}

/// The runs of a differential scenario: (a) and (b) always, (c) and (d) once
/// our client exists; `CSYNC2_NET_MODES` restricts them ((a) always runs).
pub fn modes() -> Vec<Mode> {
    let mut v = vec![MODE_A, MODE_B];
    if ours_client_available() {
        v.push(MODE_C);
        v.push(MODE_D);
    }
    if let Ok(sel) = std::env::var("CSYNC2_NET_MODES") {
        v.retain(|m| m.tag == 'a' || sel.contains(m.tag));
    }
    v
}

// ---------------------------------------------------------------------------
// Transports and certificates
// ---------------------------------------------------------------------------

/// How the client talks to the server in a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// `nossl * *;` in every configuration
    Plain,
    /// no `nossl` rule; per-host certificates on every node
    Tls,
    /// whatever the scenario sets up (`tests/net_tls.rs`, the probes): the
    /// harness installs no certificates, keeps every `nossl` rule and
    /// checks nothing about the transport
    Custom,
}

impl Transport {
    pub fn label(self) -> &'static str {
        match self {
            Transport::Plain => "plain",
            Transport::Tls => "TLS",
            Transport::Custom => "transport set up by the scenario",
        }
    }
    /// Suffix of the run directory (`<tag><suffix>/`).
    pub fn suffix(self) -> &'static str {
        match self {
            Transport::Plain | Transport::Custom => "",
            Transport::Tls => "-tls",
        }
    }
    /// What the client prints after the host name in `Connecting to host`.
    pub fn connect_word(self) -> Option<&'static str> {
        match self {
            Transport::Plain => Some("(PLAIN)"),
            Transport::Tls => Some("(SSL)"),
            Transport::Custom => None,
        }
    }
}

/// The transports of a differential scenario: `CSYNC2_NET_TLS=plain`, `tls`
/// or `both` (the default).
pub fn transports() -> Vec<Transport> {
    match std::env::var("CSYNC2_NET_TLS").as_deref() {
        Err(_) | Ok("both") | Ok("") => vec![Transport::Plain, Transport::Tls],
        Ok("plain") => vec![Transport::Plain],
        Ok("tls") => vec![Transport::Tls],
        Ok(x) => panic!("CSYNC2_NET_TLS={x}: use plain, tls or both"),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyKind {
    Rsa1024,
    Rsa2048,
    Rsa4096,
    P256,
    P384,
    Ed25519,
}

impl KeyKind {
    pub fn newkey(self) -> Vec<&'static str> {
        match self {
            KeyKind::Rsa1024 => vec!["-newkey", "rsa:1024"],
            KeyKind::Rsa2048 => vec!["-newkey", "rsa:2048"],
            KeyKind::Rsa4096 => vec!["-newkey", "rsa:4096"],
            KeyKind::P256 => vec!["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
            KeyKind::P384 => vec!["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"],
            KeyKind::Ed25519 => vec!["-newkey", "ed25519"],
        }
    }
}

/// The key type of node `node`'s certificate in the TLS runs of test `idx`,
/// in turn by test index (1, 2, …): every node RSA-1024 (what the csync2
/// documentation makes), RSA-2048, P-256, Ed25519, or mixed. The mixed
/// tests take turns: node 1 P-256 and node 2 RSA-1024 (test 5), RSA-1024
/// and Ed25519 (test 10), RSA-2048 and P-256 (test 15); further nodes
/// continue the cycle P-256, RSA-1024, Ed25519, RSA-2048. Mixed pairs
/// matter: in TLS 1.3 a GnuTLS peer with an RSA-1024 key signs with the
/// first RSA-PSS scheme the other side lists, and RSA-PSS-SHA512 does not
/// fit a 1024-bit key (`GNUTLS_E_CONSTRAINT_ERROR`); pairs of equal key
/// types do not show this.
pub fn tls_key(idx: u8, node: usize) -> KeyKind {
    const MIXED: [KeyKind; 4] = [
        KeyKind::P256,
        KeyKind::Rsa1024,
        KeyKind::Ed25519,
        KeyKind::Rsa2048,
    ];
    let idx = idx as usize;
    match (idx + 4) % 5 {
        0 => KeyKind::Rsa1024,
        1 => KeyKind::Rsa2048,
        2 => KeyKind::P256,
        3 => KeyKind::Ed25519,
        // tests 5, 10, 15, 20, …: where node 1 starts in MIXED
        _ => MIXED[([0, 1, 3][(idx / 5 - 1) % 3] + node) % MIXED.len()],
    }
}

/// A key and its self-signed certificate, and the certificate as the
/// `x509_cert` table stores it (DER, upper-case hex).
#[derive(Clone, Debug)]
pub struct Cert {
    pub key: PathBuf,
    pub cert: PathBuf,
    pub hex: String,
}

fn openssl(args: &[&std::ffi::OsStr], what: &str) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl (is it installed?)");
    assert!(
        out.status.success(),
        "openssl {what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

pub fn der_hex(cert: &Path) -> String {
    let der = openssl(
        &[
            "x509".as_ref(),
            "-outform".as_ref(),
            "DER".as_ref(),
            "-in".as_ref(),
            cert.as_os_str(),
        ],
        "x509 -outform DER",
    );
    der.iter().map(|b| format!("{b:02X}")).collect()
}

/// `openssl req -x509 -newkey … -nodes -keyout K -out C -days 3650 -subj S`:
/// a new key and its self-signed certificate in `dir`.
pub fn gen_cert(dir: &Path, label: &str, kind: KeyKind, subj: &str) -> Cert {
    std::fs::create_dir_all(dir).expect("create certificate directory");
    let key = dir.join(format!("{label}.key.pem"));
    let cert = dir.join(format!("{label}.cert.pem"));
    let mut args: Vec<&std::ffi::OsStr> = vec!["req".as_ref(), "-x509".as_ref()];
    args.extend(kind.newkey().into_iter().map(std::ffi::OsStr::new));
    args.extend([
        "-nodes".as_ref(),
        "-keyout".as_ref(),
        key.as_os_str(),
        "-out".as_ref(),
        cert.as_os_str(),
        "-days".as_ref(),
        "3650".as_ref(),
        "-subj".as_ref(),
        subj.as_ref(),
    ]);
    openssl(&args, &format!("req for {label} ({kind:?})"));
    let hex = der_hex(&cert);
    Cert { key, cert, hex }
}

/// Keys of this test process, by type and node index (PEM): generated once,
/// so that a scenario costs only the signing of its certificates.
static KEY_POOL: Mutex<Option<KeyPool>> = Mutex::new(None);

type KeyPool = HashMap<(KeyKind, usize), Vec<u8>>;

fn pool_key(kind: KeyKind, k: usize, scratch: &Path) -> Vec<u8> {
    let mut pool = KEY_POOL.lock().unwrap_or_else(|e| e.into_inner());
    let pool = pool.get_or_insert_with(HashMap::new);
    if let Some(pem) = pool.get(&(kind, k)) {
        return pem.clone();
    }
    let c = gen_cert(scratch, &format!("pool-{kind:?}-{k}"), kind, "/CN=key pool");
    let pem = std::fs::read(&c.key).expect("read new key");
    let _ = std::fs::remove_file(&c.key);
    let _ = std::fs::remove_file(&c.cert);
    pool.insert((kind, k), pem.clone());
    pem
}

/// A self-signed certificate for host `h` (subject `CN=<name>`), with the
/// process's key number `k` of type `kind`, in `dir`.
pub fn host_cert(dir: &Path, h: &Host, k: usize, kind: KeyKind) -> Cert {
    std::fs::create_dir_all(dir).expect("create certificate directory");
    let short = h.name.split('.').next().unwrap_or("n");
    let key = dir.join(format!("{short}.key.pem"));
    let cert = dir.join(format!("{short}.cert.pem"));
    std::fs::write(&key, pool_key(kind, k, dir)).expect("write key");
    let subj = format!("/CN={}", h.name);
    openssl(
        &[
            "req".as_ref(),
            "-x509".as_ref(),
            "-key".as_ref(),
            key.as_os_str(),
            "-out".as_ref(),
            cert.as_os_str(),
            "-days".as_ref(),
            "3650".as_ref(),
            "-subj".as_ref(),
            subj.as_ref(),
        ],
        &format!("req -x509 for {} ({kind:?})", h.name),
    );
    let hex = der_hex(&cert);
    Cert { key, cert, hex }
}

/// Per-host certificates of test `idx` for `hosts` (node `i` gets key type
/// [`tls_key`]`(idx, i)`), in `dir`.
pub fn host_certs(dir: &Path, idx: Net, hosts: &[Host]) -> Vec<Cert> {
    hosts
        .iter()
        .enumerate()
        .map(|(i, h)| host_cert(dir, h, i, tls_key(idx.n(), i)))
        .collect()
}

/// Install a key and a certificate file made of `chain` (concatenated PEM)
/// into the node's system directory.
pub fn install_chain(n: &Node, key: &Cert, chain: &[&Cert]) {
    std::fs::copy(&key.key, n.etc.join("csync2_ssl_key.pem")).expect("install key");
    let mut pem = Vec::new();
    for c in chain {
        pem.extend(std::fs::read(&c.cert).expect("read certificate"));
    }
    std::fs::write(n.etc.join("csync2_ssl_cert.pem"), pem).expect("install certificate");
}

pub fn install(n: &Node, c: &Cert) {
    install_chain(n, c, &[c]);
}

// ---------------------------------------------------------------------------
// Hosts
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
pub struct Host {
    pub name: String,
    pub addr: Ipv4Addr,
}

/// The `count` hosts of test `idx` (1..=120, from [`Net`]):
/// `n<k>.<test>.test` at `127.61.<idx>.<k>`, added to `/etc/hosts` when
/// missing.
pub fn hosts(test: &str, idx: Net, count: u8) -> Vec<Host> {
    let idx = idx.n();
    assert!((1..=120).contains(&idx), "test index out of range");
    let hs: Vec<Host> = (1..=count)
        .map(|k| Host {
            name: format!("n{k}.{test}.test"),
            addr: Ipv4Addr::new(127, 61, idx, k),
        })
        .collect();
    ensure_hosts(&hs);
    hs
}

/// Append the missing `ADDR NAME` lines to /etc/hosts, under an exclusive
/// lock (tests run in parallel); existing lines are never changed.
pub fn ensure_hosts(hs: &[Host]) {
    use std::os::fd::AsRawFd;
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open("/tmp/csync2-net-hosts.lock")
        .expect("open /tmp/csync2-net-hosts.lock");
    // SAFETY: flock on a file descriptor we own; released when `lock` drops
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        panic!("flock: {}", std::io::Error::last_os_error());
    }
    let text = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    let mut add = String::new();
    for h in hs {
        let mut found = false;
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut it = line.split_whitespace();
            let Some(addr) = it.next() else { continue };
            if it.any(|n| n.eq_ignore_ascii_case(&h.name)) {
                if addr == h.addr.to_string() {
                    found = true;
                } else {
                    panic!(
                        "/etc/hosts already maps {} to {addr}, but this test needs {}; \
                         remove that line by hand",
                        h.name, h.addr
                    );
                }
            }
        }
        if !found {
            let _ = writeln!(add, "{} {}", h.addr, h.name);
        }
    }
    if !add.is_empty() {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open("/etc/hosts")
            .expect("open /etc/hosts for appending (the tests need root)");
        if !text.is_empty() && !text.ends_with('\n') {
            add.insert(0, '\n');
        }
        f.write_all(add.as_bytes()).expect("append to /etc/hosts");
    }
}

/// TCP port `slot` (0..8) of test `idx`: 31000 + 8·idx + slot.
pub fn port(idx: Net, slot: u16) -> u16 {
    assert!(slot < 8);
    31000 + 8 * idx.n() as u16 + slot + crate::common::idx::port_offset()
}

/// A scenario's base directory `/tmp/c2net-<pid>-<label>`, fresh, with the
/// (empty) synchronised directory `sync/` every node's tree is mounted on.
pub fn base_dir(label: &str) -> PathBuf {
    let base = PathBuf::from(format!("/tmp/c2net-{}-{label}", std::process::id()));
    setup::fresh_dir(&base);
    setup::create_dirs(&[&base.join("sync")]);
    base
}

/// Wait (at most 15 s, checking every `every`) until the server `p` listens
/// on addr:port. When it exits first or the time is up it is killed and
/// its [`Done`] returned.
pub fn await_listening(
    mut p: Proc,
    addr: Ipv4Addr,
    port: u16,
    every: Duration,
) -> Result<Proc, Done> {
    let end = Instant::now() + Duration::from_secs(15);
    let mut gone = false;
    let up = poll_until(end, every, || {
        if listening(addr, port) {
            return true;
        }
        gone = p.exited();
        gone
    });
    if up && !gone { Ok(p) } else { Err(p.kill()) }
}

/// Whether something listens on addr:port (from /proc/net/tcp; connecting
/// would use up a `-iii` server's only connection).
pub fn listening(addr: Ipv4Addr, port: u16) -> bool {
    let want = format!("{:08X}:{:04X}", u32::from_le_bytes(addr.octets()), port);
    let text = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    text.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 3 && f[1] == want && f[3] == "0A"
    })
}

// ---------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------

// (`Proc` and `Done`: the runner of `tests/common/proc.rs`)

/// A tmpfs mounted for a test's lifetime (big files without the disk).
pub struct Tmpfs(pub PathBuf);

impl Tmpfs {
    pub fn mount(dir: &Path, label: &str, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).expect("create the tmpfs mount point");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), label])
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(
            ok.success(),
            "mount a tmpfs on {} (needs root)",
            dir.display()
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Processes whose parent is `pid` (forked `-ii` session children).
pub fn children_of(pid: u32) -> Vec<u32> {
    children_with_state(pid)
        .into_iter()
        .map(|(p, _)| p)
        .collect()
}

/// Children of `pid` with their state letter (`Z`: a zombie).
pub fn children_with_state(pid: u32) -> Vec<(u32, char)> {
    let mut v = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return v;
    };
    for e in rd.flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid ..."; comm may contain spaces
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() > 1 && f[1].parse::<u32>() == Ok(pid) {
            v.push((p, f[0].chars().next().unwrap_or('?')));
        }
    }
    v
}

// ---------------------------------------------------------------------------
// Trees
// ---------------------------------------------------------------------------

/// What the tests compare of one file system entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub kind: &'static str,
    /// full st_mode
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// None for directories (csync2 does not preserve them, Q25)
    pub mtime: Option<i64>,
    pub content: Option<Vec<u8>>,
    pub target: Option<Vec<u8>>,
    pub rdev: Option<(u64, u64)>,
}

impl Entry {
    pub fn describe(&self) -> String {
        let mut s = format!(
            "{} mode={:o} uid={} gid={}",
            self.kind, self.mode, self.uid, self.gid
        );
        if let Some(m) = self.mtime {
            let _ = write!(s, " mtime={m}");
        }
        if let Some(c) = &self.content {
            if c.len() <= 40 {
                let _ = write!(s, " content=\"{}\"", show(c));
            } else {
                let _ = write!(s, " size={} fnv={:016x}", c.len(), fnv(c));
            }
        }
        if let Some(t) = &self.target {
            let _ = write!(s, " -> \"{}\"", show(t));
        }
        if let Some((ma, mi)) = self.rdev {
            let _ = write!(s, " dev={ma},{mi}");
        }
        s
    }
}

fn fnv(b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for &x in b {
        h ^= x as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// Tree-relative path (bytes, "" for the root) → entry.
pub type Tree = BTreeMap<Vec<u8>, Entry>;

pub fn snapshot(root: &Path) -> Tree {
    let mut t = Tree::new();
    walk(root, &[], &mut t);
    t
}

/// The short name of a file type, as in the tree descriptions.
pub fn kind_of(ft: std::fs::FileType) -> &'static str {
    if ft.is_dir() {
        "dir"
    } else if ft.is_symlink() {
        "lnk"
    } else if ft.is_file() {
        "reg"
    } else if ft.is_fifo() {
        "fifo"
    } else if ft.is_char_device() {
        "chr"
    } else if ft.is_block_device() {
        "blk"
    } else if ft.is_socket() {
        "sock"
    } else {
        "?"
    }
}

fn walk(path: &Path, rel: &[u8], t: &mut Tree) {
    let Ok(md) = std::fs::symlink_metadata(path) else {
        return;
    };
    let ft = md.file_type();
    let kind = kind_of(ft);
    let e = Entry {
        kind,
        mode: md.mode(),
        uid: md.uid(),
        gid: md.gid(),
        // symlink mtimes are never synchronised (no SETIME for links)
        mtime: if ft.is_dir() || ft.is_symlink() {
            None
        } else {
            Some(md.mtime())
        },
        content: if ft.is_file() {
            std::fs::read(path).ok()
        } else {
            None
        },
        target: if ft.is_symlink() {
            std::fs::read_link(path)
                .ok()
                .map(|p| p.into_os_string().into_vec())
        } else {
            None
        },
        rdev: if ft.is_char_device() || ft.is_block_device() {
            let d = md.rdev();
            Some((
                nix::sys::stat::major(d) as u64,
                nix::sys::stat::minor(d) as u64,
            ))
        } else {
            None
        },
    };
    t.insert(rel.to_vec(), e);
    if ft.is_dir() {
        let mut names: Vec<Vec<u8>> = std::fs::read_dir(path)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().into_vec())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        names.sort();
        for n in names {
            let mut r = rel.to_vec();
            if !r.is_empty() {
                r.push(b'/');
            }
            r.extend_from_slice(&n);
            walk(&path.join(std::ffi::OsStr::from_bytes(&n)), &r, t);
        }
    }
}

pub fn show_rel(rel: &[u8]) -> String {
    if rel.is_empty() {
        "<root>".into()
    } else {
        show(rel)
    }
}

/// Differences between two trees (empty when equal).
pub fn diff_trees(a: &Tree, b: &Tree, la: &str, lb: &str) -> Vec<String> {
    let mut v = Vec::new();
    let keys: BTreeSet<&Vec<u8>> = a.keys().chain(b.keys()).collect();
    for k in keys {
        match (a.get(k), b.get(k)) {
            (Some(x), Some(y)) if x == y => {}
            (Some(x), Some(y)) => {
                let mut s = format!(
                    "{}: {la} {} | {lb} {}",
                    show_rel(k),
                    x.describe(),
                    y.describe()
                );
                if let (Some(cx), Some(cy)) = (&x.content, &y.content)
                    && cx != cy
                {
                    let off = cx
                        .iter()
                        .zip(cy.iter())
                        .position(|(p, q)| p != q)
                        .unwrap_or(cx.len().min(cy.len()));
                    let _ = write!(s, " (contents differ from byte {off})");
                }
                v.push(s);
            }
            (Some(x), None) => v.push(format!("{}: only {la}: {}", show_rel(k), x.describe())),
            (None, Some(y)) => v.push(format!("{}: only {lb}: {}", show_rel(k), y.describe())),
            (None, None) => {}
        }
    }
    v
}

/// Give every directory of a tree the fixed mtime [`DIR_MTIME`].
pub fn fix_dir_mtimes(root: &Path) {
    let t = snapshot(root);
    for (rel, e) in &t {
        if e.kind == "dir" {
            let p = if rel.is_empty() {
                root.to_path_buf()
            } else {
                root.join(std::ffi::OsStr::from_bytes(rel))
            };
            common::set_mtime(&p, DIR_MTIME);
        }
    }
}

// ---------------------------------------------------------------------------
// Nodes
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Client,
    Server,
}

/// One "host": name, address, implementation, directories.
#[derive(Clone, Debug)]
pub struct Node {
    pub name: String,
    pub addr: Ipv4Addr,
    pub imp: Imp,
    pub role: Role,
    pub port: u16,
    pub dir: PathBuf,
    pub etc: PathBuf,
    pub db: PathBuf,
    /// a server database URL given as `-D` instead of the `db` directory
    pub db_url: Option<String>,
    pub tree: PathBuf,
    /// the synchronised path every node's tree is mounted on
    pub sync: PathBuf,
}

impl Node {
    pub fn new(h: &Host, imp: Imp, role: Role, port: u16, run_dir: &Path, sync: &Path) -> Node {
        let short = h.name.split('.').next().unwrap_or("n").to_string();
        let dirs = HostDirs::create(&run_dir.join(short), &["db"]);
        Node {
            name: h.name.clone(),
            addr: h.addr,
            imp,
            role,
            port,
            etc: dirs.etc,
            db: dirs.dir.join("db"),
            db_url: None,
            tree: dirs.tree,
            dir: dirs.dir,
            sync: sync.to_path_buf(),
        }
    }

    pub fn short(&self) -> &str {
        self.name.split('.').next().unwrap_or("n")
    }

    /// A csync2 command of this node, in its own mount namespace:
    /// `csync2 -N NAME -D DB -p PORT ARGS…`.
    pub fn command(&self, args: &[OsString]) -> Command {
        let mut cmd = Command::new("unshare");
        cmd.args([
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            "mount --bind \"$PRIV\" \"$SYNC\" && exec \"$@\"",
            "sh",
        ])
        .arg(self.imp.bin())
        .args(["-N", &self.name, "-D"])
        .arg(match &self.db_url {
            Some(u) => OsString::from(u),
            None => self.db.clone().into_os_string(),
        })
        .args(["-p", &self.port.to_string()])
        .args(args)
        .env("PRIV", &self.tree)
        .env("SYNC", &self.sync)
        .env(setup::SYSTEM_DIR, &self.etc)
        .env("LC_ALL", "C")
        .env_remove("TMPDIR");
        common::captured(&mut cmd);
        cmd
    }

    pub fn spawn(&self, args: &[OsString]) -> Proc {
        Proc::spawn(
            self.command(args),
            format!(
                "{} ({}) {}",
                self.short(),
                self.imp.label(),
                common::cmdline(args)
            ),
        )
    }

    pub fn run(&self, args: &[OsString]) -> Done {
        self.spawn(args).wait_until(Instant::now() + TIMEOUT)
    }

    /// Path inside the private tree.
    pub fn p(&self, rel: impl AsRef<[u8]>) -> PathBuf {
        let rel = rel.as_ref();
        if rel.is_empty() {
            self.tree.clone()
        } else {
            self.tree.join(std::ffi::OsStr::from_bytes(rel))
        }
    }

    /// Logical path (as csync2 sees it): `<sync>/rel`.
    pub fn s(&self, rel: impl AsRef<[u8]>) -> OsString {
        let rel = rel.as_ref();
        let mut v = self.sync.as_os_str().as_bytes().to_vec();
        if !rel.is_empty() {
            v.push(b'/');
            v.extend_from_slice(rel);
        }
        OsString::from_vec(v)
    }

    pub fn db_file(&self) -> PathBuf {
        self.db.join(format!("{}.db3", self.name))
    }

    pub fn dump(&self) -> Result<DbDump, String> {
        if !self.db_file().exists() {
            return Err("no database".into());
        }
        common::dump_db(&self.db_file())
    }

    pub fn snapshot(&self) -> Tree {
        snapshot(&self.tree)
    }

    /// Run SQL on this node's database (test set-up only).
    pub fn sql(&self, stmt: &str) {
        let c = rusqlite::Connection::open(self.db_file()).expect("open database");
        c.execute_batch(stmt)
            .unwrap_or_else(|e| panic!("{stmt}: {e}"));
    }

    pub fn write_etc(&self, file: &str, content: &str) {
        setup::write_etc(&self.etc, file, content);
    }

    // ----- file system set-up (private tree, raw byte paths) -----

    pub fn file(&self, rel: impl AsRef<[u8]>, content: impl AsRef<[u8]>, mode: u32, mtime: i64) {
        setup::make_file(&self.p(rel), content.as_ref(), mode, mtime);
    }

    pub fn mkdir(&self, rel: impl AsRef<[u8]>, mode: u32) {
        setup::make_dir(&self.p(rel), mode);
    }

    pub fn symlink(&self, rel: impl AsRef<[u8]>, target: impl AsRef<[u8]>) {
        let p = self.p(rel);
        setup::make_symlink(&p, target.as_ref());
        // (GETTM reports it; never synchronised)
        common::set_mtime(&p, DIR_MTIME);
    }

    pub fn retarget(&self, rel: impl AsRef<[u8]>, target: impl AsRef<[u8]>) {
        let rel = rel.as_ref();
        std::fs::remove_file(self.p(rel)).expect("remove symlink");
        self.symlink(rel, target);
    }

    pub fn fifo(&self, rel: impl AsRef<[u8]>, mode: u32, mtime: i64) {
        setup::make_fifo(&self.p(rel), mode, mtime);
    }

    pub fn mknod(&self, rel: impl AsRef<[u8]>, blk: bool, dev: (u64, u64), mode: u32, mtime: i64) {
        setup::make_dev(&self.p(rel), blk, dev, mode, mtime);
    }

    /// A unix socket inode (see [`setup::make_socket`]).
    pub fn socket(&self, rel: impl AsRef<[u8]>, mode: u32, mtime: i64) {
        setup::make_socket(&self.p(rel), mode, mtime);
    }

    pub fn chmod(&self, rel: impl AsRef<[u8]>, mode: u32) {
        common::set_mode(&self.p(rel), mode);
    }

    pub fn chown(&self, rel: impl AsRef<[u8]>, uid: u32, gid: u32) {
        setup::lchown(&self.p(rel), uid, gid);
    }

    pub fn mtime(&self, rel: impl AsRef<[u8]>, mtime: i64) {
        common::set_mtime(&self.p(rel), mtime);
    }

    pub fn remove(&self, rel: impl AsRef<[u8]>) {
        setup::remove_any(&self.p(rel));
    }

    pub fn read(&self, rel: impl AsRef<[u8]>) -> Option<Vec<u8>> {
        std::fs::read(self.p(rel)).ok()
    }
}

/// Deterministic pseudo-random bytes.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Deterministic text (lines of words), `len` bytes.
pub fn pseudo_text(len: usize, seed: u64) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "cluster", "sync", "node", "file", "delta", "block", "check", "peer", "dirty", "host",
        "group", "key", "alpha", "beta", "gamma", "delta2", "rsync", "mtime",
    ];
    let r = pseudo_random(len, seed);
    let mut v = Vec::with_capacity(len + 16);
    let mut i = 0;
    while v.len() < len {
        v.extend_from_slice(WORDS[r[i % r.len()] as usize % WORDS.len()].as_bytes());
        v.push(if r[(i * 7 + 3) % r.len()].is_multiple_of(9) {
            b'\n'
        } else {
            b' '
        });
        i += 1;
    }
    v.truncate(len);
    v
}

// ---------------------------------------------------------------------------
// Observations
// ---------------------------------------------------------------------------

/// Something a scenario declares as an expected difference; applied to both
/// observations before they are compared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ignore {
    /// exit codes of all clients
    ClientCode,
    /// important client lines containing this text
    ClientLines(String),
    /// wire exchanges whose client request contains this text
    Wire(Vec<u8>),
    /// a tree entry of node N (tree-relative path)
    Tree(usize, Vec<u8>),
    /// database rows of node N whose first column decodes to this path
    DbFile(usize, Vec<u8>),
    /// important server lines containing this text
    ServerLines(String),
}

#[derive(Clone, Debug)]
pub struct ClientRun {
    pub node: usize,
    pub imp: Imp,
    pub done: Done,
}

#[derive(Clone, Debug)]
pub struct ServerRun {
    pub node: usize,
    pub imp: Imp,
    pub done: Done,
    /// several sessions in parallel (`-ii`): compare sorted lines
    pub unordered: bool,
}

/// Everything recorded after one step of a scenario.
#[derive(Clone, Debug)]
pub struct Obs {
    pub label: String,
    pub clients: Vec<ClientRun>,
    pub servers: Vec<ServerRun>,
    pub trees: Vec<Tree>,
    pub dbs: Vec<Result<DbDump, String>>,
    pub ignore: Vec<Ignore>,
}

/// Client stderr lines compared between runs (prefixes, or `~text` for
/// "contains").
pub const CLIENT_LINES: &[&str] = &[
    "Finished with ",
    "ERROR",
    "Host stays in dirty state",
    "File stays in dirty state",
    "Auto-resolving",
    "~auto resolving",
    "Do not auto-resolve",
    "Updating ",
    "Deleting ",
    "File is already up to date on peer.",
    "Marking file as dirty: ",
    "Connection closed.",
    "Connecting to host ",
    "Bound to ",
    "missing parent dir",
    "Cant stat",
    "WARNING: ",
    "Config command failed",
    "Can't create socket",
    "Won ",
    "Lost ",
];

/// Server stderr lines compared between runs (after the `<PID> ` prefix).
pub const SERVER_LINES: &[&str] = &[
    "Updated ",
    "Listening on ",
    "Received line too long",
    "Format-error",
    "Server error",
    "This host (",
    "Config names are limited",
];

fn strip_pid(l: &str) -> &str {
    if let Some(rest) = l.strip_prefix('<')
        && let Some(i) = rest.find("> ")
        && rest[..i].bytes().all(|c| c.is_ascii_digit())
    {
        return &rest[i + 2..];
    }
    l
}

fn selected(l: &str, set: &[&str]) -> bool {
    set.iter().any(|p| match p.strip_prefix('~') {
        Some(t) => l.contains(t),
        None => l.starts_with(p),
    })
}

/// Split the real client's `auto resolving... response = N` (printed
/// without a newline) from whatever was printed after it on the same line.
fn split_glued(lines: Vec<String>) -> Vec<String> {
    let mut v = Vec::new();
    for l in lines {
        const P: &str = "auto resolving... response = ";
        if let Some(i) = l.find(P) {
            let rest = &l[i + P.len()..];
            let n = rest.bytes().take_while(|c| c.is_ascii_digit()).count();
            let cut = i + P.len() + n;
            if !l[..i].is_empty() {
                v.push(l[..i].to_string());
            }
            v.push(l[i..cut].to_string());
            if cut < l.len() {
                v.push(l[cut..].to_string());
            }
        } else {
            v.push(l);
        }
    }
    v
}

const MARKING: &str = "Marking file as dirty: ";

/// The `Marking file as dirty: …` lines of a client, in order.
pub fn marking_lines(d: &Done) -> Vec<String> {
    split_glued(d.stderr_lines())
        .into_iter()
        .filter(|l| l.starts_with(MARKING))
        .collect()
}

/// The important client lines (see [`CLIENT_LINES`]) except the marking
/// lines, which are compared separately.
pub fn client_lines(d: &Done, ign: &[Ignore]) -> Vec<String> {
    split_glued(d.stderr_lines())
        .into_iter()
        .filter(|l| selected(l, CLIENT_LINES) && !l.starts_with(MARKING))
        .filter(|l| {
            !ign.iter()
                .any(|i| matches!(i, Ignore::ClientLines(t) if l.contains(t.as_str())))
        })
        .collect()
}

/// `Listening on ADDR:PORT as NAME.`: each run has its own port.
fn mask_port(l: &str) -> String {
    if let Some(rest) = l.strip_prefix("Listening on ")
        && let (Some(c), Some(sp)) = (rest.find(':'), rest.find(' '))
        && c < sp
    {
        return format!("Listening on {}:PORT{}", &rest[..c], &rest[sp..]);
    }
    l.to_string()
}

/// Remove every `<PID> ` token of a line (concurrent session processes write
/// the prefix and the message separately, so they interleave).
fn strip_all_pids(l: &str) -> String {
    let mut out = String::new();
    let mut rest = l;
    while let Some(i) = rest.find('<') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let n = after.bytes().take_while(|c| c.is_ascii_digit()).count();
        if n > 0 && after[n..].starts_with("> ") {
            rest = &after[n + 2..];
        } else {
            out.push('<');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// In `unordered` mode (several concurrent sessions) PID prefixes are
/// removed anywhere in the line and a message is found anywhere in it.
pub fn server_lines(d: &Done, unordered: bool, ign: &[Ignore]) -> Vec<String> {
    let mut v: Vec<String> = d
        .stderr_lines()
        .iter()
        .filter_map(|l| {
            if !unordered {
                let l = strip_pid(l).to_string();
                return selected(&l, SERVER_LINES).then_some(l);
            }
            let l = strip_all_pids(l);
            SERVER_LINES
                .iter()
                .filter_map(|p| l.find(p))
                .min()
                .map(|i| l[i..].to_string())
        })
        .filter(|l| {
            !ign.iter()
                .any(|i| matches!(i, Ignore::ServerLines(t) if l.contains(t.as_str())))
        })
        .map(|l| mask_port(&l))
        .collect();
    if unordered {
        v.sort();
    }
    v
}

/// One request/response pair of a `-vvv` protocol trace: consecutive
/// `Local> ` lines, then consecutive `Peer> ` lines (chunking of blobs
/// depends on timing, so adjacent lines are joined). `local`/`peer` are the
/// decoded bytes, `*_raw` the trace text as printed.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Exch {
    pub local: Vec<u8>,
    pub peer: Vec<u8>,
    pub local_raw: Vec<u8>,
    pub peer_raw: Vec<u8>,
}

impl Exch {
    pub fn local_starts(&self, p: &str) -> bool {
        self.local.starts_with(p.as_bytes())
    }
    pub fn peer_starts(&self, p: &str) -> bool {
        self.peer.starts_with(p.as_bytes())
    }
}

/// Undo the trace escapes: `\n`, `\r`, `\ooo` (octal); anything else is
/// literal.
pub fn trace_decode(t: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(t.len());
    let mut i = 0;
    while i < t.len() {
        if t[i] == b'\\' && i + 1 < t.len() {
            match t[i + 1] {
                b'n' => {
                    out.push(b'\n');
                    i += 2;
                    continue;
                }
                b'r' => {
                    out.push(b'\r');
                    i += 2;
                    continue;
                }
                // the real client prints bytes >= 0x80 as sign-extended
                // 32-bit octal: `\37777777703` for 0xc3
                b'3' if t[i + 1..].starts_with(b"37777777")
                    && i + 11 < t.len()
                    && t[i + 9..i + 12].iter().all(|c| (b'0'..=b'7').contains(c)) =>
                {
                    let v = (t[i + 9] - b'0') as u32 * 64
                        + (t[i + 10] - b'0') as u32 * 8
                        + (t[i + 11] - b'0') as u32;
                    out.push((v & 0xff) as u8);
                    i += 12;
                    continue;
                }
                b'0'..=b'3'
                    if i + 3 < t.len()
                        && (b'0'..=b'7').contains(&t[i + 2])
                        && (b'0'..=b'7').contains(&t[i + 3]) =>
                {
                    out.push((t[i + 1] - b'0') * 64 + (t[i + 2] - b'0') * 8 + (t[i + 3] - b'0'));
                    i += 4;
                    continue;
                }
                _ => {}
            }
        }
        out.push(t[i]);
        i += 1;
    }
    out
}

pub fn wire(d: &Done) -> Vec<Exch> {
    let mut v: Vec<Exch> = Vec::new();
    let mut last_local = false;
    for l in d.stderr.split(|&c| c == b'\n') {
        if let Some(t) = l.strip_prefix(b"Local> ".as_slice()) {
            if !last_local || v.is_empty() {
                v.push(Exch::default());
            }
            let e = v.last_mut().expect("non-empty");
            e.local_raw.extend_from_slice(t);
            e.local.extend(trace_decode(t));
            last_local = true;
        } else if let Some(t) = l.strip_prefix(b"Peer> ".as_slice()) {
            if v.is_empty() {
                v.push(Exch::default());
            }
            let e = v.last_mut().expect("non-empty");
            e.peer_raw.extend_from_slice(t);
            e.peer.extend(trace_decode(t));
            last_local = false;
        }
    }
    v
}

/// Our client's pipelining offer (a real server answers `Unknown
/// command!` and the session goes on in lock-step).
const PIPELINE_OFFER: &[u8] = b"X-CSYNC2RS-PIPELINE";

fn wire_filtered(d: &Done, ign: &[Ignore]) -> Vec<Exch> {
    wire(d)
        .into_iter()
        .filter(|e| !e.local.starts_with(PIPELINE_OFFER))
        .filter(|e| {
            !ign.iter()
                .any(|i| matches!(i, Ignore::Wire(t) if contains(&e.local, t)))
        })
        .collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// The command line of a request (its first line), with the device-number
/// argument of MKCHR/MKBLK dropped (our client sends it, the real one does
/// not: protocol.md Q8).
fn command_line(local: &[u8]) -> String {
    let first = local.split(|&c| c == b'\n').next().unwrap_or(b"");
    let toks: Vec<&[u8]> = first.split(|&c| c == b' ').collect();
    if (toks[0] == b"MKCHR" || toks[0] == b"MKBLK") && toks.len() > 3 {
        return show(&toks[..3].join(&b' '));
    }
    show(first)
}

fn first_line(s: &[u8]) -> String {
    show(s.split(|&c| c == b'\n').next().unwrap_or(b""))
}

fn is_command(local: &[u8]) -> bool {
    const CMDS: &[&str] = &[
        "CONFIG", "HELLO", "SIG", "PATCH", "DEL", "FLUSH", "MKDIR", "MKCHR", "MKBLK", "MKFIFO",
        "MKLINK", "MKSOCK", "SETOWN", "SETMOD", "SETIME", "GETTM", "GETSZ", "BYE", "GROUP", "TYPE",
        "LIST", "SSL",
    ];
    let w = local
        .split(|&c| c == b' ' || c == b'\n')
        .next()
        .unwrap_or(b"");
    CMDS.iter().any(|c| c.as_bytes() == w)
}

fn cut(s: &str, n: usize) -> String {
    if s.len() <= n {
        s.to_string()
    } else {
        let mut i = n;
        while !s.is_char_boundary(i) {
            i -= 1;
        }
        format!("{}… ({} chars)", &s[..i], s.len())
    }
}

/// First difference of two line lists, with context.
fn diff_list(what: &str, a: &[String], b: &[String], la: &str, lb: &str) -> Option<String> {
    if a == b {
        return None;
    }
    let i = (0..a.len().max(b.len()))
        .find(|&i| a.get(i) != b.get(i))
        .unwrap_or(0);
    let mut s = format!(
        "{what} differ ({la} {} lines, {lb} {} lines); first difference at line {}:\n",
        a.len(),
        b.len(),
        i + 1
    );
    for l in &a[i.saturating_sub(2)..i.min(a.len())] {
        let _ = writeln!(s, "        = {}", cut(l, 200));
    }
    let _ = writeln!(
        s,
        "        {la}: {}",
        a.get(i).map(|x| cut(x, 300)).unwrap_or("<none>".into())
    );
    let _ = writeln!(
        s,
        "        {lb}: {}",
        b.get(i).map(|x| cut(x, 300)).unwrap_or("<none>".into())
    );
    Some(s)
}

fn diff_wire(a: &[Exch], b: &[Exch], la: &str, lb: &str, commands_only: bool) -> Option<String> {
    let norm = |v: &[Exch]| -> Vec<String> {
        if commands_only {
            v.iter()
                .filter(|e| is_command(&e.local))
                .map(|e| format!("{}  =>  {}", command_line(&e.local), first_line(&e.peer)))
                .collect()
        } else {
            v.iter()
                .map(|e| {
                    format!(
                        "Local> {}  ||  Peer> {}",
                        show(&e.local_raw),
                        show(&e.peer_raw)
                    )
                })
                .collect()
        }
    };
    diff_list(
        if commands_only {
            "protocol trace (commands and first reply lines)"
        } else {
            "protocol trace (client -vvv Local>/Peer> exchanges)"
        },
        &norm(a),
        &norm(b),
        la,
        lb,
    )
}

/// Replace `dev=<n>` in check texts by `dev=*`.
fn mask_dev(t: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(t.len());
    let mut i = 0;
    while i < t.len() {
        if t[i..].starts_with(b"dev=") {
            out.extend_from_slice(b"dev=*");
            i += 4;
            while i < t.len() && (t[i].is_ascii_digit() || t[i] == b'-') {
                i += 1;
            }
        } else {
            out.push(t[i]);
            i += 1;
        }
    }
    out
}

fn normalize_db(d: &DbDump, node: usize, ign: &[Ignore], mask_devs: bool) -> DbDump {
    let mut d = d.clone();
    let drop: Vec<&Vec<u8>> = ign
        .iter()
        .filter_map(|i| match i {
            Ignore::DbFile(n, f) if *n == node => Some(f),
            _ => None,
        })
        .collect();
    for t in d.tables.values_mut() {
        t.rows.retain(|r| {
            let name = r.first().and_then(Val::text).map(common::url_decode);
            !name.is_some_and(|n| drop.contains(&&n))
        });
        if mask_devs {
            for r in &mut t.rows {
                for v in r.iter_mut() {
                    if let Val::Text(x) = v
                        && (contains(x, b"type=chr") || contains(x, b"type=blk"))
                    {
                        *x = mask_dev(x);
                    }
                }
            }
            t.rows.sort();
        }
    }
    d
}

fn normalize_tree(t: &Tree, node: usize, ign: &[Ignore], mask_devs: bool) -> Tree {
    let mut t = t.clone();
    for i in ign {
        if let Ignore::Tree(n, rel) = i
            && *n == node
        {
            t.remove(rel);
        }
    }
    if mask_devs {
        for e in t.values_mut() {
            e.rdev = None;
        }
    }
    t
}

/// Differences between observation `b` (run `mb`) and the reference `a`
/// (run `ma`).
pub fn compare_obs(
    a: &Obs,
    ma: Mode,
    b: &Obs,
    mb: Mode,
    nodes: &[Node],
    notes: &mut Vec<String>,
) -> Vec<String> {
    let la = format!("({})", ma.tag);
    let lb = format!("({})", mb.tag);
    let mut ign = a.ignore.clone();
    ign.extend(b.ignore.iter().cloned());
    let mut v = Vec::new();
    // a pipelined `-x` sends files while it checks, so the peer applies
    // them in the order the check finds them (doc/protocol-extension.md)
    let mut streamed = false;
    if a.clients.len() != b.clients.len() || a.servers.len() != b.servers.len() {
        v.push(format!(
            "different number of processes: {la} {} clients/{} servers, {lb} {}/{}",
            a.clients.len(),
            a.servers.len(),
            b.clients.len(),
            b.servers.len()
        ));
        return v;
    }
    for (ca, cb) in a.clients.iter().zip(&b.clients) {
        let who = format!("client {}", nodes[ca.node].short());
        let code_differs = !ign.contains(&Ignore::ClientCode) && ca.done.code != cb.done.code;
        if code_differs || ca.done.timed_out != cb.done.timed_out {
            v.push(format!(
                "{who} status: {la} {}, {lb} {}",
                ca.done.status(),
                cb.done.status()
            ));
        }
        if let Some(d) = diff_list(
            &format!("{who} stdout lines"),
            &ca.done.stdout_lines(),
            &cb.done.stdout_lines(),
            &la,
            &lb,
        ) {
            v.push(d);
        }
        if let Some(d) = diff_list(
            &format!("{who} important stderr lines"),
            &client_lines(&ca.done, &ign),
            &client_lines(&cb.done, &ign),
            &la,
            &lb,
        ) {
            v.push(d);
        }
        let (ma_, mb_) = (marking_lines(&ca.done), marking_lines(&cb.done));
        if ma_ != mb_ {
            let (mut sa_, mut sb_) = (ma_.clone(), mb_.clone());
            sa_.sort();
            sb_.sort();
            let what = if sa_ == sb_ {
                format!("{who} `Marking file as dirty` lines: same lines, different order")
            } else {
                format!("{who} `Marking file as dirty` lines")
            };
            if let Some(d) = diff_list(&what, &ma_, &mb_, &la, &lb) {
                v.push(d);
            }
        }
        let (wa, wb) = (wire_filtered(&ca.done, &ign), wire_filtered(&cb.done, &ign));
        // a session that went pipelined (ours -> ours, doc/protocol-extension.md)
        // has another wire; everything else is compared as usual
        let pipelined = cb
            .done
            .stderr_lines()
            .iter()
            .any(|l| l.starts_with("Peer> OK (pipelining)."));
        let ours_both = cb.imp == Imp::Ours
            && !b.servers.is_empty()
            && b.servers.iter().all(|s| s.imp == Imp::Ours);
        let offered = cb
            .done
            .stderr_lines()
            .iter()
            .any(|l| l.starts_with("Local> X-CSYNC2RS-PIPELINE"));
        if ours_both && offered && !pipelined {
            v.push(format!("{lb} {who}: our server refused pipelining"));
        }
        if pipelined {
            streamed = true;
            if !ours_both {
                v.push(format!("{lb} {who}: pipelining with a real csync2 peer"));
            }
        } else if ca.imp == cb.imp && ca.imp == Imp::Real {
            if let Some(d) = diff_wire(&wa, &wb, &la, &lb, false) {
                v.push(format!("{who}: {d}"));
            }
        } else if wb.is_empty() && !wa.is_empty() {
            notes.push(format!(
                "{lb} {who}: no `Local>`/`Peer>` protocol trace at -vvv (the real client prints one); \
                 wire not compared"
            ));
        } else {
            if let Some(d) = diff_wire(&wa, &wb, &la, &lb, true) {
                v.push(format!("{who}: {d}"));
            }
            let escapes = wa.iter().zip(&wb).find(|(x, y)| {
                (x.local == y.local && x.local_raw != y.local_raw)
                    || (x.peer == y.peer && x.peer_raw != y.peer_raw)
            });
            if let Some((x, y)) = escapes {
                notes.push(format!(
                    "{lb} {who}: the -vvv trace escapes bytes differently from the real client \
                     (same bytes): {la} `Local> {}` / `Peer> {}`, {lb} `Local> {}` / `Peer> {}`",
                    cut(&show(&x.local_raw), 60),
                    cut(&show(&x.peer_raw), 60),
                    cut(&show(&y.local_raw), 60),
                    cut(&show(&y.peer_raw), 60)
                ));
            }
        }
    }
    for (sa, sb) in a.servers.iter().zip(&b.servers) {
        let who = format!("server {}", nodes[sa.node].short());
        if sa.done.code != sb.done.code || sa.done.timed_out != sb.done.timed_out {
            v.push(format!(
                "{who} status: {la} {}, {lb} {}",
                sa.done.status(),
                sb.done.status()
            ));
        }
        if let Some(d) = diff_list(
            &format!("{who} stdout lines"),
            &sa.done.stdout_lines(),
            &sb.done.stdout_lines(),
            &la,
            &lb,
        ) {
            v.push(d);
        }
        if let Some(d) = diff_list(
            &format!("{who} important stderr lines"),
            &server_lines(&sa.done, sa.unordered || streamed, &ign),
            &server_lines(&sb.done, sb.unordered || streamed, &ign),
            &la,
            &lb,
        ) {
            v.push(d);
        }
    }
    // our client sends the device number with MKCHR/MKBLK (Q8), the real one
    // does not: mask device numbers on the receiving nodes
    let mask = ma.client != mb.client;
    for (i, n) in nodes.iter().enumerate() {
        let m = mask && n.role == Role::Server;
        let ta = normalize_tree(&a.trees[i], i, &ign, m);
        let tb = normalize_tree(&b.trees[i], i, &ign, m);
        let d = diff_trees(&ta, &tb, &la, &lb);
        if !d.is_empty() {
            let mut s = format!("tree of {} differs ({} entries):\n", n.short(), d.len());
            for l in d.iter().take(12) {
                let _ = writeln!(s, "        {l}");
            }
            v.push(s);
        }
        match (&a.dbs[i], &b.dbs[i]) {
            (Ok(x), Ok(y)) => {
                let d =
                    common::diff_dumps(&normalize_db(x, i, &ign, m), &normalize_db(y, i, &ign, m));
                if !d.is_empty() {
                    v.push(format!(
                        "database of {} differs (REAL = {la}, OURS = {lb}):\n{d}",
                        n.short()
                    ));
                }
            }
            (Err(x), Err(y)) if x == y => {}
            (x, y) => v.push(format!(
                "database of {}: {la} {}, {lb} {}",
                n.short(),
                x.as_ref().map(|_| "exists").unwrap_or_else(|e| e),
                y.as_ref().map(|_| "exists").unwrap_or_else(|e| e)
            )),
        }
    }
    v
}

// ---------------------------------------------------------------------------
// Runs
// ---------------------------------------------------------------------------

/// The default configuration: `{SYNC}`, `{N1}`…`{N9}` are substituted; the
/// key file `g.key` holds [`KEY1`], `h.key` holds [`KEY2`].
pub const DEFAULT_CFG: &str =
    "nossl * *;\ngroup g {\n    host {N1} {N2};\n    key g.key;\n    include {SYNC};\n}\n";

/// One run of a scenario in one [`Mode`] and [`Transport`].
pub struct Run {
    pub test: String,
    pub mode: Mode,
    pub transport: Transport,
    /// the certificate of every node (TLS runs; empty in plain runs)
    pub certs: Vec<Cert>,
    pub nodes: Vec<Node>,
    pub obs: Vec<Obs>,
    pub history: Vec<String>,
    pub problems: Vec<String>,
    pub notes: Vec<String>,
    pub dir: PathBuf,
    pub sync: PathBuf,
    step_no: usize,
}

impl Run {
    /// A run whose transport the scenario sets up (the default
    /// configuration has `nossl * *;`; see [`Transport::Custom`]).
    pub fn new(
        test: &str,
        mode: Mode,
        hosts: &[Host],
        servers: &[usize],
        base: &Path,
        port: u16,
    ) -> Run {
        Run::with_transport(
            test,
            mode,
            Transport::Custom,
            &[],
            hosts,
            servers,
            base,
            port,
        )
    }

    /// A run over `transport`; a TLS run installs `certs[i]` on node `i`
    /// (see [`Run::install_certs`]). The run directory is
    /// `<base>/<tag><suffix>`.
    #[allow(clippy::too_many_arguments)]
    pub fn with_transport(
        test: &str,
        mode: Mode,
        transport: Transport,
        certs: &[Cert],
        hosts: &[Host],
        servers: &[usize],
        base: &Path,
        port: u16,
    ) -> Run {
        assert!(
            transport != Transport::Tls || certs.len() == hosts.len(),
            "a TLS run needs one certificate per host"
        );
        let dir = base.join(format!("{}{}", mode.tag, transport.suffix()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create run dir");
        let sync = base.join("sync");
        let nodes = hosts
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let server = servers.contains(&i);
                Node::new(
                    h,
                    if server { mode.server } else { mode.client },
                    if server { Role::Server } else { Role::Client },
                    port,
                    &dir,
                    &sync,
                )
            })
            .collect();
        let r = Run {
            test: test.to_string(),
            mode,
            transport,
            certs: if transport == Transport::Tls {
                certs.to_vec()
            } else {
                Vec::new()
            },
            nodes,
            obs: Vec::new(),
            history: Vec::new(),
            problems: Vec::new(),
            notes: Vec::new(),
            dir,
            sync,
            step_no: 0,
        };
        r.install_certs();
        r.config(DEFAULT_CFG);
        r
    }

    pub fn n(&self, i: usize) -> &Node {
        &self.nodes[i]
    }

    /// "(b) REAL client -> OURS server, TLS"
    pub fn describe(&self) -> String {
        format!("{}, {}", self.mode.describe(), self.transport.label())
    }

    /// Whether node `i` runs the real program (also "ours" when the harness
    /// is validated with `CSYNC2_DIFF_OURS` pointing at the real binary).
    pub fn runs_real(&self, i: usize) -> bool {
        self.nodes[i].imp == Imp::Real || ours_is_real()
    }

    /// TLS runs: every node gets its own key and certificate. When the
    /// clients and the servers are all the real program, a server's
    /// certificate file also holds the other nodes' certificates after its
    /// own: the real server names the certificates of that file as
    /// acceptable CAs, and the real (GnuTLS) client withholds a certificate
    /// whose issuer is not among them (protocol.md §5.5).
    pub fn install_certs(&self) {
        if self.transport != Transport::Tls {
            return;
        }
        let all_real = (0..self.nodes.len()).all(|i| self.runs_real(i));
        for (i, n) in self.nodes.iter().enumerate() {
            let own = &self.certs[i];
            if all_real && n.role == Role::Server {
                let mut chain = vec![own];
                chain.extend(
                    self.certs
                        .iter()
                        .enumerate()
                        .filter_map(|(j, c)| (j != i).then_some(c)),
                );
                install_chain(n, own, &chain);
            } else {
                install(n, own);
            }
        }
    }

    pub fn subst(&self, text: &str) -> String {
        let mut t = text.replace("{SYNC}", &self.sync.to_string_lossy());
        for (i, n) in self.nodes.iter().enumerate() {
            t = t.replace(&format!("{{N{}}}", i + 1), &n.name);
        }
        t
    }

    /// Write the same config and key files to every node. In TLS runs the
    /// `nossl * *;` lines are left out (no other `nossl` rule may remain).
    pub fn config(&self, text: &str) {
        let mut cfg = self.subst(text);
        if self.transport == Transport::Tls {
            cfg = cfg
                .split_inclusive('\n')
                .filter(|l| l.trim() != "nossl * *;")
                .collect();
            assert!(
                !cfg.contains("nossl"),
                "a TLS run's configuration still has a nossl rule:\n{cfg}"
            );
        }
        for n in &self.nodes {
            n.write_etc("csync2.cfg", &cfg);
            setup::write_keys(&n.etc, &[("g.key", KEY1), ("h.key", KEY2)]);
        }
    }

    pub fn note(&mut self, s: impl Into<String>) {
        self.history.push(s.into());
    }

    /// Record a scenario expectation (checked in every run).
    pub fn expect(&mut self, ok: bool, what: impl Into<String>) {
        if !ok {
            let s = what.into();
            self.problems.push(format!(
                "{}: expectation failed: {s}",
                self.obs
                    .last()
                    .map(|o| format!("after `{}`", o.label))
                    .unwrap_or_else(|| "set-up".into())
            ));
        }
    }

    pub fn fix_mtimes(&self) {
        for n in &self.nodes {
            fix_dir_mtimes(&n.tree);
        }
    }

    pub fn save_output(&self, d: &Done, name: &str) {
        let base = self.dir.join(format!("{:02}-{name}", self.step_no));
        let _ = std::fs::write(base.with_extension("stdout"), &d.stdout);
        let _ = std::fs::write(base.with_extension("stderr"), &d.stderr);
    }

    /// Run csync2 on node `i` (not recorded as an observation).
    pub fn cmd(&mut self, i: usize, args: Vec<OsString>) -> Done {
        self.step_no += 1;
        let d = self.nodes[i].run(&args);
        self.note(format!(
            "{} {}: {} -> {}",
            self.nodes[i].short(),
            self.nodes[i].imp.label(),
            common::cmdline(&args),
            d.status()
        ));
        self.save_output(&d, &format!("{}-cmd", self.nodes[i].short()));
        d
    }

    /// As [`Run::cmd`]; the command must exit with `code`.
    pub fn cmd_ok(&mut self, i: usize, args: Vec<OsString>, code: i32) -> Done {
        let d = self.cmd(i, args.clone());
        if d.code != Some(code) {
            let tail: Vec<String> = d.stderr_lines().into_iter().rev().take(8).collect();
            self.problems.push(format!(
                "set-up command on {} ({}) `{}` gave {} (expected exit {code}); last stderr lines (newest first): {:?}",
                self.nodes[i].short(),
                self.nodes[i].imp.label(),
                common::cmdline(&args),
                d.status(),
                tail
            ));
        }
        d
    }

    /// `-cIr <sync>` on every node: file tables without dirty rows.
    pub fn init(&mut self) {
        self.fix_mtimes();
        for i in 0..self.nodes.len() {
            let s = self.nodes[i].s("");
            self.cmd_ok(i, vec!["-cIr".into(), s], 0);
        }
    }

    /// `-cr <sync>` on node `i`.
    pub fn check(&mut self, i: usize) {
        self.fix_mtimes();
        let s = self.nodes[i].s("");
        self.cmd_ok(i, vec!["-cr".into(), s], 0);
    }

    /// Start a server (`-iii` or `-ii`) with `-v` on node `i` and wait until
    /// it listens.
    pub fn start_server(&mut self, i: usize, kind: &str) -> Proc {
        let n = &self.nodes[i];
        let p = n.spawn(&[kind.into(), "-v".into()]);
        let p = await_listening(p, n.addr, n.port, Duration::from_millis(5)).unwrap_or_else(|d| {
            panic!(
                "server {} ({}) did not start listening on {}:{}: {}\n{}",
                n.short(),
                n.imp.label(),
                n.addr,
                n.port,
                d.status(),
                show(&d.stderr)
            )
        });
        self.note(format!(
            "{} {}: started server {kind} on {}:{}",
            n.short(),
            n.imp.label(),
            n.addr,
            n.port
        ));
        p
    }

    /// After the clients: wait for a `-iii` server to end its session; kill
    /// it at once if it is still listening (nobody connected).
    pub fn finish_server(&mut self, i: usize, mut p: Proc) -> Done {
        let (addr, port) = (self.nodes[i].addr, self.nodes[i].port);
        let end = Instant::now() + Duration::from_secs(15);
        let mut exited = false;
        let ended = poll_until(end, Duration::from_millis(5), || {
            exited = p.exited();
            exited || listening(addr, port)
        });
        let d = if exited {
            p.wait_until(Instant::now())
        } else if ended {
            p.kill()
        } else {
            let mut d = p.kill();
            d.timed_out = true;
            d
        };
        self.save_output(&d, &format!("{}-server", self.nodes[i].short()));
        d
    }

    /// Stop a `-ii` daemon once its session children have finished.
    pub fn stop_daemon(&mut self, i: usize, mut p: Proc) -> Done {
        let end = Instant::now() + Duration::from_secs(15);
        let pid = p.pid;
        poll_until(end, Duration::from_millis(10), || {
            children_of(pid).is_empty()
        });
        if !children_of(p.pid).is_empty() {
            self.problems.push(format!(
                "server {}: session processes still running after 15 s",
                self.nodes[i].short()
            ));
        }
        let _ = p.exited();
        let d = p.kill();
        self.save_output(&d, &format!("{}-daemon", self.nodes[i].short()));
        d
    }

    /// Record an observation of the current state.
    pub fn record(
        &mut self,
        label: &str,
        clients: Vec<ClientRun>,
        servers: Vec<ServerRun>,
    ) -> usize {
        let trees = self.nodes.iter().map(|n| n.snapshot()).collect();
        let dbs = self.nodes.iter().map(|n| n.dump()).collect();
        self.obs.push(Obs {
            label: label.to_string(),
            clients,
            servers,
            trees,
            dbs,
            ignore: Vec::new(),
        });
        self.obs.len() - 1
    }

    /// A push: `-iii` server on node `server` (when given), the client
    /// command `-vvv ARGS` on node `client`; then an observation.
    pub fn push_from(
        &mut self,
        label: &str,
        client: usize,
        server: Option<usize>,
        args: Vec<OsString>,
    ) -> usize {
        self.fix_mtimes();
        let srv = server.map(|s| (s, self.start_server(s, "-iii")));
        let mut full: Vec<OsString> = vec!["-vvv".into()];
        full.extend(args);
        self.step_no += 1;
        let c = self.nodes[client].run(&full);
        self.save_output(&c, &format!("{}-client", self.nodes[client].short()));
        self.note(format!(
            "{label}: {} {}: {} -> {}",
            self.nodes[client].short(),
            self.nodes[client].imp.label(),
            common::cmdline(&full),
            c.status()
        ));
        let mut servers = Vec::new();
        if let Some((s, p)) = srv {
            let d = self.finish_server(s, p);
            self.note(format!(
                "  server {}: {}",
                self.nodes[s].short(),
                d.status()
            ));
            servers.push(ServerRun {
                node: s,
                imp: self.nodes[s].imp,
                done: d,
                unordered: false,
            });
        }
        let imp = self.nodes[client].imp;
        // harness sanity: the real client's -vvv trace must be parseable
        let traced = !wire(&c).is_empty();
        let connected = servers.iter().any(|s| !s.done.killed);
        let o = self.record(
            label,
            vec![ClientRun {
                node: client,
                imp,
                done: c,
            }],
            servers,
        );
        if imp == Imp::Real && connected {
            self.expect(traced, "the real client's -vvv protocol trace was found");
        }
        if let Some(s) = server.filter(|_| connected) {
            self.expect_transport(o, 0, s);
            self.expect_pins(o, client, s);
        }
        o
    }

    /// Client number `c` of observation `o` connected to node `server` over
    /// the run's transport (its `Connecting to host NAME (SSL|PLAIN)` line;
    /// the client must run with `-v` or more).
    pub fn expect_transport(&mut self, o: usize, c: usize, server: usize) {
        let Some(word) = self.transport.connect_word() else {
            return;
        };
        let want = format!("Connecting to host {} {word}", self.nodes[server].name);
        let ok = show(&self.obs[o].clients[c].done.stderr).contains(&want);
        let who = self.nodes[self.obs[o].clients[c].node].short().to_string();
        self.expect(ok, format!("client {who} prints `{want}`"));
    }

    /// The `x509_cert` rows of `node` after observation `o`, as text pairs.
    pub fn pins(&self, o: usize, node: usize) -> Vec<(String, String)> {
        let Ok(d) = &self.obs[o].dbs[node] else {
            return Vec::new();
        };
        d.rows("x509_cert")
            .iter()
            .map(|row| {
                let t = |i: usize| row.get(i).and_then(Val::text).map(show).unwrap_or_default();
                (t(0), t(1))
            })
            .collect()
    }

    /// TLS runs: after a session between `client` and `server`, each has
    /// pinned the other's (leaf) certificate. Plain runs: no pins at all.
    pub fn expect_pins(&mut self, o: usize, client: usize, server: usize) {
        if self.transport == Transport::Custom {
            return;
        }
        for (node, peer) in [(client, server), (server, client)] {
            let got = self.pins(o, node);
            let (who, other) = (self.nodes[node].short(), self.nodes[peer].short());
            let short = |v: &[(String, String)]| -> Vec<String> {
                v.iter()
                    .map(|(p, h)| format!("{p}|{}…({} hex digits)", &h[..h.len().min(24)], h.len()))
                    .collect()
            };
            let (ok, what) = if self.transport == Transport::Tls {
                let want = (
                    show(&common::url_encode(self.nodes[peer].name.as_bytes())),
                    self.certs[peer].hex.clone(),
                );
                (
                    got.contains(&want),
                    format!(
                        "x509_cert of {who} pins the certificate of {other}: want {:?}, got {:?}",
                        short(std::slice::from_ref(&want)),
                        short(&got)
                    ),
                )
            } else {
                (
                    got.is_empty(),
                    format!("x509_cert of {who} stays empty: got {:?}", short(&got)),
                )
            };
            self.expect(ok, what);
        }
    }

    /// `-cr -v <sync>` on node `i`, recorded as an observation (after a
    /// push: the receiver's database must agree with its files, so nothing
    /// becomes dirty).
    pub fn recheck(&mut self, label: &str, i: usize) -> usize {
        self.fix_mtimes();
        let s = self.nodes[i].s("");
        let d = self.cmd(i, vec!["-cr".into(), "-v".into(), s]);
        let imp = self.nodes[i].imp;
        self.record(
            label,
            vec![ClientRun {
                node: i,
                imp,
                done: d,
            }],
            Vec::new(),
        )
    }

    /// [`Run::recheck`] of node 1; it must mark nothing dirty.
    pub fn recheck_clean(&mut self) {
        let o = self.recheck("receiver -cr after the push", 1);
        let dirty = self.dirty(o, 1);
        let names: Vec<String> = dirty.iter().map(|(f, _)| show(f)).collect();
        self.expect(
            dirty.is_empty(),
            format!("the receiver's check finds nothing new: {names:?}"),
        );
    }

    /// [`Run::push_from`] node 0 to node 1.
    pub fn push(&mut self, label: &str, args: Vec<OsString>) -> usize {
        self.push_from(label, 0, Some(1), args)
    }

    pub fn ignore(&mut self, obs: usize, i: Ignore) {
        self.obs[obs].ignore.push(i);
    }

    pub fn client(&self, obs: usize) -> &Done {
        &self.obs[obs].clients[0].done
    }

    pub fn tree(&self, obs: usize, node: usize) -> &Tree {
        &self.obs[obs].trees[node]
    }

    pub fn entry(&self, obs: usize, node: usize, rel: impl AsRef<[u8]>) -> Option<&Entry> {
        self.obs[obs].trees[node].get(rel.as_ref())
    }

    /// Dirty rows (decoded file name, decoded peer name) of a node.
    pub fn dirty(&self, obs: usize, node: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        let Ok(d) = &self.obs[obs].dbs[node] else {
            return Vec::new();
        };
        d.rows("dirty")
            .iter()
            .map(|r| {
                let f = r.first().and_then(Val::text).map(common::url_decode);
                let p = r.get(3).and_then(Val::text).map(common::url_decode);
                (f.unwrap_or_default(), p.unwrap_or_default())
            })
            .collect()
    }

    /// Whether node `node` has a dirty row for `rel` (tree-relative).
    pub fn is_dirty(&self, obs: usize, node: usize, rel: impl AsRef<[u8]>) -> bool {
        let want = self.nodes[node].s(rel).into_vec();
        self.dirty(obs, node).iter().any(|(f, _)| *f == want)
    }

    /// The tree of node `b` equals the tree of node `a` in every entry
    /// (except the root) — what a complete push produces.
    pub fn expect_same_trees(&mut self, obs: usize, a: usize, b: usize) {
        let mut ta = self.obs[obs].trees[a].clone();
        let mut tb = self.obs[obs].trees[b].clone();
        ta.remove(&Vec::new());
        tb.remove(&Vec::new());
        let d = diff_trees(&ta, &tb, self.nodes[a].short(), self.nodes[b].short());
        let ok = d.is_empty();
        self.expect(
            ok,
            format!(
                "the trees of {} and {} should be equal: {}",
                self.nodes[a].short(),
                self.nodes[b].short(),
                d.iter().take(6).cloned().collect::<Vec<_>>().join("; ")
            ),
        );
    }

    pub fn expect_code(&mut self, obs: usize, code: i32) {
        let d = self.client(obs).status();
        let ok = self.client(obs).code == Some(code);
        self.expect(ok, format!("client should exit {code}, got {d}"));
    }

    pub fn expect_line(&mut self, obs: usize, text: &str) {
        let ok = show(&self.client(obs).stderr).contains(text)
            || show(&self.client(obs).stdout).contains(text);
        self.expect(ok, format!("client output should contain `{text}`"));
    }
}

/// The message of a caught panic.
pub fn panic_text(e: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = e.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = e.downcast_ref::<&str>() {
        s.to_string()
    } else {
        "<panic>".into()
    }
}

pub fn keep() -> bool {
    std::env::var_os("CSYNC2_DIFF_KEEP").is_some()
}

/// Run `scenario` on `run`; a panic becomes a problem of the run.
pub fn run_scenario(run: &mut Run, scenario: &impl Fn(&mut Run)) {
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| scenario(run)));
    if let Err(e) = res {
        run.problems
            .push(format!("scenario panicked: {}", panic_text(&*e)));
    }
}

/// The runs of a scenario in several modes: the hosts of test `idx`, a
/// fresh base directory `/tmp/c2net-<pid>-<test>`, the certificates when a
/// transport is TLS; then for every transport of [`transports`] and every
/// mode of `modes` for which `skip` is false a [`Run`] of `scenario`. Ports:
/// slot `k` for the k-th mode, `4 + k` over TLS. Returns the base directory
/// and the runs, by transport.
pub fn run_modes(
    test: &str,
    idx: Net,
    nhosts: u8,
    servers: &[usize],
    modes: &[Mode],
    skip: impl Fn(&Mode) -> bool,
    scenario: &impl Fn(&mut Run),
) -> (PathBuf, Vec<Vec<Run>>) {
    let hs = hosts(test, idx, nhosts);
    let base = base_dir(test);
    let ts = transports();
    let certs = if ts.contains(&Transport::Tls) {
        host_certs(&base.join("certs"), idx, &hs)
    } else {
        Vec::new()
    };
    let mut groups: Vec<Vec<Run>> = Vec::new();
    for t in ts {
        let mut runs = Vec::new();
        for (k, mode) in modes.iter().enumerate() {
            if skip(mode) {
                continue;
            }
            let slot = k as u16 + if t == Transport::Tls { 4 } else { 0 };
            let mut run =
                Run::with_transport(test, *mode, t, &certs, &hs, servers, &base, port(idx, slot));
            run_scenario(&mut run, scenario);
            runs.push(run);
        }
        groups.push(runs);
    }
    (base, groups)
}

/// The end of a scenario: with a report, write it to `<base>/report.txt`
/// and fail with `=== <head> ===` and the report; without, remove the base
/// directory (unless `CSYNC2_DIFF_KEEP` is set).
pub fn conclude(base: &Path, report: &str, head: &str) {
    if !report.is_empty() {
        let _ = std::fs::write(base.join("report.txt"), report);
        panic!("\n=== {head} ===\n{report}");
    }
    if !keep() {
        let _ = std::fs::remove_dir_all(base);
    }
}

/// Run `scenario` once per mode and transport from identical starting
/// states and compare every run's observations with run (a) (REAL client →
/// REAL server) of the same transport. `servers` are the indices of the
/// nodes that run the server implementation; the others run the client
/// implementation. Ports: slot `k` for plain run number `k`, `4 + k` for
/// the TLS runs.
pub fn differential(
    test: &str,
    idx: Net,
    nhosts: u8,
    servers: &[usize],
    scenario: impl Fn(&mut Run),
) {
    let (base, groups) = run_modes(test, idx, nhosts, servers, &modes(), |_| false, &scenario);
    let mut report = String::new();
    let mut notes = Vec::new();
    for run in groups.iter().flatten() {
        for p in &run.problems {
            let _ = writeln!(report, "{} {p}", run.describe());
        }
    }
    for runs in &groups {
        let a = &runs[0];
        for b in &runs[1..] {
            let mut diffs = String::new();
            if a.obs.len() != b.obs.len() {
                let _ = writeln!(
                    diffs,
                    "  different number of steps: (a) {}, ({}) {}",
                    a.obs.len(),
                    b.mode.tag,
                    b.obs.len()
                );
            }
            for (oa, ob) in a.obs.iter().zip(&b.obs) {
                let d = compare_obs(oa, a.mode, ob, b.mode, &b.nodes, &mut notes);
                if !d.is_empty() {
                    let _ = writeln!(diffs, "  step `{}`:", oa.label);
                    for x in d {
                        let _ = writeln!(diffs, "    - {}", x.trim_end());
                    }
                }
            }
            if !diffs.is_empty() {
                let _ = writeln!(
                    report,
                    "\n{} differs from {}:\n{diffs}  history of ({}, {}):",
                    b.describe(),
                    a.describe(),
                    b.mode.tag,
                    b.transport.label()
                );
                for h in &b.history {
                    let _ = writeln!(report, "      {h}");
                }
            }
        }
    }
    notes.sort();
    notes.dedup();
    for n in &notes {
        eprintln!("[{test}] note: {n}");
    }
    if !ours_client_available() {
        eprintln!(
            "[{test}] note: our client (-u/-x) is not implemented yet: runs (c) and (d) skipped"
        );
    }
    for r in groups.iter().flatten() {
        for n in &r.notes {
            eprintln!("[{test}] {} note: {n}", r.describe());
        }
    }
    conclude(
        &base,
        &report,
        &format!(
            "net_interop `{test}` (directory {} kept; each run's outputs are in its <tag>/ \
             (plain) or <tag>-tls/ (TLS) subdirectory, the certificates in certs/)",
            base.display()
        ),
    );
}

// ---------------------------------------------------------------------------
// Raw protocol probes
// ---------------------------------------------------------------------------

/// How to read the answer to one probe step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// this many LF-terminated lines
    Lines(usize),
    /// a SIG answer: status; after a data/path_not_found/not_found status the
    /// check-text line, the `octet-stream N` blob and the final status
    Sig,
    /// a PATCH answer: status; after `OK (send_data).` the signature blob
    Patch,
    /// everything up to the end of the connection
    Eof,
    /// nothing should come (500 ms); whatever comes is recorded
    Silence,
}

#[derive(Clone, Debug)]
pub struct Step {
    pub send: Vec<u8>,
    pub expect: Expect,
}

pub fn step(send: impl AsRef<[u8]>, expect: Expect) -> Step {
    Step {
        send: send.as_ref().to_vec(),
        expect,
    }
}

/// The files of DEL, PATCH and MK* requests whose final reply was an error.
fn failed_updates(ex: &[Exchange]) -> Vec<String> {
    let mut pending: Option<String> = None;
    let mut out = Vec::new();
    for e in ex {
        let line = e.sent.split(|&b| b == b'\n').next().unwrap_or_default();
        let toks: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
        let cmd = toks[0];
        let updates = matches!(
            cmd,
            b"DEL" | b"PATCH" | b"MKDIR" | b"MKCHR" | b"MKBLK" | b"MKFIFO" | b"MKLINK" | b"MKSOCK"
        );
        if updates && toks.len() >= 3 {
            pending = Some(String::from_utf8_lossy(&percent_decode(toks[2])).into_owned());
        }
        if e.got.starts_with(b"OK (send_data)") {
            continue;
        }
        // a conflict refusal comes before the update: no line from either
        if let Some(f) = pending.take()
            && !e.got.starts_with(b"OK (cmd_finished)")
            && !e.got.starts_with(b"File is also marked dirty here!")
        {
            out.push(f);
        }
    }
    out
}

fn percent_decode(t: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    let mut i = 0;
    while i < t.len() {
        if t[i] == b'%'
            && i + 2 < t.len()
            && let Ok(b) = u8::from_str_radix(&String::from_utf8_lossy(&t[i + 1..i + 3]), 16)
        {
            v.push(b);
            i += 3;
        } else {
            v.push(t[i]);
            i += 1;
        }
    }
    v
}

/// What one step sent and received; `end` is `<closed>` (EOF or reset) or
/// `<timeout>` when the expected answer did not come completely.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exchange {
    pub sent: Vec<u8>,
    pub got: Vec<u8>,
    pub end: String,
}

struct Reader {
    r: BufReader<TcpStream>,
}

enum Got {
    Ok,
    Closed,
    Timeout,
}

impl Reader {
    fn line(&mut self, out: &mut Vec<u8>) -> Got {
        let mut buf = Vec::new();
        let r = self.r.read_until(b'\n', &mut buf);
        out.extend_from_slice(&buf);
        match r {
            Ok(0) => Got::Closed,
            Ok(_) if buf.ends_with(b"\n") => Got::Ok,
            Ok(_) => Got::Closed,
            Err(e) => err_kind(&e),
        }
    }
    fn bytes(&mut self, n: usize, out: &mut Vec<u8>) -> Got {
        let mut buf = vec![0u8; n];
        let mut have = 0;
        while have < n {
            match self.r.read(&mut buf[have..]) {
                Ok(0) => {
                    out.extend_from_slice(&buf[..have]);
                    return Got::Closed;
                }
                Ok(k) => have += k,
                Err(e) => {
                    out.extend_from_slice(&buf[..have]);
                    return err_kind(&e);
                }
            }
        }
        out.extend_from_slice(&buf);
        Got::Ok
    }
    fn blob(&mut self, out: &mut Vec<u8>) -> Got {
        let start = out.len();
        match self.line(out) {
            Got::Ok => {}
            g => return g,
        }
        let hdr = String::from_utf8_lossy(&out[start..])
            .trim_end()
            .to_string();
        match hdr
            .strip_prefix("octet-stream ")
            .and_then(|n| n.parse::<i64>().ok())
        {
            Some(n) if n > 0 => self.bytes(n as usize, out),
            _ => Got::Ok,
        }
    }
    fn read_to_eof(&mut self, out: &mut Vec<u8>) -> Got {
        let mut buf = [0u8; 4096];
        loop {
            match self.r.read(&mut buf) {
                Ok(0) => return Got::Closed,
                Ok(k) => out.extend_from_slice(&buf[..k]),
                Err(e) => return err_kind(&e),
            }
        }
    }
}

fn err_kind(e: &std::io::Error) -> Got {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => Got::Timeout,
        _ => Got::Closed,
    }
}

fn last_line(out: &[u8], from: usize) -> String {
    String::from_utf8_lossy(&out[from..]).trim_end().to_string()
}

fn read_answer(r: &mut Reader, ex: &Expect, out: &mut Vec<u8>) -> Got {
    match ex {
        Expect::Lines(n) => {
            for _ in 0..*n {
                match r.line(out) {
                    Got::Ok => {}
                    g => return g,
                }
            }
            Got::Ok
        }
        Expect::Sig => {
            let s = out.len();
            match r.line(out) {
                Got::Ok => {}
                g => return g,
            }
            let st = last_line(out, s);
            if st == "OK (data_follows)." || st == "OK (path_not_found)." || st == "OK (not_found)."
            {
                match r.line(out) {
                    Got::Ok => {}
                    g => return g,
                }
                match r.blob(out) {
                    Got::Ok => {}
                    g => return g,
                }
                return r.line(out);
            }
            Got::Ok
        }
        Expect::Patch => {
            let s = out.len();
            match r.line(out) {
                Got::Ok => {}
                g => return g,
            }
            if last_line(out, s) == "OK (send_data)." {
                return r.blob(out);
            }
            Got::Ok
        }
        Expect::Eof => r.read_to_eof(out),
        Expect::Silence => {
            let s =
                r.r.get_ref()
                    .set_read_timeout(Some(Duration::from_millis(500)));
            let g = if s.is_ok() {
                let mut buf = [0u8; 4096];
                match r.r.read(&mut buf) {
                    Ok(0) => Got::Closed,
                    Ok(k) => {
                        out.extend_from_slice(&buf[..k]);
                        Got::Ok
                    }
                    Err(e) => match err_kind(&e) {
                        Got::Timeout => Got::Ok,
                        g => g,
                    },
                }
            } else {
                Got::Ok
            };
            let _ = r.r.get_ref().set_read_timeout(Some(Duration::from_secs(5)));
            g
        }
    }
}

/// Connect from `src` to `dst`, run the steps, then half-close and read to
/// the end.
pub fn probe_session(src: Ipv4Addr, dst: SocketAddr, steps: &[Step]) -> Vec<Exchange> {
    use socket2::{Domain, Protocol, Socket, Type};
    let sock = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
    sock.bind(&SocketAddr::V4(SocketAddrV4::new(src, 0)).into())
        .expect("bind probe socket to the node address");
    sock.connect_timeout(&dst.into(), Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("probe connect to {dst}: {e}"));
    let stream: TcpStream = sock.into();
    let _ = stream.set_nodelay(true);
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("set_read_timeout");
    let mut w = stream.try_clone().expect("clone stream");
    let mut r = Reader {
        r: BufReader::new(stream),
    };
    let mut v = Vec::new();
    let mut closed = false;
    for s in steps {
        if closed {
            v.push(Exchange {
                sent: s.send.clone(),
                got: Vec::new(),
                end: "<not sent: connection closed>".into(),
            });
            continue;
        }
        let mut got = Vec::new();
        let end = if w.write_all(&s.send).is_err() {
            closed = true;
            "<write failed: connection closed>".to_string()
        } else {
            match read_answer(&mut r, &s.expect, &mut got) {
                Got::Ok => String::new(),
                Got::Closed => {
                    closed = true;
                    "<closed>".into()
                }
                Got::Timeout => "<timeout>".into(),
            }
        };
        v.push(Exchange {
            sent: s.send.clone(),
            got,
            end,
        });
    }
    if !closed {
        let _ = w.shutdown(Shutdown::Write);
        let mut got = Vec::new();
        let g = r.read_to_eof(&mut got);
        v.push(Exchange {
            sent: b"<half-close>".to_vec(),
            got,
            end: match g {
                Got::Timeout => "<timeout>".into(),
                _ => "<closed>".into(),
            },
        });
    }
    v
}

pub struct ProbeCtx {
    pub sync: String,
    pub hosts: Vec<Host>,
}

impl ProbeCtx {
    /// `<sync>/rel`
    pub fn s(&self, rel: &str) -> String {
        if rel.is_empty() {
            self.sync.clone()
        } else {
            format!("{}/{rel}", self.sync)
        }
    }
    pub fn name(&self, i: usize) -> &str {
        &self.hosts[i].name
    }
}

/// One probe connection: from the address of host `src`.
pub struct ProbeSession {
    pub label: String,
    pub src: usize,
    pub steps: Vec<Step>,
}

struct ProbeResult {
    label: String,
    exchanges: Vec<Exchange>,
    server: Done,
    tree: Tree,
    db: Result<DbDump, String>,
}

fn show_exchange(e: &Exchange) -> String {
    format!(
        "sent \"{}\" got \"{}\"{}",
        cut(&show(&e.sent), 160),
        cut(&show(&e.got), 400),
        if e.end.is_empty() {
            String::new()
        } else {
            format!(" {}", e.end)
        }
    )
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Objects created by a probe without SETIME carry the wall-clock time:
/// mtimes of the last hour become -1.
fn recent_tree(t: &Tree) -> Tree {
    let limit = now() - 3600;
    let mut t = t.clone();
    for e in t.values_mut() {
        if e.mtime.is_some_and(|m| m > limit) {
            e.mtime = Some(-1);
        }
    }
    t
}

/// As [`recent_tree`] for `mtime=N` in check texts.
fn recent_db(d: &DbDump) -> DbDump {
    let limit = now() - 3600;
    let mut d = d.clone();
    for t in d.tables.values_mut() {
        for r in &mut t.rows {
            for v in r.iter_mut() {
                let Val::Text(x) = v else { continue };
                let Some(i) = x.windows(6).position(|w| w == b"mtime=") else {
                    continue;
                };
                let start = i + 6;
                let end = start + x[start..].iter().take_while(|c| c.is_ascii_digit()).count();
                let n: i64 = std::str::from_utf8(&x[start..end])
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                if n > limit {
                    x.splice(start..end, b"RECENT".iter().copied());
                }
            }
        }
        t.rows.sort();
    }
    d
}

/// Raw-protocol differential: the server runs on node 1 (index 1) with the
/// given config; `setup` builds its tree; the probe sessions run in order
/// against the real server and then against ours, each from a freshly
/// initialised identical state; replies must be byte-identical, and the
/// server trees, databases and exit codes equal.
pub fn probe_differential(
    test: &str,
    idx: Net,
    nhosts: u8,
    cfg: &str,
    setup: impl Fn(&Node),
    sessions: impl Fn(&ProbeCtx) -> Vec<ProbeSession>,
) {
    let hs = hosts(test, idx, nhosts);
    let base = base_dir(test);
    let ctx = ProbeCtx {
        sync: base.join("sync").to_string_lossy().into_owned(),
        hosts: hs.clone(),
    };
    let mut results: Vec<(Imp, Vec<ProbeResult>, Vec<String>)> = Vec::new();
    for (k, imp) in [Imp::Real, Imp::Ours].into_iter().enumerate() {
        let mode = Mode {
            tag: if imp == Imp::Real { 'r' } else { 'o' },
            client: Imp::Real,
            server: imp,
        };
        let mut run = Run::new(test, mode, &hs, &[1], &base, port(idx, k as u16));
        run.config(cfg);
        setup(&run.nodes[1]);
        run.fix_mtimes();
        let s = run.nodes[1].s("");
        run.cmd_ok(1, vec!["-cIr".into(), s], 0);
        let mut out = Vec::new();
        for sess in sessions(&ctx) {
            let p = run.start_server(1, "-iii");
            let dst = SocketAddr::V4(SocketAddrV4::new(run.nodes[1].addr, run.nodes[1].port));
            let ex = probe_session(hs[sess.src].addr, dst, &sess.steps);
            let server = run.finish_server(1, p);
            let mut text = String::new();
            for e in &ex {
                let _ = writeln!(text, "{}", show_exchange(e));
            }
            let fname: String = sess
                .label
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            let _ = std::fs::write(run.dir.join(format!("probe-{fname}.txt")), text);
            out.push(ProbeResult {
                label: sess.label.clone(),
                exchanges: ex,
                server,
                tree: run.nodes[1].snapshot(),
                db: run.nodes[1].dump(),
            });
        }
        results.push((imp, out, run.problems.clone()));
    }
    let mut report = String::new();
    for (imp, _, problems) in &results {
        for p in problems {
            let _ = writeln!(report, "{} server: {p}", imp.label());
        }
    }
    let (real, ours) = (&results[0].1, &results[1].1);
    for (a, b) in real.iter().zip(ours) {
        let mut d = Vec::new();
        // bytes that arrive late land in the next step: the whole stream
        // and the way it ended decide; the steps only locate a difference
        let stream = |v: &[Exchange]| -> (Vec<u8>, Vec<String>) {
            (
                v.iter().flat_map(|e| e.got.iter().copied()).collect(),
                v.iter()
                    .filter(|e| e.end != "<timeout>")
                    .map(|e| e.end.clone())
                    .collect(),
            )
        };
        let same_stream = stream(&a.exchanges) == stream(&b.exchanges);
        let n = if same_stream {
            0
        } else {
            a.exchanges.len().max(b.exchanges.len())
        };
        for i in 0..n {
            let (x, y) = (a.exchanges.get(i), b.exchanges.get(i));
            if x != y {
                d.push(format!(
                    "reply to step {} differs:\n        REAL {}\n        OURS {}",
                    i + 1,
                    x.map(show_exchange).unwrap_or("<none>".into()),
                    y.map(show_exchange).unwrap_or("<none>".into())
                ));
                break;
            }
        }
        if a.server.code != b.server.code || a.server.killed != b.server.killed {
            d.push(format!(
                "server status: REAL {}, OURS {}",
                a.server.status(),
                b.server.status()
            ));
        }
        // deliberate difference: ours logs no `Updated F from P.` for a
        // DEL/PATCH/MK* that failed (doc/differences.md)
        // (one line per failed request: the same file may succeed later)
        let mut real_lines: Vec<String> = server_lines(&a.server, false, &[]);
        for f in failed_updates(&a.exchanges) {
            let prefix = format!("Updated {f} from ");
            if let Some(i) = real_lines.iter().position(|l| l.starts_with(&prefix)) {
                real_lines.remove(i);
            }
        }
        if let Some(x) = diff_list(
            "server important stderr lines",
            &real_lines,
            &server_lines(&b.server, false, &[]),
            "REAL",
            "OURS",
        ) {
            d.push(x);
        }
        let t = diff_trees(&recent_tree(&a.tree), &recent_tree(&b.tree), "REAL", "OURS");
        if !t.is_empty() {
            d.push(format!(
                "server tree differs:\n        {}",
                t.iter()
                    .take(10)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n        ")
            ));
        }
        match (&a.db, &b.db) {
            (Ok(x), Ok(y)) => {
                let s = common::diff_dumps(&recent_db(x), &recent_db(y));
                if !s.is_empty() {
                    d.push(format!("server database differs:\n{s}"));
                }
            }
            (Err(x), Err(y)) if x == y => {}
            (x, y) => d.push(format!(
                "server database: REAL {}, OURS {}",
                x.as_ref().map(|_| "exists").unwrap_or_else(|e| e),
                y.as_ref().map(|_| "exists").unwrap_or_else(|e| e)
            )),
        }
        if !d.is_empty() {
            let _ = writeln!(report, "\nprobe session `{}`:", a.label);
            for x in d {
                let _ = writeln!(report, "  - {}", x.trim_end());
            }
            let _ = writeln!(report, "  REAL transcript:");
            for e in &a.exchanges {
                let _ = writeln!(report, "      {}", show_exchange(e));
            }
        }
    }
    conclude(
        &base,
        &report,
        &format!(
            "net_interop probes `{test}` (directory {} kept)",
            base.display()
        ),
    );
}

/// A listener on a node's address that accepts every connection and then
/// neither reads nor writes (a hung peer), for at most 150 s.
pub struct Silent {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<usize>>,
}

impl Silent {
    pub fn start(n: &Node) -> Silent {
        use std::sync::atomic::Ordering;
        let l = std::net::TcpListener::bind((n.addr, n.port)).expect("bind the silent peer's port");
        l.set_nonblocking(true).expect("nonblocking listener");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            let end = Instant::now() + Duration::from_secs(150);
            while !flag.load(Ordering::Relaxed) && Instant::now() < end {
                match l.accept() {
                    Ok((s, _)) => held.push(s),
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
            held.len()
        });
        Silent {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops listening; how many connections it took.
    pub fn stop(mut self) -> usize {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread
            .take()
            .map(|t| t.join().unwrap_or(0))
            .unwrap_or(0)
    }
}
