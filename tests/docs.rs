//! Documentation and service files: the man page renders without warnings
//! and documents every option of the usage text, the contrib service files
//! say what the server needs, and the logout check script parses and
//! behaves as described.
//!
//! Needs groff (`apt-get install groff`); man, systemd-analyze, shellcheck
//! and script are used when present.

use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let p = root().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool} >/dev/null 2>&1")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("c2docs-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create scratch dir");
    d
}

/// Terminal output as plain text: SGR escapes and overstrikes removed.
fn terminal_plain(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    let mut out: Vec<char> = Vec::new();
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '\u{1b}' => {
                // CSI ... final byte
                if it.peek() == Some(&'[') {
                    for d in it.by_ref() {
                        if d.is_ascii_alphabetic() {
                            break;
                        }
                    }
                }
            }
            '\u{8}' => {
                out.pop();
            }
            _ => out.push(c),
        }
    }
    out.into_iter().collect()
}

// ---------------------------------------------------------------------------
// (a) the man page renders cleanly
// ---------------------------------------------------------------------------

#[test]
fn man_page_renders_without_warnings() {
    let out = Command::new("groff")
        .args(["-ww", "-man", "-Tutf8", "doc/csync2.1"])
        .current_dir(root())
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => panic!("cannot run groff ({e}): install it with `apt-get install groff`"),
    };
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.is_empty(),
        "groff -ww -man doc/csync2.1: {}\n{err}",
        out.status
    );
    let text = terminal_plain(&out.stdout);
    for section in [
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "OPTIONS",
        "CONFIGURATION",
        "EXIT STATUS",
        "ENVIRONMENT",
        "FILES",
        "SEE ALSO",
    ] {
        assert!(
            text.lines().any(|l| l.trim_end() == section),
            "the man page has no {section} section"
        );
    }

    // man -l is what users run; it must find nothing to complain about either
    if have("man") {
        let out = Command::new("man")
            .args(["-l", "doc/csync2.1"])
            .current_dir(root())
            .env("MANPAGER", "cat")
            .env("PAGER", "cat")
            .env("MANWIDTH", "80")
            .stdin(Stdio::null())
            .output()
            .expect("run man -l");
        assert!(
            out.status.success(),
            "man -l doc/csync2.1: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("csync2"));
    } else {
        eprintln!("note: man is not installed; `man -l` not tried");
    }
}

// ---------------------------------------------------------------------------
// (b) every option of the usage text has a man page entry
// ---------------------------------------------------------------------------

/// Option-like words (`-x`, `-TT`, `--json`) of a text, with brackets and
/// trailing punctuation stripped.
fn option_words(text: &str) -> BTreeSet<String> {
    let mut v = BTreeSet::new();
    for w in text.split(|c: char| c.is_whitespace() || "[]{}|,()".contains(c)) {
        let w = w.trim_end_matches(['.', ':', ';']);
        let body = w.strip_prefix("--").or_else(|| w.strip_prefix('-'));
        let Some(body) = body else { continue };
        if body.starts_with(|c: char| c.is_ascii_alphabetic())
            && body.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            v.insert(w.to_string());
        }
    }
    v
}

/// A roff line as plain text: font escapes removed, `\-` as `-`, macro
/// name and quotes dropped.
fn roff_plain(line: &str) -> String {
    let mut s = String::new();
    let mut it = line.chars().peekable();
    while let Some(c) = it.next() {
        if c != '\\' {
            s.push(c);
            continue;
        }
        match it.next() {
            Some('f') => {
                // \fB, \fR, \fP, \f(XX
                let long_name = it.next() == Some('(');
                if long_name {
                    it.next();
                    it.next();
                }
            }
            Some('-') => s.push('-'),
            Some(' ') => s.push(' '),
            Some('&') => {}
            Some('e') => s.push('\\'),
            Some(o) => {
                s.push('\\');
                s.push(o);
            }
            None => {}
        }
    }
    let s = s.replace('"', "");
    match s.strip_prefix('.') {
        // ".BR \-h ..." -> "\-h ..."
        Some(rest) => rest.split_once(' ').map(|x| x.1).unwrap_or("").to_string(),
        None => s,
    }
}

