//! A buffered protocol connection over any byte stream: lines, status
//! lines and `octet-stream` blobs (protocol.md §1.4, §1.7).

use std::io::{self, BufRead, BufReader, Read, Write};

/// Anything a session runs over: TCP, stdin/stdout, TLS.
pub trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// The server's line limit: 16384 bytes including LF and NUL, so at most
/// 16382 bytes before the LF.
pub const SERVER_LINE_MAX: usize = 16382;

#[derive(Debug)]
pub enum ConnError {
    Io(io::Error),
    /// the peer closed the connection
    Closed,
    /// a line longer than the limit
    TooLong,
    /// EOF inside a line (the bytes read)
    Partial(Vec<u8>),
    /// something else where an `octet-stream` header belongs
    Format,
}

/// Whether an I/O error is a socket timeout running out (SO_RCVTIMEO,
/// SO_SNDTIMEO, a connect timeout): the client's `--timeout` and the
/// server's idle timeout alike.
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

impl ConnError {
    /// The peer sent (or took) nothing for the socket's whole timeout.
    pub fn is_timeout(&self) -> bool {
        matches!(self, ConnError::Io(e) if is_timeout(e))
    }
}

impl From<io::Error> for ConnError {
    fn from(e: io::Error) -> ConnError {
        ConnError::Io(e)
    }
}

pub type Result<T> = std::result::Result<T, ConnError>;

pub struct Conn {
    inner: BufReader<Box<dyn Stream>>,
    /// output not yet written to the stream
    out: Vec<u8>,
    /// corked: `flush` keeps the output until `uncork_flush` (a pipelining
    /// server answers a batch at once, after making it durable)
    corked: bool,
    /// the descriptor input arrives on, if known
    input_fd: Option<std::os::unix::io::RawFd>,
    /// `-vvv` trace prefix: "Local" / "Peer"
    trace: bool,
}

/// Output kept while corked before it is written anyway.
pub const CORK_LIMIT: usize = 1 << 20;

/// The real trace's escaping: `\n`, `\r`, other control bytes as `\ooo`,
/// and bytes from 0x80 as the octal of a sign-extended C char.
fn trace_text(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    for &c in b {
        match c {
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            0..0x20 | 0x7f => out.extend_from_slice(format!("\\{c:03o}").as_bytes()),
            0x80.. => out.extend_from_slice(format!("\\{:o}", c as i8 as i32 as u32).as_bytes()),
            _ => out.push(c),
        }
    }
    out
}

impl Conn {
    pub fn new(stream: Box<dyn Stream>) -> Conn {
        Conn {
            inner: BufReader::with_capacity(64 * 1024, stream),
            out: Vec::new(),
            corked: false,
            input_fd: None,
            trace: crate::log::enabled(3),
        }
    }

    /// Gives the stream back (for the TLS upgrade). Buffered bytes would be
    /// lost, so this is only valid right after a reply to `SSL`.
    pub fn into_stream(mut self) -> Box<dyn Stream> {
        let _ = self.write_out();
        self.inner.into_inner()
    }

    pub fn set_corked(&mut self, on: bool) {
        self.corked = on;
    }

    /// Output kept back by the cork.
    pub fn pending_out(&self) -> usize {
        self.out.len()
    }

    /// Writes everything kept back, corked or not.
    pub fn uncork_flush(&mut self) -> Result<()> {
        self.write_out()?;
        self.inner.get_mut().flush()?;
        Ok(())
    }

    /// Never wait for the peer with our own request unsent.
    fn flush_before_read(&mut self) -> Result<()> {
        if !self.corked && !self.out.is_empty() && self.inner.buffer().is_empty() {
            self.uncork_flush()?;
        }
        Ok(())
    }

    fn write_out(&mut self) -> Result<()> {
        if !self.out.is_empty() {
            let r = self.inner.get_mut().write_all(&self.out);
            self.out.clear();
            r?;
        }
        Ok(())
    }

    /// A whole request line is already read ahead.
    pub fn has_buffered_line(&self) -> bool {
        self.inner.buffer().contains(&b'\n')
    }

