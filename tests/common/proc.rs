//! The process runner of both harness families: which csync2 binary (ours
//! or the real one), how a process is started with captured output, waited
//! for with a deadline and killed.
//!
//! * [`Which`]: the implementation (`tests/net` calls it `Imp`);
//! * [`Proc`]: a started child whose stdout and stderr are read by two
//!   threads; [`Proc::wait_until`] / [`Proc::kill`] give a [`Done`];
//! * [`captured`]: the standard stdio of a csync2 run (stdin /dev/null,
//!   stdout and stderr piped);
//! * [`run_cmd`]: one csync2 run with args, environment and cwd (the local
//!   differential harness); [`Output`] is its result.

use super::wait::{POLL, poll_until};
use super::{show, show_lossy, split_lines};
use std::ffi::OsString;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long one csync2 process may run before it is killed.
pub const TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// Binaries
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    Real,
    Ours,
}

impl Which {
    pub fn label(self) -> &'static str {
        match self {
            Which::Real => "REAL",
            Which::Ours => "OURS",
        }
    }
    pub fn bin(self) -> PathBuf {
        bin(self)
    }
}

/// Path of the reference csync2; panics (never skips) when it is missing.
pub fn real_bin() -> PathBuf {
    let p = std::env::var_os("CSYNC2_REAL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/csync2"));
    if !p.is_file() {
        panic!(
            "the reference csync2 binary {} is missing: these differential tests need the real \
             LINBIT csync2 (Debian 2.0-42-g83b3644-2). Install it with `apt-get install csync2` \
             (or point CSYNC2_REAL at it).",
            p.display()
        );
    }
    p
}

/// Path of the csync2 under test.
pub fn ours_bin() -> PathBuf {
    std::env::var_os("CSYNC2_DIFF_OURS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_csync2")))
}

pub fn bin(which: Which) -> PathBuf {
    match which {
        Which::Real => real_bin(),
        Which::Ours => ours_bin(),
    }
}

// ---------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------

/// The standard stdio of a csync2 run: stdin /dev/null, stdout and stderr
/// captured (by [`Proc`]).
pub fn captured(cmd: &mut Command) -> &mut Command {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
}

/// How a process ended, with its captured output.
#[derive(Clone, Debug, Default)]
pub struct Done {
    pub what: String,
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    /// killed by the harness (e.g. a `-iii` server nobody connected to)
    pub killed: bool,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Done {
    pub fn status(&self) -> String {
        if self.timed_out {
            format!("TIMED OUT after {TIMEOUT:?} (killed)")
        } else if self.killed {
            "killed by the harness".into()
        } else if let Some(c) = self.code {
            format!("exit {c}")
        } else {
            format!("killed by signal {}", self.signal.unwrap_or(-1))
        }
    }
    pub fn stderr_lines(&self) -> Vec<String> {
        lines(&self.stderr)
    }
    pub fn stdout_lines(&self) -> Vec<String> {
        lines(&self.stdout)
    }
}

/// Lines of output, shown with escapes for non-printable bytes.
pub fn lines(b: &[u8]) -> Vec<String> {
    split_lines(b).into_iter().map(show).collect()
}

/// A child process with captured output; killed when dropped unfinished.
/// Output that is not piped (e.g. redirected to a socket or a file) is
/// recorded as empty.
pub struct Proc {
    child: Option<Child>,
    out: Option<JoinHandle<Vec<u8>>>,
    err: Option<JoinHandle<Vec<u8>>>,
    pub pid: u32,
    what: String,
}

fn reader(r: Option<impl Read + Send + 'static>) -> Option<JoinHandle<Vec<u8>>> {
    r.map(|mut r| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    })
}

