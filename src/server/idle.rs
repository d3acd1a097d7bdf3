//! The server's idle timeout: a session whose peer sends nothing (or
//! reads nothing) for `CSYNC2_IDLE_TIMEOUT` seconds ends.

use crate::protocol::conn::Stream;

/// Seconds a session may wait for its peer (reading or writing) before it
/// gives up: `CSYNC2_IDLE_TIMEOUT`, 0 for never; 600 by default. The real
/// server waits forever, so a vanished peer keeps a process (and perhaps
/// the database) forever.
pub fn idle_timeout() -> u64 {
    std::env::var("CSYNC2_IDLE_TIMEOUT")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(600)
}

/// SO_RCVTIMEO/SO_SNDTIMEO on a socket (nothing for pipes and files).
pub(super) fn set_idle_timeout(fd: std::os::unix::io::RawFd) {
    let secs = idle_timeout();
    let tv = libc::timeval {
        tv_sec: secs.min(i32::MAX as u64) as libc::time_t,
        tv_usec: 0,
    };
    for opt in [libc::SO_RCVTIMEO, libc::SO_SNDTIMEO] {
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            );
        }
    }
}

/// A stream that stays failed once the idle timeout ran out: every later
/// read or write fails at once instead of waiting the timeout again (the
/// session still tries to skip a blob or send a reply after the first).
pub(super) struct Idle {
    pub(super) inner: Box<dyn Stream>,
    pub(super) gone: bool,
}

impl Idle {
    fn check<T>(&mut self, r: std::io::Result<T>) -> std::io::Result<T> {
        if let Err(e) = &r
            && timed_out(e)
        {
            self.gone = true;
        }
        r
    }
    fn gone(&self) -> std::io::Result<()> {
        if self.gone {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        Ok(())
    }
}

impl std::io::Read for Idle {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.gone()?;
        let r = self.inner.read(buf);
        self.check(r)
    }
}

impl std::io::Write for Idle {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.gone()?;
        let r = self.inner.write(buf);
        self.check(r)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.gone()?;
        let r = self.inner.flush();
        self.check(r)
    }
}

/// Whether an error is the idle timeout running out.
pub use crate::protocol::conn::is_timeout as timed_out;

#[cfg(test)]
mod tests {
    #[test]
    fn idle_timeout_default_and_override() {
        // SAFETY: no other test of this binary reads the variable
        unsafe { std::env::remove_var("CSYNC2_IDLE_TIMEOUT") };
        assert_eq!(super::idle_timeout(), 600);
        unsafe { std::env::set_var("CSYNC2_IDLE_TIMEOUT", " 7 ") };
        assert_eq!(super::idle_timeout(), 7);
        unsafe { std::env::remove_var("CSYNC2_IDLE_TIMEOUT") };
    }
}