    pub fn set_input_fd(&mut self, fd: Option<std::os::unix::io::RawFd>) {
        self.input_fd = fd;
    }

    /// Input already read ahead (the peer sent more than one request), or
    /// waiting on the descriptor: a TLS stream hands over one record at a
    /// time, so the buffer alone says little.
    pub fn has_buffered(&self) -> bool {
        if !self.inner.buffer().is_empty() {
            return true;
        }
        let Some(fd) = self.input_fd else {
            return false;
        };
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // readable also at EOF: the next read returns at once either way
        unsafe { libc::poll(&mut p, 1, 0) > 0 && p.revents & libc::POLLIN != 0 }
    }

    fn trace_out(&self, data: &[u8]) {
        if self.trace {
            crate::log::raw_stderr(&crate::msg!("Local> ", trace_text(data)));
        }
    }

    fn trace_in(&self, data: &[u8]) {
        if self.trace {
            crate::log::raw_stderr(&crate::msg!("Peer> ", trace_text(data)));
        }
    }

    /// Buffers output; `flush` (or `send`) writes it.
    pub fn write_all(&mut self, data: &[u8]) -> Result<()> {
        self.trace_out(data);
        self.out.extend_from_slice(data);
        if !self.corked && self.out.len() >= 256 * 1024 {
            self.write_out()?;
        }
        Ok(())
    }

    /// Writes the buffered output (kept while corked, up to CORK_LIMIT).
    pub fn flush(&mut self) -> Result<()> {
        if self.corked && self.out.len() < CORK_LIMIT {
            return Ok(());
        }
        self.uncork_flush()
    }

    /// Writes and flushes one line (adds the LF).
    pub fn send_line(&mut self, line: &str) -> Result<()> {
        let mut v = Vec::with_capacity(line.len() + 1);
        v.extend_from_slice(line.as_bytes());
        v.push(b'\n');
        self.write_all(&v)?;
        self.flush()
    }

    /// Writes and flushes an already terminated command.
    pub fn send(&mut self, data: &[u8]) -> Result<()> {
        self.write_all(data)?;
        self.flush()
    }

    /// A request line as the real server reads it: at most `max` bytes
    /// before the LF; EOF inside a line of two or more bytes is fatal like an
    /// overlong line, a single byte before EOF still counts as a line.
    pub fn read_request_line(&mut self, max: usize) -> Result<Option<Vec<u8>>> {
        match self.read_line_opt(max) {
            Err(ConnError::Partial(l)) if l.len() == 1 => Ok(Some(l)),
            Err(ConnError::Partial(_)) => Err(ConnError::TooLong),
            other => other,
        }
    }

    /// Reads one line without its LF (at most `max` bytes before the LF).
    /// None: EOF before any byte.
    pub fn read_line_opt(&mut self, max: usize) -> Result<Option<Vec<u8>>> {
        self.flush_before_read()?;
        let mut line = Vec::new();
        loop {
            let buf = match self.inner.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            if buf.is_empty() {
                if line.is_empty() {
                    return Ok(None);
                }
                // EOF inside a line
                return Err(ConnError::Partial(line));
            }
            let (take, done) = match buf.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            line.extend_from_slice(&buf[..take]);
            self.inner.consume(take);
            let payload = if done { line.len() - 1 } else { line.len() };
            if payload > max {
                return Err(ConnError::TooLong);
            }
            if done {
                line.pop();
                self.trace_in(&crate::msg!(line, "\n"));
                return Ok(Some(line));
            }
        }
    }

    pub fn read_line(&mut self, max: usize) -> Result<Vec<u8>> {
        match self.read_line_opt(max) {
            Ok(Some(l)) => Ok(l),
            Ok(None) | Err(ConnError::Partial(_)) => Err(ConnError::Closed),
            Err(e) => Err(e),
        }
    }

    /// A status line; empty lines are skipped (protocol.md Q17).
    pub fn read_status(&mut self) -> Result<Vec<u8>> {
        loop {
            let l = self.read_line(4095)?;
            if !l.is_empty() {
                return Ok(l);
            }
        }
    }