/// Options named in the tags of `.TP` / `.TQ` entries of a man page.
fn man_entries(man: &str) -> BTreeSet<String> {
    let mut v = BTreeSet::new();
    let mut tag_next = false;
    for line in man.lines() {
        if tag_next && !line.starts_with(".\\\"") {
            v.extend(option_words(&roff_plain(line)));
            tag_next = false;
            continue;
        }
        let m = line.split_whitespace().next().unwrap_or("");
        if m == ".TP" || m == ".TQ" {
            tag_next = true;
        }
    }
    v
}

fn usage_text() -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_csync2"))
        .env("CSYNC2_SYSTEM_DIR", "/nonexistent/c2docs")
        .stdin(Stdio::null())
        .output()
        .expect("run csync2");
    assert_eq!(
        out.status.code(),
        Some(1),
        "csync2 without arguments exits 1"
    );
    String::from_utf8(out.stdout).expect("usage text is UTF-8")
}

#[test]
fn man_page_documents_every_option() {
    let usage = usage_text();
    assert!(usage.contains("Usage:"), "no usage text:\n{usage}");
    let mut want = option_words(&usage);
    // the program name in the usage text is not an option
    want.retain(|w| w.len() > 1);
    // a broken parser must not make this test vacuous
    for o in ["-c", "-x", "-T", "-TT", "-iii", "-k", "-W", "-D"] {
        assert!(want.contains(o), "usage parser missed {o}: {want:?}");
    }
    // csync2-rs additions
    for o in [
        "--gen-cert",
        "--force",
        "--rsa",
        "--json",
        "--help",
        "--version",
    ] {
        want.insert(o.to_string());
    }
    let have = man_entries(&read("doc/csync2.1"));
    let missing: Vec<&String> = want.iter().filter(|o| !have.contains(*o)).collect();
    assert!(
        missing.is_empty(),
        "options of the usage text without a .TP entry in doc/csync2.1: {missing:?}\n\
         (entries found: {have:?})"
    );
}

#[test]
fn man_page_mentions_files_and_environment() {
    let man = read("doc/csync2.1");
    let plain: String = man.lines().map(roff_plain).collect::<Vec<_>>().join("\n");
    for s in [
        "/etc/csync2.cfg",
        "/etc/csync2_ssl_cert.pem",
        "/etc/csync2_ssl_key.pem",
        "/var/lib/csync2/",
        "CSYNC2_SYSTEM_DIR",
        "CSYNC2_NO_PIPELINE",
        "backup-generations",
        "do-local-only",
        "lock-timeout",
        "tempdir",
        "nossl",
        "prefix",
        "doc/protocol-extension.md",
    ] {
        assert!(plain.contains(s), "doc/csync2.1 does not mention {s}");
    }
}

// ---------------------------------------------------------------------------
// (c) contrib files
// ---------------------------------------------------------------------------

/// `key = value` pairs of the xinetd service block.
fn xinetd_pairs(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// The value of `Key=` in a unit file (last one wins, as in systemd).
fn unit_value(text: &str, key: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix(&format!("{key}=")))
        .next_back()
        .map(|v| v.trim().to_string())
}

#[test]
fn xinetd_service() {
    let text = read("contrib/xinetd.d/csync2");
    assert!(
        text.lines().any(|l| l.trim() == "service csync2"),
        "no `service csync2` block"
    );
    let pairs = xinetd_pairs(&text);
    for (k, v) in [
        ("socket_type", "stream"),
        ("wait", "no"),
        ("user", "root"),
        ("server", "/usr/sbin/csync2"),
        ("server_args", "-i -l"),
        ("port", "30865"),
        ("flags", "REUSE"),
    ] {
        assert!(
            pairs.iter().any(|(a, b)| a == k && b == v),
            "contrib/xinetd.d/csync2 lacks `{k} = {v}`: {pairs:?}"
        );
    }
    assert!(
        !pairs.iter().any(|(a, b)| a == "disable" && b == "yes"),
        "the example service is disabled"
    );
}

