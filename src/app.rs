//! The program: start-up sequence, mode dispatch and exit code
//! (cli.md §1, §5, §6).

use crate::check::{CheckOptions, Checker};
use crate::cli::{self, Mode, Options, Parsed};
use crate::config::{self, Config, ParseOptions, matcher::Class};
use crate::db::{self, Db};
use crate::mark::{self, MarkOptions};
use crate::paths;
use crate::update::stream::Streamer;
use crate::{Fatal, action, cleanup, keygen, listing, log, msg};
use std::collections::HashMap;
use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

pub fn system_dir() -> Vec<u8> {
    match std::env::var_os("CSYNC2_SYSTEM_DIR") {
        Some(v) => v.as_bytes().to_vec(),
        None => b"/etc".to_vec(),
    }
}

fn hostname(opt: Option<&[u8]>) -> Vec<u8> {
    let mut name = match opt {
        Some(n) => n[..n.len().min(255)].to_vec(),
        None => nix::unistd::gethostname()
            .map(|h| h.as_bytes().to_vec())
            .unwrap_or_default(),
    };
    name.make_ascii_lowercase();
    name
}

/// Prints a fatal error (through the logger, so `-l` silences stderr).
fn fatal(f: &Fatal) -> i32 {
    log::debug(0, &f.0);
    1
}

pub fn main(argv: &[OsString]) -> i32 {
    if argv.len() == 3 && argv[1].as_bytes() == b"-k" {
        return keygen::generate(argv[2].as_bytes());
    }
    let sysdir = system_dir();
    let lock = msg!(sysdir, "/csync2.lock");
    if std::fs::symlink_metadata(paths::as_path(&lock)).is_ok() {
        let mut out = std::io::stdout();
        let _ = out.write_all(&msg!("Found ", lock, "\n"));
        let _ = out.flush();
        return 1;
    }
    let o = {
        {
            match cli::parse(argv) {
                Parsed::Run(o) => o,
                Parsed::Usage(err) => {
                    if !err.is_empty() {
                        eprintln!("{err}");
                    }
                    let mut out = std::io::stdout();
                    let _ = out.write_all(&cli::usage_text(&cli::argv0(argv)));
                    let _ = out.flush();
                    return 1;
                }
                Parsed::Fatal(m) => {
                    log::debug(0, m.as_bytes());
                    log::end_stamp(false);
                    return 1;
                }
                Parsed::KeyGen(_) => unreachable!(),
                Parsed::GenCert(g) => return crate::certgen::generate(&sysdir, &g),
            }
        }
    };
    run(&o)
}

/// Runs a parsed command line; returns the exit code.
pub fn run(o: &Options) -> i32 {
    log::set_verbosity(o.verbose);
    log::set_timestamps(o.timestamps);
    let mode = o.mode.expect("validated");
    if o.syslog || matches!(mode, Mode::Server(1)) {
        log::use_syslog();
    }
    let myname = hostname(o.hostname.as_deref());
    let sysdir = system_dir();
    log::start_stamp();
    if let Mode::Server(n) = mode {
        // the config is read per connection, after the client's CONFIG
        let code = match n {
            1 => crate::server::run_inetd(o, &myname),
            n => crate::server::run_standalone(o, &myname, n == 3),
        };
        log::end_stamp(true);
        return code;
    }
    let (code, completed) = run_configured(o, mode, &myname, &sysdir);
    log::end_stamp(completed);
    code
}

/// Loading the config or the database failed; the message was printed.
#[derive(Debug)]
pub struct LoadFailed;

/// Reads the config named `cfgname` and opens its database, printing any
/// fatal error; Err means "exit 1" (config.md §1.4, cli.md §1 steps 10–13).
pub fn load(
    o: &Options,
    myname: &[u8],
    sysdir: &[u8],
    cfgname: &[u8],
) -> Result<(Config, Db), LoadFailed> {
    if !cfgname
        .iter()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        log::debug(0, "Config names are limited to [a-z0-9]+.");
        return Err(LoadFailed);
    }
    let cfg_path = if cfgname.is_empty() {
        msg!(sysdir, "/csync2.cfg")
    } else {
        msg!(sysdir, "/csync2_", cfgname, ".cfg")
    };
    log::debug(2, msg!("Config-File:   ", cfg_path));
    let only_groups = o.only_groups.as_deref().map(cli::split_list);
    let only_peers = o.only_peers.as_deref().map(cli::split_list);
    let popts = ParseOptions {
        myhostname: myname,
        sysdir: paths::as_path(sysdir),
        only_groups: only_groups.as_deref(),
        only_peers: only_peers.as_deref(),
    };
    let cfg = match config::parse_file(
        &PathBuf::from(std::ffi::OsStr::from_bytes(&cfg_path)),
        &popts,
    ) {
        Ok(c) => c,
        Err(e) => {
            if e.plain_stderr {
                log::raw_stderr(e.message.as_bytes());
            } else {
                log::debug(0, e.message.as_bytes());
            }
            if let Some(d) = &e.detail {
                log::debug(0, d.as_bytes());
            }
            return Err(LoadFailed);
        }
    };

    let dbspec = o
        .dbspec
        .clone()
        .or_else(|| cfg.database.clone())
        .map(|d| String::from_utf8_lossy(&d).into_owned());
    let host_s = String::from_utf8_lossy(myname).into_owned();
    let cfg_s = String::from_utf8_lossy(cfgname).into_owned();
    log::debug(2, msg!("My hostname is ", myname, "."));
    log::debug(
        2,
        msg!(
            "Database-File: ",
            db::shown_name(dbspec.as_deref(), &host_s, Some(&cfg_s))
        ),
    );
    let loc = match db::resolve(dbspec.as_deref(), &host_s, Some(&cfg_s)) {
        Ok(l) => l,
        Err(m) => {
            fatal(&Fatal::msg(m));
            return Err(LoadFailed);
        }
    };
    if !cfg.is_member() {
        log::debug(
            0,
            msg!(
                "This host (",
                myname,
                ") is not a member of any configured group."
            ),
        );
        return Err(LoadFailed);
    }
    match Db::open(&loc, cfg.lock_timeout, !o.no_batch, o.async_db) {
        Ok(d) => Ok((cfg, d)),
        Err(e) => {
            fatal(&e.into());
            Err(LoadFailed)
        }
    }
}

