//! The server as xinetd and systemd socket activation run it: a listener
//! accepts each connection and starts the command line of
//! `contrib/systemd/csync2@.service` (`csync2 -i -l`) with the connection
//! as its fd 0 and fd 1. Clients (ours and the real csync2) push new,
//! changed, re-moded and deleted files; the files must arrive with their
//! content and mode, and the server's database must hold their rows.
//!
//! Runs (b) real client and (d) our client against our server; (a) and (c)
//! run the real server under the same listener, which checks the listener
//! itself. Needs root; see `tests/net_interop.rs` for the environment
//! variables.

mod common;
mod net;
mod netx;

use common::{Val, show, url_decode};
use net::*;
use netx::*;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const IDX: Net = Net::Inetd;

/// The arguments of `ExecStart=` in `contrib/systemd/csync2@.service`,
/// without the program (which must be csync2).
fn unit_args() -> Vec<OsString> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("contrib/systemd/csync2@.service");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
    let line = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("ExecStart="))
        .next_back()
        .expect("csync2@.service has an ExecStart= line");
    // systemd's prefixes (-, @, :, +, !) are not part of the path
    let line = line.trim_start_matches(['-', '@', ':', '+', '!']);
    let mut words = line.split_whitespace();
    let prog = words.next().expect("ExecStart= names a program");
    assert!(
        prog.rsplit('/').next() == Some("csync2"),
        "ExecStart= runs {prog}, not csync2"
    );
    words.map(OsString::from).collect()
}

/// One connection served by the listener.
struct Session {
    peer: SocketAddr,
    done: Done,
}

/// An inetd: accepts connections on a node's address and port and starts
/// `csync2 -N NAME -D DB -p PORT ARGS` (the harness's node command) for
/// each, with the connection as stdin and stdout.
struct Inetd {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<Session>>>,
}

impl Inetd {
    /// Session `k`'s stderr goes to `<log_prefix>-<k>.stderr`.
    fn start(n: &Node, args: Vec<OsString>, log_prefix: String) -> Inetd {
        let listener = TcpListener::bind((n.addr, n.port))
            .unwrap_or_else(|e| panic!("bind {}:{}: {e}", n.addr, n.port));
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let n = n.clone();
        let thread = std::thread::spawn(move || {
            let mut running: Vec<(SocketAddr, Proc, PathBuf, Instant)> = Vec::new();
            while !stop2.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((sock, peer)) => {
                        sock.set_nonblocking(false).expect("blocking connection");
                        let out = sock.try_clone().expect("dup connection");
                        let k = running.len();
                        let err_path = PathBuf::from(format!("{log_prefix}-{k}.stderr"));
                        let err = std::fs::File::create(&err_path).expect("create stderr file");
                        let mut cmd = n.command(&args);
                        cmd.stdin(Stdio::from(OwnedFd::from(sock)))
                            .stdout(Stdio::from(OwnedFd::from(out)))
                            .stderr(Stdio::from(err));
                        // the parent's copies of the connection close when
                        // the command is dropped (in spawn)
                        let child = Proc::spawn(cmd, format!("inetd session from {peer}"));
                        running.push((peer, child, err_path, Instant::now()));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => panic!("accept: {e}"),
                }
            }
            drop(listener);
            running
                .into_iter()
                .map(|(peer, child, err_path, started)| {
                    let end = started.max(Instant::now()) + TIMEOUT;
                    let done = child.wait_until(end);
                    Session {
                        peer,
                        done: Done {
                            stderr: std::fs::read(&err_path).unwrap_or_default(),
                            ..done
                        },
                    }
                })
                .collect()
        });
        Inetd {
            stop,
            thread: Some(thread),
        }
    }

    /// Stop accepting; wait for the sessions to end.
    fn finish(mut self) -> Vec<Session> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .take()
            .expect("listener running")
            .join()
            .expect("listener thread")
    }
}

