//! The server: `-i` (one session on stdin/stdout, as inetd or systemd
//! socket activation start it), `-ii` (listen, one forked process per
//! connection, as the real daemon) and `-iii` (one connection, then exit)
//! (cli.md §10, protocol.md §1.1–§1.3). This file is the accept loop and
//! the pre-session phase (SSL, CONFIG); `session` reads requests, admits
//! them and hands each to its command family in `cmd/`; `write` holds the
//! file-writing steps the commands share.

mod cmd;
mod idle;
mod peer;
pub mod session;
mod write;

pub use idle::{idle_timeout, timed_out};
pub use peer::Peer;

use crate::protocol;
use crate::protocol::conn::{Conn, ConnError, SERVER_LINE_MAX, Stream};
use crate::setup::{self, Host, LoadOptions};
use crate::{log, msg};
use idle::{Idle, set_idle_timeout};
use peer::{Stdio, stdin_peer};
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::unix::io::FromRawFd;

/// A granted catch-up: push to `peer` over `conn`, as a client would.
pub struct CatchUpPush<'a> {
    pub cfg: &'a crate::config::Config,
    pub conn: Conn,
    pub peer: &'a [u8],
    /// compare everything first (`--catch-up --full`)
    pub full: bool,
    pub options: &'a ServerOptions,
}

/// What a server does with a granted catch-up (the client side's update,
/// which the server does not depend on); the exit code of the process.
pub type CatchUpFn = fn(CatchUpPush, &mut crate::db::Db) -> i32;

/// What a server process needs from the command line.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub host: Host,
    /// `-N` as given: the listener binds to this name's address
    pub bind: Option<Vec<u8>>,
    /// `-p`
    pub port: String,
    /// `-C`: the config when CONFIG names none
    pub cfgname: Vec<u8>,
    pub load: LoadOptions,
    /// how to push for a granted X-CATCHUP (None: answer, then close)
    pub catch_up: Option<CatchUpFn>,
}

/// `-i`: one session on stdin/stdout.
pub fn run_inetd(o: &ServerOptions) -> i32 {
    let peer = stdin_peer();
    let stream = Stdio {
        input: std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(0) }),
        output: std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(1) }),
    };
    serve(o, Box::new(stream), &peer, Some(0))
}

fn bind(o: &ServerOptions, port: &str) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let addrs: Vec<SocketAddr> = match &o.bind {
        Some(n) => (
            String::from_utf8_lossy(n).as_ref(),
            setup::port_number(port)?,
        )
            .to_socket_addrs()?
            .collect(),
        None => vec![
            SocketAddr::from(([0u16; 8], setup::port_number(port)?)),
            SocketAddr::from(([0u8; 4], setup::port_number(port)?)),
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
                if o.bind.is_some() {
                    log::debug(
                        1,
                        msg!("Listening on ", a.to_string(), " as ", o.host.myname, "."),
                    );
                }
                return Ok(sock.into());
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// `-ii` (fork per connection) and `-iii` (one connection).
pub fn run_standalone(o: &ServerOptions, once: bool) -> i32 {
    let listener = match bind(o, &o.port) {
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
            return connection(o, stream, addr);
        }
        match unsafe { libc::fork() } {
            0 => {
                drop(listener);
                unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };
                std::process::exit(connection(o, stream, addr));
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

fn connection(o: &ServerOptions, stream: TcpStream, addr: SocketAddr) -> i32 {
    log::set_pid_prefix(true);
    let _ = stream.set_nodelay(true);
    log::debug(1, format!("New connection from {addr}."));
    let peer = Peer {
        addr: Some(addr.ip()),
        cert: None,
    };
    let fd = std::os::unix::io::AsRawFd::as_raw_fd(&stream);
    serve(o, Box::new(stream), &peer, Some(fd))
}

/// The pre-session phase (SSL, CONFIG), then the session. Returns the exit
/// code of the serving process.
/// `fd`: the descriptor requests arrive on (to see whether more are
/// waiting).
fn serve(
    o: &ServerOptions,
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
        let identity = match crate::tls::load_identity(&o.host.sysdir) {
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
    let cfgname = toks.get(1).cloned().unwrap_or_else(|| o.cfgname.clone());
    if !setup::valid_config_name(&cfgname) {
        let _ = conn.send_line(protocol::ERR_CONFIG_NAME);
        return 0;
    }
    let Ok((mut cfg, mut db)) = setup::load(&o.host, &o.load, &cfgname) else {
        return 1;
    };
    if conn.send_line(protocol::OK_FINISHED).is_err() {
        return 0;
    }
    let peer = Peer {
        addr: peer.addr,
        cert: peer_cert,
    };
    let mut session = session::Session::new(&mut cfg, &mut db, &mut conn, &peer, tls);
    let end = session.run();
    let asker = session.peer_name().to_vec();
    drop(session);
    let code = match end {
        session::End::Normal => 0,
        session::End::Fatal => 1,
        session::End::CatchUp { full } => {
            // the groups the request may see stay selected in `cfg`
            conn.set_corked(false);
            let push = CatchUpPush {
                cfg: &cfg,
                conn,
                peer: &asker,
                full,
                options: o,
            };
            match o.catch_up {
                Some(push_back) => push_back(push, &mut db),
                None => 1,
            }
        }
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
