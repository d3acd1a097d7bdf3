mod common;
use common::*;

// Differential tests of the start-up path (cli.md §1, §3, §6, §8, §12.6-12.10,
// state.md §1): database location and file names, `-vv` start-up lines,
// SQLite busy handling, a database shared by the real csync2 and ours at the
// same time, `-l`, `-t`/`-s`, `-W FD`, `-v` end lines and `-k`.
//
// Every scenario runs the real csync2 (`/usr/sbin/csync2`) and ours on the
// same inputs and compares exit codes, stdout, the stderr lines that matter
// and the database files each one created.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs::File;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One group: the local host and one peer, the whole tree.
const CFG: &str = "
group g1 {
    host h1.local.test h2.local.test;
    key g1.key;
    include {TREE};
}
";

/// The stderr lines compared between the two binaries in these scenarios
/// (prefixes). Other lines (e.g. `SQL: …` at `-vv`) may differ.
const KEY_STDERR: &[&str] = &[
    "Can't open database",
    "Unknown database scheme",
    "Cannot open database file",
    "This host (",
    "Config-File:",
    "My hostname is",
    "Database-File:",
    "Database backend is exceedingly busy",
    "Invalid dump_dir_fd",
    "Error while writing to dump_dir_fd",
    "Can't open timestanp file",
    "Can't create key file",
    "Connection closed.",
    "Finished with",
    "Config names are limited",
    "Config error",
    "Marking file as dirty",
    "Database Error",
    "WARNING: Parameter will be ignored: ",
];

fn key_lines(stderr: &[u8]) -> Vec<String> {
    lines(stderr)
        .into_iter()
        .filter(|l| KEY_STDERR.iter().any(|p| l.starts_with(p)))
        .map(|l| side_neutral(&l))
        .collect()
}

/// Each side has its own database directory (`db_real/`, `db_ours/`).
fn side_neutral(l: &str) -> String {
    l.replace("/db_real/", "/db_SIDE/")
        .replace("/db_ours/", "/db_SIDE/")
}

/// The three start-up lines of `-vv` (cli.md §1 step 11).
fn vv_lines(stderr: &[u8]) -> Vec<String> {
    lines(stderr)
        .into_iter()
        .filter(|l| {
            l.starts_with("Config-File:   ")
                || l.starts_with("My hostname is ")
                || l.starts_with("Database-File: ")
        })
        .collect()
}

fn lines(b: &[u8]) -> Vec<String> {
    if b.is_empty() {
        return Vec::new();
    }
    let b = b.strip_suffix(b"\n").unwrap_or(b);
    b.split(|&c| c == b'\n').map(show).collect()
}

fn os(p: &Path) -> OsString {
    p.as_os_str().to_owned()
}

fn sysenv(env: &Env) -> Vec<(&'static str, OsString)> {
    vec![("CSYNC2_SYSTEM_DIR", os(&env.etc))]
}

/// `-N HOST -D <side's db dir>` + args, as [`Env::run`] builds them.
fn std_args(env: &Env, which: Which, args: &[OsString]) -> Vec<OsString> {
    let mut full: Vec<OsString> = vec![
        "-N".into(),
        env.host.borrow().clone().into(),
        "-D".into(),
        os(env.db_dir(which)),
    ];
    full.extend(args.iter().cloned());
    full
}

fn fail_report(what: &str, r: &Output, o: &Output, problems: &str) -> ! {
    panic!("{}", report(what, r, o, problems));
}

fn report(what: &str, r: &Output, o: &Output, problems: &str) -> String {
    format!(
        "\n=== startup differential mismatch: {what} ===\ncommand: {}\n{problems}  REAL {} \
         stdout:\n{}  REAL stderr:\n{}  OURS {} stdout:\n{}  OURS stderr:\n{}",
        cmdline(&r.args),
        r.status_text(),
        indent_lines(&r.stdout),
        indent_lines(&r.stderr),
        o.status_text(),
        indent_lines(&o.stdout),
        indent_lines(&o.stderr),
    )
}

/// Panic with all collected mismatch reports (tests with independent cases
/// run every case before failing).
fn finish(reports: Vec<String>) {
    if !reports.is_empty() {
        panic!("{} case(s) failed:\n{}", reports.len(), reports.join("\n"));
    }
}

fn indent_lines(b: &[u8]) -> String {
    let l = lines(b);
    let mut s: String = l.iter().take(25).map(|l| format!("    | {l}\n")).collect();
    if l.len() > 25 {
        let _ = writeln!(s, "    | … ({} more lines)", l.len() - 25);
    }
    s
}

/// Compare exit status, stdout and the key stderr lines.
fn compare_basic(r: &Output, o: &Output) -> String {
    let mut p = String::new();
    if r.timed_out || o.timed_out {
        let _ = writeln!(p, "  a run timed out");
    }
    if r.code != o.code || r.signal != o.signal {
        let _ = writeln!(
            p,
            "  exit status differs: REAL {}, OURS {}",
            r.status_text(),
            o.status_text()
        );
    }
    if r.stdout != o.stdout {
        let _ = writeln!(p, "  stdout differs");
    }
    let (rk, ok) = (key_lines(&r.stderr), key_lines(&o.stderr));
    if rk != ok {
        let _ = writeln!(
            p,
            "  key stderr lines differ:\n    REAL {rk:#?}\n    OURS {ok:#?}"
        );
    }
    p
}

fn assert_basic(what: &str, r: &Output, o: &Output) {
    let p = compare_basic(r, o);
    if !p.is_empty() {
        fail_report(what, r, o, &p);
    }
}

fn expect_code(what: &str, r: &Output, o: &Output, code: i32) {
    if r.code != Some(code) {
        fail_report(
            what,
            r,
            o,
            &format!(
                "  SCENARIO ERROR: REAL exited with {}, the scenario expects {code}\n",
                r.status_text()
            ),
        );
    }
}

// ---------------------------------------------------------------------------
// A runner with pid, elapsed time, extra file descriptors and SIGPIPE control
// ---------------------------------------------------------------------------

/// What to put on an extra file descriptor of the child.
#[derive(Clone, Copy, Debug)]
enum Fd {
    /// The write end of a pipe; the test collects what is written.
    Capture,
    /// `/dev/full` opened for writing (every non-empty write fails ENOSPC).
    DevFull,
    /// The write end of a pipe whose read end is already closed (EPIPE).
    BrokenPipe,
    /// `/dev/null` opened read-only (writes fail EBADF).
    ReadOnly,
}

struct RunOpts {
    cwd: PathBuf,
    envs: Vec<(String, OsString)>,
    /// (target fd in the child, what to put there)
    fds: Vec<(i32, Fd)>,
    sigpipe_ignored: bool,
}

impl RunOpts {
    fn new(env: &Env) -> RunOpts {
        RunOpts {
            cwd: env.base.clone(),
            envs: vec![("CSYNC2_SYSTEM_DIR".into(), os(&env.etc))],
            fds: Vec::new(),
            sigpipe_ignored: false,
        }
    }
}

struct Ran {
    out: Output,
    pid: u32,
    elapsed: Duration,
    /// Data captured from each `Fd::Capture` descriptor, by target fd.
    captured: BTreeMap<i32, Vec<u8>>,
}

