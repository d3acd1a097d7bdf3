//! The command line, parsed exactly as the real program's getopt does
//! (cli.md §1–§4): same letters, glued and separate values, argument
//! permutation, `--`, the same error lines and the same usage text.
//!
//! clap is not used here: drop-in compatibility needs getopt's own error
//! messages and the order-sensitive mode rules (`-c -u` vs `-u -c`).

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// Option letters that take a value.
const WITH_VALUE: &[u8] = b"WspGPCDN";
/// Option letters without a value (plus the modes).
const FLAGS: &[u8] = b"FtHBAIXULlSTMRvhcuoimfxrd";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Hint,
    Check,
    Update,
    CheckUpdate,
    Simple,
    CompareList,
    Force,
    Mark,
    ListHints,
    ListFiles,
    ListDirty,
    ListPair,
    Test {
        diff: bool,
    },
    Remove,
    Server(u8),
    /// `--catch-up` (ours)
    CatchUp,
    /// `--status` (ours)
    Status,
    /// `--watch` (ours)
    Watch,
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub verbose: u32,
    pub cfgname: Option<Vec<u8>>,
    pub dbspec: Option<Vec<u8>>,
    pub hostname: Option<Vec<u8>>,
    pub port: Option<Vec<u8>>,
    pub only_groups: Option<Vec<u8>>,
    pub only_peers: Option<Vec<u8>>,
    pub recursive: bool,
    pub dry_run: bool,
    pub init: bool,
    pub mark_remote_only: bool,
    pub mark_only_tested_peer: bool,
    pub force_new: bool,
    pub no_batch: bool,
    pub async_db: bool,
    pub syslog: bool,
    pub timestamps: bool,
    pub stamp_file: Option<Vec<u8>>,
    pub dump_dir_fd: Option<i32>,
    pub mode: Option<Mode>,
    pub args: Vec<Vec<u8>>,
    /// `--json` (our addition)
    pub json: bool,
    /// `--timeout SECONDS` (our addition)
    pub timeout: Option<Vec<u8>>,
    /// `--full` with `--catch-up` (our addition)
    pub full: bool,
    /// `--delay SECONDS` with `--watch` (our addition)
    pub delay: Option<Vec<u8>>,
}

impl Options {
    /// `-p`, default 30865 (a number or a service name).
    pub fn port(&self) -> String {
        self.port
            .as_deref()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .unwrap_or_else(|| "30865".to_string())
    }
}

/// What the real getopt loop does while it parses, before anything later
/// on the line is looked at: `csync2 -t -s FILE -q` stamps, creates FILE,
/// and only then fails on `-q`. `parse` only records these, in order; the
/// caller carries them out before it acts on the outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// `-t`: timestamps from now on
    Timestamps,
    /// `-s FILE`: open the stamp file
    OpenStampFile(Vec<u8>),
    /// `-W FD`: the descriptor must be writable
    CheckDumpFd(i32),
}

