//! Diagnostics as the real program prints them (cli.md §12.9–§12.10):
//! a message of level L is shown when L ≤ the number of `-v`; on stderr,
//! or through syslog with `-l` and in inetd mode. Also the error counter
//! behind `Finished with N errors.` and the exit code.

//! Diagnostics as the real program prints them (cli.md §12.9–§12.10):
//! a message of level L is shown when L ≤ the number of `-v`; on stderr,
//! or through syslog with `-l` and in inetd mode. One [`Sink`] per process
//! holds how output looks and where it goes; a thread may hold its output
//! back ([`capture`]) to print it later in order. Errors are counted by the
//! operations that meet them, in an [`Errors`] value they return.

use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// Where messages go and how they look, set up once at start.
pub struct Sink {
    verbosity: AtomicU32,
    /// levels above 0 need this many more `-v` (the `--watch` daemon's
    /// own lines take level 1, what its runs print moves down one)
    shift: AtomicU32,
    syslog: AtomicBool,
    timestamps: AtomicBool,
    /// `<pid> ` before each line (a forked server connection)
    pid_prefix: AtomicBool,
    /// anything went through the logger (for `Finished with 0 errors.`)
    printed: AtomicBool,
    /// one line at a time on stderr
    lock: Mutex<()>,
    /// the progress line on stderr, if one is shown (redrawn after
    /// messages)
    progress: Mutex<Option<Vec<u8>>>,
    /// `-s FILE`
    stamp_file: Mutex<Option<std::fs::File>>,
    /// when the run started (for TOTALTIME)
    start: Mutex<Option<std::time::Instant>>,
}

static SINK: Sink = Sink {
    verbosity: AtomicU32::new(0),
    shift: AtomicU32::new(0),
    syslog: AtomicBool::new(false),
    timestamps: AtomicBool::new(false),
    pid_prefix: AtomicBool::new(false),
    printed: AtomicBool::new(false),
    lock: Mutex::new(()),
    progress: Mutex::new(None),
    stamp_file: Mutex::new(None),
    start: Mutex::new(None),
};

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn set_verbosity(v: u32) {
    SINK.verbosity.store(v, Ordering::Relaxed);
}

pub fn verbosity() -> u32 {
    SINK.verbosity.load(Ordering::Relaxed)
}

pub fn enabled(level: u32) -> bool {
    level == 0 || level + SINK.shift.load(Ordering::Relaxed) <= verbosity()
}

/// From now on, messages of level 1 and more need `shift` more `-v`
/// ([`note`] is not shifted).
pub fn set_level_shift(shift: u32) {
    SINK.shift.store(shift, Ordering::Relaxed);
}

pub fn set_timestamps(on: bool) {
    SINK.timestamps.store(on, Ordering::Relaxed);
}

pub fn set_pid_prefix(on: bool) {
    SINK.pid_prefix.store(on, Ordering::Relaxed);
}

pub fn use_syslog() {
    if !SINK.syslog.swap(true, Ordering::Relaxed) {
        // the ident must live for the whole process
        static IDENT: &[u8] = b"csync2\0";
        unsafe {
            libc::openlog(
                IDENT.as_ptr().cast(),
                libc::LOG_ODELAY | libc::LOG_PID,
                libc::LOG_LOCAL0,
            )
        };
    }
}

pub fn syslog_enabled() -> bool {
    SINK.syslog.load(Ordering::Relaxed)
}

/// Whether any message went through the logger (for `Finished with 0 errors.`).
pub fn anything_printed() -> bool {
    SINK.printed.load(Ordering::Relaxed)
}

/// The errors an operation met (for `Finished with N errors.` and the exit
/// code): each is printed at level 0 as it happens and counted here; the
/// operation returns the count to its caller.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Errors {
    count: u32,
    /// the first message, for `--status`'s `last_error`
    first: Option<Vec<u8>>,
}

impl Errors {
    /// Prints an error message (level 0) and counts it.
    pub fn error(&mut self, msg: impl AsRef<[u8]>) {
        self.count += 1;
        if self.first.is_none() {
            self.first = Some(msg.as_ref().to_vec());
        }
        debug(0, msg);
    }

    /// Counts an error whose message was printed otherwise (or not at all,
    /// as the real client's refused HELLO in update mode).
    pub fn count(&mut self) {
        self.count += 1;
    }

