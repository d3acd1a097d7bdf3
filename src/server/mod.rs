//! The server: `-i` (one session on stdin/stdout, as inetd or systemd
//! socket activation start it), `-ii` (listen, one forked process per
//! connection, as the real daemon) and `-iii` (one connection, then exit)
//! (cli.md §10, protocol.md §1.1–§1.3).

mod extension;
pub use extension::{OK_PIPELINING, content_digest};
pub mod session;

use crate::cli::Options;
use crate::protocol;
use crate::protocol::conn::{Conn, ConnError, SERVER_LINE_MAX, Stream};
use crate::{app, log, msg};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::unix::io::FromRawFd;

/// The other end of a session.
pub struct Peer {
    /// None: unknown (a pipe without SSH_CLIENT)
    pub addr: Option<IpAddr>,
    /// the client's certificate (DER) on a TLS session
    pub cert: Option<Vec<u8>>,
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

impl Peer {
    /// HELLO: a forward lookup of `name` must give the source address.
    pub fn resolves_to(&self, name: &[u8]) -> bool {
        let Some(addr) = self.addr else { return false };
        let Ok(name) = std::str::from_utf8(name) else {
            return false;
        };
        let addr = canonical(addr);
        match (name, 0u16).to_socket_addrs() {
            Ok(addrs) => addrs.into_iter().any(|a| canonical(a.ip()) == addr),
            Err(_) => false,
        }
    }
}

/// stdin/stdout as one stream (inetd mode); the fds stay open afterwards.
struct Stdio {
    input: std::mem::ManuallyDrop<std::fs::File>,
    output: std::mem::ManuallyDrop<std::fs::File>,
}

impl Read for Stdio {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for Stdio {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.output.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.output.flush()
    }
}

fn stdin_peer() -> Peer {
    // a socket: its peer address; a pipe: SSH_CLIENT's first field
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let r =
        unsafe { libc::getpeername(0, (&mut ss as *mut libc::sockaddr_storage).cast(), &mut len) };
    if r == 0 {
        let addr = match ss.ss_family as i32 {
            libc::AF_INET => {
                let sin: &libc::sockaddr_in =
                    unsafe { &*(&ss as *const _ as *const libc::sockaddr_in) };
                Some(IpAddr::from(
                    u32::from_be(sin.sin_addr.s_addr).to_be_bytes(),
                ))
            }
            libc::AF_INET6 => {
                let sin6: &libc::sockaddr_in6 =
                    unsafe { &*(&ss as *const _ as *const libc::sockaddr_in6) };
                Some(IpAddr::from(sin6.sin6_addr.s6_addr))
            }
            _ => None,
        };
        return Peer { addr, cert: None };
    }
    let addr = std::env::var("SSH_CLIENT")
        .ok()
        .and_then(|v| v.split(' ').next().and_then(|a| a.parse().ok()));
    Peer { addr, cert: None }
}

/// `-i`: one session on stdin/stdout.
pub fn run_inetd(o: &Options, myname: &[u8]) -> i32 {
    let peer = stdin_peer();
    let stream = Stdio {
        input: std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(0) }),
        output: std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(1) }),
    };
    serve(o, myname, Box::new(stream), &peer, Some(0))
}

