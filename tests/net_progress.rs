//! The progress line of `-x` (our addition): shown on a terminal (stderr is
//! a pty here), never in a pipe, and never with `-v`.
//!
//! Needs root; see `tests/net_interop.rs` for the environment variables.

mod common;
mod net;
mod netx;

use net::*;
use netx::*;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::Stdio;

const FILES: usize = 40;

/// Runs `-x ARGS` on node 0 against node 1's `-iii` server with stderr on
/// a pseudo-terminal; returns (exit code, everything written to it).
fn push_on_pty(r: &mut Run, args: &[&str]) -> (Option<i32>, String) {
    let mut master = -1;
    let mut slave = -1;
    // SAFETY: openpty fills two descriptors we then own
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: fresh descriptors from openpty
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let server = r.start_server(1, "-iii");
    let mut full: Vec<std::ffi::OsString> = vec!["-x".into()];
    full.extend(args.iter().map(Into::into));
    let mut cmd = r.n(0).command(&full);
    cmd.stderr(Stdio::from(slave)).stdout(Stdio::null());
    let mut child = cmd.spawn().expect("spawn csync2");
    // our copy of the slave went into the Command and is closed with it
    drop(cmd);
    let reader = std::thread::spawn(move || {
        let mut f = std::fs::File::from(master);
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        // EIO once the child (the last holder of the slave) is gone
        while let Ok(n) = f.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        out
    });
    let status = child.wait().expect("wait csync2");
    let out = reader.join().unwrap_or_default();
    let d = r.finish_server(1, server);
    r.note(format!("server: {}", d.status()));
    (status.code(), String::from_utf8_lossy(&out).into_owned())
}

#[test]
fn progress_line_only_on_a_terminal() {
    solo("progress", Net::Progress, 2, &[1], &[MODE_C, MODE_D], |r| {
        let a = r.n(0).clone();
        a.mkdir("d", 0o755);
        for i in 0..FILES {
            a.file(format!("d/f{i:02}"), format!("file {i}\n"), 0o644, T0);
        }
        let peer = r.n(1).name.clone();
        // the tree root, d and the files
        let total = FILES + 2;
        let (code, tty) = push_on_pty(r, &[]);
        r.expect(code == Some(0), format!("-x on a terminal: exit {code:?}"));
        let want = format!("csync2: {peer}: {total}/{total} files, ");
        r.expect(
            tty.contains(&want),
            format!("the terminal shows `{want}…`: {tty:?}"),
        );
        r.expect(
            tty.ends_with("\r\x1b[K"),
            format!("the progress line is removed at the end: {tty:?}"),
        );
        // in a pipe (the harness's normal runs): no progress line
        a.file("d/f00", "changed\n", 0o644, T0 + 5);
        let server = r.start_server(1, "-iii");
        let c = r.n(0).run(&["-x".into()]);
        r.finish_server(1, server);
        r.expect(c.code == Some(0), format!("-x in a pipe: {}", c.status()));
        let err = common::show(&c.stderr);
        r.expect(
            !err.contains(" files, ") && !err.contains('\r'),
            format!("no progress line in a pipe: {err:?}"),
        );
        // with -v: messages instead of the line
        a.file("d/f01", "changed\n", 0o644, T0 + 6);
        let (code, tty) = push_on_pty(r, &["-v"]);
        r.expect(code == Some(0), format!("-x -v: exit {code:?}"));
        r.expect(
            !tty.contains(" files, ") && tty.contains("Updating"),
            format!("-v shows messages, no progress line: {tty:?}"),
        );
    });
}