fn pipe_cloexec() -> (OwnedFd, OwnedFd) {
    let mut fds = [0i32; 2];
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(r, 0, "pipe2: {}", std::io::Error::last_os_error());
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

fn open_cloexec(path: &str, flags: i32) -> OwnedFd {
    let c = std::ffi::CString::new(path).unwrap();
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) };
    assert!(fd >= 0, "open {path}: {}", std::io::Error::last_os_error());
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn run_ex(which: Which, args: &[OsString], opts: &RunOpts) -> Ran {
    use std::os::fd::AsRawFd;
    let envs: Vec<(&str, OsString)> = opts
        .envs
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    let mut cmd = csync2_command(which, args, &envs, &opts.cwd);
    // the parent's ends: kept open until the child has started
    let mut child_ends: Vec<OwnedFd> = Vec::new();
    let mut readers: Vec<(i32, File)> = Vec::new();
    let mut map: Vec<(i32, i32)> = Vec::new();
    for &(target, kind) in &opts.fds {
        let fd = match kind {
            Fd::Capture => {
                let (r, w) = pipe_cloexec();
                readers.push((target, File::from(r)));
                w
            }
            Fd::BrokenPipe => {
                let (r, w) = pipe_cloexec();
                drop(r);
                w
            }
            Fd::DevFull => open_cloexec("/dev/full", libc::O_WRONLY),
            Fd::ReadOnly => open_cloexec("/dev/null", libc::O_RDONLY),
        };
        map.push((fd.as_raw_fd(), target));
        child_ends.push(fd);
    }
    let ignore = opts.sigpipe_ignored;
    unsafe {
        cmd.pre_exec(move || {
            for &(src, dst) in &map {
                if src == dst {
                    // dup2 would keep FD_CLOEXEC: clear it instead
                    if libc::fcntl(dst, libc::F_SETFD, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                } else if libc::dup2(src, dst) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if ignore {
                libc::signal(libc::SIGPIPE, libc::SIG_IGN);
            }
            Ok(())
        });
    }
    let start = Instant::now();
    let child = Proc::spawn(cmd, which.label().to_string());
    drop(child_ends);
    let pid = child.pid;
    let t_fds: Vec<(i32, std::thread::JoinHandle<Vec<u8>>)> = readers
        .into_iter()
        .map(|(t, mut f)| {
            (
                t,
                std::thread::spawn(move || {
                    let mut v = Vec::new();
                    let _ = f.read_to_end(&mut v);
                    v
                }),
            )
        })
        .collect();
    let done = child.wait_until(start + Duration::from_secs(60));
    let elapsed = start.elapsed();
    Ran {
        out: Output::from_done(which, args, done),
        pid,
        elapsed,
        captured: t_fds
            .into_iter()
            .map(|(t, h)| (t, h.join().unwrap()))
            .collect(),
    }
}

/// Run real and ours at the same time (each with its own arguments).
fn run_concurrently(jobs: Vec<(Which, Vec<OsString>, RunOpts)>) -> Vec<Ran> {
    std::thread::scope(|s| {
        let hs: Vec<_> = jobs
            .iter()
            .map(|(w, a, o)| s.spawn(move || run_ex(*w, a, o)))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

// ---------------------------------------------------------------------------
// 1. Database location forms (cli.md §8, state.md §1.1)
// ---------------------------------------------------------------------------

/// Contents of every file below `env.base` except the tree.
fn snapshot(env: &Env) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(d: &Path, skip: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p == skip {
                continue;
            }
            let Ok(md) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if md.is_dir() {
                walk(&p, skip, out);
            } else if md.is_file() && !p.as_os_str().as_bytes().ends_with(b"-journal") {
                out.insert(p.clone(), std::fs::read(&p).unwrap_or_default());
            }
        }
    }
    let mut m = BTreeMap::new();
    walk(&env.base, &env.tree, &mut m);
    m
}

/// Run one side, return its output and the files it created or changed
/// (relative to base, with their database dumps), then undo those changes.
fn run_and_collect(
    env: &Env,
    which: Which,
    args: &[OsString],
    cwd: &Path,
) -> (Output, BTreeMap<String, Result<DbDump, String>>) {
    let before = snapshot(env);
    let out = run_cmd(which, args, &sysenv(env), cwd);
    let after = snapshot(env);
    let mut changed = BTreeMap::new();
    for (p, c) in &after {
        if before.get(p) != Some(c) {
            let rel = p
                .strip_prefix(&env.base)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            changed.insert(rel, dump_db(p));
        }
    }
    for (p, c) in &after {
        match before.get(p) {
            None => std::fs::remove_file(p).unwrap(),
            Some(old) if old != c => std::fs::write(p, old).unwrap(),
            _ => {}
        }
    }
    for p in before.keys() {
        assert!(p.exists(), "{} vanished during the run", p.display());
    }
    (out, changed)
}

/// Run a location scenario with both binaries (sequentially, each starting
/// from the same file system state) and compare exit status, stdout, key
/// stderr lines, the set of files created/changed and their contents.
/// `expect` are the files (relative to base) the REAL binary must create.
fn loc_case(env: &Env, args: Vec<OsString>, cwd: &Path, real_code: i32, expect: &[&str]) {
    let args: Vec<OsString> = args
        .into_iter()
        .map(|a| OsString::from(env.subst(&a.to_string_lossy())))
        .collect();
    let (r, rf) = run_and_collect(env, Which::Real, &args, cwd);
    let (o, of) = run_and_collect(env, Which::Ours, &args, cwd);
    let what = format!("database location (cwd {})", cwd.display());
    let mut p = compare_basic(&r, &o);
    let rk: Vec<&String> = rf.keys().collect();
    let ok: Vec<&String> = of.keys().collect();
    if rk != ok {
        let _ = writeln!(
            p,
            "  files created/changed differ: REAL {rk:?}, OURS {ok:?}"
        );
    }
    for (name, rd) in &rf {
        if let Some(od) = of.get(name) {
            match (rd, od) {
                (Ok(a), Ok(b)) => {
                    let d = diff_dumps(a, b);
                    if !d.is_empty() {
                        let _ = writeln!(p, "  database {name} differs:\n{d}");
                    }
                }
                (Err(a), Err(b)) if a == b => {}
                (a, b) => {
                    let _ = writeln!(p, "  {name}: REAL {:?} OURS {:?}", a.is_ok(), b.is_ok());
                }
            }
        }
    }
    if !p.is_empty() {
        fail_report(&what, &r, &o, &p);
    }
    expect_code(&what, &r, &o, real_code);
    let want: Vec<String> = expect.iter().map(|s| s.to_string()).collect();
    let got: Vec<String> = rf.keys().cloned().collect();
    assert_eq!(
        got,
        want,
        "SCENARIO ERROR: REAL created/changed other files than expected for {}",
        cmdline(&args)
    );
}

/// Scenario with `area/dbdir`, `area/cfgdb`, `area/cwd/reldir`, the file
/// `area/file.db3` and a few files in the tree.
fn loc_env(name: &str) -> Env {
    let env = Env::new(name);
    env.config(&format!("{CFG}database {{BASE}}/area/cfgdb;\n"));
    for d in [
        "area",
        "area/dbdir",
        "area/cfgdb",
        "area/cwd",
        "area/cwd/reldir",
    ] {
        std::fs::create_dir(env.base.join(d)).unwrap();
    }
    std::fs::write(env.base.join("area/file.db3"), "").unwrap();
    env.file("a", "a", 0o644, T0);
    env.mkdir("d", 0o755);
    env.file("d/b", "bb", 0o600, T0 + 1);
    env
}

#[test]
fn db_location_database_statement_and_d_option() {
    let env = loc_env("loc_statement");
    let base = env.base.clone();
    let cwd = base.join("area/cwd");
    // no -D: the `database DIR;` statement of the config
    loc_case(
        &env,
        args!["-N", HOST, "-cr", "{TREE}"],
        &base,
        0,
        &["area/cfgdb/h1.local.test.db3"],
    );
    // -D beats the statement
    loc_case(
        &env,
        args!["-N", HOST, "-D", "{BASE}/area/dbdir", "-cr", "{TREE}"],
        &base,
        0,
        &["area/dbdir/h1.local.test.db3"],
    );
    // -D given before the other options and glued
    loc_case(
        &env,
        args!["-D{BASE}/area/dbdir", "-N", HOST, "-L"],
        &base,
        2,
        &["area/dbdir/h1.local.test.db3"],
    );
    // the first of two `database` statements counts
    env.config_named(
        "csync2_two.cfg",
        &format!("{CFG}database {{BASE}}/area/dbdir;\ndatabase {{BASE}}/area/cfgdb;\n"),
    );
    loc_case(
        &env,
        args!["-N", HOST, "-C", "two", "-cr", "{TREE}"],
        &base,
        0,
        &["area/dbdir/h1.local.test_two.db3"],
    );
    // a relative `database` statement is a SQLite file relative to the cwd
    env.config_named("csync2_rel.cfg", &format!("{CFG}database rel-stmt.db;\n"));
    loc_case(
        &env,
        args!["-N", HOST, "-C", "rel", "-cr", "{TREE}"],
        &cwd,
        0,
        &["area/cwd/rel-stmt.db"],
    );
    // ... and a relative existing directory gets HOST_CFG.db3 inside
    env.config_named("csync2_reldir.cfg", &format!("{CFG}database reldir;\n"));
    loc_case(
        &env,
        args!["-N", HOST, "-C", "reldir", "-cr", "{TREE}"],
        &cwd,
        0,
        &["area/cwd/reldir/h1.local.test_reldir.db3"],
    );
    // `database` statement naming a directory that does not exist
    env.config_named(
        "csync2_missing.cfg",
        &format!("{CFG}database {{BASE}}/area/nodir;\n"),
    );
    loc_case(
        &env,
        args!["-N", HOST, "-C", "missing", "-L"],
        &base,
        1,
        &[],
    );
}

#[test]
fn db_location_d_forms() {
    let env = loc_env("loc_forms");
    let base = env.base.clone();
    let cwd = base.join("area/cwd");
    // trailing slash: `DIR//HOST.db3` (same file)
    loc_case(
        &env,
        args!["-N", HOST, "-D", "{BASE}/area/dbdir/", "-cr", "{TREE}"],
        &base,
        0,
        &["area/dbdir/h1.local.test.db3"],
    );
    // sqlite:// and sqlite3:// with an existing directory
    for url in [
        "sqlite://{BASE}/area/dbdir",
        "sqlite3://{BASE}/area/dbdir",
        "sqlite://{BASE}/area/dbdir//",
    ] {
        loc_case(
            &env,
            args!["-N", HOST, "-D", url, "-cr", "{TREE}"],
            &base,
            0,
            &["area/dbdir/h1.local.test.db3"],
        );
    }
    // sqlite3:// naming a file
    loc_case(
        &env,
        args![
            "-N",
            HOST,
            "-D",
            "sqlite3://{BASE}/area/dbdir/explicit.db",
            "-cr",
            "{TREE}"
        ],
        &base,
        0,
        &["area/dbdir/explicit.db"],
    );
    // sqlite:// naming an existing empty file: it becomes the database
    loc_case(
        &env,
        args![
            "-N",
            HOST,
            "-D",
            "sqlite://{BASE}/area/file.db3",
            "-cr",
            "{TREE}"
        ],
        &base,
        0,
        &["area/file.db3"],
    );
    // relative file and relative existing directory (from the cwd)
    loc_case(
        &env,
        args!["-N", HOST, "-D", "rel.db", "-cr", "{TREE}"],
        &cwd,
        0,
        &["area/cwd/rel.db"],
    );
    loc_case(
        &env,
        args!["-N", HOST, "-D", "reldir", "-cr", "{TREE}"],
        &cwd,
        0,
        &["area/cwd/reldir/h1.local.test.db3"],
    );
    loc_case(
        &env,
        args!["-N", HOST, "-D", "reldir/sub.db", "-cr", "{TREE}"],
        &cwd,
        0,
        &["area/cwd/reldir/sub.db"],
    );
    loc_case(
        &env,
        args!["-N", HOST, "-D", "../dbdir", "-cr", "{TREE}"],
        &cwd,
        0,
        &["area/dbdir/h1.local.test.db3"],
    );
    // sqlite:// with two slashes: a relative path
    loc_case(
        &env,
        args!["-N", HOST, "-D", "sqlite://rel2.db", "-L"],
        &cwd,
        2,
        &["area/cwd/rel2.db"],
    );
    // ... that cannot be opened: the "three slashes" hint, then the error
    loc_case(
        &env,
        args!["-N", HOST, "-D", "sqlite://nodir/x.db", "-L"],
        &cwd,
        1,
        &[],
    );
    // an absolute -D is always a directory: a file there fails
    loc_case(
        &env,
        args!["-N", HOST, "-D", "{BASE}/area/file.db3", "-cr", "{TREE}"],
        &base,
        1,
        &[],
    );
    // missing directory, missing parent of an explicit file
    loc_case(
        &env,
        args!["-N", HOST, "-D", "{BASE}/area/nodir", "-L"],
        &base,
        1,
        &[],
    );
    loc_case(
        &env,
        args!["-N", HOST, "-D", "sqlite:///{BASE}/area/nodir/x.db", "-L"],
        &base,
        1,
        &[],
    );
    // unknown scheme
    loc_case(
        &env,
        args!["-N", HOST, "-D", "foo://bar", "-cr", "{TREE}"],
        &base,
        1,
        &[],
    );
    loc_case(
        &env,
        args!["-N", HOST, "-D", "foo://bar", "-L"],
        &base,
        1,
        &[],
    );
}

#[test]
fn db_location_cfgname_and_host_case() {
    let env = loc_env("loc_cfgname");
    let base = env.base.clone();
    env.config_named("csync2_abc.cfg", CFG);
    loc_case(
        &env,
        args![
            "-N",
            "H1.Local.TEST",
            "-C",
            "abc",
            "-D",
            "{BASE}/area/dbdir",
            "-cr",
            "{TREE}"
        ],
        &base,
        0,
        &["area/dbdir/h1.local.test_abc.db3"],
    );
    loc_case(
        &env,
        args![
            "-C",
            "abc",
            "-N",
            "H1.LOCAL.TEST",
            "-D",
            "sqlite://{BASE}/area/dbdir",
            "-cr",
            "{TREE}"
        ],
        &base,
        0,
        &["area/dbdir/h1.local.test_abc.db3"],
    );
    // the statement of the default config with an upper-case host name
    loc_case(
        &env,
        args!["-N", "H1.Local.Test", "-cr", "{TREE}"],
        &base,
        0,
        &["area/cfgdb/h1.local.test.db3"],
    );
    // an explicit file name is used as is, with and without -C
    loc_case(
        &env,
        args![
            "-N",
            "H1.Local.Test",
            "-C",
            "abc",
            "-D",
            "sqlite:///{BASE}/area/dbdir/X.DB",
            "-L"
        ],
        &base,
        2,
        &["area/dbdir/X.DB"],
    );
    // bad config names: nothing is created
    loc_case(
        &env,
        args!["-N", HOST, "-C", "ABC", "-D", "{BASE}/area/dbdir", "-L"],
        &base,
        1,
        &[],
    );
    loc_case(
        &env,
        args!["-N", HOST, "-C", "a-b", "-D", "{BASE}/area/dbdir", "-L"],
        &base,
        1,
        &[],
    );
    // config file missing
    loc_case(
        &env,
        args![
            "-N",
            HOST,
            "-C",
            "nonexist",
            "-D",
            "{BASE}/area/dbdir",
            "-L"
        ],
        &base,
        1,
        &[],
    );
}

#[test]
fn db_location_not_member_creates_nothing() {
    let env = loc_env("loc_not_member");
    let base = env.base.clone();
    let cwd = base.join("area/cwd");
    for d in [
        None,
        Some("{BASE}/area/dbdir"),
        Some("{BASE}/area/dbdir/"),
        Some("sqlite://{BASE}/area/dbdir"),
        Some("sqlite3://{BASE}/area/dbdir/explicit.db"),
        Some("rel.db"),
        Some("reldir"),
        Some(""),
    ] {
        for mode in [args!["-cr", "{TREE}"], args!["-L"], args!["-m", "{TREE}/a"]] {
            let mut a = args!["-N", "H9.Local.Test"];
            if let Some(d) = d {
                a.extend(args!["-D", d]);
            }
            a.extend(mode);
            loc_case(&env, a, &cwd, 1, &[]);
        }
    }
    // `-D ""` means the default directory: nothing may appear there either
    assert!(
        !Path::new("/var/lib/csync2/h9.local.test.db3").exists(),
        "a database was created in /var/lib/csync2 for a non-member host"
    );
    // -G deactivating the only group
    loc_case(
        &env,
        args![
            "-N",
            HOST,
            "-G",
            "other",
            "-D",
            "{BASE}/area/dbdir",
            "-cr",
            "{TREE}"
        ],
        &base,
        1,
        &[],
    );
}

/// A file that is not an SQLite database, named explicitly.
#[test]
fn db_location_not_a_database() {
    let env = loc_env("loc_not_a_db");
    let base = env.base.clone();
    std::fs::write(base.join("area/text.db"), "hello, not a database\n").unwrap();
    loc_case(
        &env,
        args!["-N", HOST, "-D", "sqlite://{BASE}/area/text.db", "-L"],
        &base,
        1,
        &[],
    );
    loc_case(
        &env,
        args![
            "-N",
            HOST,
            "-D",
            "sqlite://{BASE}/area/text.db",
            "-cr",
            "{TREE}"
        ],
        &base,
        1,
        &[],
    );
}

/// A valid SQLite file without the csync2 tables gets them, and foreign
/// tables stay.
#[test]
fn db_location_foreign_sqlite_file() {
    let env = loc_env("loc_foreign_db");
    let base = env.base.clone();
    let p = base.join("area/foreign.db");
    {
        let c = rusqlite::Connection::open(&p).unwrap();
        c.execute_batch("CREATE TABLE other (x); INSERT INTO other VALUES ('keep me');")
            .unwrap();
    }
    loc_case(
        &env,
        args![
            "-N",
            HOST,
            "-D",
            "sqlite://{BASE}/area/foreign.db",
            "-cr",
            "{TREE}"
        ],
        &base,
        0,
        &["area/foreign.db"],
    );
}

/// sqlite2/mysql/pgsql are refused by ours (doc/differences.md); the real
/// one fails too (no sqlite2 in the build, no client libraries installed).
#[test]
fn db_location_other_backends_refused() {
    let env = loc_env("loc_backends");
    let base = env.base.clone();
    for url in [
        "sqlite2://{BASE}/area/dbdir",
        "sqlite2://{BASE}/area/dbdir/x.db",
        "mysql://localhost/x",
        "pgsql://csync2@127.0.0.1:1/x",
    ] {
        let a: Vec<OsString> = args!["-N", HOST, "-D", env.subst(url), "-L"];
        let (r, rf) = run_and_collect(&env, Which::Real, &a, &base);
        let (o, of) = run_and_collect(&env, Which::Ours, &a, &base);
        let what = format!("backend {url}");
        if r.code != Some(1) || o.code != Some(1) || !rf.is_empty() || !of.is_empty() {
            fail_report(
                &what,
                &r,
                &o,
                &format!(
                    "  expected exit 1 and no files from both; REAL files {rf:?}, OURS files {of:?}\n"
                ),
            );
        }
        let want = format!("Can't open database: {}", env.subst(url));
        if ours_bin() != real_bin() && !lines(&o.stderr).iter().any(|l| l.starts_with(&want)) {
            fail_report(
                &what,
                &r,
                &o,
                &format!("  OURS should print `{want} (…)`\n"),
            );
        }
    }
}

// ---------------------------------------------------------------------------
// 2. The -vv start-up lines
// ---------------------------------------------------------------------------

fn vv_case(env: &Env, args: Vec<OsString>, cwd: &Path) {
    let args: Vec<OsString> = args
        .into_iter()
        .map(|a| OsString::from(env.subst(&a.to_string_lossy())))
        .collect();
    let (r, rf) = run_and_collect(env, Which::Real, &args, cwd);
    let (o, of) = run_and_collect(env, Which::Ours, &args, cwd);
    let what = "-vv start-up lines";
    let (rv, ov) = (vv_lines(&r.stderr), vv_lines(&o.stderr));
    let mut p = String::new();
    if rv != ov {
        let _ = writeln!(p, "  -vv lines differ:\n    REAL {rv:#?}\n    OURS {ov:#?}");
    }
    if r.code != o.code {
        let _ = writeln!(p, "  exit status differs");
    }
    if rf.keys().collect::<Vec<_>>() != of.keys().collect::<Vec<_>>() {
        let _ = writeln!(
            p,
            "  created files differ: REAL {:?} OURS {:?}",
            rf.keys(),
            of.keys()
        );
    }
    if !p.is_empty() {
        fail_report(what, &r, &o, &p);
    }
    if rv.len() != 3 && rv.len() != 1 {
        fail_report(
            what,
            &r,
            &o,
            "  SCENARIO ERROR: REAL printed no start-up lines\n",
        );
    }
}

#[test]
fn vv_startup_lines() {
    let env = loc_env("vv_lines");
    let base = env.base.clone();
    let cwd = base.join("area/cwd");
    env.config_named("csync2_abc.cfg", CFG);
    let cases: Vec<Vec<OsString>> = vec![
        args!["-vv", "-N", HOST, "-L"],
        args!["-vv", "-N", "H1.Local.TEST", "-cr", "{TREE}"],
        args!["-vv", "-N", HOST, "-D", "{BASE}/area/dbdir", "-L"],
        args!["-vv", "-N", HOST, "-D", "{BASE}/area/dbdir/", "-L"],
        args!["-vv", "-N", HOST, "-D", "sqlite://{BASE}/area/dbdir", "-L"],
        args![
            "-vv",
            "-N",
            HOST,
            "-D",
            "sqlite3://{BASE}/area/dbdir/x.db",
            "-L"
        ],
        args!["-vv", "-N", HOST, "-D", "rel.db", "-L"],
        args!["-vv", "-N", HOST, "-D", "reldir", "-L"],
        args!["-vv", "-N", HOST, "-D", "{BASE}/area/file.db3", "-L"],
        args![
            "-vv",
            "-N",
            HOST,
            "-C",
            "abc",
            "-D",
            "{BASE}/area/dbdir",
            "-L"
        ],
        args![
            "-vv",
            "-N",
            "H1.LOCAL.TEST",
            "-C",
            "abc",
            "-D",
            "sqlite://{BASE}/area/dbdir",
            "-L"
        ],
        // not a member: the lines come before the membership error
        args!["-vv", "-N", "H9.Test", "-L"],
        args!["-vv", "-N", "H9.Test", "-C", "abc", "-L"],
        // default directory (not a member, so nothing is created there)
        args![
            "-vv",
            "-N",
            "c2d-nonmember.test",
            "-C",
            "abc",
            "-D",
            "",
            "-L"
        ],
        args!["-vvv", "-N", HOST, "-D", "{BASE}/area/dbdir", "-L"],
        args!["-vv", "-t", "-N", HOST, "-D", "{BASE}/area/dbdir", "-L"],
    ];
    for a in cases {
        let strip_t = a.iter().any(|x| x == "-t");
        if strip_t {
            // the -t prefix: compare after removing `[HH:MM:SS] `
            let args: Vec<OsString> = a
                .iter()
                .map(|x| OsString::from(env.subst(&x.to_string_lossy())))
                .collect();
            let (r, _) = run_and_collect(&env, Which::Real, &args, &cwd);
            let (o, _) = run_and_collect(&env, Which::Ours, &args, &cwd);
            let strip = |b: &[u8]| -> Vec<String> {
                lines(b)
                    .into_iter()
                    .filter_map(|l| l.get(11..).map(str::to_string))
                    .filter(|l| {
                        l.starts_with("Config-File:")
                            || l.starts_with("My hostname is")
                            || l.starts_with("Database-File:")
                    })
                    .collect()
            };
            let (rv, ov) = (strip(&r.stderr), strip(&o.stderr));
            if rv != ov || rv.len() != 3 {
                fail_report(
                    "-vv -t start-up lines",
                    &r,
                    &o,
                    &format!("  REAL {rv:#?}\n  OURS {ov:#?}\n"),
                );
            }
        } else {
            vv_case(&env, a, &cwd);
        }
    }
}

/// `-D foo://bar -vv`: the real one prints `My hostname is` and
/// `Database-File: foo://bar` before `Unknown database scheme: foo://bar`.
#[test]
fn vv_startup_lines_unknown_scheme() {
    let env = loc_env("vv_unknown_scheme");
    let base = env.base.clone();
    vv_case(
        &env,
        args!["-vv", "-N", HOST, "-D", "foo://bar", "-L"],
        &base,
    );
    vv_case(
        &env,
        args!["-vv", "-N", "H9", "-D", "foo://bar", "-L"],
        &base,
    );
}

/// `-vv` with a config error: only `Config-File:` comes before it.
#[test]
fn vv_startup_lines_config_error() {
    let env = loc_env("vv_config_error");
    let base = env.base.clone();
    env.config_named(
        "csync2_bad.cfg",
        "group g1 { host h1.local.test; bogus; }\n",
    );
    vv_case(&env, args!["-vv", "-N", HOST, "-C", "bad", "-L"], &base);
}

// ---------------------------------------------------------------------------
// 3. Busy handling
// ---------------------------------------------------------------------------

#[test]
#[allow(clippy::useless_vec)] // args! builds a Vec by design
fn busy_database_lock_timeout_zero() {
    let env = Env::new("busy");
    env.config(&format!("{CFG}lock-timeout 0;\n"));
    for i in 0..20 {
        env.file(format!("f{i}"), format!("{i}"), 0o644, T0 + i);
    }
    env.step_expect(args!["-cIr", env.t("")], 0);
    // a changed tree: -cr has work to write
    for i in 0..20 {
        env.file(format!("f{i}"), format!("changed {i}"), 0o644, T0 + 100 + i);
    }
    env.file("new", "new", 0o644, T0);
    let before_r = env.dump(Which::Real);
    let before_o = env.dump(Which::Ours);

    let locks: Vec<rusqlite::Connection> = [Which::Real, Which::Ours]
        .iter()
        .map(|&w| {
            let c = rusqlite::Connection::open(env.db_file(w)).unwrap();
            c.execute_batch("BEGIN EXCLUSIVE").unwrap();
            c
        })
        .collect();

    let tree = env.t("");
    let mut jobs = Vec::new();
    for v in ["-v", "-vv"] {
        for w in [Which::Real, Which::Ours] {
            jobs.push((
                w,
                std_args(&env, w, &args![v, "-cr", tree.clone()]),
                RunOpts::new(&env),
            ));
        }
    }
    // a read-only mode is blocked too
    for w in [Which::Real, Which::Ours] {
        jobs.push((w, std_args(&env, w, &args!["-M"]), RunOpts::new(&env)));
    }
    let t0 = Instant::now();
    let runs = run_concurrently(jobs);
    let total = t0.elapsed();
    for c in locks {
        c.execute_batch("ROLLBACK").unwrap();
    }

    let busy = "Database backend is exceedingly busy => Terminating (requesting retry).";
    let mut report = String::new();
    let mut problems = String::new();
    for ran in &runs {
        let o = &ran.out;
        let m = (ran.pid % 7) as f64;
        let secs = ran.elapsed.as_secs_f64();
        let sleeps = lines(&o.stderr)
            .iter()
            .filter(|l| l.as_str() == "Database is busy, sleeping a sec.")
            .count();
        let _ = writeln!(
            report,
            "  {} {}: {} pid%7={} elapsed {:.2}s, {} `sleeping a sec.` lines, stderr key lines {:?}",
            o.which.label(),
            cmdline(&o.args),
            o.status_text(),
            m,
            secs,
            sleeps,
            key_lines(&o.stderr)
        );
        if o.code != Some(1) {
            let _ = writeln!(problems, "  {}: expected exit 1", o.which.label());
        }
        let non_vv: Vec<String> = key_lines(&o.stderr)
            .into_iter()
            .filter(|l| !vv_lines(format!("{l}\n").as_bytes()).contains(l))
            .collect();
        if non_vv != vec![busy.to_string()] {
            let _ = writeln!(
                problems,
                "  {}: expected exactly the line `{busy}` among the key lines",
                o.which.label()
            );
        }
        if !o.stdout.is_empty() {
            let _ = writeln!(problems, "  {}: unexpected stdout", o.which.label());
        }
        // (pid % 7) + lock-timeout 0 => pid%7 + 1 sleeps of one second
        if secs < m + 0.7 || secs > m + 2.5 {
            let _ = writeln!(
                problems,
                "  {}: elapsed {secs:.2}s outside [{:.1}, {:.1}] for pid%7 = {m}",
                o.which.label(),
                m + 0.7,
                m + 2.5
            );
        }
        if o.args.iter().any(|a| a == "-vv") && sleeps != (ran.pid % 7) as usize + 1 {
            let _ = writeln!(
                problems,
                "  {}: expected {} `Database is busy, sleeping a sec.` lines at -vv, got {sleeps}",
                o.which.label(),
                ran.pid % 7 + 1
            );
        }
    }
    eprintln!("busy runs (total {:.2}s):\n{report}", total.as_secs_f64());
    assert!(
        problems.is_empty(),
        "busy handling:\n{problems}\nall runs:\n{report}"
    );

    // nothing was written while the database was locked
    assert_eq!(
        env.dump(Which::Real),
        before_r,
        "REAL changed its database while busy"
    );
    assert_eq!(
        env.dump(Which::Ours),
        before_o,
        "OURS changed its database while busy"
    );

    // lock released: a rerun succeeds and both agree
    env.step_expect(args!["-cr", env.t("")], 0);
    assert_eq!(env.dump(Which::Real).rows("dirty").len(), 21);
    env.step_expect(args!["-M"], 0);
}

// ---------------------------------------------------------------------------
// 4. One database shared by both programs at the same time
// ---------------------------------------------------------------------------

#[test]
fn shared_database_concurrent_checks() {
    const N: usize = 1500;
    let env = Env::new("shared_db");
    env.config(CFG);
    let shared = env.base.join("shared");
    std::fs::create_dir(&shared).unwrap();
    for d in ["a", "b"] {
        std::fs::create_dir(env.p(d)).unwrap();
        set_mode(&env.p(d), 0o755);
        for i in 0..N {
            let p = env.p(format!("{d}/f{i:04}"));
            std::fs::write(&p, format!("{d}{i}\n")).unwrap();
            set_mtime(&p, T0 + i as i64);
        }
    }
    let sh_args = |args: Vec<OsString>| -> Vec<OsString> {
        let mut v = args!["-N", HOST, "-D", shared.clone()];
        v.extend(args);
        v
    };
    let opts = || RunOpts::new(&env);
    let init = run_ex(Which::Real, &sh_args(args!["-cIr", env.t("")]), &opts());
    assert_eq!(
        init.out.code,
        Some(0),
        "initial -cIr: {}",
        init.out.stderr_str()
    );

    let mut touched: BTreeSet<String> = BTreeSet::new();
    let tree_s = env.tree.to_string_lossy().into_owned();
    let mut mutate = |round: usize, d: &str| {
        for i in (round % 5..N).step_by(5) {
            let p = env.p(format!("{d}/f{i:04}"));
            std::fs::write(&p, format!("{d}{i} round {round}\n")).unwrap();
            set_mtime(&p, T0 + 10_000 * (round as i64 + 1) + i as i64);
            touched.insert(format!("{tree_s}/{d}/f{i:04}"));
        }
        let newf = format!("{d}/new{round}");
        std::fs::write(env.p(&newf), "new").unwrap();
        touched.insert(format!("{tree_s}/{newf}"));
        let gone = format!("{d}/f{:04}", N - 1 - round);
        if env.p(&gone).exists() {
            std::fs::remove_file(env.p(&gone)).unwrap();
            touched.insert(format!("{tree_s}/{gone}"));
        }
    };

    let busy = "Database backend is exceedingly busy => Terminating (requesting retry).";
    let mut retries = 0;
    let mut log = String::new();
    let rounds = 6;
    for round in 0..rounds {
        mutate(round, "a");
        mutate(round, "b");
        // rounds 0-3: each side checks its own half; later rounds: both check
        // the whole tree at the same time
        let (ra, oa) = match round {
            0 | 2 => (env.t("a"), env.t("b")),
            1 | 3 => (env.t("b"), env.t("a")),
            _ => (env.t(""), env.t("")),
        };
        let mut pending = vec![
            (Which::Real, sh_args(args!["-cr", ra])),
            (Which::Ours, sh_args(args!["-cr", oa])),
        ];
        let mut attempt = 0;
        while !pending.is_empty() {
            attempt += 1;
            assert!(attempt <= 5, "too many retries:\n{log}");
            let jobs = pending
                .iter()
                .map(|(w, a)| (*w, a.clone(), opts()))
                .collect();
            let runs = run_concurrently(jobs);
            let mut again = Vec::new();
            for (ran, job) in runs.iter().zip(pending) {
                let o = &ran.out;
                let _ = writeln!(
                    log,
                    "  round {round} attempt {attempt}: {} {} -> {} in {:.2}s",
                    o.which.label(),
                    cmdline(&o.args),
                    o.status_text(),
                    ran.elapsed.as_secs_f64()
                );
                if o.code == Some(0) {
                    continue;
                }
                if o.code == Some(1) && lines(&o.stderr).iter().any(|l| l == busy) {
                    retries += 1;
                    again.push(job);
                    continue;
                }
                panic!(
                    "{} failed in round {round}: {}\nstderr:\n{}\nlog:\n{log}",
                    o.which.label(),
                    o.status_text(),
                    o.stderr_str()
                );
            }
            pending = again;
        }
    }
    eprintln!("shared database: {retries} busy retries\n{log}");

    let db = shared.join(format!("{HOST}.db3"));
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        let ic: String = c
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ic, "ok", "integrity_check of the shared database");
        let (n, distinct): (i64, i64) = c
            .query_row(
                "SELECT count(*), count(DISTINCT filename) FROM file",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(n, distinct, "duplicate file rows");
    }
    let got = dump_db(&db).unwrap();

    // fresh -cIr of the final tree by both binaries
    for w in [Which::Real, Which::Ours] {
        let fresh = env.base.join(format!("fresh-{}", w.label()));
        std::fs::create_dir(&fresh).unwrap();
        let mut a = args!["-N", HOST, "-D", fresh.clone()];
        a.extend(args!["-cIr", env.t("")]);
        let r = run_ex(w, &a, &opts());
        assert_eq!(r.out.code, Some(0), "{} fresh -cIr failed", w.label());
        let want = dump_db(&fresh.join(format!("{HOST}.db3"))).unwrap();
        let file_only = |d: &DbDump| {
            let mut d = d.clone();
            d.tables.retain(|k, _| k == "file");
            d
        };
        let diff = diff_dumps(&file_only(&want), &file_only(&got));
        assert!(
            diff.is_empty(),
            "file table of the shared database (\"OURS\") differs from a fresh -cIr by {} \
             (\"REAL\"):\n{diff}\nlog:\n{log}",
            w.label()
        );
    }

    // dirty: every touched name exactly once, for the one peer
    let dirty: Vec<(Vec<u8>, Val, Val, Val)> = got
        .rows("dirty")
        .iter()
        .map(|r| {
            (
                url_decode(r[0].text().unwrap()),
                r[1].clone(),
                r[2].clone(),
                r[3].clone(),
            )
        })
        .collect();
    let want_dirty: Vec<(Vec<u8>, Val, Val, Val)> = touched
        .iter()
        .map(|n| {
            (
                n.as_bytes().to_vec(),
                Val::Integer(0),
                Val::Text(HOST.as_bytes().to_vec()),
                Val::Text(PEER2.as_bytes().to_vec()),
            )
        })
        .collect();
    let mut dirty_sorted = dirty.clone();
    dirty_sorted.sort();
    assert_eq!(
        dirty_sorted.len(),
        want_dirty.len(),
        "dirty rows: {} (expected {})",
        dirty_sorted.len(),
        want_dirty.len()
    );
    assert_eq!(
        dirty_sorted, want_dirty,
        "dirty table of the shared database"
    );
    assert!(got.rows("hint").is_empty() && got.rows("action").is_empty());
}

// ---------------------------------------------------------------------------
// 5. -l: fatal errors go to syslog only
// ---------------------------------------------------------------------------

#[test]
#[allow(clippy::useless_vec)] // args! builds a Vec by design
fn syslog_silences_fatal_errors() {
    let env = Env::new("syslog_fatal");
    env.config(CFG);
    env.config_named(
        "csync2_bad.cfg",
        "group g1 { host h1.local.test; bogus; }\n",
    );
    env.file("a", "a", 0o644, T0);
    let db = os(&env.db_real);
    let cases: Vec<Vec<OsString>> = vec![
        args!["-N", HOST, "-D", db.clone(), "-C", "nonexist", "-L"],
        args!["-N", HOST, "-D", db.clone(), "-C", "ABC", "-L"],
        args!["-N", HOST, "-D", db.clone(), "-C", "bad", "-L"],
        args!["-N", "h9", "-D", db.clone(), "-cr", env.t("")],
        args!["-N", HOST, "-D", "foo://bar", "-L"],
        args!["-N", HOST, "-D", env.base.join("nodir"), "-L"],
        args!["-N", HOST, "-D", db.clone(), "-G", "g1", "-R"],
    ];
    for a in cases {
        // without -l: a message on stderr
        let (r, o) = env.run_both_raw(&a);
        assert_basic("fatal error without -l", &r, &o);
        expect_code("fatal error without -l", &r, &o, 1);
        if r.stderr.is_empty() {
            fail_report(
                "fatal error without -l",
                &r,
                &o,
                "  SCENARIO ERROR: REAL printed nothing\n",
            );
        }
        for l in [args!["-l"], args!["-l", "-v"], args!["-l", "-vv"]] {
            let mut al = l;
            al.extend(a.iter().cloned());
            let (r, o) = env.run_both_raw(&al);
            let what = "fatal error with -l";
            let mut p = String::new();
            for x in [&r, &o] {
                if x.code != Some(1) || !x.stderr.is_empty() || !x.stdout.is_empty() {
                    let _ = writeln!(
                        p,
                        "  {}: expected exit 1 and no output, got {} with {} stdout bytes, {} stderr bytes",
                        x.which.label(),
                        x.status_text(),
                        x.stdout.len(),
                        x.stderr.len()
                    );
                }
            }
            if !p.is_empty() {
                fail_report(what, &r, &o, &p);
            }
        }
    }
    // a successful -l -v run: nothing on stderr either, same database
    env.step_expect(args!["-l", "-v", "-cr", env.t("")], 0);
    let (r, o) = env.run_both(&args!["-l", "-vv", "-L"]);
    assert_basic("-l -vv -L", &r, &o);
    assert!(r.stderr.is_empty() && o.stderr.is_empty(), "stderr with -l");
    assert_eq!(r.code, Some(0));
}

// ---------------------------------------------------------------------------
// 6. -t and -s
// ---------------------------------------------------------------------------

/// days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn num(s: &str, what: &str) -> i64 {
    assert!(
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()),
        "not a number in {what}: {s:?}"
    );
    s.parse().unwrap()
}