/// The outcome of parsing, with the effects met on the way.
#[derive(Debug)]
pub struct Parse {
    pub effects: Vec<Effect>,
    pub outcome: Parsed,
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Parsed {
    Run(Box<Options>),
    /// `csync2 -k FILE`
    KeyGen(Vec<u8>),
    /// `csync2 --gen-cert [--rsa] [--force]` (our addition)
    GenCert(crate::certgen::GenCertOptions),
    /// print this to stderr (may be empty), the usage text to stdout, exit 1
    Usage(String),
    /// `--help` or `-?` (ours): the full option list, exit 0
    Help,
    /// `--version` (ours), exit 0
    Version,
}

pub fn usage_text(argv0: &[u8]) -> Vec<u8> {
    fill(include_bytes!("usage.txt"), argv0)
}

/// `--help`: every option, the real program's and ours.
pub fn help_text(argv0: &[u8]) -> Vec<u8> {
    fill(include_bytes!("help.txt"), argv0)
}

/// `--version`.
pub fn version_text() -> String {
    format!(
        "csync2-rs {} (csync2 2.0 compatible)\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// A text with `@ARGV0@` and `@VERSION@` filled in.
fn fill(text: &[u8], argv0: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i..].starts_with(b"@ARGV0@") {
            out.extend_from_slice(argv0);
            i += 7;
        } else if text[i..].starts_with(b"@VERSION@") {
            out.extend_from_slice(env!("CARGO_PKG_VERSION").as_bytes());
            i += 9;
        } else {
            out.push(text[i]);
            i += 1;
        }
    }
    out
}

fn set_mode(o: &mut Options, letter: u8) -> bool {
    use Mode::*;
    let new = match letter {
        b'h' => Hint,
        b'c' => Check,
        b'u' => Update,
        b'x' => Simple,
        b'o' => CompareList,
        b'f' => Force,
        b'm' => Mark,
        b'H' => ListHints,
        b'L' => ListFiles,
        b'M' => ListDirty,
        b'S' => ListPair,
        b'T' => Test { diff: false },
        b'R' => Remove,
        b'i' => Server(1),
        _ => unreachable!(),
    };
    o.mode = match (o.mode, new) {
        (None, m) => Some(m),
        (Some(Check), Update) => Some(CheckUpdate),
        (Some(Server(n)), Server(_)) if n < 3 => Some(Server(n + 1)),
        (Some(Test { .. }), Test { .. }) => Some(Test { diff: true }),
        _ => return false,
    };
    true
}

/// C `atoi` for `-W`.
fn atoi(v: &[u8]) -> i32 {
    crate::config::parser::atoi(v)
}

/// Parses the command line without acting on anything (see [`Effect`]).
pub fn parse(argv: &[OsString]) -> Parse {
    let mut effects = Vec::new();
    let outcome = parse_into(argv, &mut effects);
    Parse { effects, outcome }
}

fn parse_into(argv: &[OsString], effects: &mut Vec<Effect>) -> Parsed {
    let argv0 = argv
        .first()
        .map(|a| a.as_bytes().to_vec())
        .unwrap_or_else(|| b"csync2".to_vec());
    let a0 = String::from_utf8_lossy(&argv0).into_owned();
    let args: Vec<Vec<u8>> = argv.iter().skip(1).map(|a| a.clone().into_vec()).collect();
    if args.len() == 2 && args[0] == b"-k" {
        return Parsed::KeyGen(args[1].clone());
    }
    if args.iter().any(|a| a == b"--help" || a == b"-?") {
        return Parsed::Help;
    }
    if args.iter().any(|a| a == b"--version") {
        return Parsed::Version;
    }
    if args.iter().any(|a| a == b"--gen-cert") {
        let mut g = crate::certgen::GenCertOptions::default();
        for a in &args {
            match a.as_slice() {
                b"--gen-cert" => {}
                b"--rsa" => g.rsa = true,
                b"--force" => g.force = true,
                _ => {
                    return Parsed::Usage(format!(
                        "{a0}: --gen-cert takes only --rsa and --force, not '{}'",
                        String::from_utf8_lossy(a)
                    ));
                }
            }
        }
        return Parsed::GenCert(g);
    }
    let mut o = Options::default();
    let mut i = 0;
    let mut bad_combination = false;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if a == b"--" {
            o.args.extend(args[i..].iter().cloned());
            break;
        }
        if a.len() < 2 || a[0] != b'-' {
            o.args.push(a.clone());
            continue;
        }
        // other long options fail as in the real program: `invalid option -- '-'`
        if a == b"--json" {
            o.json = true;
            continue;
        }
        if a == b"--watch" {
            if o.mode.is_some() {
                bad_combination = true;
            }
            o.mode = Some(Mode::Watch);
            continue;
        }
        if a == b"--delay" || a.starts_with(b"--delay=") {
            let value = if let Some(v) = a.strip_prefix(b"--delay=") {
                v.to_vec()
            } else if i < args.len() {
                i += 1;
                args[i - 1].clone()
            } else {
                return Parsed::Usage(format!("{a0}: --delay needs a number of seconds"));
            };
            if crate::setup::seconds(&value).is_none() {
                return Parsed::Usage(format!(
                    "{a0}: --delay needs a number of seconds, not '{}'",
                    String::from_utf8_lossy(&value)
                ));
            }
            o.delay = Some(value);
            continue;
        }
        if a == b"--status" {
            if o.mode.is_some() {
                bad_combination = true;
            }
            o.mode = Some(Mode::Status);
            continue;
        }
        if a == b"--full" {
            o.full = true;
            continue;
        }
        if a == b"--catch-up" {
            if o.mode.is_some() {
                bad_combination = true;
            }
            o.mode = Some(Mode::CatchUp);
            continue;
        }
        if a == b"--timeout" || a.starts_with(b"--timeout=") {
            let value = if let Some(v) = a.strip_prefix(b"--timeout=") {
                v.to_vec()
            } else if i < args.len() {
                i += 1;
                args[i - 1].clone()
            } else {
                return Parsed::Usage(format!("{a0}: --timeout needs a number of seconds"));
            };
            if crate::setup::seconds(&value).is_none() {
                return Parsed::Usage(format!(
                    "{a0}: --timeout needs a number of seconds, not '{}'",
                    String::from_utf8_lossy(&value)
                ));
            }
            o.timeout = Some(value);
            continue;
        }
        let mut j = 1;
        while j < a.len() {
            let c = a[j];
            j += 1;
            if WITH_VALUE.contains(&c) {
                let value = if j < a.len() {
                    let v = a[j..].to_vec();
                    j = a.len();
                    v
                } else if i < args.len() {
                    i += 1;
                    args[i - 1].clone()
                } else {
                    return Parsed::Usage(format!(
                        "{a0}: option requires an argument -- '{}'",
                        c as char
                    ));
                };
                match c {
                    b'W' => {
                        let fd = atoi(&value);
                        effects.push(Effect::CheckDumpFd(fd));
                        o.dump_dir_fd = Some(fd);
                    }
                    b's' => {
                        effects.push(Effect::OpenStampFile(value.clone()));
                        o.stamp_file = Some(value);
                    }
                    b'p' => o.port = Some(value),
                    b'G' => o.only_groups = Some(value),
                    b'P' => o.only_peers = Some(value),
                    b'C' => o.cfgname = Some(value),
                    b'D' => o.dbspec = Some(value),
                    b'N' => o.hostname = Some(value),
                    _ => unreachable!(),
                }
                continue;
            }
            match c {
                b'v' => o.verbose += 1,
                b'r' => o.recursive = true,
                b'd' => o.dry_run = true,
                b'I' => o.init = true,
                b'X' => o.mark_remote_only = true,
                b'U' => o.mark_only_tested_peer = true,
                b'F' => o.force_new = true,
                b'B' => o.no_batch = true,
                b'A' => o.async_db = true,
                b'l' => o.syslog = true,
                b't' => {
                    // in effect at once: a failing -s after it is stamped
                    o.timestamps = true;
                    effects.push(Effect::Timestamps);
                }
                _ if FLAGS.contains(&c) => {
                    if !set_mode(&mut o, c) {
                        bad_combination = true;
                    }
                }
                _ => {
                    let shown = if c.is_ascii() {
                        (c as char).to_string()
                    } else {
                        format!("\\{c:o}")
                    };
                    return Parsed::Usage(format!("{a0}: invalid option -- '{shown}'"));
                }
            }
        }
    }
    if bad_combination {
        return Parsed::Usage(String::new());
    }
    let n = o.args.len();
    use Mode::*;
    let ok = match o.mode {
        None => false,
        Some(Hint | Check | Update | CheckUpdate | Simple | CompareList | Force | Mark) => true,
        Some(ListPair) => n == 2,
        Some(Test { .. }) => n <= 3,
        Some(ListHints | ListFiles | ListDirty | Remove | Server(_) | CatchUp | Status | Watch) => {
            n == 0
        }
    };
    if !ok {
        return Parsed::Usage(String::new());
    }
    if o.delay.is_some() && o.mode != Some(Watch) {
        return Parsed::Usage(format!("{a0}: --delay works only with --watch"));
    }
    if o.full && o.mode != Some(CatchUp) {
        return Parsed::Usage(format!("{a0}: --full works only with --catch-up"));
    }
    if o.json
        && !matches!(
            o.mode,
            Some(ListHints | ListFiles | ListDirty | ListPair | Test { diff: false } | Status)
        )
    {
        return Parsed::Usage(format!(
            "{a0}: --json works only with -H, -L, -M, -S, -T and --status"
        ));
    }
    Parsed::Run(Box::new(o))
}