/// Returns the exit code and whether the run got to its normal end.
fn run_configured(o: &Options, mode: Mode, myname: &[u8], sysdir: &[u8]) -> (i32, bool) {
    let cfgname = o.cfgname.clone().unwrap_or_default();
    let Ok((cfg, mut db)) = load(o, myname, sysdir, &cfgname) else {
        return (1, false);
    };
    let result = dispatch(o, mode, &cfg, &mut db);
    let result = result.and_then(|r| {
        action::run_pending(&mut db)?;
        db.commit()?;
        Ok(r)
    });
    let code = match result {
        Ok(r) => r,
        Err(f) => {
            let _ = db.commit();
            return (fatal(&f), false);
        }
    };
    drop(db);
    (finish(code), true)
}

fn finish(mode_result: i32) -> i32 {
    log::debug(1, "Connection closed.");
    let errors = log::errors();
    if errors > 0 || (log::enabled(1) && log::anything_printed()) {
        log::debug(0, format!("Finished with {errors} errors."));
    }
    if errors > 0 { 1 } else { mode_result }
}

/// Whether an argument is covered by the config (cli.md §5.11).
fn useful(cfg: &Config, real: &[u8], recursive: bool, compare: bool) -> bool {
    let ok = |n: &[u8]| match cfg.class(n, compare) {
        Class::Member => true,
        Class::StepInto => recursive,
        Class::Ignore => false,
    };
    ok(real) || cfg.prefix_forms(real).iter().any(|f| ok(f))
}

fn warn_useless(cfg: &Config, real: &[u8], recursive: bool, compare: bool) {
    if !useful(cfg, real, recursive, compare) {
        log::debug(0, msg!("WARNING: Parameter will be ignored: ", real));
    }
}

/// `-c` without files: check every hint (newest first) with its own
/// recursion flag, then forget it.
fn check_hints(cfg: &Config, db: &mut Db, copts: &CheckOptions) -> Result<(), Fatal> {
    let hints = db.hints()?;
    let mut checker = Checker::new(cfg, db, copts);
    let mut done = Vec::new();
    for (name, recursive, raw, rec) in hints.into_iter().rev() {
        checker.check_real(&name, recursive)?;
        done.push((raw, rec));
    }
    drop(checker);
    for (raw, rec) in done {
        db.delete_hint(&raw, &rec)?;
    }
    Ok(())
}

