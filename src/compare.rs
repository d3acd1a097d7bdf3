//! `-T`, `-TT`, `-TI[X][U]`: compare this host's database with a peer's
//! (state.md §7, protocol.md §3.9, cli.md §5.9 and §12.4).
//!
//! Both lists are merged in the order of their encoded names, the order in
//! which both databases return them, so names with encoded characters give
//! no false `L`/`R` lines and no trailing remote-only entry is lost (the
//! real client's merge bugs, state.md Q16).

use crate::client::{self, ClientOptions, OpenError, Session};
use crate::config::Config;
use crate::db::Db;
use crate::log::Errors;
use crate::mark::{self, MarkOptions};
use crate::protocol::{self, Request, Target};
use crate::urlenc::{decode, encode};
use crate::{Fatal, log, msg};
use std::io::Write;

pub struct CompareOptions<'a> {
    /// `-TT`
    pub diff: bool,
    /// `-I`: mark the differences dirty
    pub init: bool,
    /// `-X`: with `-I`, also the files only the peer has
    pub remote_only: bool,
    /// `-U`: with `-I`, mark only towards the compared peer
    pub only_tested_peer: bool,
    /// `-P`: for `-TT FILE` forms, only groups with one of these peers
    pub only_peers: Option<Vec<Vec<u8>>>,
    /// the real names of the positional arguments (0 to 3)
    pub args: Vec<Vec<u8>>,
    /// `--json`: one object per difference
    pub json: bool,
    pub client: &'a ClientOptions<'a>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    L,
    R,
    X,
}

impl Kind {
    fn letter(self) -> &'static str {
        match self {
            Kind::L => "L",
            Kind::R => "R",
            Kind::X => "X",
        }
    }
}

/// Runs the comparison; the exit code before errors are counted in, and
/// the errors met.
pub fn run(cfg: &Config, db: &mut Db, opts: &CompareOptions) -> Result<(i32, Errors), Fatal> {
    let mut errors = Errors::default();
    let code = run_with(cfg, db, opts, &mut errors)?;
    Ok((code, errors))
}

fn run_with(
    cfg: &Config,
    db: &mut Db,
    opts: &CompareOptions,
    errors: &mut Errors,
) -> Result<i32, Fatal> {
    let args = &opts.args;
    match args.len() {
        0 | 1 => {
            let file = args.first().map(|a| cfg.prefix_encode(a));
            if let (true, Some(f)) = (opts.diff, &file) {
                // -TT FILE: straight to the diffs, for every peer of the file
                for (peer, my) in file_pairs(cfg, f, opts) {
                    diff_file(cfg, db, opts, &my, &peer, f, errors)?;
                }
                return Ok(2);
            }
            let mut in_sync = true;
            for (my, peer) in all_pairs(cfg) {
                in_sync &= compare_pair(cfg, db, opts, &my, &peer, file.as_deref(), errors)?;
            }
            Ok(if in_sync { 2 } else { 0 })
        }
        _ => {
            let (my, peer) = (&args[0], &args[1]);
            if !pair_exists(cfg, my, peer) {
                errors.error("Host pair not found in configuration.");
                return Ok(1);
            }
            let file = args.get(2).map(|a| cfg.prefix_encode(a));
            if let (true, Some(f)) = (opts.diff, &file) {
                if file_pairs(cfg, f, opts)
                    .iter()
                    .any(|(p, m)| p == peer && m == my)
                {
                    diff_file(cfg, db, opts, my, peer, f, errors)?;
                }
                return Ok(0);
            }
            let in_sync = compare_pair(cfg, db, opts, my, peer, file.as_deref(), errors)?;
            Ok(if in_sync { 2 } else { 0 })
        }
    }
}