/// Splits a `-G`/`-P` list.
pub fn split_list(v: &[u8]) -> Vec<Vec<u8>> {
    v.split(|&b| b == b',').map(|s| s.to_vec()).collect()
}

/// The argv0 as it was invoked, for the usage text.
pub fn argv0(argv: &[OsString]) -> Vec<u8> {
    argv.first()
        .map(|a| a.as_bytes().to_vec())
        .unwrap_or_else(|| b"csync2".to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Parsed {
        let mut v = vec![OsString::from("csync2")];
        v.extend(args.iter().map(OsString::from));
        parse(&v).outcome
    }

    #[test]
    fn effects_in_order_and_help() {
        let mut v = vec![OsString::from("csync2")];
        v.extend(["-t", "-s", "f", "-W3", "-q", "-s", "g"].map(OsString::from));
        let r = parse(&v);
        assert_eq!(
            r.effects,
            vec![
                Effect::Timestamps,
                Effect::OpenStampFile(b"f".to_vec()),
                Effect::CheckDumpFd(3)
            ]
        );
        assert!(matches!(r.outcome, Parsed::Usage(_)));
        assert!(matches!(p(&["--help"]), Parsed::Help));
        assert!(matches!(p(&["-x", "-?"]), Parsed::Help));
        assert!(matches!(p(&["--version"]), Parsed::Version));
    }

    fn run(args: &[&str]) -> Options {
        match p(args) {
            Parsed::Run(o) => *o,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn combined_letters_and_values() {
        let o = run(&["-xvr", "-Cabc", "-N", "Host", "/etc"]);
        assert_eq!(o.mode, Some(Mode::Simple));
        assert!(o.recursive);
        assert_eq!(o.verbose, 1);
        assert_eq!(o.cfgname.as_deref(), Some(&b"abc"[..]));
        assert_eq!(o.hostname.as_deref(), Some(&b"Host"[..]));
        assert_eq!(o.args, vec![b"/etc".to_vec()]);
        assert_eq!(run(&["-iii"]).mode, Some(Mode::Server(3)));
        assert_eq!(run(&["-TT"]).mode, Some(Mode::Test { diff: true }));
        assert_eq!(run(&["-c", "-u"]).mode, Some(Mode::CheckUpdate));
        assert_eq!(run(&["-c", "f", "-r"]).args, vec![b"f".to_vec()]);
        assert_eq!(run(&["-c", "--", "-r"]).args, vec![b"-r".to_vec()]);
        assert_eq!(
            run(&["-N", "-x", "-L"]).hostname.as_deref(),
            Some(&b"-x"[..])
        );
    }

    #[test]
    fn usage_errors() {
        for bad in [
            &[][..],
            &["-v"],
            &["-cc"],
            &["-u", "-c"],
            &["-x", "-c"],
            &["-L", "-M"],
            &["-iiii"],
            &["-L", "x"],
            &["-S", "a"],
            &["-T", "a", "b", "c", "d"],
        ] {
            assert!(matches!(p(bad), Parsed::Usage(_)), "{bad:?}");
        }
        match p(&["-q"]) {
            Parsed::Usage(m) => assert_eq!(m, "csync2: invalid option -- 'q'"),
            o => panic!("{o:?}"),
        }
        match p(&["-L", "-C"]) {
            Parsed::Usage(m) => assert_eq!(m, "csync2: option requires an argument -- 'C'"),
            o => panic!("{o:?}"),
        }
        match p(&["-M", "--jsn"]) {
            Parsed::Usage(m) => assert_eq!(m, "csync2: invalid option -- '-'"),
            o => panic!("{o:?}"),
        }
        assert!(run(&["--json", "-M"]).json);
        assert_eq!(run(&["--catch-up", "-v"]).mode, Some(Mode::CatchUp));
        assert!(run(&["--catch-up", "--full"]).full);
        assert_eq!(run(&["--watch", "--delay", "0.2"]).mode, Some(Mode::Watch));
        assert!(matches!(p(&["-x", "--delay", "1"]), Parsed::Usage(_)));
        assert!(matches!(p(&["--watch", "--delay", "x"]), Parsed::Usage(_)));
        assert!(matches!(p(&["-x", "--full"]), Parsed::Usage(_)));
        for bad in [
            &["--catch-up", "-x"][..],
            &["-x", "--catch-up"],
            &["--catch-up", "f"],
        ] {
            assert!(matches!(p(bad), Parsed::Usage(_)), "{bad:?}");
        }
        assert_eq!(
            run(&["-x", "--timeout", "5"]).timeout.as_deref(),
            Some(&b"5"[..])
        );
        assert_eq!(
            run(&["--timeout=0.5", "-T"]).timeout.as_deref(),
            Some(&b"0.5"[..])
        );
        for bad in [
            &["-x", "--timeout"][..],
            &["-x", "--timeout", "soon"],
            &["-x", "--timeout=-1"],
        ] {
            assert!(matches!(p(bad), Parsed::Usage(_)), "{bad:?}");
        }
        assert!(run(&["-T", "--json"]).json);
        for bad in [&["-x", "--json"][..], &["-TT", "--json"], &["--json"]] {
            assert!(matches!(p(bad), Parsed::Usage(_)), "{bad:?}");
        }
        assert!(matches!(
            p(&["--gen-cert", "--rsa"]),
            Parsed::GenCert(crate::certgen::GenCertOptions {
                rsa: true,
                force: false
            })
        ));
        assert!(matches!(p(&["--gen-cert", "-v"]), Parsed::Usage(_)));
        assert!(matches!(p(&["-k", "f"]), Parsed::KeyGen(_)));
        assert!(matches!(p(&["-v", "-k", "f"]), Parsed::Usage(_)));
    }

    #[test]
    fn usage_text_substitutes_argv0() {
        let t = usage_text(b"./csync2");
        let s = String::from_utf8(t).unwrap();
        assert!(s.contains("Usage: ./csync2 [-v..]"));
        assert!(s.contains("\t./csync2 -k filename\n"));
        assert!(!s.contains("LINBIT"));
        assert!(s.starts_with(&format!("\ncsync2-rs {} ", env!("CARGO_PKG_VERSION"))));
        let h = String::from_utf8(help_text(b"csync2")).unwrap();
        for opt in ["--json", "--gen-cert", "--version", "-iii", "-TT", "-W FD"] {
            assert!(h.contains(opt), "{opt}");
        }
        assert!(version_text().ends_with("(csync2 2.0 compatible)\n"));
    }
}
