//! Opening a session to a peer (protocol.md §1.1, §1.3): connect (bound to
//! the `-N` address), CONFIG, GROUP, and lazy HELLO.

use crate::config::Config;
use crate::fnmatch::{Flags, fnmatch};
use crate::protocol::conn::{Conn, ConnError};
use crate::protocol::{self, Request};
use crate::{log, msg};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};

pub struct ClientOptions<'a> {
    /// where this host's key and certificate are
    pub sysdir: &'a [u8],
    /// `-N`: bind outgoing sockets to this name's address
    pub bind_name: Option<&'a [u8]>,
    pub port: String,
    pub cfgname: &'a [u8],
    /// `-G`
    pub groups: Option<&'a [u8]>,
    /// how long the peer may send nothing (connecting included); None:
    /// forever
    pub timeout: Option<std::time::Duration>,
}

/// Plain text towards `peer` when a `nossl FROM TO;` rule allows it.
pub fn plain_allowed(cfg: &Config, peer: &[u8]) -> bool {
    cfg.nossl.iter().any(|(from, to)| {
        fnmatch(from, &cfg.myhostname, Flags::NONE) && fnmatch(to, peer, Flags::NONE)
    })
}

fn connect_tcp(peer: &[u8], opts: &ClientOptions) -> Option<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let port = crate::setup::port_number(&opts.port).ok()?;
    let name = String::from_utf8_lossy(peer).into_owned();
    let addrs: Vec<SocketAddr> = match (name.as_str(), port).to_socket_addrs() {
        Ok(a) => a.collect(),
        Err(e) => {
            // the real client's two lines (the second with its stale errno)
            let m = e.to_string();
            let m = m
                .strip_prefix("failed to lookup address information: ")
                .unwrap_or(&m);
            log::debug(1, format!("Cannot resolve peername, getaddrinfo: {m}"));
            log::debug(1, "Can't create socket: No such file or directory");
            return None;
        }
    };
    for a in addrs {
        let Ok(sock) = Socket::new(Domain::for_address(a), Type::STREAM, None) else {
            continue;
        };
        if let Some(bn) = opts.bind_name {
            let bname = String::from_utf8_lossy(bn).into_owned();
            let bound = (bname.as_str(), 0u16)
                .to_socket_addrs()
                .ok()
                .into_iter()
                .flatten()
                .filter(|b| b.is_ipv4() == a.is_ipv4())
                .find(|b| sock.bind(&(*b).into()).is_ok());
            match bound {
                Some(b) => log::debug(1, msg!("Bound to ", b.to_string(), " as ", bn, ".")),
                None => log::debug(1, msg!("Local socket bind() to ", bn, " failed; ignored.")),
            }
        }
        log::debug(1, msg!("Connect to ", a.to_string(), " (", peer, ")."));
        let connected = match opts.timeout {
            Some(t) => sock.connect_timeout(&a.into(), t),
            None => sock.connect(&a.into()),
        };
        match connected {
            Ok(()) => {
                let s: TcpStream = sock.into();
                let _ = s.set_nodelay(true);
                // the clock restarts whenever bytes move: a blocked read or
                // write gives up after this long
                let _ = s.set_read_timeout(opts.timeout);
                let _ = s.set_write_timeout(opts.timeout);
                return Some(s);
            }
            Err(e) if crate::protocol::conn::is_timeout(&e) => {
                log::debug(
                    0,
                    msg!(
                        "Connecting to ",
                        peer,
                        " (",
                        a.to_string(),
                        ") timed out after ",
                        seconds_text(opts.timeout),
                        "."
                    ),
                );
            }
            Err(e) => log::debug(1, format!("Can't create socket: {}", log::strerror(&e))),
        }
    }
    None
}

/// "60 seconds", "0.5 seconds".
pub fn seconds_text(t: Option<std::time::Duration>) -> String {
    match t {
        Some(t) => format!("{} seconds", t.as_secs_f64()),
        None => "ever".to_string(),
    }
}

/// The error line for a peer that sent nothing for the whole timeout in
/// the middle of a session (counted as an error).
pub fn timed_out(errors: &mut log::Errors, peer: &[u8], t: Option<std::time::Duration>) {
    errors.error(msg!(
        "ERROR: ",
        peer,
        " sent nothing for ",
        seconds_text(t),
        " (--timeout, CSYNC2_TIMEOUT): giving up on it; its files stay dirty."
    ));
}

/// A live session with one peer.
pub struct Session {
    pub conn: Conn,
    /// the name sent in the last successful HELLO
    hello: Option<Vec<u8>>,
    /// the peer runs our binary and accepted pipelining
    pub pipelined: bool,
    /// the address connected to
    pub peer_addr: Option<std::net::IpAddr>,
    /// the peer's certificate (DER) on a TLS session
    pub peer_cert: Option<Vec<u8>>,
}

/// Why a session could not be opened (the caller prints the standard lines).
#[derive(Debug)]
pub enum OpenError {
    Connect,
    Config,
    Group,
    /// TLS setup failed: fatal for the whole run, as in the real client
    Tls(String),
}

pub fn open(
    cfg: &Config,
    db: &mut crate::db::Db,
    peer: &[u8],
    opts: &ClientOptions,
) -> Result<Session, OpenError> {
    open_pinning(cfg, peer, opts, &mut |der| crate::tls::pin(db, peer, der))
}