    /// Adds what another operation met.
    pub fn add(&mut self, other: Errors) {
        self.count += other.count;
        if self.first.is_none() {
            self.first = other.first;
        }
    }

    pub fn total(&self) -> u32 {
        self.count
    }

    /// The first error's message, if it had one.
    pub fn first(&self) -> Option<&[u8]> {
        self.first.as_deref()
    }
}

fn prefix() -> Vec<u8> {
    let mut p = Vec::new();
    if SINK.pid_prefix.load(Ordering::Relaxed) {
        p.extend_from_slice(format!("<{}> ", std::process::id()).as_bytes());
    }
    if SINK.timestamps.load(Ordering::Relaxed) {
        p.extend_from_slice(clock_prefix().as_bytes());
    }
    p
}

fn clock_prefix() -> String {
    let now = unsafe { libc::time(std::ptr::null_mut()) };
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    unsafe { libc::localtime_r(&now, &mut tm) };
    format!("[{:02}:{:02}:{:02}] ", tm.tm_hour, tm.tm_min, tm.tm_sec)
}

/// Output held back by a capture (see [`capture`]).
pub enum Held {
    Log(u32, Vec<u8>),
    Stdout(Vec<u8>),
    /// a [`raw_stderr`] line (the -vvv protocol trace)
    Raw(Vec<u8>),
}