/// Every (myname, peer) of the active groups, in the real one's order: the
/// list is built by prepending, so the last discovered pair comes first.
fn all_pairs(cfg: &Config) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut mynames: Vec<&[u8]> = Vec::new();
    for g in cfg.active_groups() {
        if let Some(m) = g.myname.as_deref()
            && !mynames.contains(&m)
        {
            mynames.push(m);
        }
    }
    let mut pairs = Vec::new();
    for my in mynames.into_iter().rev() {
        let mut peers: Vec<&[u8]> = Vec::new();
        for g in cfg.active_groups() {
            if g.myname.as_deref() != Some(my) {
                continue;
            }
            for h in &g.hosts {
                if h.name != my && !peers.contains(&h.name.as_slice()) {
                    peers.push(&h.name);
                }
            }
        }
        for p in peers.into_iter().rev() {
            pairs.push((my.to_vec(), p.to_vec()));
        }
    }
    pairs
}

fn pair_exists(cfg: &Config, my: &[u8], peer: &[u8]) -> bool {
    cfg.active_groups()
        .any(|g| g.myname.as_deref() == Some(my) && g.has_peer(peer))
}

/// (peer, myname) for every peer of the file, restricted by `-P`.
fn file_pairs(cfg: &Config, file: &[u8], opts: &CompareOptions) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut v = Vec::new();
    for g in cfg.matching_groups(true) {
        let Some(my) = g.myname.as_deref() else {
            continue;
        };
        if !g.selects(file, true) {
            continue;
        }
        if let Some(only) = &opts.only_peers
            && !g.hosts.iter().any(|h| only.contains(&h.name))
        {
            continue;
        }
        for h in &g.hosts {
            let pair = (h.name.clone(), my.to_vec());
            if h.name != my && !v.contains(&pair) {
                v.push(pair);
            }
        }
    }
    v
}

/// Whether a group with this pair selects the file.
fn shared(cfg: &Config, my: &[u8], peer: &[u8], file: &[u8]) -> bool {
    cfg.matching_groups(false)
        .any(|g| g.myname.as_deref() == Some(my) && g.has_peer(peer) && g.selects(file, false))
}

fn connect(
    cfg: &Config,
    db: &mut Db,
    peer: &[u8],
    opts: &CompareOptions,
    errors: &mut Errors,
) -> Result<Option<Session>, Fatal> {
    match client::open(cfg, db, peer, opts.client) {
        Ok(s) => Ok(Some(s)),
        Err(OpenError::Tls(m)) => Err(Fatal::msg(m)),
        Err(_) => {
            client::connection_failed(errors, peer);
            Ok(None)
        }
    }
}

/// One pair: LIST, merge, print (or diff), mark. Ok(true): in sync.
fn compare_pair(
    cfg: &Config,
    db: &mut Db,
    opts: &CompareOptions,
    my: &[u8],
    peer: &[u8],
    file: Option<&[u8]>,
    errors: &mut Errors,
) -> Result<bool, Fatal> {
    let Some(mut session) = connect(cfg, db, peer, opts, errors)? else {
        return Ok(true);
    };
    let Some(remote) = list_remote(cfg, &mut session, my, peer, file, errors) else {
        return Ok(true);
    };
    session.close();
    compare_lists(cfg, db, opts, my, peer, file, remote, true, errors)
}

/// `--catch-up --full` on the server that was asked: over the asker's own
/// connection (roles reversed), compare this host's files with the asker's
/// as `-TIU` would and mark the differences dirty towards the asker, without
/// printing them (stdout may be the connection).
pub fn mark_differences_over(
    cfg: &Config,
    db: &mut Db,
    session: &mut Session,
    my: &[u8],
    peer: &[u8],
    client: &ClientOptions,
    errors: &mut Errors,
) -> Result<(), Fatal> {
    let Some(remote) = list_remote(cfg, session, my, peer, None, errors) else {
        return Ok(());
    };
    let opts = CompareOptions {
        diff: false,
        init: true,
        remote_only: false,
        only_tested_peer: true,
        only_peers: None,
        args: Vec::new(),
        json: false,
        client,
    };
    compare_lists(cfg, db, &opts, my, peer, None, remote, false, errors).map(|_| ())
}

