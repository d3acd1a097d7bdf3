//! Differential tests: malformed (and a few tricky-but-valid) configuration
//! files, run through both the reference `/usr/sbin/csync2` and our binary.
//!
//! Each corpus entry is a directory `tests/configs/NAME/` holding
//! `csync2.cfg` (plus include and key files) and an `expect` file:
//!
//! ```text
//! # free-text note (first line)
//! exit: 1                                  exit code of the real csync2
//! message: Near line 11: syntax error      its (single) stderr line, if any
//! file: csync2.cfg                         syntax errors only: the TRUE file ...
//! line: 6                                  ... and the TRUE line of the error
//! stdout: \n                               its stdout (escapes \n \r \t \\)
//! args: -C abc1                            extra arguments before `-L`
//! ```
//!
//! `$SYSDIR` in `message`/`stdout` stands for the (temporary) system
//! directory.  The directory is copied to a fresh temp dir which is used as
//! `CSYNC2_SYSTEM_DIR` and as the working directory (includes are relative to
//! the cwd), and `csync2 -N h1.cfg.test -D <tmp db dir> [args] -L` is run.
//!
//! "True" location: the file the offending (lookahead) token came from, and
//! 1 + the number of LF bytes of *that* file before the start of that token
//! (for an unexpected end of input: 1 + the number of LFs in the main file,
//! where end of input is always met).  It differs from the real csync2's
//! `Near line N` after includes (its counter is cumulative over all files),
//! after a `config` without `;` (the leaked LF is not counted by the real
//! one) and for an offending quoted string spanning lines (the real one
//! reports the line where it ends).  Our binary must print the real message line verbatim
//! *and* a detail line containing `FILE:LINE:`.
//!
//! Checks per entry (ours vs. the recorded expectation and, if installed,
//! the live real binary; the recording is also checked against the live
//! real binary):
//! 1. identical exit code;
//! 2. the real message line is one of our stderr lines (extra lines allowed);
//!    for accepted configs our stderr must be empty like the real one's;
//! 3. syntax errors: our stderr contains `FILE:LINE:`;
//! 4. identical stdout.
//!
//! `tests/configs/generate.py` regenerates the corpus from the real binary.
//! `CONFIG_ERRORS_BIN=/usr/sbin/csync2 cargo test --test config_errors`
//! checks the harness itself: only the `FILE:LINE:` checks must fail.

mod common;

use common::setup::SYSTEM_DIR;
use common::{Proc, captured};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const REAL: &str = "/usr/sbin/csync2";
const OURS: &str = env!("CARGO_BIN_EXE_csync2");
const HOST: &str = "h1.cfg.test";
const TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Default)]
struct Expect {
    note: String,
    exit: i32,
    message: Option<String>,
    file: Option<String>,
    line: Option<u32>,
    stdout: String,
    args: Vec<String>,
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('\\') => out.push('\\'),
            other => panic!("bad escape \\{other:?} in expect file"),
        }
    }
    out
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs")
}

fn load_expect(name: &str) -> Expect {
    let path = corpus_dir().join(name).join("expect");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut ex = Expect {
        exit: -1,
        ..Default::default()
    };
    for raw in text.lines() {
        if let Some(note) = raw.strip_prefix('#') {
            if ex.note.is_empty() {
                ex.note = note.trim().to_string();
            }
            continue;
        }
        if raw.trim().is_empty() {
            continue;
        }
        let (key, value) = raw
            .split_once(": ")
            .unwrap_or_else(|| panic!("{}: bad line {raw:?}", path.display()));
        match key {
            "exit" => ex.exit = value.parse().expect("exit code"),
            "message" => ex.message = Some(unescape(value)),
            "file" => ex.file = Some(value.to_string()),
            "line" => ex.line = Some(value.parse().expect("line number")),
            "stdout" => ex.stdout = unescape(value),
            "args" => ex.args = value.split_whitespace().map(str::to_string).collect(),
            _ => panic!("{}: unknown key {key:?}", path.display()),
        }
    }
    assert!(ex.exit >= 0, "{}: no exit code", path.display());
    assert_eq!(
        ex.file.is_some(),
        ex.line.is_some(),
        "{}: file/line come in pairs",
        path.display()
    );
    ex
}