fn dispatch(o: &Options, mode: Mode, cfg: &Config, db: &mut Db) -> Result<i32, Fatal> {
    let cwd = paths::cwd_bytes();
    let reals = || -> Vec<Vec<u8>> { o.args.iter().map(|a| paths::real_name(a, &cwd)).collect() };
    let mark_opts = MarkOptions {
        force_new: o.force_new,
    };
    let empty_is_2 = |n: usize| if n == 0 { 2 } else { 0 };
    match mode {
        Mode::Hint => {
            for real in reals() {
                warn_useless(cfg, &real, o.recursive, false);
                db.add_hint(&real, o.recursive)?;
                db.checkpoint()?;
            }
            Ok(0)
        }
        Mode::Check | Mode::CompareList => {
            let compare = mode == Mode::CompareList;
            let copts = CheckOptions {
                init: o.init,
                compare,
                mark: mark_opts,
                dump_dir_fd: o.dump_dir_fd,
            };
            if o.args.is_empty() && !compare {
                check_hints(cfg, db, &copts)?;
                return Ok(0);
            }
            let args = reals();
            let mut checker = Checker::new(cfg, db, &copts);
            for real in args {
                warn_useless(cfg, &real, o.recursive, compare);
                checker.check_real(&real, o.recursive)?;
            }
            Ok(0)
        }
        Mode::Force => {
            for real in reals() {
                db.force_dirty(&cfg.prefix_encode(&real), o.recursive)?;
            }
            Ok(0)
        }
        Mode::Mark => {
            for real in reals() {
                warn_useless(cfg, &real, o.recursive, false);
                mark::mark_mode(cfg, db, &mark_opts, &cfg.prefix_encode(&real), o.recursive)?;
            }
            Ok(0)
        }
        Mode::ListHints => Ok(empty_is_2(listing::hints(db, o.json)?)),
        Mode::ListFiles => Ok(empty_is_2(listing::files(cfg, db, None, o.json)?)),
        Mode::ListDirty => Ok(empty_is_2(listing::dirty(cfg, db, o.json)?)),
        Mode::ListPair => {
            let n = listing::files(cfg, db, Some((&o.args[0], &o.args[1])), o.json)?;
            Ok(empty_is_2(n))
        }
        Mode::Remove => {
            if o.only_groups.is_some() {
                return Err(Fatal::msg("Never run -R with -G!"));
            }
            cleanup::remove_stale(cfg, db)?;
            Ok(0)
        }
        Mode::Update | Mode::CheckUpdate | Mode::Simple => {
            let copts = CheckOptions {
                init: o.init,
                compare: false,
                mark: MarkOptions {
                    force_new: o.force_new,
                },
                dump_dir_fd: o.dump_dir_fd,
            };
            let port = o.port();
            let uopts = crate::update::UpdateOptions {
                dry_run: o.dry_run,
                recursive: o.recursive,
                only_peers: o.only_peers.as_deref().map(cli::split_list),
                args: reals(),
                client: crate::client::ClientOptions {
                    bind_name: o.hostname.as_deref(),
                    port,
                    cfgname: o.cfgname.as_deref().unwrap_or_default(),
                    groups: o.only_groups.as_deref(),
                },
            };
            let mut streamed = HashMap::new();
            match mode {
                Mode::Simple if uopts.args.is_empty() && streams(o) => {
                    // -x without files: always a recursive check of `/`;
                    // csync2-rs peers get the changes while it walks
                    streamed = std::thread::scope(|s| -> Result<_, Fatal> {
                        let only = uopts.only_peers.as_deref();
                        let mut st = Streamer::new(s, cfg, db, &uopts.client, only)?;
                        let mut changed = |f: &[u8]| st.changed(f);
                        let checked = Checker::new(cfg, db, &copts)
                            .watch(&mut changed)
                            .check_real(b"/", true);
                        let out = st.finish();
                        checked.map(|_| out)
                    })?;
                }
                Mode::Simple if uopts.args.is_empty() => {
                    Checker::new(cfg, db, &copts).check_real(b"/", true)?;
                }
                Mode::Simple => {
                    let mut checker = Checker::new(cfg, db, &copts);
                    for real in &uopts.args {
                        warn_useless(cfg, real, o.recursive, false);
                        checker.check_real(real, o.recursive)?;
                    }
                }
                Mode::CheckUpdate if uopts.args.is_empty() => check_hints(cfg, db, &copts)?,
                Mode::CheckUpdate => {
                    let mut checker = Checker::new(cfg, db, &copts);
                    for real in &uopts.args {
                        warn_useless(cfg, real, o.recursive, false);
                        checker.check_real(real, o.recursive)?;
                    }
                }
                _ => {
                    for real in &uopts.args {
                        warn_useless(cfg, real, o.recursive, false);
                    }
                }
            }
            db.commit()?;
            crate::update::update(cfg, db, &uopts, streamed)?;
            Ok(0)
        }
        Mode::Test { diff } => {
            // -T FILE / -T MY PEER FILE: the file is a path, the rest names
            let mut args = o.args.clone();
            if args.len() % 2 == 1 {
                let last = args.len() - 1;
                args[last] = paths::real_name(&args[last], &cwd);
                warn_useless(cfg, &args[last], false, false);
            }
            let copts = crate::compare::CompareOptions {
                diff,
                init: o.init,
                remote_only: o.mark_remote_only,
                only_tested_peer: o.mark_only_tested_peer,
                only_peers: o.only_peers.as_deref().map(cli::split_list),
                args,
                json: o.json,
                client: crate::client::ClientOptions {
                    bind_name: o.hostname.as_deref(),
                    port: o.port(),
                    cfgname: o.cfgname.as_deref().unwrap_or_default(),
                    groups: o.only_groups.as_deref(),
                },
            };
            crate::compare::run(cfg, db, &copts)
        }
        Mode::Server(_) => unreachable!("handled before the config is read"),
    }
}

/// `-x` may send changes while it checks: not in a dry run, with `-I`
/// (nothing is marked), with `-F` (forced rows take the lock-step path) or
/// without pipelining.
fn streams(o: &Options) -> bool {
    !o.dry_run && !o.init && !o.force_new && std::env::var_os("CSYNC2_NO_PIPELINE").is_none()
}