impl Proc {
    pub fn spawn(mut cmd: Command, what: String) -> Proc {
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let out = reader(child.stdout.take());
        let err = reader(child.stderr.take());
        Proc {
            pid: child.id(),
            child: Some(child),
            out,
            err,
            what,
        }
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(Some(_))),
            None => true,
        }
    }

    fn finish(&mut self, kill: bool, timed_out: bool) -> Done {
        let mut child = self.child.take().expect("process already finished");
        if kill {
            let _ = child.kill(); // our own child, by pid
        }
        let status = child.wait().expect("wait");
        // a forked `-ii` child may keep the pipes open: do not wait forever
        let join = |h: Option<JoinHandle<Vec<u8>>>| -> Vec<u8> {
            let Some(h) = h else { return Vec::new() };
            poll_until(Instant::now() + Duration::from_secs(5), POLL, || {
                h.is_finished()
            });
            if h.is_finished() {
                h.join().unwrap_or_default()
            } else {
                b"<output still open>".to_vec()
            }
        };
        Done {
            what: self.what.clone(),
            code: if kill { None } else { status.code() },
            signal: status.signal(),
            timed_out,
            killed: kill && !timed_out,
            stdout: join(self.out.take()),
            stderr: join(self.err.take()),
        }
    }

    /// Wait for the exit; kill at the deadline.
    pub fn wait_until(mut self, deadline: Instant) -> Done {
        if poll_until(deadline, POLL, || self.exited()) {
            self.finish(false, false)
        } else {
            self.finish(true, true)
        }
    }

    pub fn kill(mut self) -> Done {
        if self.exited() {
            return self.finish(false, false);
        }
        self.finish(true, false)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

// ---------------------------------------------------------------------------
// One csync2 run (local differential harness)
// ---------------------------------------------------------------------------

/// The result of [`run_cmd`].
#[derive(Clone, Debug)]
pub struct Output {
    pub which: Which,
    /// Full argument list as passed (after argv[0]).
    pub args: Vec<OsString>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Exit code, `None` when killed by a signal or timed out.
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
}

/// The real usage text names LINBIT's program; ours names csync2-rs
/// (doc/differences.md). The rest of the text is the same, so the real
/// one's head is replaced by ours before outputs are compared.
pub fn with_our_usage_head(stdout: Vec<u8>) -> Vec<u8> {
    const FIRST: &[u8] = b"csync2 2.1-0rc1 - cluster synchronization tool, 2nd generation\n";
    const LAST: &[u8] = b"See also: https://github.com/LINBIT/csync2/\n";
    let Some(a) = stdout.windows(FIRST.len()).position(|w| w == FIRST) else {
        return stdout;
    };
    let Some(b) = stdout[a..].windows(LAST.len()).position(|w| w == LAST) else {
        return stdout;
    };
    let ours = format!(
        "csync2-rs {} - cluster synchronization tool, a drop-in for csync2 2.0\n\
         Options of csync2-rs itself: csync2 --help\n",
        env!("CARGO_PKG_VERSION")
    );
    let mut out = stdout[..a].to_vec();
    out.extend_from_slice(ours.as_bytes());
    out.extend_from_slice(&stdout[a + b + LAST.len()..]);
    out
}

impl Output {
    pub fn from_done(which: Which, args: &[OsString], d: Done) -> Output {
        let stdout = match which {
            Which::Real => with_our_usage_head(d.stdout),
            Which::Ours => d.stdout,
        };
        Output {
            which,
            args: args.to_vec(),
            stdout,
            stderr: d.stderr,
            code: if d.timed_out { None } else { d.code },
            signal: d.signal,
            timed_out: d.timed_out,
        }
    }
    pub fn status_text(&self) -> String {
        if self.timed_out {
            format!("TIMED OUT after {:?}", TIMEOUT)
        } else if let Some(c) = self.code {
            format!("exit {c}")
        } else {
            format!("killed by signal {}", self.signal.unwrap_or(-1))
        }
    }
    pub fn stdout_lines(&self) -> Vec<&[u8]> {
        split_lines(&self.stdout)
    }
    pub fn stderr_str(&self) -> String {
        show_lossy(&self.stderr)
    }
}

/// The command of a local run of `which`: argv[0] is always `csync2` (so
/// usage texts are comparable), `LC_ALL=C`, no inherited
/// `CSYNC2_SYSTEM_DIR`, the given extra environment and cwd, stdio
/// [`captured`].
pub fn csync2_command(
    which: Which,
    args: &[OsString],
    envs: &[(&str, OsString)],
    cwd: &Path,
) -> Command {
    let mut cmd = Command::new(bin(which));
    cmd.arg0("csync2")
        .args(args)
        .current_dir(cwd)
        .env("LC_ALL", "C")
        .env_remove("CSYNC2_SYSTEM_DIR");
    captured(&mut cmd);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd
}

/// Run `which` with `args` (see [`csync2_command`]); killed after
/// [`TIMEOUT`].
pub fn run_cmd(which: Which, args: &[OsString], envs: &[(&str, OsString)], cwd: &Path) -> Output {
    let cmd = csync2_command(which, args, envs, cwd);
    let what = format!("{} ({})", which.label(), bin(which).display());
    let d = Proc::spawn(cmd, what).wait_until(Instant::now() + TIMEOUT);
    Output::from_done(which, args, d)
}
