//! Crash safety of a push: SIGKILL of the client or of the server at a
//! random moment leaves every target file either in its old or in its new
//! version, never torn; the next normal run completes, leaves no temporary
//! file behind, and both databases agree with the files.
//!
//! Three pairs, one after the other, on one tmpfs (node A pushes to node B
//! with `-x`, plain text):
//!
//! * (d) our client → our server (pipelined), with a 2 GiB file among the
//!   small and medium ones;
//! * (c) our client → the real server (lock-step);
//! * (b) the real client → our server (lock-step).
//!
//! A round: A gets new versions of a random part of its files (many small
//! ones sent whole, a few of 1–8 MiB changed in place or at the end, which go
//! as rsync deltas, in some rounds the 2 GiB file changed at a few places);
//! B's server (`-iii`, or `-ii`, whose forked session process is the one
//! killed) is started and A runs `-x`; after a random delay the client or
//! the server gets SIGKILL. Three in four delays count from the server's
//! accept and fall into the session (the median session of complete
//! pushes: a first push without a kill, and the pushes a kill missed),
//! half of them anywhere up to 95 %, half in its last 40 % (a pipelined
//! push writes its files in a short burst at the end); the others count
//! from the client's start (its check, its connection). The three kills in
//! 2 GiB pushes hit the server late in the push (while it writes the new
//! version), the server of the other kind anywhere, and the client
//! anywhere. Then:
//!
//! 1. every file on B is byte for byte its old or its new version; B's
//!    database never records a state ahead of its file (a file still old on
//!    disk has its old row); both databases pass `integrity_check`;
//! 2. a normal `-x` (with a new server) completes (exit 0, no errors), and
//!    afterwards every file on B is the new version (content, mode, mtime);
//! 3. neither tree holds anything but the expected files and directories
//!    (the server's temporary files are `.<name>.XXXXXX` next to the target;
//!    any other name is a leftover too); leftovers are reported, then
//!    removed;
//! 4. no dirty row is left on either node, every file row equals its file's
//!    check text, no row names a path that does not exist, and a `-cr` on
//!    each node then marks nothing dirty.
//!
//! What the real program does wrong is printed as a note, not a failure: a
//! problem on a real node, or one with files whose trouble the real program
//! explains (a file the real server left torn, a mark the real client lost
//! (state.md Q25), a temporary file the real client left and then
//! synchronised). Temporary files our server left behind are reported in a
//! category of their own. After a round with a problem the two nodes are
//! made equal again and their databases rebuilt, so that one failure does
//! not cascade.
//!
//! 50 rounds with a kill that hit a running process (15 + 3 in 2 GiB
//! pushes for (d), 16 for (c), 16 for (b)). The PRNG seed is printed;
//! `CSYNC2_KILL_SEED=<seed>` repeats the choices (not the timing). The
//! outputs of the processes of every round with a problem are kept in
//! `/tmp/c2net-kill-<pid>-failures/`. `CSYNC2_KILL_PAIRS=dcb` restricts the
//! pairs. Needs root, about 6 GiB of RAM for the tmpfs.

mod common;
mod net;

use net::*;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const TEST: &str = "netkill";
const IDX: Net = Net::Netkill;
/// How long a csync2 process may take before it counts as hung.
const WAIT: Duration = Duration::from_secs(120);
const BIG: &str = "big.img";
const BIG_SIZE: u64 = 2 << 30;
const CHUNK: usize = 8 << 20;
const MODE: u32 = 0o644;

// ---------------------------------------------------------------------------
// Small tools
// ---------------------------------------------------------------------------

/// xorshift64*: every choice of the test comes from it.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng((seed ^ 0x9e37_79b9_7f4a_7c15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn fill(&mut self, buf: &mut [u8]) {
        for c in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0; n];
        self.fill(&mut v);
        v
    }
}

fn seed() -> u64 {
    if let Ok(s) = std::env::var("CSYNC2_KILL_SEED") {
        let s = s.trim();
        let v = match s.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16),
            None => s.parse(),
        };
        return v.unwrap_or_else(|_| panic!("CSYNC2_KILL_SEED={s}: not a number"));
    }
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ ((std::process::id() as u64) << 32)
}

/// Live processes whose parent is `pid` (the session processes of a `-ii`
/// server).
fn children(pid: u32) -> Vec<u32> {
    children_with_state(pid)
        .into_iter()
        .filter(|&(_, state)| state != 'Z')
        .map(|(p, _)| p)
        .collect()
}

/// The processes holding a socket that listens on addr:port (from
/// /proc/net/tcp and /proc/*/fd), with their command lines.
fn listeners(addr: std::net::Ipv4Addr, port: u16) -> Vec<String> {
    let want = format!("{:08X}:{:04X}", u32::from_le_bytes(addr.octets()), port);
    let text = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let inodes: BTreeSet<String> = text
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 9 && f[1] == want && f[3] == "0A").then(|| format!("socket:[{}]", f[9]))
        })
        .collect();
    let mut out = Vec::new();
    if inodes.is_empty() {
        return out;
    }
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path())
                .map(|t| inodes.contains(&t.to_string_lossy().into_owned()))
                .unwrap_or(false)
        });
        if holds {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmd: Vec<String> = cmd
                .split(|&c| c == 0)
                .filter(|a| !a.is_empty())
                .map(common::show)
                .collect();
            let ppid = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rfind(')')
                        .and_then(|i| s[i + 1..].split_whitespace().nth(1).map(String::from))
                })
                .unwrap_or_default();
            out.push(format!("pid {pid} (parent {ppid}): {}", cmd.join(" ")));
        }
    }
    if out.is_empty() {
        out.push("a listening socket no process holds".into());
    }
    out
}

fn sigkill(pid: u32) {
    // SAFETY: a process this test started (or its forked session child)
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

/// The last lines of a process's stderr, for a report.
fn tail(d: &Done, n: usize) -> String {
    let l = d.stderr_lines();
    let from = l.len().saturating_sub(n);
    let mut s = format!("{} ({})", d.what, d.status());
    for x in &l[from..] {
        let _ = write!(s, "\n          | {}", cut(x, 300));
    }
    s
}

fn cut(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_string();
    }
    let mut i = n;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    format!("{}…", &s[..i])
}

fn panicked(d: &Done) -> bool {
    let e = common::show(&d.stderr);
    e.contains("panicked at") || e.contains("RUST_BACKTRACE")
}

/// The check text of a file or directory as csync2 computes it (state.md
/// §2), with the real mtime.
fn disk_checktxt(p: &Path) -> Option<Vec<u8>> {
    let md = std::fs::symlink_metadata(p).ok()?;
    let ids = format!(
        "mode={}:uid={}:gid={}",
        md.mode() as i32,
        md.uid() as i32,
        md.gid() as i32
    );
    let t = if md.is_dir() {
        format!("v1:{ids}:type=dir")
    } else if md.is_file() {
        format!("v1:mtime={}:{ids}:type=reg:size={}", md.mtime(), md.size())
    } else {
        format!("v1:{ids}:type=other")
    };
    Some(t.into_bytes())
}

