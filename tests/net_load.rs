//! Load on a stand-alone `-ii` server (cli.md §10: one forked process per
//! connection, the listener loops forever and ignores SIGCHLD):
//!
//! 1. **50 concurrent pushing clients.** One server node (n1) runs our
//!    `csync2 -ii` with one group listing all 51 hosts. Fifty client nodes
//!    (n2…n51) each own a tree of distinct files below `c<k>/` (20 files:
//!    18 small text files of a few KiB in two subdirectories and one 1 MiB
//!    random file) and all run `csync2 -x` at the same moment. Each client's
//!    configuration has the same group with only {client, server} and
//!    includes only its own `c<k>`, so it pushes to the server alone. Mixed
//!    transports and implementations: the last ten clients talk TLS (own
//!    P-256 certificates, no `nossl` rule for them), five more are the real
//!    csync2 when `/usr/sbin/csync2` is installed, the rest are ours in plain
//!    text. Every client must exit 0 and every file must arrive with the
//!    same content, mode and mtime. A second round changes 100 bytes in
//!    the middle of every big file (an rsync delta), rewrites one small file
//!    with another mode and deletes another one, and pushes again at once.
//!    The server's configuration has `lock-timeout 60;`: the 50 sessions
//!    take turns at the one SQLite write lock (every commit waits for the
//!    disk), and a slow CI disk must not turn the waiting into
//!    `Database backend is exceedingly busy` failures; the default (12 s
//!    plus up to 6) held with about 15 s per round on a disk with 4 ms
//!    fsyncs.
//! 2. **1,000 sequential connections** of raw protocol from the client
//!    addresses: full sessions (`CONFIG`, `HELLO`, `GETSZ` of a pushed file,
//!    `BYE`), connections closed at once, closed in the middle of a line,
//!    reset in the middle of a command, pre-session garbage, and `SSL`
//!    followed by a hang-up instead of a handshake.
//! 3. **A burst** of 100 full sessions from 50 threads at once (the
//!    listener's accept queue is short).
//!
//! Throughout, a sampler reads the listener's `/proc/<pid>/status` (VmRSS),
//! `/proc/<pid>/fd` and its children (state, VmRSS). Required: the
//! listener's descriptor count returns to its value before the first
//! connection, its RSS stays below [`LISTENER_RSS_MAX_KB`] and does not grow
//! by more than [`LISTENER_GROWTH_MAX_KB`] between connection 100 and
//! connection 1,000 of phase 2, no session process exceeds
//! [`CHILD_RSS_MAX_KB`], and once the sessions are over the listener has no
//! children left (neither running sessions nor unreaped zombies).
//!
//! Needs root (addresses in /etc/hosts, mount namespaces) and `openssl`;
//! test index 62. `CSYNC2_DIFF_KEEP=1` keeps the directory.

mod common;
mod net;

use net::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TEST: &str = "load";
const IDX: Net = Net::Load;
/// client nodes n2…n51
const CLIENTS: usize = 50;
/// the last TLS_CLIENTS clients use TLS
const TLS_CLIENTS: usize = 10;
/// the REAL_CLIENTS clients before them are the real csync2 (when present)
const REAL_CLIENTS: usize = 5;
/// files per client (the last one is the 1 MiB file)
const FILES: usize = 20;
const BIG: usize = 1 << 20;
const SEQUENTIAL: usize = 1000;
const BURST_THREADS: usize = 50;
const BURST_PER_THREAD: usize = 2;

/// Bounds on memory (KiB).
const LISTENER_RSS_MAX_KB: u64 = 64 * 1024;
const LISTENER_GROWTH_MAX_KB: u64 = 4 * 1024;
const CHILD_RSS_MAX_KB: u64 = 128 * 1024;

/// How long the concurrent clients may take together.
const CLIENT_DEADLINE: Duration = Duration::from_secs(100);
/// How long the session processes may take to end once their peers are done.
const DRAIN: Duration = Duration::from_secs(20);