/// Parse `TIMESTAMP: YYYY-MM-DD HH:MM:SS ZONE (GMT+hhmm)`; returns the UTC
/// epoch seconds and `ZONE (GMT+hhmm)`.
fn parse_timestamp(l: &str) -> (i64, String) {
    let rest = l
        .strip_prefix("TIMESTAMP: ")
        .unwrap_or_else(|| panic!("not a TIMESTAMP line: {l:?}"));
    let b = rest.as_bytes();
    assert!(
        b.len() > 20
            && b[4] == b'-'
            && b[7] == b'-'
            && b[10] == b' '
            && b[13] == b':'
            && b[16] == b':'
            && b[19] == b' ',
        "bad TIMESTAMP format: {l:?}"
    );
    let (y, mo, d) = (
        num(&rest[0..4], l),
        num(&rest[5..7], l),
        num(&rest[8..10], l),
    );
    let (h, mi, s) = (
        num(&rest[11..13], l),
        num(&rest[14..16], l),
        num(&rest[17..19], l),
    );
    let zone = rest[20..].to_string();
    // ZONE (GMT+hhmm)
    let open = zone
        .rfind(" (GMT")
        .unwrap_or_else(|| panic!("no (GMT in {l:?}"));
    let off = &zone[open + 5..];
    assert!(
        off.len() == 6 && (off.starts_with('+') || off.starts_with('-')) && off.ends_with(')'),
        "bad GMT offset in {l:?}"
    );
    let sign = if off.starts_with('-') { -1 } else { 1 };
    let oh = num(&off[1..3], l);
    let om = num(&off[3..5], l);
    let local = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s;
    (local - sign * (oh * 3600 + om * 60), zone)
}