thread_local! {
    static CAPTURE: std::cell::RefCell<Option<Vec<Held>>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` with its messages (and [`stdout`] output) held back instead of
/// printed; a pipelined client replays each file's messages in file order.
pub fn capture<T>(into: &mut Vec<Held>, f: impl FnOnce() -> T) -> T {
    let outer = CAPTURE.with(|c| c.borrow_mut().replace(std::mem::take(into)));
    let r = f();
    *into = CAPTURE
        .with(|c| std::mem::replace(&mut *c.borrow_mut(), outer))
        .unwrap_or_default();
    r
}

/// [`capture`] when `on`; else just runs `f`.
pub fn capture_if<T>(on: bool, into: &mut Vec<Held>, f: impl FnOnce() -> T) -> T {
    if on { capture(into, f) } else { f() }
}

/// Holds what `make` gives when a capture is running; false: print it.
fn hold(make: impl FnOnce() -> Held) -> bool {
    CAPTURE.with(|c| match c.borrow_mut().as_mut() {
        Some(v) => {
            v.push(make());
            true
        }
        None => false,
    })
}

/// Prints held output.
pub fn replay(held: Vec<Held>) {
    for h in held {
        match h {
            Held::Log(level, msg) => debug(level, msg),
            Held::Stdout(b) => stdout(&b),
            Held::Raw(b) => raw_stderr(&b),
        }
    }
}

/// Bytes for stdout (dry-run lines), in order with captured messages.
pub fn stdout(b: &[u8]) {
    if !hold(|| Held::Stdout(b.to_vec())) {
        // a terminal shared with the progress line: clear it first
        let shown = locked(&SINK.progress).clone();
        if shown.is_some() {
            let _ = std::io::stderr().write_all(CLEAR_LINE);
        }
        let mut out = std::io::stdout();
        let _ = out.write_all(b);
        let _ = out.flush();
        if let Some(p) = shown {
            let _ = std::io::stderr().write_all(&p);
        }
    }
}

/// Prints a message of `level` (0 = always).
pub fn debug(level: u32, msg: impl AsRef<[u8]>) {
    if enabled(level) {
        emit(level, msg.as_ref());
    }
}

/// A message of `level` that ignores [`set_level_shift`]: the `--watch`
/// daemon's one line per push.
pub fn note(level: u32, msg: impl AsRef<[u8]>) {
    if level <= verbosity() {
        emit(level, msg.as_ref());
    }
}

fn emit(level: u32, msg: &[u8]) {
    if hold(|| Held::Log(level, msg.to_vec())) {
        return;
    }
    SINK.printed.store(true, Ordering::Relaxed);
    if syslog_enabled() {
        let prio = match level {
            0 => libc::LOG_WARNING,
            1 => libc::LOG_INFO,
            _ => libc::LOG_DEBUG,
        };
        let mut c: Vec<u8> = msg.iter().copied().filter(|&b| b != 0).collect();
        c.push(0);
        unsafe { libc::syslog(prio, c"%s".as_ptr(), c.as_ptr()) };
        return;
    }
    raw_stderr(msg);
}

/// A line that always goes to stderr with the prefixes, even with `-l`.
pub fn raw_stderr(msg: &[u8]) {
    if hold(|| Held::Raw(msg.to_vec())) {
        return;
    }
    let _g = locked(&SINK.lock);
    let shown = locked(&SINK.progress).clone();
    let mut line = Vec::new();
    if shown.is_some() {
        line.extend_from_slice(CLEAR_LINE);
    }
    line.extend_from_slice(&prefix());
    line.extend_from_slice(msg);
    line.push(b'\n');
    if let Some(p) = shown {
        line.extend_from_slice(&p);
    }
    let _ = std::io::stderr().write_all(&line);
}

const CLEAR_LINE: &[u8] = b"\r\x1b[K";

/// Whether a progress line may be shown: stderr is a terminal, no `-l`,
/// no `-v`.
pub fn progress_wanted() -> bool {
    // held output (a peer served in parallel) draws no progress line
    let holding = CAPTURE.with(|c| c.borrow().is_some());
    !holding && !syslog_enabled() && verbosity() == 0 && unsafe { libc::isatty(2) } == 1
}

/// Shows `text` as the progress line (None: removes it).
pub fn progress(text: Option<&[u8]>) {
    let _g = locked(&SINK.lock);
    let mut out = CLEAR_LINE.to_vec();
    if let Some(t) = text {
        out.extend_from_slice(t);
    }
    *locked(&SINK.progress) = text.map(<[u8]>::to_vec);
    let _ = std::io::stderr().write_all(&out);
}

/// C's strerror text for an I/O error.
pub fn strerror(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => {
            // glibc's own wording (nix's table differs for some codes)
            let p = unsafe { libc::strerror(code) };
            if p.is_null() {
                return e.to_string();
            }
            unsafe { std::ffi::CStr::from_ptr(p) }
                .to_string_lossy()
                .into_owned()
        }
        None => e.to_string(),
    }
}

/// Concatenates text and raw byte strings into one message.
#[macro_export]
macro_rules! msg {
    ($($part:expr),* $(,)?) => {{
        let mut v: Vec<u8> = Vec::new();
        $( v.extend_from_slice(AsRef::<[u8]>::as_ref(&$part)); )*
        v
    }};
}

/// `-s FILE`: TIMESTAMP/TOTALTIME lines are also appended there.
pub fn open_stamp_file(path: &std::path::Path) -> std::io::Result<()> {
    let f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)?;
    *locked(&SINK.stamp_file) = Some(f);
    Ok(())
}

fn stamp_line(line: &str) {
    if SINK.timestamps.load(Ordering::Relaxed) {
        let _ = std::io::stderr().write_all(format!("{line}\n").as_bytes());
    }
    if let Some(f) = locked(&SINK.stamp_file).as_mut() {
        let _ = f.write_all(format!("<{}> {line}\n", std::process::id()).as_bytes());
    }
}

fn stamps_wanted() -> bool {
    SINK.timestamps.load(Ordering::Relaxed) || locked(&SINK.stamp_file).is_some()
}

fn timestamp_text() -> String {
    let now = unsafe { libc::time(std::ptr::null_mut()) };
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    unsafe { libc::localtime_r(&now, &mut tm) };
    let mut buf = [0u8; 128];
    let n = unsafe {
        libc::strftime(
            buf.as_mut_ptr().cast(),
            buf.len(),
            c"%Y-%m-%d %H:%M:%S %Z (GMT%z)".as_ptr(),
            &tm,
        )
    };
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// `TIMESTAMP: …` at start (cli.md §12.8).
pub fn start_stamp() {
    *locked(&SINK.start) = Some(std::time::Instant::now());
    if stamps_wanted() {
        stamp_line(&format!("TIMESTAMP: {}", timestamp_text()));
    }
}

/// `TIMESTAMP: …` and (after a normal run) `TOTALTIME: H:MM:SS` at the end.
pub fn end_stamp(total: bool) {
    if !stamps_wanted() {
        return;
    }
    let secs = locked(&SINK.start)
        .map(|s| s.elapsed().as_secs())
        .unwrap_or(0);
    stamp_line(&format!("TIMESTAMP: {}", timestamp_text()));
    if !total {
        return;
    }
    stamp_line(&format!(
        "TOTALTIME: {}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    ));
}
