//! A 2 GiB file changed on one node, pushed with an rsync delta, with the
//! peak RSS of our client and our server measured (wait4): both must stay
//! under 64 MiB. Two updates per run: bytes flipped in place with the size
//! and mtime kept (the check texts agree, so the client compares the peer's
//! whole-file signature with its own), then an append (the texts differ;
//! the delta reuses the whole basis). The trees live on a tmpfs, so the
//! test costs memory (about 6 GiB at once), not disk time.
//!
//! Needs root; see `tests/net_interop.rs` for the environment variables.

mod common;
mod net;

use net::*;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const RSS_LIMIT_KIB: u64 = 64 * 1024;
const TIMEOUT: Duration = Duration::from_secs(600);

/// A finished process: exit code, peak RSS (KiB; wait4's figure, which also
/// covers the `mount` the node's wrapper runs first, so never less than the
/// truth), output.
struct Measured {
    code: i32,
    rss_kib: u64,
    stdout: String,
    stderr: String,
}

/// A started process whose resource usage is read when it is reaped.
struct Running {
    what: String,
    pid: libc::pid_t,
    out: std::thread::JoinHandle<Vec<u8>>,
    err: std::thread::JoinHandle<Vec<u8>>,
    reaped: Arc<AtomicBool>,
}

fn start(n: &Node, args: &[&str]) -> Running {
    let args: Vec<OsString> = args.iter().map(OsString::from).collect();
    let what = format!(
        "{} ({}) {}",
        n.short(),
        n.imp.label(),
        common::cmdline(&args)
    );
    // unshare and sh exec: the child's pid is csync2's own
    let mut child = n.command(&args).spawn().expect("spawn csync2");
    let pid = child.id() as libc::pid_t;
    let mut so = child.stdout.take().expect("stdout");
    let mut se = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = so.read_to_end(&mut v);
        v
    });
    let err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = se.read_to_end(&mut v);
        v
    });
    let reaped = Arc::new(AtomicBool::new(false));
    let flag = reaped.clone();
    std::thread::spawn(move || {
        let end = Instant::now() + TIMEOUT;
        if common::poll_until(end, Duration::from_millis(200), || {
            flag.load(Ordering::SeqCst)
        }) {
            return;
        }
        if !flag.load(Ordering::SeqCst) {
            // SAFETY: our own child, not reaped yet
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    });
    // reaped by wait4 below, not by std
    std::mem::forget(child);
    Running {
        what,
        pid,
        out,
        err,
        reaped,
    }
}

fn finish(r: Running) -> Measured {
    let mut status = 0;
    // SAFETY: plain zeroed C struct filled by wait4
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child
    let got = unsafe { libc::wait4(r.pid, &mut status, 0, &mut ru) };
    r.reaped.store(true, Ordering::SeqCst);
    assert_eq!(got, r.pid, "wait4 {}", r.what);
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    Measured {
        code,
        rss_kib: ru.ru_maxrss as u64,
        stdout: String::from_utf8_lossy(&r.out.join().unwrap_or_default()).into_owned(),
        stderr: String::from_utf8_lossy(&r.err.join().unwrap_or_default()).into_owned(),
    }
}

/// Pseudo-random bytes, written in 8 MiB pieces.
fn write_random(path: &Path, size: u64, seed: u64) {
    let mut f = std::fs::File::create(path).expect("create big file");
    let mut x = seed | 1;
    let mut buf = vec![0u8; 8 << 20];
    let mut left = size;
    while left > 0 {
        for w in buf.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(buf.len() as u64) as usize;
        f.write_all(&buf[..n]).expect("write big file");
        left -= n as u64;
    }
}

fn same_content(a: &Path, b: &Path) -> bool {
    let (Ok(mut fa), Ok(mut fb)) = (std::fs::File::open(a), std::fs::File::open(b)) else {
        return false;
    };
    let mut ba = vec![0u8; 4 << 20];
    let mut bb = vec![0u8; 4 << 20];
    loop {
        let na = fa.read(&mut ba).expect("read");
        if na == 0 {
            return fb.read(&mut bb).expect("read") == 0;
        }
        if fb.read_exact(&mut bb[..na]).is_err() || ba[..na] != bb[..na] {
            return false;
        }
    }
}