    pub fn read_exact(&mut self, buf: &mut [u8]) -> Result<()> {
        self.flush_before_read()?;
        self.inner.read_exact(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                ConnError::Closed
            } else {
                ConnError::Io(e)
            }
        })
    }

    /// Reads an `octet-stream N` header: Some(N), or None for `-1` /
    /// `ERROR`.
    pub fn read_blob_header(&mut self) -> Result<Option<u64>> {
        let header = self.read_line(99)?;
        if header == b"ERROR" {
            return Ok(None);
        }
        let n = header
            .strip_prefix(b"octet-stream ")
            .and_then(|n| std::str::from_utf8(n).ok())
            .and_then(|n| n.trim().parse::<i64>().ok())
            .ok_or(ConnError::Format)?;
        Ok(u64::try_from(n).ok())
    }

    /// The next `n` bytes of the stream (a blob's body).
    pub fn blob_reader(&mut self, n: u64) -> io::Take<&mut BufReader<Box<dyn Stream>>> {
        (&mut self.inner).take(n)
    }

    /// Reads an `octet-stream N` blob through `f`, which gets the body's
    /// reader and N and must consume all N bytes. Ok(None) for `-1` /
    /// `ERROR`.
    pub fn read_blob_with<T>(
        &mut self,
        f: impl FnOnce(&mut dyn Read, u64) -> io::Result<T>,
    ) -> Result<Option<T>> {
        let Some(n) = self.read_blob_header()? else {
            return Ok(None);
        };
        let mut body = self.blob_reader(n);
        let v = f(&mut body, n).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                ConnError::Closed
            } else {
                ConnError::Io(e)
            }
        })?;
        if body.limit() != 0 {
            return Err(ConnError::Format);
        }
        Ok(Some(v))
    }

    /// Sends `octet-stream N` and N bytes read from `r`.
    pub fn send_blob_from(&mut self, r: &mut impl Read, n: u64) -> Result<()> {
        self.write_blob_from(r, n)?;
        self.flush()
    }

    /// `send_blob_from` without the final flush (pipelined requests).
    pub fn write_blob_from(&mut self, r: &mut impl Read, n: u64) -> Result<()> {
        self.write_all(format!("octet-stream {n}\n").as_bytes())?;
        let copied = if n <= 64 * 1024 && !self.corked {
            // small bodies join the buffered output: one write for many files
            let before = self.out.len();
            r.take(n).read_to_end(&mut self.out)?;
            let copied = (self.out.len() - before) as u64;
            if self.out.len() >= 256 * 1024 {
                self.write_out()?;
            }
            copied
        } else {
            self.write_out()?;
            io::copy(&mut r.take(n), self.inner.get_mut())?
        };
        if copied != n {
            return Err(ConnError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the data to send got shorter",
            )));
        }
        Ok(())
    }

    /// Sends everything `r` yields, unframed (TYPE).
    pub fn send_stream(&mut self, r: &mut impl Read) -> Result<()> {
        self.write_out()?;
        io::copy(r, self.inner.get_mut())?;
        Ok(())
    }

    /// Sends `octet-stream N` and the bytes.
    pub fn send_blob(&mut self, data: &[u8]) -> Result<()> {
        self.write_all(format!("octet-stream {}\n", data.len()).as_bytes())?;
        self.out.extend_from_slice(data);
        self.flush()
    }

    /// Sends `octet-stream -1` (no data).
    pub fn send_blob_error(&mut self) -> Result<()> {
        self.write_all(b"octet-stream -1\n")?;
        self.flush()
    }

    /// Reads everything until EOF (TYPE).
    pub fn read_to_end(&mut self, out: &mut impl Write) -> Result<()> {
        io::copy(&mut self.inner, out)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn trace_escapes_like_the_real_one() {
        assert_eq!(
            super::trace_text(b"A \n\r\t\xc3"),
            b"A \\n\\r\\011\\37777777703".to_vec()
        );
    }
}