impl Drop for Inetd {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A push from node 0 (`-vvv ARGS`) to node 1 served by the inetd; one
/// observation. Exactly one session must have run, from node 0's address,
/// and ended with exit 0.
fn inetd_push(r: &mut Run, label: &str, args: Vec<OsString>) -> usize {
    r.fix_mtimes();
    let srv = r.n(1).clone();
    let slug: String = label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let prefix = format!("{}/inetd-{slug}", r.dir.display());
    let inetd = Inetd::start(&srv, unit_args(), prefix);
    r.note(format!(
        "{} {}: inetd on {}:{} running {:?}",
        srv.short(),
        srv.imp.label(),
        srv.addr,
        srv.port,
        unit_args()
    ));
    let mut full: Vec<OsString> = vec!["-vvv".into()];
    full.extend(args);
    let c = r.nodes[0].run(&full);
    r.save_output(&c, &format!("client-{slug}"));
    let line = format!(
        "{label}: {} {}: {} -> {}",
        r.nodes[0].short(),
        r.nodes[0].imp.label(),
        common::cmdline(&full),
        c.status()
    );
    r.note(line);
    let sessions = inetd.finish();
    for s in &sessions {
        let st = format!("  session from {}: {}", s.peer, s.done.status());
        r.note(st);
    }
    let peers: Vec<SocketAddr> = sessions.iter().map(|s| s.peer).collect();
    let imp0 = r.nodes[0].imp;
    let o = r.record(
        label,
        vec![ClientRun {
            node: 0,
            imp: imp0,
            done: c,
        }],
        sessions
            .into_iter()
            .map(|s| ServerRun {
                node: 1,
                imp: srv.imp,
                done: s.done,
                unordered: false,
            })
            .collect(),
    );
    // checked after record() so that problems name this step
    r.expect(
        peers.len() == 1,
        format!("one connection per push, got {}", peers.len()),
    );
    if let Some(p) = peers.first() {
        r.expect(
            p.ip() == std::net::IpAddr::V4(r.nodes[0].addr),
            format!("the connection came from {p}"),
        );
        let d = r.obs[o].servers[0].done.clone();
        r.expect(
            d.code == Some(0),
            format!(
                "the session ends with exit 0, got {} (stderr: {})",
                d.status(),
                show(&d.stderr)
            ),
        );
        // xinetd puts the connection on fd 2 as well: with -l nothing may
        // be written there
        r.expect(
            d.stderr.is_empty(),
            format!(
                "with -l the session writes nothing to stderr: {}",
                show(&d.stderr)
            ),
        );
    }
    if r.client(o).code == Some(0) {
        r.expect_transport(o, 0, 1);
        r.expect_pins(o, 0, 1);
    }
    o
}

/// File table of a node after observation `o`: decoded name → check text.
fn file_rows(r: &Run, o: usize, node: usize) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let Ok(d) = &r.obs[o].dbs[node] else {
        return BTreeMap::new();
    };
    d.rows("file")
        .iter()
        .filter_map(|row| {
            let f = row.first().and_then(Val::text)?;
            let c = row.get(1).and_then(Val::text)?;
            Some((url_decode(f), url_decode(c)))
        })
        .collect()
}

/// The files arrived with `want` (relative path → (mode, content)), the
/// trees are equal, and both databases list the same files with the same
/// check texts (the receiver records what it wrote), none dirty.
fn expect_arrived(r: &mut Run, o: usize, want: &[(&str, u32, Option<&[u8]>)], gone: &[&str]) {
    r.expect_code(o, 0);
    for (rel, mode, content) in want {
        let got = r.entry(o, 1, rel).cloned();
        match got {
            None => r.expect(false, format!("{rel} arrived on the server")),
            Some(e) => {
                r.expect(
                    e.mode & 0o7777 == *mode,
                    format!("{rel} has mode {:o} on the server, want {mode:o}", e.mode),
                );
                if let Some(c) = content {
                    r.expect(
                        e.content.as_deref() == Some(*c),
                        format!(
                            "{rel} has the pushed content on the server: {}",
                            e.describe()
                        ),
                    );
                }
            }
        }
    }
    for rel in gone {
        r.expect(
            r.entry(o, 1, rel).is_none(),
            format!("{rel} was deleted on the server"),
        );
    }
    r.expect_same_trees(o, 0, 1);

    let (sent, got) = (file_rows(r, o, 0), file_rows(r, o, 1));
    for (rel, _, _) in want {
        let name = r.n(1).s(rel).into_encoded_bytes();
        r.expect(
            got.contains_key(&name),
            format!("the server's file table has a row for {rel}"),
        );
    }
    for rel in gone {
        let name = r.n(1).s(rel).into_encoded_bytes();
        r.expect(
            !got.contains_key(&name),
            format!("the server's file table has no row for deleted {rel}"),
        );
    }
    let differ: Vec<String> = sent
        .keys()
        .chain(got.keys())
        .filter(|k| sent.get(*k) != got.get(*k))
        .map(|k| {
            format!(
                "{}: client {:?}, server {:?}",
                show(k),
                sent.get(k).map(|v| show(v)),
                got.get(k).map(|v| show(v))
            )
        })
        .collect();
    r.expect(
        differ.is_empty(),
        format!("client and server file tables agree: {}", differ.join("; ")),
    );
    r.expect(
        r.dirty(o, 0).is_empty(),
        "nothing stays dirty on the client",
    );
    r.expect(r.dirty(o, 1).is_empty(), "nothing is dirty on the server");
}