#[test]
fn systemd_units() {
    let socket = read("contrib/systemd/csync2.socket");
    assert_eq!(
        unit_value(&socket, "ListenStream").as_deref(),
        Some("30865")
    );
    assert!(
        matches!(
            unit_value(&socket, "Accept").as_deref(),
            Some("yes" | "true" | "1" | "on")
        ),
        "csync2.socket must accept connections itself (Accept=yes)"
    );

    let tmpl = read("contrib/systemd/csync2@.service");
    assert_eq!(
        unit_value(&tmpl, "ExecStart").as_deref(),
        Some("/usr/sbin/csync2 -i -l")
    );
    assert_eq!(
        unit_value(&tmpl, "StandardInput").as_deref(),
        Some("socket")
    );
    // stdout must be the connection too: unset (follows stdin), inherit or socket
    assert!(
        matches!(
            unit_value(&tmpl, "StandardOutput").as_deref(),
            None | Some("inherit" | "socket")
        ),
        "StandardOutput of csync2@.service must follow the socket"
    );
    // stderr would follow stdout into the connection and break the protocol
    let se = unit_value(&tmpl, "StandardError");
    assert!(
        matches!(se.as_deref(), Some(v) if v != "inherit" && v != "socket"),
        "csync2@.service must send stderr elsewhere (e.g. StandardError=journal), got {se:?}"
    );

    let daemon = read("contrib/systemd/csync2.service");
    assert_eq!(
        unit_value(&daemon, "ExecStart").as_deref(),
        Some("/usr/sbin/csync2 -ii -l")
    );
    assert!(
        unit_value(&daemon, "Conflicts")
            .is_some_and(|v| v.split_whitespace().any(|u| u == "csync2.socket")),
        "csync2.service must conflict with csync2.socket"
    );
    assert!(unit_value(&daemon, "StandardInput").is_none());

    // the session command line is the same for xinetd and systemd
    let x = xinetd_pairs(&read("contrib/xinetd.d/csync2"));
    let args = x
        .iter()
        .find(|(k, _)| k == "server_args")
        .map(|(_, v)| v.clone());
    assert_eq!(
        unit_value(&tmpl, "ExecStart"),
        args.map(|a| format!("/usr/sbin/csync2 {a}"))
    );

    let watch = read("contrib/systemd/csync2-watch.service");
    for want in [
        "ExecStart=/usr/sbin/csync2 --watch",
        "Type=notify",
        "Restart=on-failure",
        "After=network-online.target",
    ] {
        assert!(watch.contains(want), "csync2-watch.service lacks {want}");
    }

    // the boot-time catch-up: once, after the network, never in the way
    let catchup = read("contrib/systemd/csync2-catchup.service");
    for want in [
        "ExecStart=/usr/sbin/csync2 --catch-up",
        "Type=oneshot",
        "After=network-online.target",
        "--timeout",
    ] {
        assert!(
            catchup.contains(want),
            "csync2-catchup.service lacks {want}"
        );
    }

    if !have("systemd-analyze") {
        eprintln!("note: systemd-analyze is not installed; units not verified");
        return;
    }
    // verify copies that start our binary (/usr/sbin/csync2 may be missing)
    let dir = scratch("units");
    for u in [
        "csync2.socket",
        "csync2@.service",
        "csync2.service",
        "csync2-catchup.service",
        "csync2-watch.service",
    ] {
        let t = read(&format!("contrib/systemd/{u}"))
            .replace("/usr/sbin/csync2", env!("CARGO_BIN_EXE_csync2"));
        std::fs::write(dir.join(u), t).expect("write unit copy");
    }
    let out = Command::new("systemd-analyze")
        .args([
            "verify",
            "--man=no",
            "csync2.socket",
            "csync2@.service",
            "csync2.service",
            "csync2-catchup.service",
            "csync2-watch.service",
        ])
        .current_dir(&dir)
        .output()
        .expect("run systemd-analyze");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "systemd-analyze verify: {}\n{err}",
        out.status
    );
}

