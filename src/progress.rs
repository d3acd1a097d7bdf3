//! The progress line of `-u`/`-x` (our addition): files and bytes done of
//! the total, per peer, redrawn in place on stderr. Only when stderr is a
//! terminal, without `-l` and without `-v` (the messages of `-v` would
//! scroll it away); never in a pipe, so scripts see the real program's
//! output.

use crate::log;
use std::time::{Duration, Instant};

const REDRAW: Duration = Duration::from_millis(100);

pub struct Progress {
    peer: Vec<u8>,
    files_total: usize,
    bytes_total: u64,
    files: usize,
    bytes: u64,
    drawn: Option<Instant>,
    on: bool,
}

/// What a file adds to the byte count: the size of a regular file.
pub fn file_bytes(st: &crate::fsutil::Stat) -> u64 {
    if st.is_file() {
        st.size.max(0) as u64
    } else {
        0
    }
}

/// Bytes as a short human number (KiB, MiB, GiB).
pub fn human(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

impl Progress {
    pub fn new(peer: &[u8], files_total: usize, bytes_total: u64) -> Progress {
        Progress {
            peer: peer.to_vec(),
            files_total,
            bytes_total,
            files: 0,
            bytes: 0,
            drawn: None,
            on: log::progress_wanted(),
        }
    }

    pub fn text(&self) -> Vec<u8> {
        crate::msg!(
            "csync2: ",
            self.peer,
            ": ",
            format!(
                "{}/{} files, {} of {}",
                self.files,
                self.files_total,
                human(self.bytes),
                human(self.bytes_total)
            )
        )
    }

    /// `files` more files done, `bytes` of them in regular files.
    pub fn done(&mut self, files: usize, bytes: u64) {
        if files == 0 {
            return;
        }
        self.files += files;
        self.bytes += bytes;
        if !self.on {
            return;
        }
        let now = Instant::now();
        let last = self.files >= self.files_total;
        if last || self.drawn.is_none_or(|t| now.duration_since(t) >= REDRAW) {
            self.drawn = Some(now);
            log::progress(Some(&self.text()));
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if self.on && self.drawn.is_some() {
            log::progress(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_units() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1023), "1023 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(3 << 30), "3.0 GiB");
        let mut p = Progress::new(b"peer", 3, 4096);
        p.done(1, 2048);
        assert_eq!(p.text(), b"csync2: peer: 1/3 files, 2.0 KiB of 4.0 KiB");
    }
}