/// Everything below `root`: relative path → (is a directory, size).
fn entries(root: &Path) -> BTreeMap<String, (bool, u64)> {
    fn walk(p: &Path, rel: &str, out: &mut BTreeMap<String, (bool, u64)>) {
        let Ok(rd) = std::fs::read_dir(p) else {
            return;
        };
        for e in rd.flatten() {
            let name = common::show(e.file_name().as_bytes());
            let r = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let Ok(md) = std::fs::symlink_metadata(e.path()) else {
                continue;
            };
            out.insert(r.clone(), (md.is_dir(), md.len()));
            if md.is_dir() {
                walk(&e.path(), &r, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, "", &mut out);
    out
}

/// A node's database: file rows (decoded name → decoded check text) and
/// dirty rows (decoded name, peer), after `PRAGMA integrity_check`.
struct Db {
    files: BTreeMap<Vec<u8>, Vec<u8>>,
    dirty: Vec<(Vec<u8>, Vec<u8>)>,
}

fn read_db(n: &Node) -> Result<Db, String> {
    let path = n.db_file();
    if !path.exists() {
        return Err("no database file".into());
    }
    let c = rusqlite::Connection::open(&path).map_err(|e| format!("open: {e}"))?;
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| format!("integrity_check: {e}"))?;
    if ok != "ok" {
        return Err(format!("integrity_check: {ok}"));
    }
    let bytes = |r: &rusqlite::Row, i: usize| -> Vec<u8> {
        r.get_ref(i)
            .ok()
            .and_then(|v| v.as_bytes().ok().map(<[u8]>::to_vec))
            .unwrap_or_default()
    };
    let mut files = BTreeMap::new();
    let mut st = c
        .prepare("SELECT filename, checktxt FROM file")
        .map_err(|e| format!("file table: {e}"))?;
    let rows = st
        .query_map([], |r| Ok((bytes(r, 0), bytes(r, 1))))
        .map_err(|e| format!("file table: {e}"))?;
    for r in rows.flatten() {
        files.insert(common::url_decode(&r.0), common::url_decode(&r.1));
    }
    let mut dirty = Vec::new();
    let mut st = c
        .prepare("SELECT filename, peername FROM dirty")
        .map_err(|e| format!("dirty table: {e}"))?;
    let rows = st
        .query_map([], |r| Ok((bytes(r, 0), bytes(r, 1))))
        .map_err(|e| format!("dirty table: {e}"))?;
    for r in rows.flatten() {
        dirty.push((common::url_decode(&r.0), common::url_decode(&r.1)));
    }
    Ok(Db { files, dirty })
}

// ---------------------------------------------------------------------------
// The files of a pair
// ---------------------------------------------------------------------------

/// A small or medium file: its content on A now, and, during a round in
/// which it changed, the content before.
struct File {
    cur: Vec<u8>,
    old: Option<Vec<u8>>,
    mtime: i64,
}

/// One change of the big file: the bytes it overwrote at `off` (the new
/// bytes are in A's copy).
struct Patch {
    off: u64,
    old: Vec<u8>,
}

/// The 2 GiB file. Its old version is A's current one with `patches`
/// undone (in reverse order) and cut to `old_size`.
struct Big {
    size: u64,
    old_size: u64,
    patches: Vec<Patch>,
    changed: bool,
    mtime: i64,
}

/// What a file on B holds.
#[derive(PartialEq, Eq, Debug)]
enum State {
    Old,
    New,
    Torn(String),
}

fn small_body(rng: &mut Rng) -> Vec<u8> {
    const SIZES: [u64; 8] = [0, 1, 17, 100, 1000, 4096, 9000, 30_000];
    let n = SIZES[rng.below(8) as usize];
    let n = if n > 100 { rng.range(n / 2, n) } else { n };
    rng.bytes(n as usize)
}

fn medium_change(rng: &mut Rng, body: &mut Vec<u8>) {
    for _ in 0..rng.range(1, 4) {
        let len = (rng.range(1024, 64 << 10) as usize).min(body.len());
        let off = rng.below((body.len() - len) as u64 + 1) as usize;
        rng.fill(&mut body[off..off + len]);
    }
    match rng.below(3) {
        0 => {
            let n = rng.range(1, 256 << 10) as usize;
            let extra = rng.bytes(n);
            body.extend_from_slice(&extra);
        }
        1 if body.len() > (2 << 20) => {
            let cut = rng.range(1, 128 << 10) as usize;
            body.truncate(body.len() - cut);
        }
        _ => {}
    }
}

fn write_random(path: &Path, size: u64, rng: &mut Rng) {
    let mut f = std::fs::File::create(path).expect("create the big file");
    let mut buf = vec![0u8; CHUNK];
    let mut left = size;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        rng.fill(&mut buf[..n]);
        f.write_all(&buf[..n]).expect("write the big file");
        left -= n as u64;
    }
}

fn read_at(f: &std::fs::File, buf: &mut [u8], off: u64) -> bool {
    f.read_exact_at(buf, off).is_ok()
}

/// Whether B's big file is A's (new) version or the old one, streaming
/// both.
fn classify_big(big: &Big, a: &Path, b: &Path) -> State {
    let (Ok(fa), Ok(fb)) = (std::fs::File::open(a), std::fs::File::open(b)) else {
        return State::Torn("missing".into());
    };
    let size = fb.metadata().map(|m| m.len()).unwrap_or(0);
    if !big.changed {
        // not pushed in this round: the size and 18 samples (reading
        // 2 × 2 GiB in every round would cost seconds)
        if size != big.size {
            return State::Torn(format!("size {size}, want {}", big.size));
        }
        let mut ba = vec![0u8; 1 << 20];
        let mut bb = vec![0u8; 1 << 20];
        let span = size.saturating_sub(1 << 20);
        for k in 0..18u64 {
            let off = span * k / 17;
            let n = (size - off).min(1 << 20) as usize;
            if !read_at(&fa, &mut ba[..n], off)
                || !read_at(&fb, &mut bb[..n], off)
                || ba[..n] != bb[..n]
            {
                return State::Torn(format!("differs from A's copy in [{off}, +{n})"));
            }
        }
        return State::New;
    }
    let mut maybe_new = size == big.size;
    let mut maybe_old = big.changed && size == big.old_size;
    if !maybe_new && !maybe_old {
        return State::Torn(format!(
            "size {size} (old {}, new {})",
            big.old_size, big.size
        ));
    }
    let mut ba = vec![0u8; CHUNK];
    let mut bb = vec![0u8; CHUNK];
    let mut off = 0u64;
    while off < size {
        let n = (size - off).min(CHUNK as u64) as usize;
        if !read_at(&fb, &mut bb[..n], off) || !read_at(&fa, &mut ba[..n], off) {
            return State::Torn(format!("short read at {off}"));
        }
        if maybe_new && ba[..n] != bb[..n] {
            maybe_new = false;
        }
        if maybe_old {
            let end = off + n as u64;
            for p in big.patches.iter().rev() {
                let (ps, pe) = (p.off, p.off + p.old.len() as u64);
                if ps < end && pe > off {
                    let (s, e) = (ps.max(off), pe.min(end));
                    ba[(s - off) as usize..(e - off) as usize]
                        .copy_from_slice(&p.old[(s - ps) as usize..(e - ps) as usize]);
                }
            }
            if ba[..n] != bb[..n] {
                maybe_old = false;
            }
        }
        if !maybe_new && !maybe_old {
            return State::Torn(format!("size {size}, differs from both in [{off}, +{n})"));
        }
        off += n as u64;
    }
    if maybe_new { State::New } else { State::Old }
}

// ---------------------------------------------------------------------------
// A pair of nodes and its rounds
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Target {
    Client,
    Server,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Cat {
    /// a bug of ours
    Bug,
    /// a temporary file our server left behind
    Leftover,
    /// behaviour of the real program
    Real,
}

struct Kill {
    target: Target,
    /// after the start of the push, or (`in_session`) after the server
    /// accepted the connection
    delay: Duration,
    in_session: bool,
}

/// A push that has been started (and maybe killed), for the checks.
struct Ended<'a> {
    client: Proc,
    server: Proc,
    kind: &'a str,
    t0: Instant,
    session: Option<Instant>,
    hit: bool,
    what: String,
    kill: Option<Kill>,
    with_big: bool,
    changed: usize,
    before: usize,
    rows_before: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// How long a push took from the start, and from the server's accept.
#[derive(Clone, Copy)]
struct Timing {
    total: Duration,
    session: Duration,
    hit: bool,
}

#[derive(Default)]
struct Tally {
    client: usize,
    server_iii: usize,
    server_ii: usize,
    big: usize,
    old_files: usize,
    new_files: usize,
    missed: usize,
    leftover_after_kill: usize,
    /// rounds in which the kill left some changed files old, some new
    mixed: usize,
}

struct Pair {
    run: Run,
    files: BTreeMap<String, File>,
    dirs: BTreeSet<String>,
    big: Option<Big>,
    rng: Rng,
    mtime: i64,
    problems: Vec<(Cat, String)>,
    tally: Tally,
    round: usize,
    /// files of this round whose trouble the real program explains (a
    /// torn file on a real server, a mark the real client lost, a
    /// temporary file it left and then synchronised)
    real_files: BTreeSet<String>,
    /// entries of this round removed from a tree as leftovers
    removed: BTreeSet<String>,
}

impl Pair {
    fn new(mode: Mode, slot: u16, hs: &[Host], base: &Path, seed: u64) -> Pair {
        let run = Run::new(TEST, mode, hs, &[1], base, port(IDX, slot));
        Pair {
            run,
            files: BTreeMap::new(),
            dirs: BTreeSet::new(),
            big: None,
            rng: Rng::new(seed ^ (mode.tag as u64).wrapping_mul(0x1000_0000_01b3)),
            mtime: T0,
            problems: Vec::new(),
            tally: Tally::default(),
            round: 0,
            real_files: BTreeSet::new(),
            removed: BTreeSet::new(),
        }
    }

    fn a(&self) -> &Node {
        self.run.n(0)
    }
    fn b(&self) -> &Node {
        self.run.n(1)
    }
    fn label(&self) -> String {
        self.run.mode.describe()
    }

    /// Whose problem a check on node `i` shows.
    fn cat_of(&self, i: usize, ours: Cat) -> Cat {
        if self.run.runs_real(i) && !ours_is_real() {
            Cat::Real
        } else {
            ours
        }
    }

    /// As [`Pair::cat_of`], but a problem with files the real program
    /// already explains in this round is its consequence.
    fn cat_for(&self, i: usize, rels: &[String]) -> Cat {
        let c = self.cat_of(i, Cat::Bug);
        if c == Cat::Bug && !rels.is_empty() && rels.iter().all(|r| self.real_files.contains(r)) {
            Cat::Real
        } else {
            c
        }
    }

    /// The tree-relative path of a logical name (None outside the tree).
    fn rel_of(&self, name: &[u8]) -> Option<String> {
        let sync = self.a().s("").as_bytes().to_vec();
        if name == sync.as_slice() {
            return Some(String::new());
        }
        name.strip_prefix(sync.as_slice())
            .and_then(|r| r.strip_prefix(b"/"))
            .map(common::show)
    }

    fn problem(&mut self, cat: Cat, what: impl Into<String>) {
        let s = format!("{} round {}: {}", self.label(), self.round, what.into());
        eprintln!("[net_kill]   {:?}: {s}", cat);
        self.problems.push((cat, s));
    }

    /// csync2 on node `i` with `args`, which must exit 0.
    fn csync(&mut self, i: usize, args: Vec<OsString>) -> Done {
        let d = self.run.n(i).spawn(&args).wait_until(Instant::now() + WAIT);
        if d.code != Some(0) {
            let t = tail(&d, 8);
            let c = self.cat_of(i, Cat::Bug);
            self.problem(c, format!("`{}` failed: {t}", common::cmdline(&args)));
        }
        d
    }

    /// Identical old versions on both nodes, both databases initialised.
    fn setup(&mut self, with_big: bool) {
        let (a, b) = (self.a().clone(), self.b().clone());
        for d in 0..8 {
            self.dirs.insert(format!("s{d}"));
            for f in 0..30 {
                let rel = format!("s{d}/f{f:02}.txt");
                let body = small_body(&mut self.rng);
                self.files.insert(
                    rel,
                    File {
                        cur: body,
                        old: None,
                        mtime: T0,
                    },
                );
            }
        }
        self.dirs.insert("m".into());
        for k in 0..4 {
            let n = self.rng.range(1 << 20, 8 << 20) as usize;
            let body = self.rng.bytes(n);
            self.files.insert(
                format!("m/med{k}.bin"),
                File {
                    cur: body,
                    old: None,
                    mtime: T0,
                },
            );
        }
        for n in [&a, &b] {
            for d in &self.dirs {
                n.mkdir(d, 0o755);
            }
            for (rel, f) in &self.files {
                n.file(rel, &f.cur, MODE, f.mtime);
            }
        }
        if with_big {
            write_random(&a.p(BIG), BIG_SIZE, &mut self.rng);
            std::fs::copy(a.p(BIG), b.p(BIG)).expect("copy the big file to B");
            for n in [&a, &b] {
                n.chmod(BIG, MODE);
                n.mtime(BIG, T0);
            }
            self.big = Some(Big {
                size: BIG_SIZE,
                old_size: BIG_SIZE,
                patches: Vec::new(),
                changed: false,
                mtime: T0,
            });
        }
        for i in 0..2 {
            let s = self.run.n(i).s("");
            self.csync(i, vec!["-cIr".into(), s]);
        }
    }

    /// New versions on A of about half the small files, most medium ones,
    /// and (`with_big`) the big file.
    fn mutate(&mut self, with_big: bool) -> usize {
        self.mtime += 1000;
        let a = self.a().clone();
        let names: Vec<String> = self.files.keys().cloned().collect();
        let mut changed = 0;
        for rel in names {
            let medium = rel.starts_with("m/");
            let hit = if medium {
                self.rng.chance(3, 4)
            } else {
                self.rng.chance(1, 2)
            };
            if !hit {
                continue;
            }
            let cur = &self.files[&rel].cur;
            let mut body = if medium {
                let mut b = cur.clone();
                medium_change(&mut self.rng, &mut b);
                b
            } else {
                small_body(&mut self.rng)
            };
            if body == *cur {
                body.push(b'!');
            }
            let mt = self.mtime + self.rng.below(500) as i64;
            a.file(&rel, &body, MODE, mt);
            let f = self.files.get_mut(&rel).expect("file");
            f.old = Some(std::mem::replace(&mut f.cur, body));
            f.mtime = mt;
            changed += 1;
        }
        if with_big {
            let mt = self.mtime + 999;
            let big = self.big.as_mut().expect("the big file");
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(a.p(BIG))
                .expect("open the big file");
            big.old_size = big.size;
            big.patches.clear();
            for _ in 0..4 {
                let len = self.rng.range(4096, 64 << 10);
                let off = self.rng.below(big.size - len);
                let mut old = vec![0u8; len as usize];
                f.read_exact_at(&mut old, off).expect("read the big file");
                let new = self.rng.bytes(len as usize);
                f.write_all_at(&new, off).expect("write the big file");
                big.patches.push(Patch { off, old });
            }
            if self.rng.chance(1, 3) {
                let n = self.rng.range(1 << 20, 3 << 20) as usize;
                let extra = self.rng.bytes(n);
                f.write_all_at(&extra, big.size)
                    .expect("append to the big file");
                big.size += extra.len() as u64;
            }
            drop(f);
            a.mtime(BIG, mt);
            big.mtime = mt;
            big.changed = true;
            changed += 1;
        }
        changed
    }

    fn expected(&self) -> BTreeSet<String> {
        let mut e: BTreeSet<String> = self.dirs.iter().cloned().collect();
        e.extend(self.files.keys().cloned());
        if self.big.is_some() {
            e.insert(BIG.into());
        }
        e
    }

    fn start_server(&mut self, kind: &str) -> Proc {
        let b = self.b().clone();
        let stale = listeners(b.addr, b.port);
        if !stale.is_empty() {
            let c = self.cat_of(1, Cat::Bug);
            self.problem(
                c,
                format!(
                    "before a new {kind} server starts, something listens on its port: {}",
                    stale.join("; ")
                ),
            );
            let end = Instant::now() + Duration::from_secs(15);
            common::poll_until(end, Duration::from_millis(10), || {
                !listening(b.addr, b.port)
            });
        }
        let p = b.spawn(&[kind.into(), "-v".into()]);
        await_listening(p, b.addr, b.port, Duration::from_millis(2)).unwrap_or_else(|d| {
            panic!(
                "{}: the server did not listen: {}",
                self.label(),
                tail(&d, 10)
            )
        })
    }

    /// After the client: the end of a server; a `-iii` server nobody
    /// connected to is killed, a `-ii` daemon once its sessions ended.
    fn stop_server(&mut self, kind: &str, mut s: Proc) -> Done {
        let (addr, port) = (self.b().addr, self.b().port);
        let end = Instant::now() + WAIT;
        if kind == "-iii" {
            let mut exited = false;
            let ended = common::poll_until(end, Duration::from_millis(5), || {
                exited = s.exited();
                exited || listening(addr, port)
            });
            if exited {
                return s.wait_until(Instant::now());
            }
            if ended {
                return s.kill();
            }
            let d = s.kill();
            let c = self.cat_of(1, Cat::Bug);
            let t = tail(&d, 8);
            self.problem(c, format!("the -iii server did not end its session: {t}"));
            return d;
        }
        let pid = s.pid;
        common::poll_until(end, Duration::from_millis(5), || children(pid).is_empty());
        let left = children(s.pid);
        for c in &left {
            sigkill(*c);
        }
        let d = s.kill();
        if !left.is_empty() {
            let c = self.cat_of(1, Cat::Bug);
            let t = tail(&d, 8);
            self.problem(
                c,
                format!("a -ii session process did not end within {WAIT:?}: {t}"),
            );
        }
        d
    }

    /// The files on B right after the kill: old or new, never anything
    /// else; a file still old has its old database row.
    fn check_after_kill(&mut self, rows_before: &BTreeMap<Vec<u8>, Vec<u8>>) {
        let (a, b) = (self.a().clone(), self.b().clone());
        let db = read_db(&b);
        let mut torn = Vec::new();
        let mut torn_rels: Vec<String> = Vec::new();
        let mut ahead = Vec::new();
        let (mut old, mut new) = (0, 0);
        let mut states: Vec<(String, State)> = Vec::new();
        for (rel, f) in &self.files {
            let got = std::fs::read(b.p(rel)).ok();
            let st = match &got {
                None => State::Torn("missing".into()),
                Some(g) if *g == f.cur => State::New,
                Some(g) if f.old.as_ref() == Some(g) => State::Old,
                Some(g) => {
                    let base = f.old.as_ref().unwrap_or(&f.cur);
                    let off = g
                        .iter()
                        .zip(base.iter())
                        .position(|(x, y)| x != y)
                        .unwrap_or(g.len().min(base.len()));
                    State::Torn(format!(
                        "{} bytes (old {}, new {}), differs from the old from byte {off}",
                        g.len(),
                        base.len(),
                        f.cur.len()
                    ))
                }
            };
            if f.old.is_some() {
                states.push((rel.clone(), st));
            } else if st != State::New {
                states.push((rel.clone(), State::Torn(format!("unchanged file: {st:?}"))));
            }
        }
        if let Some(big) = &self.big {
            let st = classify_big(big, &a.p(BIG), &b.p(BIG));
            if big.changed {
                states.push((BIG.into(), st));
            } else if st != State::New {
                states.push((BIG.into(), State::Torn(format!("unchanged file: {st:?}"))));
            }
        }
        for (rel, st) in states {
            match st {
                State::New => new += 1,
                State::Old => {
                    old += 1;
                    // nothing may be recorded for a file not yet replaced
                    if let Ok(db) = &db {
                        let name = b.s(&rel).as_bytes().to_vec();
                        let row = db.files.get(&name);
                        let disk = disk_checktxt(&b.p(&rel));
                        if row.is_none() || (row != rows_before.get(&name) && row != disk.as_ref())
                        {
                            ahead.push(format!(
                                "{rel}: row {:?}, before the push {:?}, file {:?}",
                                row.map(|r| common::show(r)),
                                rows_before.get(&name).map(|r| common::show(r)),
                                disk.map(|r| common::show(&r))
                            ));
                        }
                    }
                }
                State::Torn(why) => {
                    torn.push(format!("{rel}: {why}"));
                    torn_rels.push(rel);
                }
            }
        }
        self.tally.old_files += old;
        self.tally.new_files += new;
        if old > 0 && new > 0 {
            self.tally.mixed += 1;
        }
        eprintln!(
            "[net_kill]   after the kill: {old} files old, {new} new, {} torn",
            torn.len()
        );
        if !torn.is_empty() {
            let c = self.cat_of(1, Cat::Bug);
            if c == Cat::Real {
                self.real_files.extend(torn_rels.iter().cloned());
            }
            self.problem(
                c,
                format!(
                    "after the kill {} file(s) on B are neither old nor new: {}",
                    torn.len(),
                    torn.iter().take(6).cloned().collect::<Vec<_>>().join("; ")
                ),
            );
        }
        if !ahead.is_empty() {
            let c = self.cat_of(1, Cat::Bug);
            self.problem(
                c,
                format!(
                    "after the kill B's database is ahead of its files (file still old): {}",
                    ahead.iter().take(4).cloned().collect::<Vec<_>>().join("; ")
                ),
            );
        }
        if let Err(e) = db {
            let c = self.cat_of(1, Cat::Bug);
            self.problem(c, format!("after the kill B's database: {e}"));
        }
        if let Err(e) = read_db(&a) {
            let c = self.cat_of(0, Cat::Bug);
            self.problem(c, format!("after the kill A's database: {e}"));
        }
        let expected = self.expected();
        let extra: Vec<String> = entries(&b.tree)
            .into_iter()
            .filter(|(k, _)| !expected.contains(k))
            .map(|(k, (_, size))| format!("{k} ({size} bytes)"))
            .collect();
        if !extra.is_empty() {
            self.tally.leftover_after_kill += 1;
            eprintln!("[net_kill]   on B after the kill: {}", extra.join(", "));
        }
    }

    /// Anything in a tree but the expected entries: reported and removed.
    /// An entry B has because A had it (and synchronised it) is A's.
    fn check_trees(&mut self, when: &str) {
        let expected = self.expected();
        let extra = |n: &Node| -> BTreeMap<String, (bool, u64)> {
            entries(&n.tree)
                .into_iter()
                .filter(|(k, _)| !expected.contains(k))
                .collect()
        };
        let (a, b) = (self.a().clone(), self.b().clone());
        let (ea, eb) = (extra(&a), extra(&b));
        let list = |v: &[(&String, &(bool, u64))]| -> String {
            v.iter()
                .map(|(k, (_, size))| format!("{k} ({size} bytes)"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let temp = |k: &str, dir: bool| !dir && k.rsplit('/').next().unwrap_or(k).starts_with('.');
        if !ea.is_empty() {
            let v: Vec<_> = ea.iter().collect();
            let cat = self.cat_of(0, Cat::Bug);
            if cat == Cat::Real {
                self.real_files.extend(ea.keys().cloned());
            }
            let synced = eb.keys().filter(|k| ea.contains_key(*k)).count();
            self.problem(
                cat,
                format!(
                    "{when}: left in A (client)'s tree: {}{}",
                    list(&v),
                    if synced > 0 {
                        format!(" ({synced} of them synchronised to B as well)")
                    } else {
                        String::new()
                    }
                ),
            );
        }
        let own: Vec<_> = eb.iter().filter(|(k, _)| !ea.contains_key(*k)).collect();
        if !own.is_empty() {
            let cat = if own.iter().all(|(k, (dir, _))| temp(k, *dir)) {
                self.cat_of(1, Cat::Leftover)
            } else {
                self.cat_of(1, Cat::Bug)
            };
            self.problem(
                cat,
                format!("{when}: left in B (server)'s tree: {}", list(&own)),
            );
        }
        for (n, e) in [(&a, &ea), (&b, &eb)] {
            for (k, (dir, _)) in e.iter().rev() {
                let p = n.p(k);
                if *dir {
                    let _ = std::fs::remove_dir_all(&p);
                } else {
                    let _ = std::fs::remove_file(&p);
                }
                self.removed.insert(k.clone());
            }
        }
    }

    /// A node's database after a completed run: no dirty row, every file
    /// row equal to its file, no row for anything that is not there
    /// (entries removed as leftovers aside).
    fn check_db(&mut self, i: usize, when: &str) {
        let n = self.run.n(i).clone();
        let who = if i == 0 { "A" } else { "B" };
        let db = match read_db(&n) {
            Ok(d) => d,
            Err(e) => {
                let c = self.cat_of(i, Cat::Bug);
                self.problem(c, format!("{when}: {who}'s database: {e}"));
                return;
            }
        };
        // (file, what is wrong)
        let mut bad: Vec<(String, String)> = Vec::new();
        for (f, p) in &db.dirty {
            let rel = self.rel_of(f).unwrap_or_else(|| common::show(f));
            if self.removed.contains(&rel) {
                continue;
            }
            bad.push((
                rel,
                format!("dirty row {} for {}", common::show(f), common::show(p)),
            ));
        }
        let expected = self.expected();
        let mut seen = BTreeSet::new();
        for (name, text) in &db.files {
            let Some(rel) = self.rel_of(name) else {
                let s = common::show(name);
                bad.push((s.clone(), format!("row for {s} outside the tree")));
                continue;
            };
            if self.removed.contains(&rel) {
                continue;
            }
            if !rel.is_empty() && !expected.contains(&rel) {
                bad.push((
                    rel.clone(),
                    format!("row for {rel}, which is no expected file"),
                ));
                continue;
            }
            seen.insert(rel.clone());
            let disk = disk_checktxt(&n.p(&rel));
            if rel.is_empty() {
                continue;
            }
            if disk.as_ref() != Some(text) {
                bad.push((
                    rel.clone(),
                    format!(
                        "row of {rel} is {}, the file is {}",
                        common::show(text),
                        disk.map(|d| common::show(&d)).unwrap_or("missing".into())
                    ),
                ));
            }
        }
        for e in &expected {
            if !seen.contains(e) {
                bad.push((e.clone(), format!("no row for {e}")));
            }
        }
        let (explained, other): (Vec<_>, Vec<_>) = bad
            .into_iter()
            .partition(|(r, _)| self.real_files.contains(r));
        for (v, why) in [
            (other, ""),
            (
                explained,
                " (files the real program's trouble above explains)",
            ),
        ] {
            if v.is_empty() {
                continue;
            }
            let rels: Vec<String> = v.iter().map(|(r, _)| r.clone()).collect();
            let c = self.cat_for(i, &rels);
            self.problem(
                c,
                format!(
                    "{when}: {who}'s database disagrees with its files ({} problems){why}: {}",
                    v.len(),
                    v.iter()
                        .take(6)
                        .map(|(_, t)| t.clone())
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            );
        }
    }

    /// After the completing run: B holds exactly the new versions.
    fn check_complete(&mut self) -> bool {
        let (a, b) = (self.a().clone(), self.b().clone());
        let mut wrong = Vec::new();
        for (rel, f) in &self.files {
            let p = b.p(rel);
            let md = std::fs::symlink_metadata(&p).ok();
            let ok = std::fs::read(&p).ok().as_ref() == Some(&f.cur)
                && md
                    .as_ref()
                    .is_some_and(|m| m.mtime() == f.mtime && m.mode() & 0o7777 == MODE);
            if !ok {
                wrong.push((
                    rel.clone(),
                    format!(
                        "{rel}: {}",
                        md.map(|m| format!(
                            "{} bytes mode {:o} mtime {} (want {} bytes mode {MODE:o} mtime {}{})",
                            m.len(),
                            m.mode() & 0o7777,
                            m.mtime(),
                            f.cur.len(),
                            f.mtime,
                            if f.old
                                .as_ref()
                                .is_some_and(|o| std::fs::read(&p).ok().as_ref() == Some(o))
                            {
                                ", still the old content"
                            } else {
                                ""
                            }
                        ))
                        .unwrap_or("missing".into())
                    ),
                ));
            }
        }
        if let Some(big) = &self.big {
            let p = b.p(BIG);
            let st = classify_big(big, &a.p(BIG), &p);
            let md = std::fs::symlink_metadata(&p).ok();
            let meta_ok = md
                .as_ref()
                .is_some_and(|m| m.mtime() == big.mtime && m.mode() & 0o7777 == MODE);
            if st != State::New || !meta_ok {
                wrong.push((
                    BIG.to_string(),
                    format!(
                        "{BIG}: {st:?}, mtime {:?} (want {})",
                        md.map(|m| m.mtime()),
                        big.mtime
                    ),
                ));
            }
        }
        if wrong.is_empty() {
            return true;
        }
        // a file the real client no longer holds dirty although it never
        // reached B: the real client lost the mark (state.md Q25, a check
        // killed between the file row and the dirty rows)
        let dirty_on_a: BTreeSet<String> = read_db(&a)
            .map(|d| d.dirty.iter().map(|(f, _)| common::show(f)).collect())
            .unwrap_or_default();
        let lost: Vec<String> = wrong
            .iter()
            .filter(|(rel, _)| !dirty_on_a.contains(&common::show(a.s(rel).as_bytes())))
            .map(|(r, _)| r.clone())
            .collect();
        let rels: Vec<String> = wrong.iter().map(|(r, _)| r.clone()).collect();
        let mut why = "";
        if self.cat_of(0, Cat::Bug) == Cat::Real && lost.len() == wrong.len() {
            why = " (not dirty on the real client any more: it lost the marks, state.md Q25)";
            self.real_files.extend(lost);
        }
        let cat = self.cat_for(0, &rels).min(self.cat_for(1, &rels));
        self.problem(
            cat,
            format!(
                "after the completing run {} file(s) on B are not the new version{why}: {}",
                wrong.len(),
                wrong
                    .iter()
                    .take(6)
                    .map(|(_, w)| w.clone())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        );
        false
    }

    /// Make B equal to A again and rebuild both databases (after a failed
    /// round).
    fn resync(&mut self) {
        eprintln!("[net_kill]   re-synchronising the nodes after the failure");
        let (a, b) = (self.a().clone(), self.b().clone());
        for i in [0, 1] {
            self.check_extra_quiet(i);
        }
        for (rel, f) in &self.files {
            b.file(rel, &f.cur, MODE, f.mtime);
        }
        if let Some(big) = &self.big {
            std::fs::copy(a.p(BIG), b.p(BIG)).expect("copy the big file");
            b.chmod(BIG, MODE);
            b.mtime(BIG, big.mtime);
        }
        for n in [&a, &b] {
            if let Ok(rd) = std::fs::read_dir(&n.db) {
                for e in rd.flatten() {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        for i in 0..2 {
            let s = self.run.n(i).s("");
            self.csync(i, vec!["-cIr".into(), s]);
        }
    }

    fn check_extra_quiet(&mut self, i: usize) {
        let n = self.run.n(i).clone();
        let expected = self.expected();
        for (k, (dir, _)) in entries(&n.tree).into_iter().rev() {
            if expected.contains(&k) {
                continue;
            }
            if dir {
                let _ = std::fs::remove_dir_all(n.p(&k));
            } else {
                let _ = std::fs::remove_file(n.p(&k));
            }
        }
    }

    /// One round: new versions on A, a push killed after `kill.delay`
    /// (none: a plain push, whose duration is returned), the checks, the
    /// completing run and its checks. Returns the duration of the first
    /// push and whether the kill hit a running process.
    /// Waits until B's server has a session (a `-iii` server stopped
    /// listening, a `-ii` daemon forked) and returns that moment; None
    /// when the client ended first or `until` passed.
    fn wait_session(
        &self,
        kind: &str,
        client: &mut Proc,
        server: &Proc,
        until: Instant,
    ) -> Option<Instant> {
        let b = self.b();
        let mut at = None;
        common::poll_until(until, Duration::from_micros(500), || {
            let started = if kind == "-iii" {
                !listening(b.addr, b.port)
            } else {
                !children(server.pid).is_empty()
            };
            if started {
                at = Some(Instant::now());
                return true;
            }
            client.exited()
        });
        at
    }

    fn round(&mut self, kill: Option<Kill>, kind: &str, with_big: bool) -> Timing {
        self.round += 1;
        self.real_files.clear();
        self.removed.clear();
        let changed = self.mutate(with_big);
        let before = self.problems.len();
        let rows_before = read_db(self.b()).map(|d| d.files).unwrap_or_default();
        let verbose = if self.round == 1 && self.run.mode == MODE_D {
            "-vvv"
        } else {
            "-v"
        };
        let mut server = self.start_server(kind);
        let t0 = Instant::now();
        let mut client = self.a().spawn(&["-x".into(), verbose.into()]);
        let mut hit = false;
        let mut what = String::from("no kill");
        let mut session = None;
        match &kill {
            None => session = self.wait_session(kind, &mut client, &server, t0 + WAIT),
            Some(k) => {
                let at = if k.in_session {
                    session = self.wait_session(kind, &mut client, &server, t0 + WAIT);
                    session.map(|s| s + k.delay)
                } else {
                    Some(t0 + k.delay)
                };
                if let Some(at) = at {
                    sleep_until(at);
                    (hit, what) = self.kill(k.target, kind, &mut client, &mut server);
                } else {
                    what = "nothing (the client ended before a session began)".into();
                }
            }
        }
        self.after_kill(Ended {
            client,
            server,
            kind,
            t0,
            session,
            hit,
            what,
            kill,
            with_big,
            changed,
            before,
            rows_before,
        })
    }

    /// SIGKILL for the client or the server (a `-ii` server's session
    /// process; the daemon when there is none). Returns whether a running
    /// push was hit, and what was killed.
    fn kill(
        &mut self,
        target: Target,
        kind: &str,
        client: &mut Proc,
        server: &mut Proc,
    ) -> (bool, String) {
        match target {
            Target::Client => {
                let hit = !client.exited();
                if hit {
                    sigkill(client.pid);
                    self.tally.client += 1;
                }
                (hit, "client".into())
            }
            Target::Server if kind == "-iii" => {
                let hit = !server.exited();
                if hit {
                    sigkill(server.pid);
                    self.tally.server_iii += 1;
                }
                (hit, "-iii server".into())
            }
            Target::Server => {
                let ch = children(server.pid);
                let (hit, what) = if ch.is_empty() {
                    // no session (yet, or any more): the daemon itself
                    let hit = !client.exited();
                    sigkill(server.pid);
                    let b = self.b().clone();
                    std::thread::sleep(Duration::from_millis(20));
                    let still = listeners(b.addr, b.port);
                    if !still.is_empty() {
                        eprintln!(
                            "[net_kill]   after the kill of the -ii daemon {} its port is \
                             still open: {}",
                            server.pid,
                            still.join("; ")
                        );
                    }
                    (hit, "-ii daemon (no session process)".to_string())
                } else {
                    for c in &ch {
                        sigkill(*c);
                    }
                    (true, format!("-ii session process {}", ch[0]))
                };
                if hit {
                    self.tally.server_ii += 1;
                }
                (hit, what)
            }
        }
    }

    fn after_kill(&mut self, e: Ended) -> Timing {
        let Ended {
            client,
            server,
            kind,
            t0,
            session,
            hit,
            what,
            kill,
            with_big,
            changed,
            before,
            rows_before,
        } = e;
        let rows_before = &rows_before;
        let kill = &kill;
        let c = client.wait_until(Instant::now() + WAIT);
        let took = t0.elapsed();
        let accepted = session.map(|s| s.duration_since(t0));
        let s = self.stop_server(kind, server);
        let head = format!(
            "[net_kill] {} round {} ({changed} files changed{}, {kind})",
            self.label(),
            self.round,
            if with_big {
                ", with the 2 GiB file"
            } else {
                ""
            }
        );
        let acc = accepted
            .map(|a| format!("the server accepted at {}", ms(a)))
            .unwrap_or("no session seen".into());
        match kill {
            None => eprintln!("{head}: push without a kill took {} ({acc})", ms(took)),
            Some(k) => eprintln!(
                "{head}: SIGKILL {what} {} {}{}; {acc}; the client ended after {} ({})",
                ms(k.delay),
                if k.in_session {
                    "after the accept"
                } else {
                    "after the start"
                },
                if hit { "" } else { " (missed)" },
                ms(took),
                c.status()
            ),
        }
        if c.timed_out {
            let t = tail(&c, 10);
            self.problem(
                Cat::Bug,
                format!("the client hung after the kill of the {what}: {t}"),
            );
        }
        for (i, d) in [(0, &c), (1, &s)] {
            if panicked(d) {
                let cat = self.cat_of(i, Cat::Bug);
                let t = tail(d, 12);
                self.problem(cat, format!("a process panicked: {t}"));
            }
        }
        let mut second: Option<(Done, Done)> = None;
        if kill.is_none() {
            if c.code != Some(0) {
                let t = tail(&c, 10);
                self.problem(Cat::Bug, format!("the push without a kill failed: {t}"));
            }
            if self.run.mode == MODE_D && verbose_pipelined(&c) == Some(false) {
                self.problem(Cat::Bug, "our client and server did not pipeline");
            }
        } else {
            if !hit {
                self.tally.missed += 1;
            } else if with_big {
                self.tally.big += 1;
            }
            self.check_after_kill(rows_before);
            // the completing run
            let server = self.start_server(kind);
            let t1 = Instant::now();
            let c2: Done = self
                .a()
                .spawn(&["-x".into(), "-v".into()])
                .wait_until(Instant::now() + WAIT);
            let took2 = t1.elapsed();
            let s2 = self.stop_server(kind, server);
            eprintln!(
                "[net_kill]   completing run: {} in {}",
                c2.status(),
                ms(took2)
            );
            for (i, d) in [(0, &c2), (1, &s2)] {
                if panicked(d) {
                    let cat = self.cat_of(i, Cat::Bug);
                    let t = tail(d, 12);
                    self.problem(
                        cat,
                        format!("a process of the completing run panicked: {t}"),
                    );
                }
            }
            second = Some((c2, s2));
        }
        let when = if kill.is_some() {
            "after the completing run"
        } else {
            "after the push"
        };
        self.check_complete();
        self.check_trees(when);
        if let Some((c2, s2)) = &second
            && (c2.code != Some(0) || finished_with_errors(c2))
        {
            // the files still dirty on A: explained by the real program?
            let rels: Vec<String> = read_db(self.a())
                .map(|d| d.dirty.iter().filter_map(|(f, _)| self.rel_of(f)).collect())
                .unwrap_or_default();
            let cat = self.cat_for(0, &rels).min(self.cat_for(1, &rels));
            let (t, ts) = (tail(c2, 12), tail(s2, 12));
            self.problem(
                cat,
                format!(
                    "the completing run after the kill of the {what} at {} did not complete \
                     (still dirty on A: {rels:?}): {t}\n        server: {ts}",
                    ms(kill.as_ref().map(|k| k.delay).unwrap_or_default())
                ),
            );
        }
        self.check_db(0, when);
        self.check_db(1, when);
        // a check on each node finds nothing new
        for i in [0, 1] {
            let s = self.run.n(i).s("");
            self.csync(i, vec!["-cr".into(), s]);
            let Ok(db) = read_db(self.run.n(i)) else {
                continue;
            };
            let rels: Vec<String> = db
                .dirty
                .iter()
                .map(|(f, _)| self.rel_of(f).unwrap_or_else(|| common::show(f)))
                .filter(|r| !self.removed.contains(r))
                .collect();
            if !rels.is_empty() {
                let cat = self.cat_for(i, &rels);
                self.problem(
                    cat,
                    format!(
                        "{when}: `-cr` on {} marked {} file(s) dirty: {:?}",
                        if i == 0 { "A" } else { "B" },
                        rels.len(),
                        &rels[..rels.len().min(6)]
                    ),
                );
            }
        }
        for f in self.files.values_mut() {
            f.old = None;
        }
        if let Some(b) = self.big.as_mut() {
            b.changed = false;
            b.patches.clear();
            b.old_size = b.size;
        }
        if self.problems.len() > before {
            self.save(&[
                ("1-client", &c),
                ("1-server", &s),
                ("2-client", second.as_ref().map(|x| &x.0).unwrap_or(&c)),
                ("2-server", second.as_ref().map(|x| &x.1).unwrap_or(&s)),
            ]);
        }
        // a leftover was removed already; anything else: start afresh
        if self.problems[before..]
            .iter()
            .any(|(c, _)| *c != Cat::Leftover)
        {
            self.resync();
        }
        Timing {
            total: took,
            session: accepted.map(|a| took.saturating_sub(a)).unwrap_or_default(),
            hit,
        }
    }

    /// The outputs of a round with a problem, kept in [`failures_dir`].
    fn save(&self, outs: &[(&str, &Done)]) {
        let dir = failures_dir();
        let _ = std::fs::create_dir_all(&dir);
        for (name, d) in outs {
            let f = dir.join(format!(
                "{}-round{:02}-{name}.txt",
                self.run.mode.tag, self.round
            ));
            let text = format!(
                "{} ({})\n--- stdout\n{}\n--- stderr\n{}",
                d.what,
                d.status(),
                common::show(&d.stdout),
                String::from_utf8_lossy(&d.stderr)
            );
            let _ = std::fs::write(f, text);
        }
    }

    /// The rounds: one push without a kill (and one with the big file) to
    /// measure, then rounds until `small` kills hit a running push of the
    /// small and medium files and `big` ones a push that includes the big
    /// file.
    fn play(&mut self, small: usize, big: usize) {
        let t = Instant::now();
        self.setup(big > 0);
        eprintln!("[net_kill] {}: set up in {}", self.label(), ms(t.elapsed()));
        let kind = |rng: &mut Rng| if rng.chance(1, 2) { "-iii" } else { "-ii" };
        let k = kind(&mut self.rng);
        let first = self.round(None, k, false);
        // durations of complete small pushes (the median is used; a push a
        // kill missed adds one)
        let mut samples = vec![first];
        if self.run.mode == MODE_D {
            // the first push ran with -vvv (to see the pipelining): measure again
            let k = kind(&mut self.rng);
            samples = vec![self.round(None, k, false)];
        }
        let d_big = if big > 0 {
            let k = kind(&mut self.rng);
            Some(self.round(None, k, true))
        } else {
            None
        };
        // the kills during big pushes: the server late in the push (while
        // it writes the new 2 GiB version), the server (the other kind)
        // anywhere, the client anywhere; in a random order
        let k1 = kind(&mut self.rng);
        let k2 = if k1 == "-ii" { "-iii" } else { "-ii" };
        let k3 = kind(&mut self.rng);
        let mut turns = [
            (Target::Server, k1, 0.6, 0.95),
            (Target::Server, k2, 0.0, 0.9),
            (Target::Client, k3, 0.0, 0.9),
        ];
        for i in (1..turns.len()).rev() {
            let j = self.rng.below(i as u64 + 1) as usize;
            turns.swap(i, j);
        }
        let (mut ks, mut kb) = (0, 0);
        let limit = 3 * (small + big);
        let mut n = 0;
        while (ks < small || kb < big) && n < limit {
            n += 1;
            let (ls, lb) = ((small - ks) as u64, (big - kb) as u64);
            let with_big = lb > 0 && self.rng.chance(lb, ls + lb);
            let d = if with_big {
                d_big.expect("measured")
            } else {
                median(&samples)
            };
            // three in four kills fall into the session (counted from the
            // server's accept), the others anywhere from the start of the
            // client (its check, the connection); a kill in a big push
            // always falls into the session
            let (target, k, lo, hi) = if with_big {
                turns[kb % turns.len()]
            } else {
                let t = if self.rng.chance(1, 2) {
                    Target::Client
                } else {
                    Target::Server
                };
                // half of them late in the session, where a pipelined
                // push writes its files in a short burst
                let (lo, hi) = if self.rng.chance(1, 2) {
                    (0.0, 0.95)
                } else {
                    (0.6, 1.0)
                };
                (t, kind(&mut self.rng), lo, hi)
            };
            let in_session = d.session > Duration::ZERO && (with_big || !self.rng.chance(1, 4));
            let delay = if in_session {
                d.session.mul_f64(lo + (hi - lo) * self.rng.unit())
            } else {
                let lo = Duration::from_millis(3);
                lo + d
                    .total
                    .mul_f64(hi)
                    .saturating_sub(lo)
                    .mul_f64(self.rng.unit())
            };
            let kill = Kill {
                target,
                delay,
                in_session,
            };
            let r = self.round(Some(kill), k, with_big);
            if r.hit {
                if with_big {
                    kb += 1;
                } else {
                    ks += 1;
                }
            } else if !with_big && r.session > Duration::ZERO {
                samples.push(r);
            }
        }
        if ks < small || kb < big {
            self.problem(
                Cat::Bug,
                format!(
                    "only {ks} + {kb} kills hit a running process in {n} rounds \
                     (wanted {small} + {big})"
                ),
            );
        }
        eprintln!(
            "[net_kill] {}: {} kill rounds in {}",
            self.label(),
            ks + kb,
            ms(t.elapsed())
        );
    }
}

/// The median total and session durations of complete pushes.
fn median(v: &[Timing]) -> Timing {
    let mut t: Vec<Duration> = v.iter().map(|x| x.total).collect();
    let mut s: Vec<Duration> = v.iter().map(|x| x.session).collect();
    t.sort();
    s.sort();
    Timing {
        total: t[t.len() / 2],
        session: s[s.len() / 2],
        hit: false,
    }
}

/// Where the outputs of the rounds with a problem are kept (outside the
/// tmpfs; removed when the test passes).
fn failures_dir() -> PathBuf {
    PathBuf::from(format!("/tmp/c2net-kill-{}-failures", std::process::id()))
}

/// Whether a client reported errors (`Finished with N errors.`, N > 0).
fn finished_with_errors(d: &Done) -> bool {
    let out = format!("{}{}", common::show(&d.stdout), common::show(&d.stderr));
    out.lines().any(|l| {
        l.trim()
            .strip_prefix("Finished with ")
            .and_then(|r| r.split(' ').next())
            .is_some_and(|n| n != "0")
    })
}

/// Whether a `-vvv` client went pipelined (None: no trace).
fn verbose_pipelined(d: &Done) -> Option<bool> {
    let e = common::show(&d.stderr);
    if !e.contains("Local> ") {
        return None;
    }
    Some(e.contains("Peer> OK (pipelining)."))
}

#[test]
fn sigkill_during_push() {
    let seed = seed();
    eprintln!("[net_kill] seed {seed:#x} (CSYNC2_KILL_SEED={seed:#x} repeats the choices)");
    let started = Instant::now();
    let hs = hosts(TEST, IDX, 2);
    let base = PathBuf::from(format!("/tmp/c2net-{}-{TEST}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let fs = Tmpfs::mount(&base, "csync2-netkill", "10g");
    std::fs::create_dir_all(base.join("sync")).expect("create the sync dir");
    // (mode, port slot, kills during small pushes, kills during big pushes)
    let plan = [(MODE_D, 0, 15, 3), (MODE_C, 1, 16, 0), (MODE_B, 2, 16, 0)];
    let only = std::env::var("CSYNC2_KILL_PAIRS").unwrap_or_default();
    let mut problems: Vec<(Cat, String)> = Vec::new();
    let mut summary = String::new();
    for (mode, slot, small, big) in plan {
        if !only.is_empty() && !only.contains(mode.tag) {
            continue;
        }
        let mut p = Pair::new(mode, slot, &hs, &base, seed);
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| p.play(small, big)));
        if let Err(e) = res {
            let text = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            p.problem(Cat::Bug, format!("the scenario panicked: {text}"));
        }
        let t = &p.tally;
        let _ = writeln!(
            summary,
            "  {}: {} rounds; kills of the client {}, of a -iii server {}, of a -ii \
             server {} ({} during the 2 GiB push), {} missed; files found old {}, new {} ({} rounds with both); \
             rounds with entries left on B right after the kill: {}",
            p.label(),
            p.round,
            t.client,
            t.server_iii,
            t.server_ii,
            t.big,
            t.missed,
            t.old_files,
            t.new_files,
            t.mixed,
            t.leftover_after_kill
        );
        problems.append(&mut p.problems);
        let _ = std::fs::remove_dir_all(&p.run.dir);
    }
    drop(fs);
    eprintln!(
        "[net_kill] seed {seed:#x}: done in {:.1} s\n{summary}",
        started.elapsed().as_secs_f64()
    );
    let mut report = String::new();
    for (cat, title) in [
        (Cat::Bug, "FAILURES"),
        (Cat::Leftover, "TEMPORARY FILES LEFT BY OUR SERVER"),
        (Cat::Real, "notes on the real csync2 (not failures)"),
    ] {
        let v: Vec<&String> = problems
            .iter()
            .filter(|(c, _)| *c == cat)
            .map(|(_, s)| s)
            .collect();
        if !v.is_empty() {
            let _ = writeln!(report, "\n{title} ({}):", v.len());
            for s in v {
                let _ = writeln!(report, "  - {s}");
            }
        }
    }
    let fatal = problems.iter().any(|(c, _)| *c != Cat::Real);
    if !fatal {
        // (notes only)
        eprintln!("{report}");
        let _ = std::fs::remove_dir_all(failures_dir());
    } else if failures_dir().exists() {
        let _ = writeln!(
            report,
            "\nthe outputs of the processes of the rounds with a problem are in {}",
            failures_dir().display()
        );
    }
    assert!(
        !fatal,
        "\n=== net_kill, seed {seed:#x} (CSYNC2_KILL_SEED={seed:#x} repeats the choices) ===\n\
         {summary}{report}"
    );
}