/// One push by node 0 to node 1's `-iii` server; problems are added to
/// `report`. Our processes must stay under the RSS limit.
fn push(r: &Run, label: &str, args: &[&str], report: &mut Vec<String>) {
    let (a, b) = (r.n(0), r.n(1));
    let server = start(b, &["-iii", "-v"]);
    let end = Instant::now() + Duration::from_secs(15);
    assert!(
        common::poll_until(end, Duration::from_millis(5), || listening(b.addr, b.port)),
        "{label}: the server did not start listening"
    );
    let t0 = Instant::now();
    let c = finish(start(a, args));
    let s = finish(server);
    eprintln!(
        "[bigfile] {} {label}: {:.1} s",
        r.describe(),
        t0.elapsed().as_secs_f64()
    );
    let errors = c.stdout.contains("Finished with") || c.stderr.contains("Finished with");
    if c.code != 0 || errors {
        report.push(format!(
            "{label}: client exit {}\n{}{}\nserver:\n{}",
            c.code, c.stdout, c.stderr, s.stderr
        ));
    }
    for (who, m, imp) in [("client", &c, a.imp), ("server", &s, b.imp)] {
        eprintln!(
            "[bigfile] {} {label}: {who} peak RSS {} KiB",
            r.describe(),
            m.rss_kib
        );
        if imp == Imp::Ours && m.rss_kib > RSS_LIMIT_KIB {
            report.push(format!(
                "{label}: our {who} peaked at {} KiB RSS (limit {RSS_LIMIT_KIB} KiB)",
                m.rss_kib
            ));
        }
    }
}

fn scenario(r: &Run, size: u64, report: &mut Vec<String>) {
    let (a, b) = (r.n(0), r.n(1));
    let (fa, fb) = (a.p("big.img"), b.p("big.img"));
    write_random(&fa, size, 0x5eed);
    std::fs::copy(&fa, &fb).expect("copy to the peer");
    let mtime = 1_700_000_000;
    a.mtime("big.img", mtime);
    b.mtime("big.img", mtime);
    for n in [a, b] {
        let d = n.run(&["-cIr".into(), n.s("")]);
        assert!(d.code == Some(0), "{}: -cIr: {}", n.short(), d.status());
    }
    // 1: a few bytes flipped in place, size and mtime kept: same check text
    {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&fa)
            .expect("open");
        for off in [4096u64, size / 2 + 3, size - 10] {
            f.write_all_at(b"changed", off).expect("write");
        }
    }
    a.mtime("big.img", mtime);
    let file = a.s("big.img");
    let file = file.to_str().expect("utf-8 path");
    let d = a.run(&["-m".into(), file.into()]);
    assert!(d.code == Some(0), "-m: {}", d.status());
    push(r, "in place", &["-u"], report);
    if !same_content(&fa, &fb) {
        report.push("in place: the peer's file differs".into());
    }
    // 2: appended to (new size): the delta reuses the whole basis
    {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&fa)
            .expect("open");
        f.write_all(&vec![b'+'; 3 << 20]).expect("append");
    }
    push(r, "appended", &["-x"], report);
    if !same_content(&fa, &fb) {
        report.push("appended: the peer's file differs".into());
    }
}

fn run_mode(
    (slot, mode, transport, size): (u16, Mode, Transport, u64),
    certs: &[Cert],
    hs: &[Host],
) -> Vec<String> {
    let base = PathBuf::from(format!(
        "/tmp/c2net-{}-bigfile-{}{}",
        std::process::id(),
        mode.tag,
        transport.suffix()
    ));
    let _ = std::fs::remove_dir_all(&base);
    let _fs = Tmpfs::mount(&base, "csync2-bigfile", "8g");
    std::fs::create_dir_all(base.join("sync")).expect("create sync dir");
    let r = Run::with_transport(
        "bigfile",
        mode,
        transport,
        certs,
        hs,
        &[1],
        &base,
        port(Net::Bigfile, slot),
    );
    let mut report = Vec::new();
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        scenario(&r, size, &mut report)
    }));
    if let Err(e) = res {
        let text = e
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        report.push(format!("scenario panicked: {text}"));
    }
    report
        .into_iter()
        .map(|p| format!("{}: {p}", r.describe()))
        .collect()
}

/// ours → ours with 2 GiB; over TLS, ours → real (librsync applies our
/// windowed deltas) and real → ours with 768 MiB, which crosses as many
/// index windows (256 MiB of basis each) and costs less time.
#[test]
fn two_gib_file_in_flat_memory() {
    let hs = hosts("bigfile", Net::Bigfile, 2);
    let certs = host_certs(
        &PathBuf::from(format!("/tmp/c2net-{}-bigfile-certs", std::process::id())),
        Net::Bigfile,
        &hs,
    );
    let mut report = Vec::new();
    for run in [
        (0, MODE_D, Transport::Plain, 2 << 30),
        (1, MODE_D, Transport::Tls, 768 << 20),
        (2, MODE_C, Transport::Plain, 768 << 20),
        (3, MODE_B, Transport::Plain, 768 << 20),
    ] {
        report.extend(run_mode(run, &certs, &hs));
    }
    let _ = std::fs::remove_dir_all(format!("/tmp/c2net-{}-bigfile-certs", std::process::id()));
    assert!(report.is_empty(), "\n{}", report.join("\n"));
}
