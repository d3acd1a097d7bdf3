//! `-x` towards a csync2-rs peer sends changed files while the check is
//! still walking (src/update/stream.rs). The check is held in the middle of
//! its walk by a full `-W` pipe: files must reach the peer before it goes
//! on, and the run must end as any other (every file there, nothing dirty).
//! (Over TLS only once the peer's certificate is pinned.)
//!
//! Needs root; see `tests/net_interop.rs` for the environment variables.

mod common;
mod net;
mod netx;

use net::*;
use netx::*;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

const DIRS: usize = 300;

/// Files of node `i`'s private tree below the top directories.
fn files_on(r: &Run, i: usize) -> usize {
    (0..DIRS)
        .filter(|d| r.n(i).p(format!("d{d:03}/f")).exists())
        .count()
}

#[test]
fn files_reach_the_peer_during_the_check() {
    solo("stream", Net::Stream, 2, &[1], &[MODE_D], |r| {
        let a = r.n(0).clone();
        // a first sync pins the peer's certificate (TLS): the stream only
        // talks to peers it already knows
        a.file("first", "first\n", 0o644, T0);
        let o = r.push("first -x", args!["-x"]);
        r.expect_code(o, 0);
        for d in 0..DIRS {
            a.mkdir(format!("d{d:03}"), 0o755);
            a.file(format!("d{d:03}/f"), format!("file {d}\n"), 0o644, T0);
        }
        let server = r.start_server(1, "-iii");
        // a pipe of one page for -W: the check blocks writing directory
        // names into it until we read (300 names are far more than a page)
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills two descriptors we then own
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: fresh descriptors from pipe2
        let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: F_SETPIPE_SZ on our own pipe
        unsafe { libc::fcntl(wr.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
        let mut cmd = a.command(&["-x".into(), "-W".into(), "3".into()]);
        let w = wr.as_raw_fd();
        // SAFETY: only dup2 between fork and exec
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(w, 3) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn csync2 -x");
        drop(cmd);
        drop(wr);
        let end = Instant::now() + Duration::from_secs(20);
        let mut early = 0;
        common::poll_until(end, Duration::from_millis(20), || {
            early = files_on(r, 1);
            early > 0 || child.try_wait().ok().flatten().is_some()
        });
        let still_checking = child.try_wait().ok().flatten().is_none();
        r.expect(
            early > 0 && still_checking,
            format!(
                "files arrive while the check waits on -W ({early} there, client still running: {still_checking})"
            ),
        );
        let mut names = Vec::new();
        std::fs::File::from(rd)
            .read_to_end(&mut names)
            .expect("read -W");
        let out = child.wait_with_output().expect("wait csync2 -x");
        r.expect(
            out.status.code() == Some(0),
            format!(
                "-x exits 0: {:?}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ),
        );
        let d = r.finish_server(1, server);
        r.expect(d.code == Some(0), format!("server: {}", d.status()));
        r.expect(
            names.split(|&b| b == 0).filter(|n| !n.is_empty()).count() > DIRS,
            "-W listed every directory",
        );
        r.expect(files_on(r, 1) == DIRS, "every file is on the peer");
        for d in [0, DIRS / 2, DIRS - 1] {
            let rel = format!("d{d:03}/f");
            let got = std::fs::read(r.n(1).p(&rel)).unwrap_or_default();
            r.expect(
                got == format!("file {d}\n").as_bytes(),
                format!("{rel} arrived whole"),
            );
        }
        let m = r.n(0).run(&["-M".into()]);
        r.expect(
            m.stdout_lines().is_empty(),
            format!("nothing stays dirty: {:?}", m.stdout_lines()),
        );
        r.recheck_clean();
    });
}