#[test]
fn cron_example() {
    let text = read("contrib/cron.d/csync2");
    let jobs: Vec<Vec<&str>> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.contains('='))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(jobs.len(), 1, "one job expected: {jobs:?}");
    let j = &jobs[0];
    assert!(
        j.len() >= 7,
        "cron.d line: 5 time fields, user, command: {j:?}"
    );
    assert_eq!(&j[..5], &["*/5", "*", "*", "*", "*"], "every 5 minutes");
    assert_eq!(j[5], "root");
    assert!(
        j[6].ends_with("csync2") && j[7..].contains(&"-x"),
        "runs csync2 -x: {j:?}"
    );
}

// ---------------------------------------------------------------------------
// (d) the logout check script
// ---------------------------------------------------------------------------

const LOCHECK: &str = "contrib/csync2_locheck.sh";

#[test]
fn locheck_parses() {
    let out = Command::new("sh")
        .args(["-n", LOCHECK])
        .current_dir(root())
        .output()
        .expect("run sh -n");
    assert!(
        out.status.success(),
        "sh -n {LOCHECK}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if have("shellcheck") {
        let out = Command::new("shellcheck")
            .args(["-s", "sh", LOCHECK])
            .current_dir(root())
            .output()
            .expect("run shellcheck");
        assert!(
            out.status.success(),
            "shellcheck {LOCHECK}:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    } else {
        eprintln!("note: shellcheck is not installed; {LOCHECK} not linted");
    }
}

/// A stand-in for csync2 that logs its arguments; `-M` lists one dirty file
/// until `-x` has run (or always/never, by the `state` file).
fn fake_csync2(dir: &Path, dirty: bool) -> PathBuf {
    let state = dir.join("state");
    std::fs::write(&state, if dirty { "dirty" } else { "clean" }).unwrap();
    let bin = dir.join("csync2");
    let script = format!(
        r#"#!/bin/sh
echo "$*" >> '{log}'
case " $* " in
*" -M "*)
    if [ "$(cat '{state}')" = dirty ]; then
        printf 'chary\tn1\tn2\t/etc/motd\n'
        exit 0
    fi
    exit 2 ;;
*" -x "*) echo clean > '{state}' ;;
esac
exit 0
"#,
        log = dir.join("log").display(),
        state = state.display()
    );
    std::fs::write(&bin, script).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

fn locheck_cmd(dir: &Path, bin: &Path) -> Command {
    let mut c = Command::new("sh");
    c.arg(root().join(LOCHECK))
        .env("CSYNC2", bin)
        .env("CSYNC2_LOCHECK_OPTS", "-C web")
        .env_remove("CSYNC2_LOCHECK_PATHS")
        .current_dir(dir);
    c
}

fn log_of(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("log"))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn locheck_without_terminal() {
    // nothing dirty: silent
    let dir = scratch("locheck-clean");
    let bin = fake_csync2(&dir, false);
    let out = locheck_cmd(&dir, &bin)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(log_of(&dir), ["-C web -cr /", "-C web -M"]);

    // dirty: the list and a warning, no question, no sync
    let dir2 = scratch("locheck-dirty");
    let bin = fake_csync2(&dir2, true);
    let out = locheck_cmd(&dir2, &bin)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("/etc/motd"), "dirty file listed: {text}");
    assert!(text.contains("unsynced changes"), "warning printed: {text}");
    assert_eq!(log_of(&dir2), ["-C web -cr /", "-C web -M"]);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&dir2);
}

