//! The other end of a session: its address (for HELLO's check) and, on
//! TLS, its certificate; and how `-i` finds it on stdin.

use std::io::{Read, Write};
use std::net::{IpAddr, ToSocketAddrs};

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
pub(super) struct Stdio {
    pub(super) input: std::mem::ManuallyDrop<std::fs::File>,
    pub(super) output: std::mem::ManuallyDrop<std::fs::File>,
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

pub(super) fn stdin_peer() -> Peer {
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