#[test]
fn push_through_socket_activation() {
    let args = unit_args();
    assert!(
        args.iter().any(|a| a == "-i"),
        "csync2@.service runs an inetd session (-i): {args:?}"
    );
    solo(
        "inetd",
        IDX,
        2,
        &[1],
        &[MODE_A, MODE_B, MODE_C, MODE_D],
        |r| {
            let a = r.n(0).clone();
            let big: Vec<u8> = pseudo_text(300_000, 59);
            a.file("plain.txt", "hello from n1\n", 0o644, T0);
            a.file("secret", "private\n", 0o600, T0 + 1);
            a.file("run.sh", "#!/bin/sh\necho hi\n", 0o755, T0 + 2);
            a.file("empty", "", 0o640, T0 + 3);
            a.file("big.dat", &big, 0o644, T0 + 4);
            a.mkdir("dir", 0o750);
            a.file("dir/inner.conf", "key = value\n", 0o664, T0 + 5);
            a.mkdir("dir/sub", 0o700);
            a.file("dir/sub/deep", "deep\n", 0o400, T0 + 6);
            a.symlink("link", "plain.txt");
            let o = inetd_push(r, "push -x (new files)", args!["-x"]);
            expect_arrived(
                r,
                o,
                &[
                    ("plain.txt", 0o644, Some(b"hello from n1\n".as_slice())),
                    ("secret", 0o600, Some(b"private\n".as_slice())),
                    ("run.sh", 0o755, Some(b"#!/bin/sh\necho hi\n".as_slice())),
                    ("empty", 0o640, Some(b"".as_slice())),
                    ("big.dat", 0o644, Some(big.as_slice())),
                    ("dir", 0o750, None),
                    ("dir/inner.conf", 0o664, Some(b"key = value\n".as_slice())),
                    ("dir/sub", 0o700, None),
                    ("dir/sub/deep", 0o400, Some(b"deep\n".as_slice())),
                ],
                &[],
            );
            r.expect(
                r.entry(o, 1, "link").and_then(|e| e.target.clone()) == Some(b"plain.txt".to_vec()),
                "the symlink arrived",
            );

            // changes: content (a delta for the big file), mode, deletion
            let mut big2 = big.clone();
            big2[150_000..150_064].fill(b'#');
            a.file("big.dat", &big2, 0o644, T0 + 10);
            a.file("plain.txt", "changed on n1\n", 0o644, T0 + 11);
            a.chmod("run.sh", 0o700);
            a.remove("secret");
            a.remove("dir/sub");
            let o = inetd_push(r, "push -x (changes)", args!["-x"]);
            expect_arrived(
                r,
                o,
                &[
                    ("big.dat", 0o644, Some(big2.as_slice())),
                    ("plain.txt", 0o644, Some(b"changed on n1\n".as_slice())),
                    ("run.sh", 0o700, Some(b"#!/bin/sh\necho hi\n".as_slice())),
                ],
                &["secret", "dir/sub", "dir/sub/deep"],
            );
            r.recheck_clean();
        },
    );
}