/// Merges this host's rows with the peer's list, prints the differences
/// (`print`), marks them (`-I`) or shows their diffs (`-TT`).
#[allow(clippy::too_many_arguments)]
fn compare_lists(
    cfg: &Config,
    db: &mut Db,
    opts: &CompareOptions,
    my: &[u8],
    peer: &[u8],
    file: Option<&[u8]>,
    remote: Vec<(Vec<u8>, Vec<u8>)>,
    print: bool,
    errors: &mut Errors,
) -> Result<bool, Fatal> {
    // both lists as (encoded name, name, checktxt), in encoded order
    let mut local: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> = db
        .file_rows_raw(file)?
        .into_iter()
        .filter_map(|(text, enc)| {
            let name = decode(&enc);
            shared(cfg, my, peer, &name).then(|| (enc, name, decode(&text)))
        })
        .collect();
    local.sort_by(|a, b| a.0.cmp(&b.0));
    let mut remote: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> = remote
        .into_iter()
        .map(|(text, name)| (encode(&name), name, text))
        .collect();
    remote.sort_by(|a, b| a.0.cmp(&b.0));

    let mut found: Vec<(Kind, Vec<u8>)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < local.len() || j < remote.len() {
        let ord = match (local.get(i), remote.get(j)) {
            (Some(l), Some(r)) => l.0.cmp(&r.0),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match ord {
            std::cmp::Ordering::Less => {
                found.push((Kind::L, local[i].1.clone()));
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                found.push((Kind::R, remote[j].1.clone()));
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                if local[i].2 != remote[j].2 {
                    found.push((Kind::X, local[i].1.clone()));
                }
                i += 1;
                j += 1;
            }
        }
    }

    if !opts.diff && print {
        let mut out = std::io::stdout().lock();
        for (k, name) in &found {
            let line = if opts.json {
                let what = match k {
                    Kind::L => "local only",
                    Kind::R => "remote only",
                    Kind::X => "differs",
                };
                crate::json::Obj::new()
                    .bytes("kind", k.letter().as_bytes())
                    .bytes("state", what.as_bytes())
                    .bytes("myname", my)
                    .bytes("peer", peer)
                    .bytes("file", name)
                    .line()
            } else {
                msg!(k.letter(), "\t", my, "\t", peer, "\t", name, "\n")
            };
            let _ = out.write_all(&line);
        }
        let _ = out.flush();
    }
    if opts.init {
        let mopts = MarkOptions { force_new: false };
        let only = opts.only_tested_peer.then_some(peer);
        for (k, name) in &found {
            if *k != Kind::R || opts.remote_only {
                mark::mark(cfg, db, &mopts, name, None, only)?;
                db.checkpoint()?;
            }
        }
    }
    if opts.diff {
        // collected per pair, shown in reverse order
        for (_, name) in found.iter().rev() {
            diff_file(cfg, db, opts, my, peer, name, errors)?;
        }
    }
    Ok(found.is_empty())
}

/// LIST on an open session: the peer's (checktxt, name) rows. None after
/// an error (reported and counted).
fn list_remote(
    cfg: &Config,
    session: &mut Session,
    my: &[u8],
    peer: &[u8],
    file: Option<&[u8]>,
    errors: &mut Errors,
) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    let broken = |errors: &mut Errors| {
        client::connection_failed(errors, peer);
        None
    };
    match session.identify(my) {
        Ok(true) => {}
        Ok(false) => {
            errors.error(msg!("ERROR: Identification by ", peer, " refused."));
            return None;
        }
        Err(_) => return broken(errors),
    }
    let mut keys: Vec<&[u8]> = Vec::new();
    for g in cfg.active_groups() {
        if g.myname.as_deref() == Some(my) && g.has_peer(peer) && !keys.contains(&g.key.as_slice())
        {
            keys.push(&g.key);
        }
    }
    // the host name and the keys go unencoded, as the real client sends them
    let line = Request::List {
        myname: peer,
        file,
        keys,
    }
    .encode();
    if session.conn.send(&line).is_err() {
        return broken(errors);
    }
    let mut rows = Vec::new();
    loop {
        let l = match session.conn.read_status() {
            Ok(l) => l,
            Err(_) => return broken(errors),
        };
        if l.starts_with(b"OK (") {
            return Some(rows);
        }
        if l.first() == Some(&b'v')
            && let Some(tab) = l.iter().position(|&b| b == b'\t')
        {
            rows.push((decode(&l[..tab]), decode(&l[tab + 1..])));
            continue;
        }
        errors.error(msg!("ERROR from peer ", peer, ": ", l));
        return None;
    }
}