fn bind(o: &Options, myname: &[u8], port: &str) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let addrs: Vec<SocketAddr> = match &o.hostname {
        Some(n) => (String::from_utf8_lossy(n).as_ref(), port_number(port)?)
            .to_socket_addrs()?
            .collect(),
        None => vec![
            SocketAddr::from(([0u16; 8], port_number(port)?)),
            SocketAddr::from(([0u8; 4], port_number(port)?)),
        ],
    };
    let mut last = std::io::Error::from_raw_os_error(libc::EADDRNOTAVAIL);
    for a in addrs {
        let sock = Socket::new(Domain::for_address(a), Type::STREAM, None)?;
        sock.set_reuse_address(true)?;
        if a.is_ipv6() {
            let _ = sock.set_only_v6(false);
        }
        match sock.bind(&a.into()).and_then(|_| sock.listen(128)) {
            Ok(()) => {
                if o.hostname.is_some() {
                    log::debug(1, msg!("Listening on ", a.to_string(), " as ", myname, "."));
                }
                return Ok(sock.into());
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// The port as a number (a service name is looked up in /etc/services).
pub fn port_number(port: &str) -> std::io::Result<u16> {
    if let Ok(n) = port.parse() {
        return Ok(n);
    }
    let name = std::ffi::CString::new(port).unwrap_or_default();
    let proto = c"tcp";
    let ent = unsafe { libc::getservbyname(name.as_ptr(), proto.as_ptr()) };
    if ent.is_null() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("unknown port '{port}'"),
        ));
    }
    Ok(u16::from_be(unsafe { (*ent).s_port } as u16))
}

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
fn set_idle_timeout(fd: std::os::unix::io::RawFd) {
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
struct Idle {
    inner: Box<dyn Stream>,
    gone: bool,
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
pub fn timed_out(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// `-ii` (fork per connection) and `-iii` (one connection).
pub fn run_standalone(o: &Options, myname: &[u8], once: bool) -> i32 {
    let port = o.port();
    let listener = match bind(o, myname, &port) {
        Ok(l) => l,
        Err(e) => {
            log::debug(0, format!("Server error: {}", log::strerror(&e)));
            return 1;
        }
    };
    println!("Csync2 daemon running. Waiting for connections.");
    let _ = std::io::stdout().flush();
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    if !once {
        unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
    }
    loop {
        let (stream, addr) = match listener.accept() {
            Ok(x) => x,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                log::debug(0, format!("Server error: {}", log::strerror(&e)));
                return 1;
            }
        };
        if once {
            drop(listener);
            return connection(o, myname, stream, addr);
        }
        match unsafe { libc::fork() } {
            0 => {
                drop(listener);
                unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };
                std::process::exit(connection(o, myname, stream, addr));
            }
            -1 => log::debug(
                0,
                format!(
                    "Server error: {}",
                    log::strerror(&std::io::Error::last_os_error())
                ),
            ),
            _ => drop(stream),
        }
    }
}

fn connection(o: &Options, myname: &[u8], stream: TcpStream, addr: SocketAddr) -> i32 {
    log::set_pid_prefix(true);
    let _ = stream.set_nodelay(true);
    log::debug(1, format!("New connection from {addr}."));
    let peer = Peer {
        addr: Some(addr.ip()),
        cert: None,
    };
    let fd = std::os::unix::io::AsRawFd::as_raw_fd(&stream);
    serve(o, myname, Box::new(stream), &peer, Some(fd))
}

/// The pre-session phase (SSL, CONFIG), then the session. Returns the exit
/// code of the serving process.
/// `fd`: the descriptor requests arrive on (to see whether more are
/// waiting).
fn serve(
    o: &Options,
    myname: &[u8],
    stream: Box<dyn Stream>,
    peer: &Peer,
    fd: Option<std::os::unix::io::RawFd>,
) -> i32 {
    if let Some(fd) = fd {
        set_idle_timeout(fd);
        if fd == 0 {
            set_idle_timeout(1);
        }
    }
    let mut conn = Conn::new(Box::new(Idle {
        inner: stream,
        gone: false,
    }));
    conn.set_input_fd(fd);
    let mut tls = false;
    let mut peer_cert = None;
    let mut toks = match first_line(&mut conn) {
        Ok(Some(t)) => t,
        Ok(None) => return 0,
        Err(code) => return code,
    };
    if upper_word(&toks) == b"SSL" {
        if conn.send_line(protocol::OK_ACTIVATING_SSL).is_err() {
            return 0;
        }
        let identity = match crate::tls::load_identity(&app::system_dir()) {
            Ok(i) => i,
            Err(m) => {
                log::debug(0, m.as_bytes());
                return 1;
            }
        };
        let est = match crate::tls::accept(conn.into_stream(), identity) {
            Ok(e) => e,
            Err(m) => {
                log::debug(0, format!("SSL: handshake failed: {m}"));
                return 1;
            }
        };
        conn = Conn::new(est.stream);
        conn.set_input_fd(fd);
        tls = true;
        peer_cert = Some(est.peer_cert);
        toks = match first_line(&mut conn) {
            Ok(Some(t)) => t,
            Ok(None) => return 0,
            Err(code) => return code,
        };
    }
    if upper_word(&toks) != b"CONFIG" {
        let _ = conn.send_line(protocol::ERR_PRE_SESSION);
        return 0;
    }
    let cfgname = toks
        .get(1)
        .cloned()
        .unwrap_or_else(|| o.cfgname.clone().unwrap_or_default());
    if !cfgname
        .iter()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        let _ = conn.send_line(protocol::ERR_CONFIG_NAME);
        return 0;
    }
    let sysdir = app::system_dir();
    let Ok((mut cfg, mut db)) = app::load(o, myname, &sysdir, &cfgname) else {
        return 1;
    };
    if conn.send_line(protocol::OK_FINISHED).is_err() {
        return 0;
    }
    let peer = Peer {
        addr: peer.addr,
        cert: peer_cert,
    };
    let end = session::Session::new(&mut cfg, &mut db, &mut conn, &peer, tls).run();
    drop(conn);
    let code = match end {
        session::End::Normal => 0,
        session::End::Fatal => 1,
    };
    let done = crate::action::run_pending(&mut db).and_then(|_| db.commit().map_err(Into::into));
    if let Err(f) = done {
        log::debug(0, &f.0);
        return 1;
    }
    code
}

/// The first pre-session line: its command word raw (the real server does
/// not URL-decode it before CONFIG) and its decoded argument. A blank line
/// gives an empty word. Ok(None): EOF; Err: the exit code of a fatal error.
fn first_line(conn: &mut Conn) -> Result<Option<Vec<Vec<u8>>>, i32> {
    match conn.read_request_line(SERVER_LINE_MAX) {
        Ok(Some(l)) => {
            let raw: Vec<&[u8]> = l
                .split(|&b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
                .filter(|t| !t.is_empty())
                .collect();
            let mut toks = vec![raw.first().map(|w| w.to_vec()).unwrap_or_default()];
            if let Some(arg) = raw.get(1) {
                toks.push(crate::urlenc::decode(arg));
            }
            Ok(Some(toks))
        }
        Ok(None) => Ok(None),
        Err(ConnError::TooLong) => {
            log::debug(
                0,
                "Received line too long for buffer size (16384), giving up.",
            );
            Err(1)
        }
        Err(_) => Ok(None),
    }
}

fn upper_word(toks: &[Vec<u8>]) -> Vec<u8> {
    toks.first()
        .map(|t| t.to_ascii_uppercase())
        .unwrap_or_default()
}

#[cfg(test)]
mod idle_tests {
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