#[derive(Debug)]
struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn stderr_lines(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.stderr.split('\n').collect();
        if v.last() == Some(&"") {
            v.pop();
        }
        v
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "expect" {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Runs `bin` on a fresh copy of corpus entry `name`.
fn run(bin: &str, name: &str, args: &[String]) -> Outcome {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let tmp = std::env::temp_dir().join(format!("csync2-cfgerr-{}-{n}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    let sysdir = tmp.join("sys");
    let db = tmp.join("db");
    copy_dir(&corpus_dir().join(name), &sysdir);
    fs::create_dir_all(&db).unwrap();
    let mut cmd = Command::new(bin);
    cmd.arg("-N")
        .arg(HOST)
        .arg("-D")
        .arg(&db)
        .args(args)
        .arg("-L")
        .current_dir(&sysdir)
        .env(SYSTEM_DIR, &sysdir);
    captured(&mut cmd);
    let done = Proc::spawn(cmd, bin.to_string()).wait_until(Instant::now() + TIMEOUT);
    let sys = sysdir.to_str().unwrap();
    let read = |b: &[u8]| String::from_utf8_lossy(b).replace(sys, "$SYSDIR");
    let mut outcome = Outcome {
        code: done.code,
        stdout: read(&done.stdout),
        stderr: read(&done.stderr),
    };
    if done.timed_out {
        outcome
            .stderr
            .push_str(&format!("<<killed after {TIMEOUT:?}>>\n"));
    }
    let _ = fs::remove_dir_all(&tmp);
    outcome
}

fn real_available() -> bool {
    Path::new(REAL).exists()
}

/// Differences between the real binary's live outcome and the recording.
fn check_real(ex: &Expect, real: &Outcome) -> Vec<String> {
    let mut errs = Vec::new();
    if real.code != Some(ex.exit) {
        errs.push(format!("real exit {:?}, recorded {}", real.code, ex.exit));
    }
    let lines = real.stderr_lines();
    let want: Vec<&str> = ex.message.iter().map(String::as_str).collect();
    if lines != want {
        errs.push(format!("real stderr {lines:?}, recorded {want:?}"));
    }
    if real.stdout != ex.stdout {
        errs.push(format!(
            "real stdout {:?}, recorded {:?}",
            real.stdout, ex.stdout
        ));
    }
    errs
}

/// Differences between our outcome and the expectation.
fn check_ours(ex: &Expect, ours: &Outcome) -> Vec<String> {
    let mut errs = Vec::new();
    if ours.code != Some(ex.exit) {
        errs.push(format!("exit code {:?}, expected {}", ours.code, ex.exit));
    }
    let lines = ours.stderr_lines();
    match &ex.message {
        Some(msg) => {
            if !lines.iter().any(|l| l == msg) {
                errs.push(format!("stderr lacks the line {msg:?}; got {lines:?}"));
            }
        }
        None => {
            if !ours.stderr.is_empty() {
                errs.push(format!("stderr should be empty; got {lines:?}"));
            }
        }
    }
    if let (Some(file), Some(line)) = (&ex.file, ex.line) {
        let loc = format!("{file}:{line}:");
        if !ours.stderr.contains(&loc) {
            errs.push(format!(
                "stderr does not name the true location {loc:?}; got {lines:?}"
            ));
        }
    }
    if ours.stdout != ex.stdout {
        errs.push(format!(
            "stdout {:?}, expected {:?}",
            ours.stdout, ex.stdout
        ));
    }
    errs
}

fn check(name: &str) {
    let ex = load_expect(name);
    let mut report = Vec::new();
    if real_available() {
        let real = run(REAL, name, &ex.args);
        for e in check_real(&ex, &real) {
            report.push(format!("CORPUS (recording is stale): {e}"));
        }
    }
    // CONFIG_ERRORS_BIN=/path/to/csync2 tests another binary (harness self-check).
    let bin = std::env::var("CONFIG_ERRORS_BIN").unwrap_or_else(|_| OURS.to_string());
    let ours = run(&bin, name, &ex.args);
    report.extend(check_ours(&ex, &ours));
    if !report.is_empty() {
        panic!(
            "config corpus entry {name} ({}):\n  {}",
            ex.note,
            report.join("\n  ")
        );
    }
}

macro_rules! corpus {
    ($($name:ident,)*) => {
        const CASES: &[&str] = &[$(stringify!($name)),*];
        $(
            #[test]
            fn $name() {
                check(stringify!($name));
            }
        )*
    };
}

#[test]
fn corpus_list_matches_directories() {
    let mut dirs: Vec<String> = fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    dirs.sort();
    let mut cases: Vec<String> = CASES.iter().map(|s| s.to_string()).collect();
    cases.sort();
    assert_eq!(
        dirs, cases,
        "tests/configs/* and the corpus! list must agree"
    );
    let invalid = CASES.iter().filter(|c| load_expect(c).exit != 2).count();
    assert!(
        invalid >= 40,
        "corpus needs at least 40 malformed configs, has {invalid}"
    );
    for c in CASES {
        let ex = load_expect(c);
        if ex
            .message
            .as_deref()
            .is_some_and(|m| m.contains("syntax error"))
        {
            assert!(
                ex.file.is_some(),
                "{c}: syntax error entries must state the true file/line"
            );
        }
    }
}

corpus! {
    cfg_bad_name_dash,
    cfg_bad_name_upper,
    cfg_missing_file,
    cfg_missing_named_file,
    inc_error_after_include,
    inc_error_after_nested_include,
    inc_error_after_two_includes,
    inc_error_at_eof_after_include,
    inc_error_inside_group_include,
    inc_error_inside_included_file,
    inc_error_inside_included_file_line_offset,
    inc_error_inside_nested_include,
    inc_hash_is_filename,
    inc_host_config_word,
    inc_missing_file,
    inc_missing_key_in_include,
    inc_missing_second_file,
    inc_nested_11,
    inc_no_semicolon_before_newline,
    inc_no_semicolon_crlf,
    inc_no_semicolon_then_error,
    inc_quoted_name,
    inc_self_include,
    lex_at_inside_word_missing_peer,
    lex_at_leading,
    lex_brace_host_glued,
    lex_close_brace_glued_to_word,
    lex_double_close_brace,
    lex_empty_string_key,
    lex_group_capitalised,
    lex_group_name_brace_glued,
    lex_hash_glued_to_word,
    lex_host_config_keyword,
    lex_keyword_as_host,
    lex_keyword_as_pattern,
    lex_keyword_prefix_word_is_word,
    lex_on_host_colon_path_glued,
    lex_on_host_space_colon_path,
    lex_quoted_multiline_counts_lines,
    lex_trailing_colon_in_host,
    lex_unterminated_quote,
    mem_comments_only,
    mem_empty_file,
    mem_group_deselected_by_g,
    mem_not_member,
    mem_wildcard_not_member,
    ord_auto_dup_checked_before_validity,
    ord_auto_error_with_extra_word,
    ord_auto_error_without_semicolon,
    ord_auto_invalid_before_missing_key,
    ord_ignore_error_at_eof,
    ord_ignore_error_without_semicolon,
    ord_key_file_error_with_extra_word,
    ord_key_file_error_without_semicolon,
    ord_no_cygwin_before_later_error,
    ord_no_cygwin_needs_semicolon,
    ord_prefix_relative_before_later_error,
    ord_prefix_relative_needs_semicolon,
    ord_second_key_checked_before_reading,
    ord_second_key_without_semicolon,
    sem_key_bad_char_at_byte_1023,
    sem_key_file_crlf,
    sem_key_file_dash,
    sem_key_file_empty,
    sem_key_file_is_directory,
    sem_key_file_missing,
    sem_key_file_missing_absolute,
    sem_key_file_only_newline,
    sem_key_file_short,
    sem_key_file_space,
    sem_key_of_nonmember_group_missing,
    sem_missing_key,
    sem_missing_key_before_syntax_error,
    sem_missing_key_empty_group,
    sem_no_cygwin_lowercase,
    sem_prefix_relative,
    sem_prefix_relative_nonmatching,
    sem_two_auto,
    sem_two_keys,
    sem_unknown_auto,
    sem_unknown_ignore,
    sem_unknown_ignore_several,
    syn_action_at_top,
    syn_action_nested,
    syn_action_without_brace,
    syn_auto_no_arg,
    syn_auto_two_args,
    syn_backup_directory_no_arg,
    syn_backup_directory_two_args,
    syn_backup_generations_no_arg,
    syn_backup_generations_two_args,
    syn_cr_only_line_ends,
    syn_crlf_missing_semicolon,
    syn_database_no_arg,
    syn_database_two_args,
    syn_do_local_arg,
    syn_do_local_only_arg,
    syn_double_colon_in_on,
    syn_eof_after_blank_lines,
    syn_eof_in_group,
    syn_eof_no_trailing_newline,
    syn_error_after_comment_lines,
    syn_group_in_group,
    syn_group_name_keyword,
    syn_host_at_top,
    syn_host_in_action,
    syn_ignore_in_group,
    syn_include_at_top,
    syn_key_at_top,
    syn_key_no_arg,
    syn_key_two_args,
    syn_lock_timeout_no_arg,
    syn_lock_timeout_two_args,
    syn_logfile_no_arg,
    syn_logfile_two_args,
    syn_lone_semicolon_in_action,
    syn_lone_semicolon_in_group,
    syn_lone_semicolon_line1,
    syn_missing_semicolon_last,
    syn_missing_semicolon_mid,
    syn_multiline_quoted_offending_token,
    syn_mygroup_without_group_keyword,
    syn_nested_parens,
    syn_no_cygwin_lowercase_arg,
    syn_nossl_in_group,
    syn_nossl_one_arg,
    syn_nossl_three_args,
    syn_pattern_in_group,
    syn_prefix_in_group,
    syn_prefix_missing_name,
    syn_prefix_on_missing_colon,
    syn_prefix_without_block,
    syn_semicolon_after_action,
    syn_semicolon_after_group,
    syn_semicolon_after_group_next_line,
    syn_tempdir_no_arg,
    syn_tempdir_two_args,
    syn_unclosed_paren,
    valid_brace_spacing,
    valid_crlf,
    valid_database_statement,
    valid_empty_include_and_multi,
    valid_group_name_quoted_keyword,
    valid_inc_nested_10,
    valid_inc_no_semicolon_at_eof,
    valid_key_32_no_newline,
    valid_key_only_first_1023_bytes,
    valid_key_second_line_ignored,
    valid_named_config,
    valid_tricky_tokens,
}
