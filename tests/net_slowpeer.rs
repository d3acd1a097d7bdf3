//! A slow peer does not hold up the others: one of two peers is reached
//! through a relay that passes about 200 kB/s; the other peer's session is
//! over while the slow one is still receiving, and both end up in sync.
//!
//! Needs root; see `tests/net_interop.rs` for the environment variables.

mod common;
mod net;
mod netx;

use net::*;
use netx::*;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// Bytes per second the relay lets through towards the slow peer.
const RATE: usize = 200_000;

/// Copies `from` to `to`, at most `rate` bytes per second (0: no limit).
fn pump(mut from: TcpStream, mut to: TcpStream, rate: usize) {
    let start = Instant::now();
    let mut sent = 0usize;
    let mut buf = [0u8; 8192];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        sent += n;
        if rate > 0 {
            let due = Duration::from_secs_f64(sent as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

/// One connection to `listen`, relayed to `target` (the outgoing side
/// bound to `from`, so the peer sees the client's own address): client to
/// peer throttled, peer to client not.
fn relay(listen: TcpListener, target: SocketAddr, from: Ipv4Addr) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        // bounded: a client that never comes ends the relay
        listen.set_nonblocking(true).expect("nonblocking listener");
        let end = Instant::now() + Duration::from_secs(60);
        let client = loop {
            match listen.accept() {
                Ok((c, _)) => break c,
                Err(_) if Instant::now() < end => std::thread::sleep(Duration::from_millis(5)),
                Err(_) => return,
            }
        };
        client
            .set_nonblocking(false)
            .expect("blocking relay socket");
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        sock.bind(&SocketAddr::from((from, 0)).into())
            .expect("bind the relay to the client's address");
        sock.connect(&target.into())
            .expect("connect to the slow peer");
        let peer: TcpStream = sock.into();
        let (c2, p2) = (
            client.try_clone().expect("clone"),
            peer.try_clone().expect("clone"),
        );
        let up = std::thread::spawn(move || pump(client, peer, RATE));
        pump(p2, c2, 0);
        let _ = up.join();
    })
}

#[test]
fn slow_peer_does_not_hold_up_the_other() {
    solo("slowpeer", Net::Slowpeer, 3, &[1, 2], &[MODE_D], |r| {
        r.config(
            "nossl * *;\ngroup all {\n    host {N1} {N2} {N3};\n    key g.key;\n    \
             include {SYNC};\n}\n",
        );
        let a = r.n(0).clone();
        for k in 0..10 {
            a.file(format!("f{k}.bin"), pseudo_random(100_000, k), 0o644, T0);
        }
        r.fix_mtimes();
        // n2 directly; n3 behind the relay: its server on the next port
        let fast = r.start_server(1, "-iii");
        let n3 = r.n(2).clone();
        let slow_port = n3.port + 1;
        let slow = n3.spawn(&[
            "-iii".into(),
            "-v".into(),
            "-p".into(),
            slow_port.to_string().into(),
        ]);
        let listen = TcpListener::bind((n3.addr, n3.port)).expect("bind the relay");
        let t = std::thread::spawn(move || {
            // wait until the slow server listens before relaying to it
            let end = Instant::now() + Duration::from_secs(10);
            while Instant::now() < end && !listening(n3.addr, slow_port) {
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        let _ = t.join();
        let relayed = relay(
            listen,
            SocketAddr::from((r.n(2).addr, slow_port)),
            r.n(0).addr,
        );
        let start = Instant::now();
        // plain -u: the stream of -x would make a second connection
        r.cmd_ok(0, args!["-cr", a.s("")], 0);
        let mut client = r.n(0).spawn(&["-u".into(), "-v".into()]);
        let mut fast = Some(fast);
        let mut fast_done = None;
        let mut client_done = None;
        let end = Instant::now() + Duration::from_secs(60);
        while Instant::now() < end && client_done.is_none() {
            if fast_done.is_none() && fast.as_mut().is_some_and(|p| p.exited()) {
                fast_done = Some(start.elapsed());
            }
            if client.exited() {
                client_done = Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if fast_done.is_none() && fast.as_mut().is_some_and(|p| p.exited()) {
            fast_done = Some(start.elapsed());
        }
        let c = client.wait_until(Instant::now() + Duration::from_secs(5));
        r.finish_server(1, fast.take().expect("fast server"));
        let s = slow.wait_until(Instant::now() + Duration::from_secs(10));
        let _ = relayed.join();
        r.note(format!(
            "fast peer done at {fast_done:?}, client at {client_done:?}: {}; slow server {}",
            c.status(),
            s.status()
        ));
        r.expect(
            c.code == Some(0),
            format!("the client succeeds: {}", common::show(&c.stderr)),
        );
        // 1 MB at 200 kB/s: about 5 s for the slow peer
        r.expect(
            matches!((fast_done, client_done), (Some(f), Some(c)) if c > Duration::from_secs(3) && f + Duration::from_secs(2) < c),
            format!("the fast peer is done well before the slow one (fast {fast_done:?}, all {client_done:?})"),
        );
        for i in [1, 2] {
            let o = r.recheck("peer -cr", i);
            let d = r.dirty(o, i);
            r.expect(
                d.is_empty(),
                format!("{} is in sync with its database", r.n(i).short()),
            );
            let want = r.tree(o, 0).clone();
            let got = r.tree(o, i).clone();
            let diff = diff_trees(&want, &got, "sender", r.n(i).short());
            r.expect(
                diff.is_empty(),
                format!("{} has the sender's files: {diff:?}", r.n(i).short()),
            );
        }
    });
}