/// Run the script on a terminal (util-linux `script`) with `input` typed.
fn locheck_on_tty(dir: &Path, bin: &Path, input: &str) -> Option<String> {
    if !have("script") {
        eprintln!("note: `script` is not installed; interactive logout check not tried");
        return None;
    }
    let shell = dir.join("newshell");
    std::fs::write(&shell, "#!/bin/sh\necho \"NEW LOGIN SHELL $*\"\n").unwrap();
    std::fs::set_permissions(&shell, std::fs::Permissions::from_mode(0o755)).unwrap();
    // script(1) runs the command with $SHELL: set the stand-in only inside
    let cmd = format!(
        "SHELL='{}' sh '{}'",
        shell.display(),
        root().join(LOCHECK).display()
    );
    let mut c = Command::new("script");
    c.args(["-qec", &cmd, "/dev/null"])
        .env("CSYNC2", bin)
        .env("CSYNC2_LOCHECK_OPTS", "-C web")
        .env_remove("CSYNC2_LOCHECK_PATHS")
        .env("SHELL", "/bin/sh")
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("run script");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().expect("wait for script");
    Some(String::from_utf8_lossy(&out.stdout).replace('\r', ""))
}

#[test]
fn locheck_interactive() {
    // "sync" runs csync2 -x, the second look finds nothing: logout goes on
    let dir = scratch("locheck-sync");
    let bin = fake_csync2(&dir, true);
    let Some(text) = locheck_on_tty(&dir, &bin, "sync\n") else {
        return;
    };
    assert!(text.contains("Do you really want to log out?"), "{text}");
    assert!(!text.contains("NEW LOGIN SHELL"), "{text}");
    assert_eq!(
        log_of(&dir),
        [
            "-C web -cr /",
            "-C web -M",
            "-C web -x",
            "-C web -cr /",
            "-C web -M"
        ],
        "{text}"
    );

    // "yes" logs out with the changes left
    let dir2 = scratch("locheck-yes");
    let bin = fake_csync2(&dir2, true);
    let text = locheck_on_tty(&dir2, &bin, "yes\n").unwrap();
    assert!(!text.contains("NEW LOGIN SHELL"), "{text}");
    assert_eq!(log_of(&dir2), ["-C web -cr /", "-C web -M"], "{text}");

    // anything else: a new login shell instead of the logout
    let dir3 = scratch("locheck-no");
    let bin = fake_csync2(&dir3, true);
    let text = locheck_on_tty(&dir3, &bin, "no\n").unwrap();
    assert!(text.contains("NEW LOGIN SHELL -l"), "{text}");
    assert_eq!(log_of(&dir3), ["-C web -cr /", "-C web -M"], "{text}");
    for d in [dir, dir2, dir3] {
        let _ = std::fs::remove_dir_all(d);
    }
}

// ---------------------------------------------------------------------------
// (e) references from the code into doc/cli.md, config.md, state.md and
//     protocol.md
// ---------------------------------------------------------------------------

/// The documents the code cites as `NAME.md §N.M` and `NAME.md Qn`.
const CITED_DOCS: [&str; 4] = ["cli", "config", "state", "protocol"];

/// What a document offers to cite: the numbers of its headings
/// (`## 5. …` → `5`, `### 5.11 …` → `5.11`) and of its quirk entries
/// (`**Q8.** …`, or a heading `### Q8. …`).
struct DocTargets {
    sections: BTreeSet<String>,
    quirks: BTreeSet<u32>,
}