fn check_totaltime(l: &str) {
    let rest = l
        .strip_prefix("TOTALTIME: ")
        .unwrap_or_else(|| panic!("not a TOTALTIME line: {l:?}"));
    let parts: Vec<&str> = rest.split(':').collect();
    assert!(
        parts.len() == 3 && !parts[0].is_empty() && parts[1].len() == 2 && parts[2].len() == 2,
        "bad TOTALTIME format: {l:?}"
    );
    for p in parts {
        num(p, l);
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Describe stderr of a `-t` run structurally: TIMESTAMP/TOTALTIME lines
/// become `TIMESTAMP ZONE` / `TOTALTIME`, other lines must carry a
/// `[HH:MM:SS] ` prefix (checked against the timestamps) which is removed.
fn t_structure(
    b: &[u8],
    start: i64,
    end: i64,
    zone_offset: i64,
    prefixed: bool,
) -> Result<Vec<String>, String> {
    let mut v = Vec::new();
    for l in lines(b) {
        if l.starts_with("TIMESTAMP: ") {
            let (t, zone) = parse_timestamp(&l);
            if t < start - 2 || t > end + 2 {
                return Err(format!(
                    "timestamp out of range ({t} not in {start}..{end}): {l}"
                ));
            }
            v.push(format!("TIMESTAMP {zone}"));
        } else if l.starts_with("TOTALTIME: ") {
            check_totaltime(&l);
            v.push("TOTALTIME".into());
        } else if !prefixed {
            v.push(l);
        } else {
            let b = l.as_bytes();
            if !(b.len() >= 11
                && b[0] == b'['
                && b[3] == b':'
                && b[6] == b':'
                && b[9] == b']'
                && b[10] == b' ')
            {
                return Err(format!("line without [HH:MM:SS] prefix: {l:?}"));
            }
            let secs = num(&l[1..3], &l) * 3600 + num(&l[4..6], &l) * 60 + num(&l[7..9], &l);
            let day = 86_400;
            let ok = (start - 2..=end + 2).any(|t| (t + zone_offset).rem_euclid(day) == secs);
            if !ok {
                return Err(format!("[HH:MM:SS] prefix not the current time: {l:?}"));
            }
            v.push(l[11..].to_string());
        }
    }
    Ok(v)
}

/// The lines of a `-s` file: `<PID> ` prefix checked, structure as above.
fn s_structure(content: &[u8], pids: &[u32], start: i64, end: i64) -> Result<Vec<String>, String> {
    let mut v = Vec::new();
    for l in lines(content) {
        let close = l.find("> ").ok_or(format!("no <PID> prefix: {l:?}"))?;
        if !l.starts_with('<') {
            return Err(format!("no <PID> prefix: {l:?}"));
        }
        let pid: u32 = l[1..close]
            .parse()
            .map_err(|_| format!("bad pid in {l:?}"))?;
        if !pids.contains(&pid) {
            return Err(format!("pid {pid} is not one of the runs {pids:?}: {l:?}"));
        }
        let inner = &l[close + 2..];
        let mut s = t_structure(format!("{inner}\n").as_bytes(), start, end, 0, true)?;
        if inner.starts_with('[') {
            return Err(format!("message line in the -s file: {l:?}"));
        }
        v.push(format!(
            "<{}> {}",
            pids.iter().position(|&p| p == pid).unwrap(),
            s.remove(0)
        ));
    }
    Ok(v)
}

#[test]
fn timestamps_t_and_s() {
    let env = Env::new("timestamps");
    env.config(CFG);
    env.file("a", "a", 0o644, T0);
    env.mkdir("d", 0o755);
    env.file("d/b", "b", 0o644, T0);
    let stamp = |w: Which| env.base.join(format!("stamps-{}", w.label()));
    // (extra env, zone offset seconds, args)
    let tz_cases: Vec<(Option<&str>, i64)> = vec![
        (Some("UTC0"), 0),
        (Some("XYZ-5:30"), 19_800),
        (Some("ABC+3"), -10_800),
    ];
    for (tz, off) in tz_cases {
        let scenarios: Vec<(Vec<OsString>, i32)> = vec![
            (args!["-t", "-H"], 2),
            (args!["-t", "-v", "-cr", env.t("")], 0),
            (args!["-t", "-v", "-L"], 0),
            (args!["-t", "-vv", "-M"], 0),
            (args!["-t", "-s", "{STAMP}", "-v", "-m", env.t("a")], 0),
            (args!["-s", "{STAMP}", "-L"], 0),
            (args!["-s", "{STAMP}", "-v", "-c", env.t("a")], 0),
            (args!["-t", "-l", "-v", "-L"], 0),
        ];
        for (sargs, code) in scenarios {
            let mut outs = Vec::new();
            for w in [Which::Real, Which::Ours] {
                let _ = std::fs::remove_file(stamp(w));
                let a: Vec<OsString> = sargs
                    .iter()
                    .map(|x| {
                        if x == "{STAMP}" {
                            os(&stamp(w))
                        } else {
                            x.clone()
                        }
                    })
                    .collect();
                let mut opts = RunOpts::new(&env);
                if let Some(tz) = tz {
                    opts.envs.push(("TZ".into(), tz.into()));
                }
                let start = now();
                // run twice: the -s file is appended to
                let r1 = run_ex(w, &std_args(&env, w, &a), &opts);
                let r2 = run_ex(w, &std_args(&env, w, &a), &opts);
                let end = now();
                let s = std::fs::read(stamp(w)).ok();
                outs.push((r1, r2, s, start, end));
            }
            let (rr, oo) = (&outs[0], &outs[1]);
            let what = format!("-t/-s with TZ={tz:?}");
            assert_basic(&what, &rr.0.out, &oo.0.out);
            expect_code(&what, &rr.0.out, &oo.0.out, code);
            let vv = sargs.iter().any(|x| x == "-vv");
            let with_t = sargs.iter().any(|x| x == "-t");
            let st = |x: &(Ran, Ran, Option<Vec<u8>>, i64, i64), n: usize| {
                let ran = if n == 0 { &x.0 } else { &x.1 };
                t_structure(&ran.out.stderr, x.3, x.4, off, with_t).map(|v| {
                    if vv {
                        // compare only the lines -vv shows in both
                        v.into_iter()
                            .filter(|l| {
                                l.starts_with("TIMESTAMP")
                                    || l.starts_with("TOTALTIME")
                                    || KEY_STDERR.iter().any(|p| l.starts_with(p))
                            })
                            .map(|l| side_neutral(&l))
                            .collect()
                    } else {
                        v
                    }
                })
            };
            for n in 0..2 {
                let (rs, os_) = (st(rr, n), st(oo, n));
                let ran = |x: &(Ran, Ran, Option<Vec<u8>>, i64, i64)| {
                    if n == 0 {
                        x.0.out.clone()
                    } else {
                        x.1.out.clone()
                    }
                };
                match (&rs, &os_) {
                    (Ok(a), Ok(b)) if a == b => {
                        if sargs.iter().any(|x| x == "-t") {
                            assert_eq!(a.first().map(|s| s.starts_with("TIMESTAMP")), Some(true));
                            let tail: Vec<&str> =
                                a.iter().rev().take(2).map(String::as_str).collect();
                            assert!(tail[0] == "TOTALTIME" && tail[1].starts_with("TIMESTAMP"));
                        }
                    }
                    _ => fail_report(
                        &what,
                        &ran(rr),
                        &ran(oo),
                        &format!("  -t structure differs:\n    REAL {rs:#?}\n    OURS {os_:#?}\n"),
                    ),
                }
            }
            // the -s files
            let sf = |x: &(Ran, Ran, Option<Vec<u8>>, i64, i64)| {
                x.2.as_ref()
                    .map(|c| s_structure(c, &[x.0.pid, x.1.pid], x.3, x.4))
            };
            let (rs, os_) = (sf(rr), sf(oo));
            if rs != os_ {
                fail_report(
                    &what,
                    &rr.0.out,
                    &oo.0.out,
                    &format!("  -s file differs:\n    REAL {rs:#?}\n    OURS {os_:#?}\n"),
                );
            }
            if sargs.iter().any(|x| x == "{STAMP}") {
                let v = rs.unwrap().unwrap();
                assert_eq!(v.len(), 6, "REAL -s file: {v:#?}");
                if tz == Some("XYZ-5:30") {
                    assert!(v[0].ends_with("XYZ (GMT+0530)"), "{v:?}");
                }
            }
        }
    }
}

/// A fatal error after the start stamp: the real one prints a second
/// TIMESTAMP but no TOTALTIME (also into the -s file).
#[test]
#[allow(clippy::useless_vec)] // args! builds a Vec by design
fn timestamps_on_fatal_error() {
    let env = Env::new("timestamps_fatal");
    env.config(CFG);
    let mut reports = Vec::new();
    for a in [
        args!["-t", "-N", "h9", "-L"],
        args!["-t", "-v", "-N", "h9", "-L"],
        args!["-t", "-l", "-C", "nonexist", "-L"],
    ] {
        let (r, o) = env.run_both_raw(&a);
        let start = now();
        let (rs, os_) = (
            t_structure(&r.stderr, start - 5, start, 0, true),
            t_structure(&o.stderr, start - 5, start, 0, true),
        );
        if rs != os_ || r.code != o.code || r.code != Some(1) {
            reports.push(report(
                "-t with a fatal error",
                &r,
                &o,
                &format!("  -t structure differs:\n    REAL {rs:#?}\n    OURS {os_:#?}\n"),
            ));
        }
    }
    let mut got = Vec::new();
    for w in [Which::Real, Which::Ours] {
        let f = env.base.join(format!("stamps-{}", w.label()));
        let ran = run_ex(
            w,
            &args!["-s", f.clone(), "-N", "h9", "-L"],
            &RunOpts::new(&env),
        );
        let t = now();
        got.push((
            ran.out.code,
            s_structure(&std::fs::read(&f).unwrap_or_default(), &[ran.pid], t - 5, t),
        ));
    }
    if got[0] != got[1] {
        reports.push(format!(
            "-s FILE -N h9 -L: -s file after a fatal error differs:\n  REAL {:?}\n  OURS {:?}",
            got[0], got[1]
        ));
    }
    finish(reports);
}

#[test]
fn timestamp_file_errors() {
    let env = Env::new("stamp_errors");
    env.config(CFG);
    std::fs::create_dir(env.base.join("adir")).unwrap();
    let mut reports = Vec::new();
    for (a, code) in [
        (args!["-s", "/nonexistent/x", "-L"], 1),
        (args!["-s", "/nonexistent/x", "-cr", env.t("")], 1),
        (args!["-s", env.base.join("adir"), "-L"], 1),
        // -s is acted on while parsing: before usage errors found later
        (args!["-s", "/nonexistent/x", "-L", "extra"], 1),
        (args!["-s", "/nonexistent/x", "-Q"], 1),
        (args!["-Q", "-s", "/nonexistent/x"], 1),
        (args!["-t", "-s", "/nonexistent/x", "-L"], 1),
    ] {
        let (r, o) = env.run_both(&a);
        let mut p = compare_basic(&r, &o);
        if r.code != Some(code) {
            let _ = writeln!(p, "  SCENARIO ERROR: REAL did not exit {code}");
        }
        if !p.is_empty() {
            reports.push(report("-s errors", &r, &o, &p));
        }
    }
    finish(reports);
    // and nothing was created
    assert!(!env.db_file(Which::Real).exists() && !env.db_file(Which::Ours).exists());
}

// ---------------------------------------------------------------------------
// 7. -W FD
// ---------------------------------------------------------------------------

fn nul_list(b: &[u8]) -> Vec<String> {
    let mut v: Vec<String> = b.split(|&c| c == 0).map(show).collect();
    if b.ends_with(b"\0") {
        v.pop();
    }
    v
}

/// Run both with fd `fd` set up as `kind`; compare the outputs, the
/// captured bytes and the databases.
fn w_step(env: &Env, args: Vec<OsString>, fds: &[(i32, Fd)], sigpipe_ignored: bool) -> (Ran, Ran) {
    match w_try(env, args, fds, sigpipe_ignored) {
        Ok(x) => x,
        Err(e) => panic!("{e}"),
    }
}

fn w_try(
    env: &Env,
    args: Vec<OsString>,
    fds: &[(i32, Fd)],
    sigpipe_ignored: bool,
) -> Result<(Ran, Ran), String> {
    let mut rans = Vec::new();
    for w in [Which::Real, Which::Ours] {
        let mut opts = RunOpts::new(env);
        opts.fds = fds.to_vec();
        opts.sigpipe_ignored = sigpipe_ignored;
        rans.push(run_ex(w, &std_args(env, w, &args), &opts));
    }
    let o = rans.pop().unwrap();
    let r = rans.pop().unwrap();
    let what = format!("-W ({fds:?}, SIGPIPE ignored: {sigpipe_ignored})");
    let mut p = compare_basic(&r.out, &o.out);
    if r.captured != o.captured {
        let _ = writeln!(
            p,
            "  dump_dir_fd output differs:\n    REAL {:#?}\n    OURS {:#?}",
            r.captured.values().map(|b| nul_list(b)).collect::<Vec<_>>(),
            o.captured.values().map(|b| nul_list(b)).collect::<Vec<_>>()
        );
    }
    p.push_str(&env.diff_databases());
    if !p.is_empty() {
        return Err(report(&what, &r.out, &o.out, &p));
    }
    Ok((r, o))
}

fn w_env(name: &str) -> Env {
    let env = Env::new(name);
    env.config(
        "group g1 { host h1.local.test h2.local.test; key g1.key; include {TREE}; \
         exclude {TREE}/skip; include {TREE}/skip/keep; exclude *.bak; }\n",
    );
    for d in [
        "sub",
        "sub/deep",
        "sub/.dot",
        "sub2",
        "skip",
        "skip/keep",
        "skip/other",
        "onlybak",
        "empty",
    ] {
        env.mkdir(d, 0o755);
    }
    env.file("sub/deep/f", "f", 0o644, T0);
    env.file("sub/.dot/x", "x", 0o644, T0);
    env.file("skip/y", "y", 0o644, T0);
    env.file("skip/keep/z", "z", 0o644, T0);
    env.file("skip/other/o", "o", 0o644, T0);
    env.file("onlybak/x.bak", "b", 0o644, T0);
    env.file("top", "t", 0o644, T0);
    env
}

#[test]
fn dump_dir_fd_lists() {
    let env = w_env("dump_dir_fd");
    let cap = [(3, Fd::Capture)];
    let (r, _) = w_step(&env, args!["-cr", env.t(""), "-W", "3"], &cap, false);
    let list = nul_list(&r.captured[&3]);
    assert!(
        list.len() >= 5 && list.last().map(String::as_str) == Some(&*env.tree.to_string_lossy()),
        "REAL -W list: {list:#?}"
    );
    // unchanged tree, other start points and forms
    w_step(&env, args!["-W", "3", "-cr", env.t("")], &cap, false);
    w_step(&env, args!["-W3", "-cr", env.t("sub")], &cap, false);
    w_step(&env, args!["-cr", env.t("skip"), "-W", "3"], &cap, false);
    w_step(&env, args!["-cr", os(&env.base), "-W", "3"], &cap, false);
    w_step(&env, args!["-c", env.t(""), "-W", "3"], &cap, false);
    w_step(
        &env,
        args!["-cIr", env.t("sub"), env.t("sub2"), "-W", "3"],
        &cap,
        false,
    );
    w_step(&env, args!["-o", "-r", env.t(""), "-W", "3"], &cap, false);
    // hints
    w_step(&env, args!["-h", "-r", env.t("skip")], &cap, false);
    w_step(&env, args!["-h", env.t("sub")], &cap, false);
    w_step(&env, args!["-c", "-W", "3"], &cap, false);
    // changes, and a second fd number
    env.remove("sub/deep");
    env.mkdir("new", 0o700);
    env.file("new/n", "n", 0o600, T0);
    w_step(
        &env,
        args!["-cr", env.t(""), "-W", "7"],
        &[(7, Fd::Capture)],
        false,
    );
    // -W abc: fd 0 (here the write end of a pipe)
    let (r, _) = w_step(
        &env,
        args!["-cr", env.t(""), "-W", "abc"],
        &[(0, Fd::Capture)],
        false,
    );
    assert!(
        !r.captured[&0].is_empty(),
        "REAL wrote nothing to fd 0 with -W abc"
    );
    w_step(
        &env,
        args!["-cr", env.t(""), "-W", "0"],
        &[(0, Fd::Capture)],
        false,
    );
}

#[test]
fn dump_dir_fd_errors() {
    let env = w_env("dump_dir_fd_errors");
    // ENOSPC on the zero-length test write
    let (r, _) = w_step(
        &env,
        args!["-cr", env.t(""), "-W", "3"],
        &[(3, Fd::DevFull)],
        false,
    );
    assert_eq!(r.out.code, Some(1));
    // -W is acted on while parsing: before usage errors found later
    for a in [
        args!["-W", "3", "-L", "extra"],
        args!["-W", "3", "-Q"],
        args!["-Q", "-W", "3"],
        args!["-W", "3", "-cc"],
    ] {
        let (r, _) = w_step(&env, a, &[(3, Fd::DevFull)], false);
        assert_eq!(r.out.code, Some(1));
    }
    // EPIPE during the check (SIGPIPE ignored: a write error message)
    let (r, _) = w_step(
        &env,
        args!["-cr", env.t(""), "-W", "3"],
        &[(3, Fd::BrokenPipe)],
        true,
    );
    assert_eq!(r.out.code, Some(1));
    assert!(
        key_lines(&r.out.stderr)
            .iter()
            .any(|l| l.starts_with("Error while writing to dump_dir_fd 3: ")),
        "{}",
        r.out.stderr_str()
    );
    // the check stopped at the write error: compare what was stored
    env.step(args!["-L"]);
}

/// Closed and read-only descriptors: `Invalid dump_dir_fd N: Bad file
/// descriptor` (glibc's strerror(EBADF)).
#[test]
fn dump_dir_fd_bad_descriptor() {
    let env = w_env("dump_dir_fd_ebadf");
    let mut reports = Vec::new();
    for (a, fds) in [
        (args!["-cr", env.t(""), "-W", "99"], vec![]),
        (args!["-cr", env.t(""), "-W", "abc"], vec![]),
        (args!["-L", "-W", "3"], vec![(3, Fd::ReadOnly)]),
        (args!["-W", "-1", "-L"], vec![]),
    ] {
        match w_try(&env, a, &fds, false) {
            Ok((r, o)) if r.out.code != Some(1) => reports.push(report(
                "-W bad fd",
                &r.out,
                &o.out,
                "  SCENARIO ERROR: REAL did not exit 1\n",
            )),
            Ok(_) => {}
            Err(e) => reports.push(e),
        }
    }
    finish(reports);
}

/// A write error during the check with SIGPIPE at its default disposition
/// (as a shell starts csync2): the real one is killed by SIGPIPE.
#[test]
fn dump_dir_fd_broken_pipe_default_sigpipe() {
    let env = w_env("dump_dir_fd_sigpipe");
    w_step(
        &env,
        args!["-cr", env.t(""), "-W", "3"],
        &[(3, Fd::BrokenPipe)],
        false,
    );
}

// ---------------------------------------------------------------------------
// 8. -v end lines
// ---------------------------------------------------------------------------

#[test]
fn verbose_local_modes() {
    let env = Env::new("verbose_local");
    env.config(CFG);
    env.file("a", "a", 0o644, T0);
    env.mkdir("d", 0o755);
    env.file("d/b", "b", 0o644, T0);
    let t = env.t("");
    let seq: Vec<(Vec<OsString>, i32)> = vec![
        (args!["-v", "-L"], 2),
        (args!["-v", "-M"], 2),
        (args!["-v", "-H"], 2),
        (args!["-v", "-cIr", t.clone()], 0),
        (args!["-v", "-L"], 0),
        (args!["-v", "-h", env.t("a")], 0),
        (args!["-v", "-H"], 0),
        (args!["-v", "-c"], 0),
        (args!["-v", "-m", env.t("a")], 0),
        (args!["-v", "-M"], 0),
        (args!["-v", "-f", env.t("a")], 0),
        (args!["-v", "-o", env.t("a")], 0),
        (args!["-v", "-S", HOST, PEER2], 0),
        (args!["-v", "-S", HOST, "nobody"], 2),
        (args!["-v", "-R"], 0),
        (args!["-v", "-cr", t.clone()], 0),
        (args!["-v", "-c", env.base.join("etc")], 0),
        (args!["-vv", "-L"], 0),
        (args!["-vvv", "-M"], 0),
    ];
    for (a, code) in seq {
        let vv = a.iter().any(|x| x == "-vv" || x == "-vvv");
        let (r, o) = env.step_expect(a, code);
        if vv {
            // the end lines at -vv and more
            let tail = |b: &[u8]| -> Vec<String> {
                let l = lines(b);
                l[l.len().saturating_sub(2)..].to_vec()
            };
            let want = vec![
                "Connection closed.".to_string(),
                "Finished with 0 errors.".to_string(),
            ];
            if tail(&r.stderr) != want || tail(&o.stderr) != want {
                fail_report(
                    "-vv end lines",
                    &r,
                    &o,
                    "  expected the two end lines last\n",
                );
            }
        } else if r.stderr != o.stderr {
            // -v: the complete stderr
            fail_report("-v stderr", &r, &o, "  stderr differs\n");
        } else if !r
            .stderr
            .ends_with(b"Connection closed.\nFinished with 0 errors.\n")
        {
            fail_report("-v stderr", &r, &o, "  SCENARIO ERROR: no end lines\n");
        }
    }
    // fatal errors: no end lines
    for a in [
        args!["-v", "-N", "h9", "-L"],
        args!["-v", "-C", "nonexist", "-L"],
    ] {
        let (r, o) = env.run_both_raw(&a);
        assert_basic("-v fatal", &r, &o);
        if r.stderr != o.stderr {
            fail_report("-v fatal", &r, &o, "  stderr differs\n");
        }
        expect_code("-v fatal", &r, &o, 1);
    }
    // without -v: nothing on stderr in local modes
    let (r, o) = env.step_expect(args!["-cr", t], 0);
    assert!(r.stderr.is_empty() && o.stderr.is_empty());
}

// ---------------------------------------------------------------------------
// 9. -k FILE
// ---------------------------------------------------------------------------

fn key_facts(p: &Path) -> (usize, Option<u8>, bool, u32) {
    let c = std::fs::read(p).unwrap();
    let md = std::fs::metadata(p).unwrap();
    (
        c.len(),
        c.last().copied(),
        c[..c.len().saturating_sub(1)]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'.' || *b == b'_'),
        md.permissions().mode() & 0o7777,
    )
}

#[test]
#[allow(clippy::useless_vec)] // args! builds a Vec by design
fn keygen_files_and_errors() {
    let env = Env::new("keygen_startup");
    let k = |w: Which, n: &str| env.base.join(format!("{n}-{}.key", w.label()));
    // success, also with the lock file present and without a config
    env.write_etc("csync2.lock", "");
    let mut keys = Vec::new();
    for w in [Which::Real, Which::Ours] {
        for n in ["k1", "k2"] {
            let o = env.run_raw(w, &args!["-k", k(w, n)]);
            assert_eq!(
                (o.code, o.stdout.len(), o.stderr.len()),
                (Some(0), 0, 0),
                "{} -k: {}",
                w.label(),
                o.stderr_str()
            );
            assert_eq!(
                key_facts(&k(w, n)),
                (65, Some(b'\n'), true, 0o600),
                "{} key",
                w.label()
            );
            keys.push(std::fs::read(k(w, n)).unwrap());
        }
    }
    let distinct: BTreeSet<&Vec<u8>> = keys.iter().collect();
    assert_eq!(distinct.len(), 4, "keys are not random");
    std::fs::remove_file(env.etc.join("csync2.lock")).unwrap();

    // the generated key is accepted by both in a config
    env.config(&format!(
        "group g1 {{ host h1.local.test h2.local.test; key {}; include {{TREE}}; }}\n",
        k(Which::Ours, "k1").display()
    ));
    env.step_expect(args!["-L"], 2);
    env.config(&format!(
        "group g1 {{ host h1.local.test h2.local.test; key {}; include {{TREE}}; }}\n",
        k(Which::Real, "k1").display()
    ));
    env.step_expect(args!["-L"], 2);

    // existing file: error, file unchanged
    for w in [Which::Real, Which::Ours] {
        let before = std::fs::read(k(w, "k1")).unwrap();
        let o = env.run_raw(w, &args!["-k", k(w, "k1")]);
        assert_eq!(o.code, Some(1), "{}", w.label());
        assert_eq!(
            lines(&o.stderr),
            vec!["Can't create key file: File exists".to_string()],
            "{}",
            w.label()
        );
        assert_eq!(std::fs::read(k(w, "k1")).unwrap(), before);
    }
    // same file name for both
    let shared = env.base.join("shared.key");
    std::fs::write(&shared, "x").unwrap();
    let (r, o) = env.run_both_raw(&args!["-k", shared.clone()]);
    assert_basic("-k existing", &r, &o);
    expect_code("-k existing", &r, &o, 1);
    let (r, o) = env.run_both_raw(&args!["-k", env.base.join("nodir/x.key")]);
    assert_basic("-k missing dir", &r, &o);
    expect_code("-k missing dir", &r, &o, 1);

    // -k with anything else: usage, nothing created
    let nk = env.base.join("never.key");
    for a in [
        args!["-k", nk.clone(), "extra"],
        args!["-k", nk.clone(), "-v"],
        args!["-v", "-k", nk.clone()],
        args!["-k"],
        args!["-kL"],
        args!["-L", "-k", nk.clone()],
        args!["--", "-k", nk.clone()],
    ] {
        let (r, o) = env.run_both_raw(&a);
        assert_basic("-k usage", &r, &o);
        expect_code("-k usage", &r, &o, 1);
        let msg = |x: &Output| {
            lines(&x.stderr)
                .into_iter()
                .filter(|l| l.contains("option"))
                .collect::<Vec<_>>()
        };
        if msg(&r) != msg(&o) {
            fail_report("-k usage", &r, &o, "  getopt message differs\n");
        }
        assert!(!nk.exists(), "{} created a key file", cmdline(&a));
    }
}

// ---------------------------------------------------------------------------
// Error texts (glibc strerror)
// ---------------------------------------------------------------------------

/// Error messages carry glibc's `strerror` text: e.g. ELOOP is `Too many
/// levels of symbolic links`, EISDIR `Is a directory`.
#[test]
fn strerror_texts() {
    let env = Env::new("strerror_texts");
    env.config(CFG);
    std::os::unix::fs::symlink("loop", env.base.join("loop")).unwrap();
    std::fs::create_dir(env.base.join("adir")).unwrap();
    let mut reports = Vec::new();
    let cases: Vec<(Vec<OsString>, bool)> = vec![
        (args!["-k", env.base.join("loop/x.key")], false),
        (args!["-k", env.base.join("loop")], false),
        (args!["-k", env.base.join("adir")], false),
        (args!["-s", env.base.join("loop/x"), "-L"], true),
        (args!["-s", env.base.join("loop"), "-L"], true),
        (args!["-s", env.base.join("adir"), "-L"], true),
    ];
    for (a, std) in cases {
        let (r, o) = if std {
            env.run_both(&a)
        } else {
            env.run_both_raw(&a)
        };
        let mut p = compare_basic(&r, &o);
        if r.code != Some(1) || key_lines(&r.stderr).is_empty() {
            let _ = writeln!(p, "  SCENARIO ERROR: REAL should fail with a message");
        }
        if !p.is_empty() {
            reports.push(report("strerror text", &r, &o, &p));
        }
    }
    finish(reports);
}