/// `-TT` for one file: the peer's content through `diff -Nus`.
fn diff_file(
    cfg: &Config,
    db: &mut Db,
    opts: &CompareOptions,
    my: &[u8],
    peer: &[u8],
    file: &[u8],
    errors: &mut Errors,
) -> Result<(), Fatal> {
    let Some(key) = cfg
        .matching_groups(true)
        .find(|g| g.myname.as_deref() == Some(my) && g.has_peer(peer) && g.selects(file, true))
        .map(|g| g.key.clone())
    else {
        return Ok(());
    };
    let Some(mut session) = connect(cfg, db, peer, opts, errors)? else {
        return Ok(());
    };
    match session.identify(my) {
        Ok(true) => {}
        Ok(false) => {
            errors.error(msg!("ERROR: Identification by ", peer, " refused."));
            return Ok(());
        }
        Err(_) => {
            client::connection_failed(errors, peer);
            return Ok(());
        }
    }
    let st = match session.request(&Request::Type(Target { key: &key, file })) {
        Ok(s) => s,
        Err(_) => {
            client::connection_failed(errors, peer);
            return Ok(());
        }
    };
    if protocol::classify(&st) != protocol::Status::Ok {
        errors.error(msg!("ERROR from peer ", peer, ": ", st));
        return Ok(());
    }
    let real = cfg.prefix_decode(file).unwrap_or_else(|_| file.to_vec());
    let _ = std::io::stdout().flush();
    run_diff(&mut session, my, peer, file, &real, errors);
    Ok(())
}

fn run_diff(
    session: &mut Session,
    my: &[u8],
    peer: &[u8],
    file: &[u8],
    real: &[u8],
    errors: &mut Errors,
) {
    use std::os::unix::ffi::OsStrExt;
    use std::process::{Command, Stdio};
    let os = |b: &[u8]| std::ffi::OsStr::from_bytes(b).to_os_string();
    let child = Command::new("/bin/sh")
        .arg("-c")
        .arg(r#"diff -Nus --label "$peer_label" - --label "$my_label" "$diff_file""#)
        .env("my_label", os(&msg!(my, ":", file)))
        .env("peer_label", os(&msg!(peer, ":", file)))
        .env("diff_file", os(real))
        .stdin(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            errors.error(format!("Can't run diff: {}", log::strerror(&e)));
            return;
        }
    };
    // SIGPIPE is inherited as default: a diff that stops reading must not
    // kill us
    let old = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let mut sink = DiffSink {
        stdin: child.stdin.take(),
        truncated: false,
    };
    let _ = session.conn.read_to_end(&mut sink);
    let truncated = sink.truncated;
    drop(sink);
    let _ = child.wait();
    unsafe { libc::signal(libc::SIGPIPE, old) };
    if truncated {
        let mut out = std::io::stdout();
        let _ = out.write_all(b"*** output to diff truncated\n");
        let _ = out.flush();
    }
}

/// Feeds diff; after diff stops reading, the rest is read and dropped.
struct DiffSink {
    stdin: Option<std::process::ChildStdin>,
    truncated: bool,
}

impl Write for DiffSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(s) = &mut self.stdin
            && s.write_all(buf).is_err()
        {
            self.stdin = None;
            self.truncated = true;
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