fn is_section_number(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// `Q12.…` or `Q12**…` at the start of `s`: 12.
fn quirk_entry(s: &str) -> Option<u32> {
    let rest = s.strip_prefix('Q')?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let after = rest[digits..].bytes().next();
    if digits == 0 || !matches!(after, Some(b'.' | b'*')) {
        return None;
    }
    rest[..digits].parse().ok()
}

fn doc_targets(text: &str) -> DocTargets {
    let mut t = DocTargets {
        sections: BTreeSet::new(),
        quirks: BTreeSet::new(),
    };
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with('#') {
            let h = l.trim_start_matches('#').trim();
            let first = h.split_whitespace().next().unwrap_or("");
            let num = first.trim_end_matches('.');
            if is_section_number(num) {
                t.sections.insert(num.to_string());
            }
            t.quirks.extend(quirk_entry(h));
            continue;
        }
        let l = l
            .strip_prefix("* ")
            .or_else(|| l.strip_prefix("- "))
            .unwrap_or(l);
        if let Some(bold) = l.strip_prefix("**") {
            t.quirks.extend(quirk_entry(bold));
        }
    }
    t
}

/// One citation found in the code.
#[derive(Debug, PartialEq)]
enum Cite {
    Section(&'static str, String),
    Quirk(&'static str, u32),
    /// `Qn` without a document name before it.
    BareQuirk(u32),
}

/// Digits at the start of `s`.
fn digits(s: &str) -> usize {
    s.bytes().take_while(u8::is_ascii_digit).count()
}

/// A section number (`5`, `5.11`, `12.9`) at the start of `s`: its length.
fn section_len(s: &str) -> usize {
    let mut n = digits(s);
    if n == 0 {
        return 0;
    }
    while s[n..].starts_with('.') && digits(&s[n + 1..]) > 0 {
        n += 1 + digits(&s[n + 1..]);
    }
    n
}

/// After a section number: a separator that continues the list
/// (`, §7`, `–§1.3`, ` and §12.4`, `/§2`) and the offset of its `§`.
fn next_in_list(s: &str) -> Option<usize> {
    let t = s.trim_start();
    let mut skipped = s.len() - t.len();
    for sep in [",", "–", "-", "/", "and ", "or "] {
        if let Some(r) = t.strip_prefix(sep) {
            let r2 = r.trim_start();
            skipped += sep.len() + (r.len() - r2.len());
            return r2.starts_with('§').then_some(skipped);
        }
    }
    t.starts_with('§').then_some(skipped)
}

fn word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Every citation in one line of code: `state.md §4.7`, lists such as
/// `config.md §3–§5, §7` and `cli.md §5.9 and §12.4`, `protocol.md Q8`,
/// and bare `Q8`.
fn cites_in_line(line: &str) -> Vec<Cite> {
    let b = line.as_bytes();
    let mut out = Vec::new();
    let mut named_q = Vec::new(); // byte offsets of `Q`s that follow a name
    for doc in CITED_DOCS {
        let name = format!("{doc}.md");
        for (at, _) in line.match_indices(&name) {
            if at > 0 && (word_byte(b[at - 1]) || b[at - 1] == b'-') {
                continue; // e.g. `protocol-extension.md` is not cited here
            }
            let mut p = at + name.len();
            let gap = line[p..].len() - line[p..].trim_start().len();
            let q = p + gap;
            if gap > 0 && line[q..].starts_with('Q') {
                let n = digits(&line[q + 1..]);
                if n > 0 {
                    named_q.push(q);
                    out.push(Cite::Quirk(doc, line[q + 1..q + 1 + n].parse().unwrap()));
                    continue;
                }
            }
            if !line[q..].starts_with('§') {
                continue;
            }
            p = q;
            loop {
                p += '§'.len_utf8();
                let n = section_len(&line[p..]);
                if n == 0 {
                    break;
                }
                out.push(Cite::Section(doc, line[p..p + n].to_string()));
                p += n;
                match next_in_list(&line[p..]) {
                    Some(skip) => p += skip,
                    None => break,
                }
            }
        }
    }
    for (i, _) in line.match_indices('Q') {
        if named_q.contains(&i) || (i > 0 && word_byte(b[i - 1])) {
            continue;
        }
        let n = digits(&line[i + 1..]);
        if n > 0 {
            out.push(Cite::BareQuirk(line[i + 1..i + 1 + n].parse().unwrap()));
        }
    }
    out
}

fn targets_of<'a>(all: &'a [(&str, DocTargets)], doc: &str) -> &'a DocTargets {
    &all.iter()
        .find(|(d, _)| *d == doc)
        .expect("a cited document")
        .1
}