/// As [`open`]; `pin` checks (and records) the peer's certificate.
pub fn open_pinning(
    cfg: &Config,
    peer: &[u8],
    opts: &ClientOptions,
    pin: &mut dyn FnMut(&[u8]) -> Result<bool, crate::db::DbError>,
) -> Result<Session, OpenError> {
    let plain = plain_allowed(cfg, peer);
    log::debug(
        1,
        msg!(
            "Connecting to host ",
            peer,
            if plain { " (PLAIN) ..." } else { " (SSL) ..." }
        ),
    );
    let stream = connect_tcp(peer, opts).ok_or(OpenError::Connect)?;
    let peer_addr = stream.peer_addr().ok().map(|a| a.ip());
    let mut peer_cert = None;
    let mut conn = Conn::new(Box::new(stream));
    // a silent peer is named before the standard lines
    let silent = |e: &ConnError| {
        if e.is_timeout() {
            log::debug(
                0,
                msg!(
                    peer,
                    " accepted the connection but sent nothing for ",
                    seconds_text(opts.timeout),
                    "."
                ),
            );
        }
    };
    if !plain {
        let activated = match conn.send(b"SSL\n").and_then(|_| conn.read_status()) {
            Ok(s) => s == protocol::OK_ACTIVATING_SSL.as_bytes(),
            Err(e) => {
                silent(&e);
                false
            }
        };
        if !activated {
            return Err(OpenError::Connect);
        }
        let identity = crate::tls::load_identity(opts.sysdir).map_err(OpenError::Tls)?;
        let est = crate::tls::connect(conn.into_stream(), identity, peer)
            .map_err(|m| OpenError::Tls(format!("SSL: handshake failed: {m}")))?;
        match pin(&est.peer_cert) {
            Ok(true) => {}
            Ok(false) => {
                return Err(OpenError::Tls(
                    "Peer did provide a wrong SSL X509 cetrificate.".to_string(),
                ));
            }
            Err(e) => return Err(OpenError::Tls(e.0)),
        }
        peer_cert = Some(est.peer_cert);
        conn = Conn::new(est.stream);
    }
    let ok = |conn: &mut Conn, line: Vec<u8>| -> bool {
        match conn.send(&line).and_then(|_| conn.read_status()) {
            Ok(s) => protocol::classify(&s) == protocol::Status::Ok,
            Err(e) => {
                silent(&e);
                false
            }
        }
    };
    if !ok(&mut conn, protocol::request::config_line(opts.cfgname)) {
        log::debug(0, "Config command failed.");
        return Err(OpenError::Config);
    }
    if let Some(g) = opts.groups
        && !ok(&mut conn, Request::Group(g).encode())
    {
        log::debug(0, "Group command failed.");
        return Err(OpenError::Group);
    }
    Ok(Session {
        conn,
        hello: None,
        pipelined: false,
        peer_addr,
        peer_cert,
    })
}

impl Session {
    /// A client session over a connection a peer opened to this host's
    /// server (a catch-up: the roles are reversed after its request).
    pub fn over(conn: Conn) -> Session {
        Session {
            conn,
            hello: None,
            pipelined: false,
            peer_addr: None,
            peer_cert: None,
        }
    }

    /// Sends HELLO when the identity changes. Ok(false): refused.
    pub fn identify(&mut self, myname: &[u8]) -> Result<bool, ConnError> {
        if self.hello.as_deref() == Some(myname) {
            return Ok(true);
        }
        self.conn.send(&Request::Hello(myname).encode())?;
        let st = self.conn.read_status()?;
        if protocol::classify(&st) == protocol::Status::Ok {
            self.hello = Some(myname.to_vec());
            Ok(true)
        } else {
            self.hello = None;
            Ok(false)
        }
    }

    /// The identity of the last successful HELLO.
    pub fn hello(&self) -> Option<&[u8]> {
        self.hello.as_deref()
    }

    /// Asks for pipelining; a real csync2 answers `Unknown command!` and
    /// the session stays in lock-step. `CSYNC2_NO_PIPELINE` set: not asked.
    pub fn negotiate_pipeline(&mut self) -> Result<(), ConnError> {
        if std::env::var_os("CSYNC2_NO_PIPELINE").is_some() {
            return Ok(());
        }
        self.conn.send(&Request::Pipeline(b"1").encode())?;
        let st = self.conn.read_status()?;
        self.pipelined = st == protocol::OK_PIPELINING.as_bytes();
        Ok(())
    }

    /// Sends a request and reads its status line.
    pub fn request(&mut self, req: &Request) -> Result<Vec<u8>, ConnError> {
        self.conn.send(&req.encode())?;
        self.conn.read_status()
    }

    /// BYE and close; the answer is ignored.
    pub fn close(mut self) {
        if self.conn.send(&Request::Bye.encode()).is_ok() {
            let _ = self.conn.read_status();
        }
    }
}

/// The real client's error line for a peer it could not reach or that
/// broke the connection (counted as an error).
pub fn connection_failed(errors: &mut log::Errors, peer: &[u8]) {
    errors.error(msg!(
        "ERROR: Connection to remote host `",
        peer,
        "' failed."
    ));
}