fn real_available() -> bool {
    std::env::var_os("CSYNC2_REAL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/csync2"))
        .is_file()
}

// ---------------------------------------------------------------------------
// /proc sampling
// ---------------------------------------------------------------------------

/// VmRSS of a process in KiB (None when it is gone).
fn rss_kb(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// Number of open descriptors of a process.
fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|rd| rd.count())
        .unwrap_or(0)
}

/// The descriptors of a process, as `fd -> target` lines (for reports).
fn fd_list(pid: u32) -> Vec<String> {
    let mut v: Vec<(u32, String)> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    let n = e.file_name().to_string_lossy().parse().unwrap_or(0);
                    let t = std::fs::read_link(e.path())
                        .map(|p| p.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    (n, t)
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v.into_iter().map(|(n, t)| format!("{n} -> {t}")).collect()
}

/// Children of `pid`: (pid, state letter).
fn children(pid: u32) -> Vec<(u32, char)> {
    children_with_state(pid)
}

#[derive(Clone, Debug, Default)]
struct Stats {
    samples: usize,
    max_listener_rss_kb: u64,
    max_listener_fds: usize,
    max_children: usize,
    max_child_rss_kb: u64,
    /// samples in which some child was a zombie, and the most at once
    zombie_samples: usize,
    max_zombies: usize,
}

/// A background thread sampling the listener and its children.
struct Sampler {
    stats: Arc<Mutex<Stats>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    fn start(pid: u32) -> Sampler {
        let stats = Arc::new(Mutex::new(Stats::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (stats.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                let rss = rss_kb(pid).unwrap_or(0);
                let fds = fd_count(pid);
                let kids = children(pid);
                let zombies = kids.iter().filter(|(_, c)| *c == 'Z').count();
                let kid_rss = kids
                    .iter()
                    .filter_map(|(p, _)| rss_kb(*p))
                    .max()
                    .unwrap_or(0);
                {
                    let mut g = s.lock().unwrap_or_else(|e| e.into_inner());
                    g.samples += 1;
                    g.max_listener_rss_kb = g.max_listener_rss_kb.max(rss);
                    g.max_listener_fds = g.max_listener_fds.max(fds);
                    g.max_children = g.max_children.max(kids.len());
                    g.max_child_rss_kb = g.max_child_rss_kb.max(kid_rss);
                    if zombies > 0 {
                        g.zombie_samples += 1;
                    }
                    g.max_zombies = g.max_zombies.max(zombies);
                }
                std::thread::sleep(Duration::from_millis(40));
            }
        });
        Sampler {
            stats,
            stop,
            thread: Some(thread),
        }
    }

    /// The statistics since the last call (reset).
    fn take(&self) -> Stats {
        std::mem::take(&mut *self.stats.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Wait until the listener has no children left (at most `limit`); the
/// children still there afterwards.
fn drain(pid: u32, limit: Duration) -> (Duration, Vec<(u32, char)>) {
    let t = Instant::now();
    let mut k = Vec::new();
    common::poll_until(t + limit, Duration::from_millis(10), || {
        k = children(pid);
        k.is_empty()
    });
    (t.elapsed(), k)
}

fn show_stats(s: &Stats) -> String {
    format!(
        "listener max RSS {} KiB, max fds {}; max {} session processes at once, \
         largest session RSS {} KiB; zombies seen in {} of {} samples (max {})",
        s.max_listener_rss_kb,
        s.max_listener_fds,
        s.max_children,
        s.max_child_rss_kb,
        s.zombie_samples,
        s.samples,
        s.max_zombies
    )
}

// ---------------------------------------------------------------------------
// Raw protocol sessions
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// CONFIG, HELLO, GETSZ of a pushed file, BYE; the server closes
    Full,
    /// connect and close without a byte
    Silent,
    /// half a CONFIG line, then close
    CutLine,
    /// CONFIG, HELLO, half a SIG line, then a reset (SO_LINGER 0)
    ResetMidCommand,
    /// a line other than SSL/CONFIG: the error line, then the server closes
    Garbage,
    /// SSL, then a hang-up instead of the handshake
    SslHangup,
}

impl Kind {
    fn of(i: usize) -> Kind {
        match i % 10 {
            0..=4 => Kind::Full,
            5 => Kind::Silent,
            6 => Kind::CutLine,
            7 => Kind::ResetMidCommand,
            8 => Kind::Garbage,
            _ => Kind::SslHangup,
        }
    }
}

/// What a raw session needs to know.
#[derive(Clone)]
struct Target {
    server: SocketAddr,
    /// a file every full session asks the size of, and that size
    file: String,
    size: usize,
}

struct Conn {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

fn connect(src: Ipv4Addr, dst: SocketAddr) -> Result<(Conn, Duration), String> {
    use socket2::{Domain, Protocol, Socket, Type};
    let t = Instant::now();
    let sock = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))
        .map_err(|e| format!("socket: {e}"))?;
    sock.bind(&SocketAddr::V4(SocketAddrV4::new(src, 0)).into())
        .map_err(|e| format!("bind to {src}: {e}"))?;
    sock.connect_timeout(&dst.into(), Duration::from_secs(10))
        .map_err(|e| format!("connect to {dst}: {e}"))?;
    let s: TcpStream = sock.into();
    let took = t.elapsed();
    let _ = s.set_nodelay(true);
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let r = BufReader::new(s.try_clone().map_err(|e| e.to_string())?);
    Ok((Conn { w: s, r }, took))
}

impl Conn {
    fn send(&mut self, b: &[u8]) -> Result<(), String> {
        self.w.write_all(b).map_err(|e| format!("write: {e}"))
    }
    fn line(&mut self) -> Result<String, String> {
        let mut v = Vec::new();
        match self.r.read_until(b'\n', &mut v) {
            Ok(0) => Err("connection closed instead of a reply line".into()),
            Ok(_) if v.ends_with(b"\n") => Ok(String::from_utf8_lossy(&v).trim_end().to_string()),
            Ok(_) => Err(format!(
                "connection closed in a reply line: {:?}",
                String::from_utf8_lossy(&v)
            )),
            Err(e) => Err(format!("reading a reply line: {e}")),
        }
    }
    fn expect(&mut self, want: &str) -> Result<(), String> {
        let got = self.line()?;
        if got == want {
            Ok(())
        } else {
            Err(format!("got {got:?}, expected {want:?}"))
        }
    }
    /// The server ends the connection with nothing more to say.
    fn expect_eof(&mut self) -> Result<(), String> {
        let mut v = Vec::new();
        match self.r.read_to_end(&mut v) {
            Ok(_) if v.is_empty() => Ok(()),
            Ok(_) => Err(format!(
                "unexpected bytes before the end: {:?}",
                String::from_utf8_lossy(&v)
            )),
            Err(e) => Err(format!("the server did not close the connection: {e}")),
        }
    }
    fn reset(self) {
        let _ = socket2::SockRef::from(&self.w).set_linger(Some(Duration::ZERO));
    }
}

/// One raw session of `kind` from `src` (named `name`); the connect time.
fn session(kind: Kind, src: Ipv4Addr, name: &str, t: &Target) -> Result<Duration, String> {
    let (mut c, took) = connect(src, t.server)?;
    match kind {
        Kind::Full => {
            c.send(format!("CONFIG\nHELLO {name}\n").as_bytes())?;
            c.expect("OK (cmd_finished).")?;
            c.expect("OK (cmd_finished).")?;
            c.send(format!("GETSZ {} {}\n", KEY1, t.file).as_bytes())?;
            c.expect("OK (data_follows).")?;
            c.expect(&t.size.to_string())?;
            c.send(b"BYE\n")?;
            c.expect("OK (cu_later).")?;
            c.expect_eof()?;
        }
        Kind::Silent => {}
        Kind::CutLine => c.send(b"CONF")?,
        Kind::ResetMidCommand => {
            c.send(format!("CONFIG\nHELLO {name}\n").as_bytes())?;
            c.expect("OK (cmd_finished).")?;
            c.expect("OK (cmd_finished).")?;
            c.send(format!("SIG {} {}", KEY1, &t.file[..t.file.len() / 2]).as_bytes())?;
            c.reset();
            return Ok(took);
        }
        Kind::Garbage => {
            c.send(b"HELLO there\n")?;
            c.expect("Expecting SSL (optional) and CONFIG as first commands.")?;
            c.expect_eof()?;
        }
        Kind::SslHangup => {
            c.send(b"SSL\n")?;
            c.expect("OK (activating_ssl).")?;
            let _ = c.w.shutdown(Shutdown::Both);
        }
    }
    Ok(took)
}

// ---------------------------------------------------------------------------
// Set-up and the pushing rounds
// ---------------------------------------------------------------------------

/// Client `j` (1…50, node n<j+1>) talks TLS.
fn is_tls(j: usize) -> bool {
    j > CLIENTS - TLS_CLIENTS
}

/// Client `j` is the real csync2 (when it is installed).
fn is_real(j: usize, real: bool) -> bool {
    real && !is_tls(j) && j > CLIENTS - TLS_CLIENTS - REAL_CLIENTS
}

/// Relative path and content of file `f` of client `j`.
fn client_file(j: usize, f: usize) -> (String, Vec<u8>) {
    let seed = (j * 1000 + f) as u64;
    if f == FILES - 1 {
        (format!("c{j}/big.dat"), pseudo_random(BIG, seed))
    } else {
        let dir = if f < FILES / 2 { "a" } else { "b" };
        let size = 1024 + (seed as usize * 997) % 7168;
        (format!("c{j}/{dir}/f{f:02}.txt"), pseudo_text(size, seed))
    }
}

/// Round 2 on client `j`: 100 bytes changed in the middle of the big file
/// (an rsync delta), one small file rewritten, one deleted.
fn modify(c: &Node, j: usize) {
    let (big, mut body) = client_file(j, FILES - 1);
    body[BIG / 2..BIG / 2 + 100].fill(b'#');
    c.file(&big, &body, 0o644, T0 + 50_000 + j as i64);
    let (small, _) = client_file(j, 0);
    c.file(
        &small,
        pseudo_text(3000, 7 + j as u64),
        0o600,
        T0 + 50_000 + j as i64,
    );
    let (gone, _) = client_file(j, FILES - 2);
    c.remove(&gone);
    fix_dir_mtimes(&c.tree);
}

fn keep() -> bool {
    std::env::var_os("CSYNC2_DIFF_KEEP").is_some()
}

fn tail(b: &[u8], n: usize) -> String {
    let l = lines(b);
    l[l.len().saturating_sub(n)..].join("\n        ")
}

struct Load {
    server: Node,
    clients: Vec<Node>,
    pid: u32,
    sampler: Sampler,
    problems: Vec<String>,
    report: Vec<String>,
}

impl Load {
    /// Every client runs `-v -x` at the same moment; afterwards the
    /// server's sessions must end and every client's `c<j>` must be the same
    /// on the server. Returns the sampler's statistics of the round.
    fn push_round(&mut self, label: &str) -> Stats {
        let t = Instant::now();
        let procs: Vec<Proc> = self
            .clients
            .iter()
            .map(|c| c.spawn(&["-v".into(), "-x".into()]))
            .collect();
        let deadline = t + CLIENT_DEADLINE;
        let mut procs: Vec<Option<Proc>> = procs.into_iter().map(Some).collect();
        let mut dones: Vec<Option<(Done, Duration)>> = procs.iter().map(|_| None).collect();
        // the clients that ended (all of them once `past`: killed at the
        // deadline); true when none is left
        let mut reap = |past: bool| {
            for (p, d) in procs.iter_mut().zip(dones.iter_mut()) {
                let finished = p.as_mut().is_some_and(|p| p.exited());
                if (finished || past)
                    && let Some(p) = p.take()
                {
                    *d = Some((p.wait_until(deadline), t.elapsed()));
                }
            }
            procs.iter().all(Option::is_none)
        };
        if !common::poll_until(deadline, Duration::from_millis(10), || reap(false)) {
            reap(true);
        }
        let took = t.elapsed();
        let (dones, times): (Vec<Done>, Vec<Duration>) = dones.into_iter().flatten().unzip();
        let (drained, left) = drain(self.pid, DRAIN);
        for (i, d) in dones.iter().enumerate() {
            let j = i + 1;
            let c = &self.clients[i];
            let _ = std::fs::write(c.dir.join(format!("{label}.stderr")), &d.stderr);
            let what = format!(
                "{label}: client {} ({}, {})",
                c.short(),
                c.imp.label(),
                if is_tls(j) { "TLS" } else { "plain" }
            );
            if d.code != Some(0) {
                self.problems.push(format!(
                    "{what} -x: {}; last stderr lines:\n        {}",
                    d.status(),
                    tail(&d.stderr, 8)
                ));
            }
            let word = if is_tls(j) { "(SSL)" } else { "(PLAIN)" };
            let want = format!("Connecting to host {} {word}", self.server.name);
            if !common::show(&d.stderr).contains(&want) {
                self.problems.push(format!("{what} did not print `{want}`"));
            }
        }
        if !left.is_empty() {
            self.problems.push(format!(
                "{label}: {} session processes still there {DRAIN:?} after the clients ended: {left:?}",
                left.len()
            ));
        }
        let mut wrong = 0;
        for (i, c) in self.clients.iter().enumerate() {
            let rel = format!("c{}", i + 1);
            let want = snapshot(&c.p(&rel));
            let got = snapshot(&self.server.p(&rel));
            let d = diff_trees(&want, &got, c.short(), "server");
            if !d.is_empty() {
                wrong += d.len();
                self.problems.push(format!(
                    "{label}: {rel}/ of {} differs on the server ({} entries):\n        {}",
                    c.short(),
                    d.len(),
                    d.iter()
                        .take(5)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join("\n        ")
                ));
            }
        }
        let s = self.sampler.take();
        let spread = |f: &dyn Fn(usize) -> bool| {
            let mut v: Vec<Duration> = (1..=CLIENTS)
                .filter(|&j| f(j))
                .map(|j| times[j - 1])
                .collect();
            v.sort();
            match v.len() {
                0 => "-".to_string(),
                n => format!("{:.1?}/{:.1?}/{:.1?}", v[0], v[n / 2], v[n - 1]),
            }
        };
        let real = self.clients.iter().any(|c| c.imp == Imp::Real);
        let times_text = format!(
            "client run times min/median/max: ours plain {}, real plain {}, TLS {}",
            spread(&|j| !is_tls(j) && !is_real(j, real)),
            spread(&|j| is_real(j, real)),
            spread(&|j| is_tls(j)),
        );
        self.report.push(format!(
            "{label}: {CLIENTS} concurrent -x clients done in {took:.1?} ({times_text}), \
             sessions drained {drained:.1?} later; {wrong} entries missing or different on the server; after \
             it: listener {} fds, RSS {} KiB; {}",
            fd_count(self.pid),
            rss_kb(self.pid).unwrap_or(0),
            show_stats(&s)
        ));
        s
    }
}

#[test]
fn ii_server_under_load() {
    let t_all = Instant::now();
    let hs = hosts(TEST, IDX, (CLIENTS + 1) as u8);
    let base = base_dir(TEST);
    let sync = base.join("sync");
    let dir = base.join("run");
    let port = port(IDX, 0);
    let real = real_available();
    if !real {
        eprintln!("[{TEST}] note: no real csync2: all clients are ours");
    }

    let server = Node::new(&hs[0], Imp::Ours, Role::Server, port, &dir, &sync);
    let clients: Vec<Node> = (1..=CLIENTS)
        .map(|j| {
            let imp = if is_real(j, real) {
                Imp::Real
            } else {
                Imp::Ours
            };
            Node::new(&hs[j], imp, Role::Client, port, &dir, &sync)
        })
        .collect();

    // certificates: the server and the TLS clients
    let certs = base.join("certs");
    install(&server, &host_cert(&certs, &hs[0], 0, KeyKind::P256));
    for j in (1..=CLIENTS).filter(|&j| is_tls(j)) {
        install(
            &clients[j - 1],
            &host_cert(&certs, &hs[j], j, KeyKind::P256),
        );
    }

    // configurations: the server lists every host in one group and allows
    // plain text for the plain clients only; each client has the group with
    // itself and the server, and its own directory
    let all: Vec<&str> = hs.iter().map(|h| h.name.as_str()).collect();
    let nossl: String = (1..=CLIENTS)
        .filter(|&j| !is_tls(j))
        .map(|j| format!("nossl * {};\n", hs[j].name))
        .collect();
    server.write_etc(
        "csync2.cfg",
        &format!(
            "{nossl}lock-timeout 60;\ngroup g {{\n    host {};\n    key g.key;\n    include {};\n}}\n",
            all.join(" "),
            sync.display()
        ),
    );
    server.write_etc("g.key", KEY1);
    for (i, c) in clients.iter().enumerate() {
        let j = i + 1;
        let cfg = format!(
            "{}group g {{\n    host {} {};\n    key g.key;\n    include {}/c{j};\n}}\n",
            if is_tls(j) { "" } else { "nossl * *;\n" },
            c.name,
            server.name,
            sync.display()
        );
        c.write_etc("csync2.cfg", &cfg);
        c.write_etc("g.key", KEY1);
        for sub in ["", "/a", "/b"] {
            c.mkdir(format!("c{j}{sub}"), 0o755);
        }
        for f in 0..FILES {
            let (rel, body) = client_file(j, f);
            c.file(&rel, &body, 0o644, T0 + (j * 100 + f) as i64);
        }
        fix_dir_mtimes(&c.tree);
    }
    let t_setup = t_all.elapsed();

    // the server
    let srv = server.spawn(&["-ii".into(), "-v".into()]);
    let srv = await_listening(srv, server.addr, server.port, Duration::from_millis(5))
        .unwrap_or_else(|d| {
            panic!(
                "the -ii server did not start listening: {}\n{}",
                d.status(),
                common::show(&d.stderr)
            )
        });
    let pid = srv.pid;
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
    assert!(
        exe.file_name().is_some_and(|n| n == "csync2"),
        "process {pid} is {exe:?}, not the csync2 listener"
    );
    std::thread::sleep(Duration::from_millis(100));
    let fds0 = fd_count(pid);
    let fds0_list = fd_list(pid);
    let rss0 = rss_kb(pid).unwrap_or(0);
    let mut l = Load {
        server,
        clients,
        pid,
        sampler: Sampler::start(pid),
        problems: Vec::new(),
        report: vec![format!(
            "set-up {t_setup:.1?}: {CLIENTS} clients ({TLS_CLIENTS} TLS, {} real csync2), \
             {FILES} files each ({} MiB in all); listener pid {pid}: {fds0} fds, RSS {rss0} KiB \
             before the first connection",
            if real { REAL_CLIENTS } else { 0 },
            (CLIENTS * (BIG + FILES * 4096)) >> 20
        )],
    };

    // ---- phase 1: 50 concurrent pushing clients, twice -------------------
    let t1 = Instant::now();
    let mut stats = vec![("round 1", l.push_round("round 1"))];
    for (i, c) in l.clients.iter().enumerate() {
        modify(c, i + 1);
    }
    stats.push(("round 2", l.push_round("round 2")));
    let t_phase1 = t1.elapsed();

    // ---- phase 2: 1,000 sequential connections ---------------------------
    let target = Target {
        server: SocketAddr::V4(SocketAddrV4::new(l.server.addr, l.server.port)),
        file: l.clients[0]
            .s("c1/b/f10.txt")
            .to_string_lossy()
            .into_owned(),
        size: client_file(1, 10).1.len(),
    };
    let plain: Vec<&Host> = (1..=CLIENTS)
        .filter(|&j| !is_tls(j))
        .map(|j| &hs[j])
        .collect();
    let t2 = Instant::now();
    let mut rss_at_100 = 0;
    let mut max_connect = Duration::ZERO;
    let mut failures: Vec<String> = Vec::new();
    let mut kinds = [0usize; 6];
    for i in 0..SEQUENTIAL {
        if i == 100 {
            // the sessions of the first hundred have ended
            drain(pid, Duration::from_secs(5));
            rss_at_100 = rss_kb(pid).unwrap_or(0);
        }
        let h = plain[i % plain.len()];
        let kind = Kind::of(i);
        kinds[kind as usize] += 1;
        match session(kind, h.addr, &h.name, &target) {
            Ok(took) => max_connect = max_connect.max(took),
            Err(e) => failures.push(format!("connection {i} ({kind:?} from {}): {e}", h.name)),
        }
    }
    let seq_took = t2.elapsed();
    let (drained2, left2) = drain(pid, DRAIN);
    let rss_at_1000 = rss_kb(pid).unwrap_or(0);
    let fds2 = fd_count(pid);
    let s2 = l.sampler.take();
    stats.push(("sequential", s2.clone()));
    if !failures.is_empty() {
        l.problems.push(format!(
            "sequential: {} of {SEQUENTIAL} sessions went wrong:\n        {}",
            failures.len(),
            failures
                .iter()
                .take(10)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n        ")
        ));
    }
    if !left2.is_empty() {
        l.problems.push(format!(
            "sequential: {} session processes still there {DRAIN:?} after the last connection: {left2:?}",
            left2.len()
        ));
    }
    if rss_at_1000 > rss_at_100 + LISTENER_GROWTH_MAX_KB {
        l.problems.push(format!(
            "sequential: the listener's RSS grew from {rss_at_100} KiB (connection 100) to \
             {rss_at_1000} KiB (connection 1000), more than {LISTENER_GROWTH_MAX_KB} KiB"
        ));
    }
    l.report.push(format!(
        "sequential: {SEQUENTIAL} connections (full {}, silent {}, cut line {}, reset {}, \
         garbage {}, SSL hang-up {}) in {seq_took:.1?} ({:.1} ms each), slowest connect \
         {max_connect:.1?}, drained {drained2:.1?}; listener RSS {rss_at_100} KiB at connection \
         100, {rss_at_1000} KiB at 1000; {fds2} fds; {}",
        kinds[0],
        kinds[1],
        kinds[2],
        kinds[3],
        kinds[4],
        kinds[5],
        seq_took.as_secs_f64() * 1000.0 / SEQUENTIAL as f64,
        show_stats(&s2)
    ));

    // ---- phase 3: a burst of concurrent connections ----------------------
    let t3 = Instant::now();
    let results: Vec<Result<Duration, String>> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..BURST_THREADS)
            .map(|j| {
                let h = plain[j % plain.len()];
                let target = &target;
                sc.spawn(move || {
                    (0..BURST_PER_THREAD)
                        .map(|_| session(Kind::Full, h.addr, &h.name, target))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|_| vec![Err("burst thread panicked".into())])
            })
            .collect()
    });
    let burst_took = t3.elapsed();
    let burst_connect = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .max()
        .copied()
        .unwrap_or_default();
    let slow_connects = results
        .iter()
        .filter(|r| r.as_ref().is_ok_and(|d| *d >= Duration::from_millis(900)))
        .count();
    let burst_fail: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    if results.len() != BURST_THREADS * BURST_PER_THREAD || !burst_fail.is_empty() {
        l.problems.push(format!(
            "burst: {} of {} sessions went wrong ({} run): {:?}",
            burst_fail.len(),
            BURST_THREADS * BURST_PER_THREAD,
            results.len(),
            burst_fail.iter().take(5).collect::<Vec<_>>()
        ));
    }
    let (drained3, left3) = drain(pid, DRAIN);
    let s3 = l.sampler.take();
    stats.push(("burst", s3.clone()));
    l.report.push(format!(
        "burst: {} full sessions from {BURST_THREADS} threads at once in {burst_took:.1?}, \
         slowest connect {burst_connect:.1?} ({slow_connects} connects took a SYN \
         retransmission, >= 0.9 s), drained {drained3:.1?}; {}",
        BURST_THREADS * BURST_PER_THREAD,
        show_stats(&s3)
    ));
    if !left3.is_empty() {
        l.problems.push(format!(
            "burst: {} session processes still there {DRAIN:?} after the burst: {left3:?}",
            left3.len()
        ));
    }

    // ---- the end: descriptors, memory, children --------------------------
    let fds_end = fd_count(pid);
    let rss_end = rss_kb(pid).unwrap_or(0);
    let leftover = children(pid);
    l.report.push(format!(
        "end: listener {fds_end} fds (started with {fds0}), RSS {rss_end} KiB (started with \
         {rss0} KiB)"
    ));
    if fds_end != fds0 {
        l.problems.push(format!(
            "the listener's descriptors: {fds0} before the first connection, {fds_end} at the \
             end\n        before: {fds0_list:?}\n        after:  {:?}",
            fd_list(pid)
        ));
    }
    for (what, s) in &stats {
        if s.max_listener_rss_kb > LISTENER_RSS_MAX_KB {
            l.problems.push(format!(
                "{what}: the listener's RSS reached {} KiB (bound {LISTENER_RSS_MAX_KB} KiB)",
                s.max_listener_rss_kb
            ));
        }
        if s.max_child_rss_kb > CHILD_RSS_MAX_KB {
            l.problems.push(format!(
                "{what}: a session process's RSS reached {} KiB (bound {CHILD_RSS_MAX_KB} KiB)",
                s.max_child_rss_kb
            ));
        }
    }
    if !leftover.is_empty() {
        let zombies = leftover.iter().filter(|(_, s)| *s == 'Z').count();
        l.problems.push(format!(
            "the listener still has {} children at the end ({zombies} unreaped zombies): \
             {leftover:?}",
            leftover.len()
        ));
    }
    // stop what this test started: left-over sessions, then the listener
    for (p, _) in &leftover {
        // SAFETY: kill(2) of a forked session of the server this test started
        unsafe {
            libc::kill(*p as libc::pid_t, libc::SIGKILL);
        }
    }
    let Load {
        mut problems,
        mut report,
        sampler,
        ..
    } = l;
    drop(sampler);
    let out = srv.kill();
    let err = common::show(&out.stderr);
    let _ = std::fs::write(base.join("server.stderr"), &out.stderr);
    let accepted = err.matches("New connection from ").count();
    let expected = 2 * CLIENTS + SEQUENTIAL + BURST_THREADS * BURST_PER_THREAD;
    if accepted < expected {
        problems.push(format!(
            "the server logged {accepted} `New connection from` lines, expected at least \
             {expected}"
        ));
    }
    let panics: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("panicked") || l.contains("RUST_BACKTRACE"))
        .take(5)
        .collect();
    if !panics.is_empty() {
        problems.push(format!("the server panicked: {panics:?}"));
    }
    report.push(format!(
        "server: {accepted} connections logged; pushing rounds {t_phase1:.1?}, total {:.1?}",
        t_all.elapsed()
    ));
    for r in &report {
        eprintln!("[{TEST}] {r}");
    }
    if !problems.is_empty() {
        let text = format!(
            "{}\n\nproblems:\n  - {}",
            report.join("\n"),
            problems.join("\n  - ")
        );
        let _ = std::fs::write(base.join("report.txt"), &text);
        panic!(
            "\n=== `{TEST}` (directory {} kept) ===\n{text}",
            base.display()
        );
    }
    if !keep() {
        let t = Instant::now();
        let _ = std::fs::remove_dir_all(&base);
        eprintln!("[{TEST}] clean-up {:.1?}", t.elapsed());
    }
}