fn source_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            source_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs" || x == "pest") {
            out.push(p);
        }
    }
}

#[test]
fn reference_scanner() {
    use Cite::*;
    assert_eq!(
        cites_in_line("//! (config.md §3–§5, §7) and cli.md §5.9 and §12.4."),
        [
            Section("cli", "5.9".into()),
            Section("cli", "12.4".into()),
            Section("config", "3".into()),
            Section("config", "5".into()),
            Section("config", "7".into()),
        ]
    );
    assert_eq!(
        cites_in_line("// (protocol.md Q8; Q10) see state.md §4.7: x"),
        [
            Section("state", "4.7".into()),
            Quirk("protocol", 8),
            BareQuirk(10),
        ]
    );
    assert!(cites_in_line("// doc/protocol-extension.md, RFC 5280 §4.1.2.5, SQ1").is_empty());
    let t = doc_targets("## 5. Modes\n### 5.11 Warn\n**Q3.** x\n* **Q4.** y\n### Q5. z\n");
    assert_eq!(t.sections.iter().collect::<Vec<_>>(), ["5", "5.11"]);
    assert_eq!(t.quirks.iter().collect::<Vec<_>>(), [&3, &4, &5]);
}

/// Every `NAME.md §N` in src/ names a heading numbered N in doc/NAME.md,
/// and every `NAME.md Qn` a quirk entry Qn there; a bare `Qn` is ambiguous
/// (each document numbers its own quirks) and fails. `DOCS_SRC_DIR`
/// points the scan at another copy of src/.
#[test]
fn references_resolve() {
    let targets: Vec<(&str, DocTargets)> = CITED_DOCS
        .iter()
        .map(|d| (*d, doc_targets(&read(&format!("doc/{d}.md")))))
        .collect();
    let src = match std::env::var_os("DOCS_SRC_DIR") {
        Some(d) => root().join(d),
        None => root().join("src"),
    };
    let base = src.parent().unwrap_or(&src).to_path_buf();
    let mut files = Vec::new();
    source_files(&src, &mut files);
    let mut seen = 0;
    let mut bad = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", f.display()));
        let shown = f.strip_prefix(&base).unwrap_or(f).display().to_string();
        for (i, line) in text.lines().enumerate() {
            for c in cites_in_line(line) {
                seen += 1;
                let problem = match &c {
                    Cite::Section(d, n) if !targets_of(&targets, d).sections.contains(n) => {
                        format!("{d}.md §{n}: doc/{d}.md has no heading numbered {n}")
                    }
                    Cite::Quirk(d, n) if !targets_of(&targets, d).quirks.contains(n) => {
                        format!("{d}.md Q{n}: doc/{d}.md has no quirk entry **Q{n}.**")
                    }
                    Cite::BareQuirk(n) => format!(
                        "Q{n} without a document: write e.g. `state.md Q{n}` or `protocol.md Q{n}`"
                    ),
                    _ => continue,
                };
                bad.push(format!("{shown}:{}: {problem}\n    {}", i + 1, line.trim()));
            }
        }
    }
    assert!(
        seen >= 20,
        "only {seen} references found under {}: is the scanner broken?",
        src.display()
    );
    assert!(
        bad.is_empty(),
        "{} of {seen} references under {} do not resolve:\n{}",
        bad.len(),
        src.display(),
        bad.join("\n")
    );
}
