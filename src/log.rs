//! Diagnostics as the real program prints them (cli.md §12.9–§12.10):
//! a message of level L is shown when L ≤ the number of `-v`; on stderr,
//! or through syslog with `-l` and in inetd mode. Also the error counter
//! behind `Finished with N errors.` and the exit code.

use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};

static VERBOSITY: AtomicU32 = AtomicU32::new(0);
static SYSLOG: AtomicBool = AtomicBool::new(false);
static TIMESTAMPS: AtomicBool = AtomicBool::new(false);
static PID_PREFIX: AtomicBool = AtomicBool::new(false);
static ERRORS: AtomicI32 = AtomicI32::new(0);
static PRINTED: AtomicBool = AtomicBool::new(false);
static LOCK: Mutex<()> = Mutex::new(());

pub fn set_verbosity(v: u32) {
    VERBOSITY.store(v, Ordering::Relaxed);
}

pub fn verbosity() -> u32 {
    VERBOSITY.load(Ordering::Relaxed)
}

pub fn enabled(level: u32) -> bool {
    level <= verbosity()
}

pub fn set_timestamps(on: bool) {
    TIMESTAMPS.store(on, Ordering::Relaxed);
}

pub fn set_pid_prefix(on: bool) {
    PID_PREFIX.store(on, Ordering::Relaxed);
}

pub fn use_syslog() {
    if !SYSLOG.swap(true, Ordering::Relaxed) {
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
    SYSLOG.load(Ordering::Relaxed)
}

/// Counts one error (for `Finished with N errors.` and the exit code).
pub fn count_error() {
    ERRORS.fetch_add(1, Ordering::Relaxed);
}

pub fn errors() -> i32 {
    ERRORS.load(Ordering::Relaxed)
}

pub fn set_errors(n: i32) {
    ERRORS.store(n, Ordering::Relaxed);
}

/// Whether any message went through the logger (for `Finished with 0 errors.`).
pub fn anything_printed() -> bool {
    PRINTED.load(Ordering::Relaxed)
}

fn prefix() -> Vec<u8> {
    let mut p = Vec::new();
    if PID_PREFIX.load(Ordering::Relaxed) {
        p.extend_from_slice(format!("<{}> ", std::process::id()).as_bytes());
    }
    if TIMESTAMPS.load(Ordering::Relaxed) {
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
        let shown = PROGRESS.lock().map(|p| p.clone()).unwrap_or_default();
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
    if !enabled(level) {
        return;
    }
    let msg = msg.as_ref();
    if hold(|| Held::Log(level, msg.to_vec())) {
        return;
    }
    PRINTED.store(true, Ordering::Relaxed);
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
    let _g = LOCK.lock();
    let shown = PROGRESS.lock().map(|p| p.clone()).unwrap_or_default();
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

/// The progress line on stderr, if one is shown (redrawn after messages).
static PROGRESS: Mutex<Option<Vec<u8>>> = Mutex::new(None);
const CLEAR_LINE: &[u8] = b"\r\x1b[K";

/// Whether a progress line may be shown: stderr is a terminal, no `-l`,
/// no `-v`.
pub fn progress_wanted() -> bool {
    !syslog_enabled() && verbosity() == 0 && unsafe { libc::isatty(2) } == 1
}

/// Shows `text` as the progress line (None: removes it).
pub fn progress(text: Option<&[u8]>) {
    let _g = LOCK.lock();
    let mut out = CLEAR_LINE.to_vec();
    if let Some(t) = text {
        out.extend_from_slice(t);
    }
    if let Ok(mut p) = PROGRESS.lock() {
        *p = text.map(<[u8]>::to_vec);
    }
    let _ = std::io::stderr().write_all(&out);
}

/// An error message (level 0) that also counts as an error.
pub fn error(msg: impl AsRef<[u8]>) {
    count_error();
    debug(0, msg);
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

static STAMP_FILE: Mutex<Option<std::fs::File>> = Mutex::new(None);
static START: Mutex<Option<std::time::Instant>> = Mutex::new(None);

/// `-s FILE`: TIMESTAMP/TOTALTIME lines are also appended there.
pub fn open_stamp_file(path: &std::path::Path) -> std::io::Result<()> {
    let f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)?;
    *STAMP_FILE.lock().unwrap_or_else(|e| e.into_inner()) = Some(f);
    Ok(())
}

fn stamp_line(line: &str) {
    if TIMESTAMPS.load(Ordering::Relaxed) {
        let _ = std::io::stderr().write_all(format!("{line}\n").as_bytes());
    }
    if let Some(f) = STAMP_FILE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_mut()
    {
        let _ = f.write_all(format!("<{}> {line}\n", std::process::id()).as_bytes());
    }
}

fn stamps_wanted() -> bool {
    TIMESTAMPS.load(Ordering::Relaxed)
        || STAMP_FILE
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
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
    *START.lock().unwrap_or_else(|e| e.into_inner()) = Some(std::time::Instant::now());
    if stamps_wanted() {
        stamp_line(&format!("TIMESTAMP: {}", timestamp_text()));
    }
}

/// `TIMESTAMP: …` and (after a normal run) `TOTALTIME: H:MM:SS` at the end.
pub fn end_stamp(total: bool) {
    if !stamps_wanted() {
        return;
    }
    let secs = START
        .lock()
        .unwrap_or_else(|e| e.into_inner())
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
