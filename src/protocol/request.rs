//! Every request of a session, the real program's and our extensions, as
//! one typed vocabulary: the client builds a [`Request`] and encodes it, the
//! server parses a line's tokens into one (protocol.md §1.4–§1.5, §2–§3;
//! doc/protocol-extension.md).
//!
//! Encoding follows what the real client puts on the wire, byte for byte:
//! file names, HELLO/CONFIG/GROUP names and symlink targets are
//! URL-encoded; keys go raw (except in TYPE), and LIST's host name and keys
//! go raw (protocol.md Q3). The server URL-decodes every token, so either
//! form parses.

use super::codec;
use super::kind::FileKind;
use crate::urlenc;

/// The word that turns pipelining on (ours only).
pub const PIPELINE_WORD: &str = "X-CSYNC2RS-PIPELINE";

/// The key and file name most requests carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target<'a> {
    pub key: &'a [u8],
    /// the logical name (`%prefix%` form where it applies), decoded
    pub file: &'a [u8],
}

/// The argument of MK* and `X-PUT` that depends on the kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MakeArg<'a> {
    None,
    /// a device number (`st_rdev`, decimal on the wire; the real client
    /// leaves it out: protocol.md Q8)
    Dev(i64),
    /// a symlink target
    Target(&'a [u8]),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request<'a> {
    Hello(&'a [u8]),
    Group(&'a [u8]),
    Bye,
    Sig(Target<'a>),
    Mark(Target<'a>),
    Type(Target<'a>),
    Gettm(Target<'a>),
    Getsz(Target<'a>),
    Flush(Target<'a>),
    Del(Target<'a>),
    Patch(Target<'a>),
    /// MKDIR, MKCHR, MKBLK, MKFIFO, MKLINK, MKSOCK
    Make {
        at: Target<'a>,
        kind: FileKind,
        arg: MakeArg<'a>,
    },
    Setown {
        at: Target<'a>,
        uid: i64,
        gid: i64,
    },
    Setmod {
        at: Target<'a>,
        mode: i64,
    },
    Setime {
        at: Target<'a>,
        mtime: i64,
    },
    /// LIST MYNAME FILE-or-`-` KEY…
    List {
        myname: &'a [u8],
        file: Option<&'a [u8]>,
        keys: Vec<&'a [u8]>,
    },
    /// `X-CSYNC2RS-PIPELINE VERSION` (ours)
    Pipeline(&'a [u8]),
    /// `X-CATCHUP FLAGS KEY…` (ours): the server pushes what it holds
    /// dirty for the client over this connection, roles reversed, for the
    /// groups of the given keys it shares with the client. FLAGS: `full`
    /// (compare everything first, as `-TIU`) or `-`.
    CatchUp {
        full: bool,
        keys: Vec<&'a [u8]>,
    },
    /// `X-STAT KEY FILE CHECKTXT` (ours)
    XStat {
        at: Target<'a>,
        text: &'a [u8],
    },
    /// `X-PUT KEY FILE KIND ARG UID GID MODE MTIME` (ours); a regular
    /// file's content follows as a blob. `kind` None: a kind this build
    /// does not know.
    XPut {
        at: Target<'a>,
        kind: Option<FileKind>,
        arg: MakeArg<'a>,
        uid: i64,
        gid: i64,
        mode: i64,
        mtime: i64,
    },
}

/// Numeric arguments: C `atoll`, garbage is 0 (protocol.md §2.2).
pub fn num(tok: &[u8]) -> i64 {
    crate::config::parser::atoll(tok)
}

fn push_num(out: &mut Vec<u8>, n: i64) {
    out.push(b' ');
    out.extend_from_slice(n.to_string().as_bytes());
}

fn push_raw(out: &mut Vec<u8>, a: &[u8]) {
    out.push(b' ');
    out.extend_from_slice(a);
}

fn push_enc(out: &mut Vec<u8>, a: &[u8]) {
    out.push(b' ');
    urlenc::encode_into(a, out);
}

impl<'a> Request<'a> {
    /// The command word as sent.
    pub fn word(&self) -> &'static str {
        match self {
            Request::Hello(_) => "HELLO",
            Request::Group(_) => "GROUP",
            Request::Bye => "BYE",
            Request::Sig(_) => "SIG",
            Request::Mark(_) => "MARK",
            Request::Type(_) => "TYPE",
            Request::Gettm(_) => "GETTM",
            Request::Getsz(_) => "GETSZ",
            Request::Flush(_) => "FLUSH",
            Request::Del(_) => "DEL",
            Request::Patch(_) => "PATCH",
            Request::Make { kind, .. } => kind.verb(),
            Request::Setown { .. } => "SETOWN",
            Request::Setmod { .. } => "SETMOD",
            Request::Setime { .. } => "SETIME",
            Request::List { .. } => "LIST",
            Request::Pipeline(_) => PIPELINE_WORD,
            Request::CatchUp { .. } => "X-CATCHUP",
            Request::XStat { .. } => "X-STAT",
            Request::XPut { .. } => "X-PUT",
        }
    }

    /// The key and file, for the requests that name a file.
    pub fn target(&self) -> Option<Target<'a>> {
        match *self {
            Request::Sig(t)
            | Request::Mark(t)
            | Request::Type(t)
            | Request::Gettm(t)
            | Request::Getsz(t)
            | Request::Flush(t)
            | Request::Del(t)
            | Request::Patch(t) => Some(t),
            Request::Make { at, .. }
            | Request::Setown { at, .. }
            | Request::Setmod { at, .. }
            | Request::Setime { at, .. }
            | Request::XStat { at, .. }
            | Request::XPut { at, .. } => Some(at),
            _ => None,
        }
    }

    /// The request line, `\n`-terminated.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(self.word().as_bytes());
        let target = |out: &mut Vec<u8>, t: &Target| {
            push_raw(out, t.key);
            push_enc(out, t.file);
        };
        match self {
            Request::Hello(n) | Request::Group(n) => push_enc(&mut out, n),
            Request::Bye => {}
            Request::Type(t) => {
                push_enc(&mut out, t.key);
                push_enc(&mut out, t.file);
            }
            Request::Sig(t)
            | Request::Mark(t)
            | Request::Gettm(t)
            | Request::Getsz(t)
            | Request::Flush(t)
            | Request::Del(t)
            | Request::Patch(t) => target(&mut out, t),
            Request::Make { at, arg, .. } => {
                target(&mut out, at);
                match arg {
                    MakeArg::None => {}
                    MakeArg::Dev(d) => push_num(&mut out, *d),
                    MakeArg::Target(t) => push_enc(&mut out, t),
                }
            }
            Request::Setown { at, uid, gid } => {
                target(&mut out, at);
                push_num(&mut out, *uid);
                push_num(&mut out, *gid);
            }
            Request::Setmod { at, mode } => {
                target(&mut out, at);
                push_num(&mut out, *mode);
            }
            Request::Setime { at, mtime } => {
                target(&mut out, at);
                push_num(&mut out, *mtime);
            }
            Request::List { myname, file, keys } => {
                push_raw(&mut out, myname);
                match file {
                    Some(f) => push_enc(&mut out, f),
                    None => push_raw(&mut out, b"-"),
                }
                for k in keys {
                    push_raw(&mut out, k);
                }
            }
            Request::Pipeline(v) => push_raw(&mut out, v),
            Request::CatchUp { full, keys } => {
                push_raw(&mut out, if *full { b"full" } else { b"-" });
                for k in keys {
                    push_enc(&mut out, k);
                }
            }
            Request::XStat { at, text } => {
                target(&mut out, at);
                push_enc(&mut out, text);
            }
            Request::XPut {
                at,
                kind,
                arg,
                uid,
                gid,
                mode,
                mtime,
            } => {
                target(&mut out, at);
                let kind = kind.map(FileKind::put_name).unwrap_or("-");
                push_raw(&mut out, kind.as_bytes());
                match arg {
                    MakeArg::None => push_raw(&mut out, b"-"),
                    MakeArg::Dev(d) => push_num(&mut out, *d),
                    MakeArg::Target(t) => push_enc(&mut out, t),
                }
                for n in [uid, gid, mode, mtime] {
                    push_num(&mut out, *n);
                }
            }
        }
        out.push(b'\n');
        out
    }

    /// A session line's tokens (decoded, as [`codec::tokenize`] gives
    /// them) as a request; missing arguments read as empty. None: not a
    /// command word this server knows (`extensions`: ours count too).
    pub fn parse(toks: &'a [Vec<u8>], extensions: bool) -> Option<Request<'a>> {
        let tok = |i: usize| toks.get(i).map(Vec::as_slice).unwrap_or(b"");
        let at = Target {
            key: tok(1),
            file: tok(2),
        };
        let word = tok(0).to_ascii_uppercase();
        let make_arg = |kind: Option<FileKind>, a: &'a [u8]| match kind {
            Some(k) if k.is_device() => MakeArg::Dev(num(a)),
            Some(FileKind::Link) => MakeArg::Target(a),
            _ => MakeArg::None,
        };
        Some(match word.as_slice() {
            b"HELLO" => Request::Hello(tok(1)),
            b"GROUP" => Request::Group(tok(1)),
            b"BYE" => Request::Bye,
            b"SIG" => Request::Sig(at),
            b"MARK" => Request::Mark(at),
            b"TYPE" => Request::Type(at),
            b"GETTM" => Request::Gettm(at),
            b"GETSZ" => Request::Getsz(at),
            b"FLUSH" => Request::Flush(at),
            b"DEL" => Request::Del(at),
            b"PATCH" => Request::Patch(at),
            b"SETOWN" => Request::Setown {
                at,
                uid: num(tok(3)),
                gid: num(tok(4)),
            },
            b"SETMOD" => Request::Setmod {
                at,
                mode: num(tok(3)),
            },
            b"SETIME" => Request::Setime {
                at,
                mtime: num(tok(3)),
            },
            b"LIST" => Request::List {
                myname: tok(1),
                file: if tok(2) == b"-" { None } else { Some(tok(2)) },
                keys: toks
                    .iter()
                    .skip(3)
                    .map(Vec::as_slice)
                    .take_while(|k| !k.is_empty())
                    .collect(),
            },
            w if w == PIPELINE_WORD.as_bytes() => Request::Pipeline(tok(1)),
            b"X-STAT" if extensions => Request::XStat { at, text: tok(3) },
            b"X-CATCHUP" if extensions => Request::CatchUp {
                full: tok(1) == b"full",
                keys: toks
                    .iter()
                    .skip(2)
                    .map(Vec::as_slice)
                    .filter(|k| !k.is_empty())
                    .collect(),
            },
            b"X-PUT" if extensions => {
                let kind = FileKind::from_put_name(tok(3));
                Request::XPut {
                    at,
                    kind,
                    arg: make_arg(kind, tok(4)),
                    uid: num(tok(5)),
                    gid: num(tok(6)),
                    mode: num(tok(7)),
                    mtime: num(tok(8)),
                }
            }
            w => {
                let kind = FileKind::from_make_verb(w)?;
                Request::Make {
                    at,
                    kind,
                    arg: make_arg(Some(kind), tok(3)),
                }
            }
        })
    }
}

/// `CONFIG NAME` (always with its space: protocol.md Q2).
pub fn config_line(name: &[u8]) -> Vec<u8> {
    codec::command("CONFIG", &[name])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(line: &[u8]) -> Vec<u8> {
        let toks = codec::tokenize(line).unwrap();
        Request::parse(&toks, true).unwrap().encode()
    }

    #[test]
    fn encodes_as_the_real_client() {
        let at = Target {
            key: b"k",
            file: b"/a b:c",
        };
        assert_eq!(Request::Sig(at).encode(), b"SIG k /a%20b%3Ac\n");
        assert_eq!(
            Request::Make {
                at,
                kind: FileKind::Link,
                arg: MakeArg::Target(b"t x")
            }
            .encode(),
            b"MKLINK k /a%20b%3Ac t%20x\n"
        );
        assert_eq!(
            Request::Make {
                at,
                kind: FileKind::Chr,
                arg: MakeArg::Dev(259)
            }
            .encode(),
            b"MKCHR k /a%20b%3Ac 259\n"
        );
        assert_eq!(
            Request::Setown {
                at,
                uid: -1,
                gid: 5
            }
            .encode(),
            b"SETOWN k /a%20b%3Ac -1 5\n"
        );
        assert_eq!(Request::Hello(b"h 1").encode(), b"HELLO h%201\n");
        assert_eq!(Request::Bye.encode(), b"BYE\n");
        assert_eq!(
            Request::List {
                myname: b"h1",
                file: None,
                keys: vec![b"k1", b"k2"]
            }
            .encode(),
            b"LIST h1 - k1 k2\n"
        );
        assert_eq!(config_line(b""), b"CONFIG \n");
        assert_eq!(Request::Pipeline(b"1").encode(), b"X-CSYNC2RS-PIPELINE 1\n");
    }

    #[test]
    fn parses_what_it_encodes() {
        for line in [
            &b"SIG k /a%20b\n"[..],
            b"PATCH k /x\n",
            b"MKDIR k /d\n",
            b"MKCHR k /c 259\n",
            b"MKLINK k /l tgt%20x\n",
            b"SETMOD k /f 33188\n",
            b"LIST h - k1\n",
            b"X-STAT k /f v1%3Atype=reg\n",
            b"X-PUT k /f reg - 0 0 33188 5\n",
            b"X-PUT k /l link t 0 0 41471 5\n",
            b"X-PUT k /c chr 259 0 0 8624 5\n",
            b"X-CATCHUP - k1 k2\n",
            b"X-CATCHUP full k1\n",
        ] {
            assert_eq!(round(line), line, "{}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn parse_edges() {
        let toks = codec::tokenize(b"mkfifo k /p").unwrap();
        assert_eq!(
            Request::parse(&toks, false),
            Some(Request::Make {
                at: Target {
                    key: b"k",
                    file: b"/p"
                },
                kind: FileKind::Fifo,
                arg: MakeArg::None
            })
        );
        // extensions only once agreed; unknown words are None
        let toks = codec::tokenize(b"X-STAT k /f t").unwrap();
        assert_eq!(Request::parse(&toks, false), None);
        let toks = codec::tokenize(b"NOPE").unwrap();
        assert_eq!(Request::parse(&toks, true), None);
        let toks = codec::tokenize(b"SETIME k /f garbage").unwrap();
        assert!(matches!(
            Request::parse(&toks, false),
            Some(Request::Setime { mtime: 0, .. })
        ));
        let toks = codec::tokenize(b"X-PUT k /f weird - 0 0 0 0").unwrap();
        assert!(matches!(
            Request::parse(&toks, true),
            Some(Request::XPut { kind: None, .. })
        ));
    }
}
