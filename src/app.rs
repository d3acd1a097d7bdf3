//! The program: start-up sequence, one function per mode, and the exit
//! code (cli.md §1, §5, §6). Parsing is in `cli`, the environment and
//! loading in `setup`; this file decides what runs.

use crate::check::{CheckOptions, Checker};
use crate::cli::{self, Effect, Mode, Options, Parsed};
use crate::client::ClientOptions;
use crate::compare::CompareOptions;
use crate::config::{Config, matcher::Class};
use crate::db::Db;
use crate::log::Errors;
use crate::mark::{self, MarkOptions};
use crate::server::ServerOptions;
use crate::setup::{self, Host, LoadOptions, report_fatal};
use crate::update::UpdateOptions;
use crate::update::stream::Streamer;
use crate::{Fatal, action, cleanup, keygen, listing, log, msg, paths};
use std::collections::HashMap;
use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;

fn print_stdout(b: &[u8]) {
    let mut out = std::io::stdout();
    let _ = out.write_all(b);
    let _ = out.flush();
}

pub fn main(argv: &[OsString]) -> i32 {
    if argv.len() == 3 && argv[1].as_bytes() == b"-k" {
        return keygen::generate(argv[2].as_bytes());
    }
    let parse = cli::parse(argv);
    match parse.outcome {
        Parsed::Help => {
            print_stdout(&cli::help_text(&cli::argv0(argv)));
            return 0;
        }
        Parsed::Version => {
            print_stdout(cli::version_text().as_bytes());
            return 0;
        }
        _ => {}
    }
    let sysdir = setup::system_dir();
    let lock = msg!(sysdir, "/csync2.lock");
    if std::fs::symlink_metadata(paths::as_path(&lock)).is_ok() {
        print_stdout(&msg!("Found ", lock, "\n"));
        return 1;
    }
    // what the real getopt loop did while parsing, in its order
    for e in &parse.effects {
        if let Err(m) = apply(e) {
            log::debug(0, m.as_bytes());
            log::end_stamp(false);
            return 1;
        }
    }
    match parse.outcome {
        Parsed::Run(o) => run(&o),
        Parsed::Usage(err) => {
            if !err.is_empty() {
                eprintln!("{err}");
            }
            print_stdout(&cli::usage_text(&cli::argv0(argv)));
            1
        }
        Parsed::GenCert(g) => crate::certgen::generate(&sysdir, &g),
        Parsed::KeyGen(_) | Parsed::Help | Parsed::Version => unreachable!("handled above"),
    }
}

/// Carries out one parse-time effect; Err: the fatal message.
fn apply(e: &Effect) -> Result<(), String> {
    match e {
        Effect::Timestamps => log::set_timestamps(true),
        Effect::OpenStampFile(path) => {
            if let Err(err) = log::open_stamp_file(paths::as_path(path)) {
                log::start_stamp();
                return Err(format!(
                    "Can't open timestanp file `{}': {}",
                    String::from_utf8_lossy(path),
                    log::strerror(&err)
                ));
            }
        }
        Effect::CheckDumpFd(fd) => {
            // a zero-length write tells whether the fd is usable
            if unsafe { libc::write(*fd, std::ptr::null(), 0) } < 0 {
                return Err(format!(
                    "Invalid dump_dir_fd {fd}: {}",
                    log::strerror(&std::io::Error::last_os_error())
                ));
            }
        }
    }
    Ok(())
}

/// Runs a parsed command line; returns the exit code.
pub fn run(o: &Options) -> i32 {
    log::set_verbosity(o.verbose);
    log::set_timestamps(o.timestamps);
    let mode = o.mode.expect("validated");
    if o.syslog || matches!(mode, Mode::Server(1)) {
        log::use_syslog();
    }
    let host = Host::from_env(o.hostname.as_deref());
    log::start_stamp();
    if let Mode::Server(n) = mode {
        // the config is read per connection, after the client's CONFIG
        let so = server_options(o, host);
        let code = match n {
            1 => crate::server::run_inetd(&so),
            n => crate::server::run_standalone(&so, n == 3),
        };
        log::end_stamp(true);
        return code;
    }
    let (code, completed) = run_configured(o, mode, &host);
    log::end_stamp(completed);
    code
}

fn load_options(o: &Options) -> LoadOptions {
    LoadOptions {
        only_groups: o.only_groups.as_deref().map(cli::split_list),
        only_peers: o.only_peers.as_deref().map(cli::split_list),
        dbspec: o.dbspec.clone(),
        no_batch: o.no_batch,
        async_db: o.async_db,
    }
}

fn server_options(o: &Options, host: Host) -> ServerOptions {
    ServerOptions {
        host,
        bind: o.hostname.clone(),
        port: o.port(),
        cfgname: o.cfgname.clone().unwrap_or_default(),
        load: load_options(o),
        catch_up: Some(crate::catchup::push_back),
    }
}

/// Returns the exit code and whether the run got to its normal end.
fn run_configured(o: &Options, mode: Mode, host: &Host) -> (i32, bool) {
    let cfgname = o.cfgname.clone().unwrap_or_default();
    let Ok((cfg, mut db)) = setup::load(host, &load_options(o), &cfgname) else {
        return (1, false);
    };
    let run = Run::new(o, &cfg, host);
    let result = run.mode(mode, &mut db).and_then(|r| {
        action::run_pending(&mut db)?;
        db.commit()?;
        Ok(r)
    });
    let code = match result {
        Ok(r) => r,
        Err(f) => {
            let _ = db.commit();
            return (report_fatal(&f), false);
        }
    };
    drop(db);
    (finish(code), true)
}

/// What a mode ended with: its exit code (unless errors make it 1) and
/// the errors it met.
struct Ended {
    code: i32,
    errors: Errors,
}

impl Ended {
    fn ok(code: i32) -> Ended {
        Ended {
            code,
            errors: Errors::default(),
        }
    }
}

fn finish(ended: Ended) -> i32 {
    log::debug(1, "Connection closed.");
    let errors = ended.errors.total();
    if errors > 0 || (log::enabled(1) && log::anything_printed()) {
        log::debug(0, format!("Finished with {errors} errors."));
    }
    if errors > 0 { 1 } else { ended.code }
}

/// One configured run: the command line, the config, and the option
/// structs the modes share, each built once.
struct Run<'a> {
    o: &'a Options,
    cfg: &'a Config,
    host: &'a Host,
    /// the file arguments as real names
    reals: Vec<Vec<u8>>,
    /// the current directory (for `-T`'s file argument)
    cwd: Vec<u8>,
    check: CheckOptions,
    client: ClientOptions<'a>,
    /// a `CSYNC2_TIMEOUT` that is not a number (fatal for the modes that
    /// connect)
    bad_timeout: Option<String>,
}

impl<'a> Run<'a> {
    fn new(o: &'a Options, cfg: &'a Config, host: &'a Host) -> Run<'a> {
        let cwd = paths::cwd_bytes();
        let (timeout, bad_timeout) = match setup::client_timeout(o.timeout.as_deref()) {
            Ok(t) => (t, None),
            Err(m) => (Some(setup::DEFAULT_TIMEOUT), Some(m)),
        };
        Run {
            o,
            cfg,
            host,
            reals: o.args.iter().map(|a| paths::real_name(a, &cwd)).collect(),
            cwd,
            check: CheckOptions {
                init: o.init,
                compare: false,
                mark: MarkOptions {
                    force_new: o.force_new,
                },
                dump_dir_fd: o.dump_dir_fd,
            },
            client: ClientOptions {
                sysdir: &host.sysdir,
                bind_name: o.hostname.as_deref(),
                port: o.port(),
                cfgname: o.cfgname.as_deref().unwrap_or_default(),
                groups: o.only_groups.as_deref(),
                timeout,
            },
            bad_timeout,
        }
    }

    /// The modes that connect to peers refuse a bad `CSYNC2_TIMEOUT`.
    fn timeout_ok(&self) -> Result<(), Fatal> {
        match &self.bad_timeout {
            Some(m) => Err(Fatal::msg(m.clone())),
            None => Ok(()),
        }
    }

    fn mode(&self, mode: Mode, db: &mut Db) -> Result<Ended, Fatal> {
        let empty_is_2 = |n: usize| Ended::ok(if n == 0 { 2 } else { 0 });
        let o = self.o;
        match mode {
            Mode::Hint => self.hint(db),
            Mode::Check => self.check(db, false),
            Mode::CompareList => self.check(db, true),
            Mode::Force => self.force(db),
            Mode::Mark => self.mark(db),
            Mode::ListHints => Ok(empty_is_2(listing::hints(db, o.json)?)),
            Mode::ListFiles => Ok(empty_is_2(listing::files(self.cfg, db, None, o.json)?)),
            Mode::ListDirty => Ok(empty_is_2(listing::dirty(self.cfg, db, o.json)?)),
            Mode::ListPair => {
                let pair = (&o.args[0][..], &o.args[1][..]);
                Ok(empty_is_2(listing::files(
                    self.cfg,
                    db,
                    Some(pair),
                    o.json,
                )?))
            }
            Mode::Remove => self.remove(db),
            Mode::Update | Mode::CheckUpdate | Mode::Simple => self.update(mode, db),
            Mode::Test { diff } => self.test(db, diff),
            Mode::CatchUp => self.catch_up(db),
            Mode::Status => Ok(Ended::ok(crate::status::show(self.cfg, db, o.json)?)),
            Mode::Watch => self.watch(db),
            Mode::Server(_) => unreachable!("handled before the config is read"),
        }
    }

    /// Whether an argument is covered by the config (cli.md §5.11).
    fn useful(&self, real: &[u8], recursive: bool, compare: bool) -> bool {
        let ok = |n: &[u8]| match self.cfg.class(n, compare) {
            Class::Member => true,
            Class::StepInto => recursive,
            Class::Ignore => false,
        };
        ok(real) || self.cfg.prefix_forms(real).iter().any(|f| ok(f))
    }

    fn warn_useless(&self, real: &[u8], recursive: bool, compare: bool) {
        if !self.useful(real, recursive, compare) {
            log::debug(0, msg!("WARNING: Parameter will be ignored: ", real));
        }
    }

    /// `-h`
    fn hint(&self, db: &mut Db) -> Result<Ended, Fatal> {
        for real in &self.reals {
            self.warn_useless(real, self.o.recursive, false);
            db.add_hint(real, self.o.recursive)?;
            db.checkpoint()?;
        }
        Ok(Ended::ok(0))
    }

    /// `-c` and `-o`
    fn check(&self, db: &mut Db, compare: bool) -> Result<Ended, Fatal> {
        let copts = CheckOptions {
            compare,
            ..self.check.clone()
        };
        let errors = if self.reals.is_empty() && !compare {
            self.check_hints(db, &copts)?
        } else {
            self.check_args(db, &copts, compare)?
        };
        Ok(Ended { code: 0, errors })
    }

    /// Checks every file argument (warning about useless ones).
    fn check_args(
        &self,
        db: &mut Db,
        copts: &CheckOptions,
        compare: bool,
    ) -> Result<Errors, Fatal> {
        let mut checker = Checker::new(self.cfg, db, copts);
        for real in &self.reals {
            self.warn_useless(real, self.o.recursive, compare);
            checker.check_real(real, self.o.recursive)?;
        }
        Ok(checker.errors())
    }

    /// `-c` without files: check every hint (newest first) with its own
    /// recursion flag, then forget it.
    fn check_hints(&self, db: &mut Db, copts: &CheckOptions) -> Result<Errors, Fatal> {
        let hints = db.hints()?;
        let mut checker = Checker::new(self.cfg, db, copts);
        let mut done = Vec::new();
        for (name, recursive, raw, rec) in hints.into_iter().rev() {
            checker.check_real(&name, recursive)?;
            done.push((raw, rec));
        }
        let errors = checker.errors();
        drop(checker);
        for (raw, rec) in done {
            db.delete_hint(&raw, &rec)?;
        }
        Ok(errors)
    }

    /// `-f`
    fn force(&self, db: &mut Db) -> Result<Ended, Fatal> {
        for real in &self.reals {
            db.force_dirty(&self.cfg.prefix_encode(real), self.o.recursive)?;
        }
        Ok(Ended::ok(0))
    }

    /// `-m`
    fn mark(&self, db: &mut Db) -> Result<Ended, Fatal> {
        for real in &self.reals {
            self.warn_useless(real, self.o.recursive, false);
            let name = self.cfg.prefix_encode(real);
            mark::mark_mode(self.cfg, db, &self.check.mark, &name, self.o.recursive)?;
        }
        Ok(Ended::ok(0))
    }

    /// `-R`
    fn remove(&self, db: &mut Db) -> Result<Ended, Fatal> {
        if self.o.only_groups.is_some() {
            return Err(Fatal::msg("Never run -R with -G!"));
        }
        cleanup::remove_stale(self.cfg, db)?;
        Ok(Ended::ok(0))
    }

    /// `-u`, `-c -u` and `-x`: the check their form asks for, then the
    /// update.
    fn update(&self, mode: Mode, db: &mut Db) -> Result<Ended, Fatal> {
        self.timeout_ok()?;
        let o = self.o;
        let uopts = UpdateOptions {
            dry_run: o.dry_run,
            recursive: o.recursive,
            only_peers: o.only_peers.as_deref().map(cli::split_list),
            args: self.reals.clone(),
            client: &self.client,
        };
        let mut streamed = HashMap::new();
        let mut errors = Errors::default();
        match mode {
            Mode::Simple if self.reals.is_empty() && streams(o) => {
                // -x without files: always a recursive check of `/`;
                // csync2-rs peers get the changes while it walks
                streamed = std::thread::scope(|s| -> Result<_, Fatal> {
                    let only = uopts.only_peers.as_deref();
                    let mut st = Streamer::new(s, self.cfg, db, &self.client, only)?;
                    let mut changed = |f: &[u8]| st.changed(f);
                    let mut checker = Checker::new(self.cfg, db, &self.check).watch(&mut changed);
                    let checked = checker.check_real(b"/", true);
                    errors = checker.errors();
                    drop(checker);
                    let out = st.finish();
                    checked.map(|_| out)
                })?;
            }
            Mode::Simple if self.reals.is_empty() => {
                let mut checker = Checker::new(self.cfg, db, &self.check);
                checker.check_real(b"/", true)?;
                errors = checker.errors();
            }
            Mode::CheckUpdate if self.reals.is_empty() => {
                errors = self.check_hints(db, &self.check)?;
            }
            Mode::Simple | Mode::CheckUpdate => {
                errors = self.check_args(db, &self.check, false)?;
            }
            _ => {
                for real in &self.reals {
                    self.warn_useless(real, o.recursive, false);
                }
            }
        }
        db.commit()?;
        errors.add(crate::update::update(self.cfg, db, &uopts, streamed)?);
        Ok(Ended { code: 0, errors })
    }

    /// `--watch`
    fn watch(&self, db: &mut Db) -> Result<Ended, Fatal> {
        self.timeout_ok()?;
        let o = self.o;
        let delay = o.delay.as_deref().and_then(setup::seconds).unwrap_or(1.0);
        let uopts = UpdateOptions {
            dry_run: false,
            recursive: false,
            only_peers: o.only_peers.as_deref().map(cli::split_list),
            args: Vec::new(),
            client: &self.client,
        };
        let cfgname = o.cfgname.clone().unwrap_or_default();
        let load = load_options(o);
        let config_loads = || {
            setup::load_config(self.host, &load, &cfgname).is_ok_and(|c| {
                c.is_member() || {
                    log::debug(0, "This host is not a member of any configured group.");
                    false
                }
            })
        };
        let wopts = crate::watch::WatchOptions {
            delay: std::time::Duration::from_secs_f64(delay),
            check: &self.check,
            update: &uopts,
            client: &self.client,
            config_loads: &config_loads,
        };
        let errors = crate::watch::run(self.cfg, db, &wopts)?;
        Ok(Ended { code: 0, errors })
    }

    /// `--catch-up`
    fn catch_up(&self, db: &mut Db) -> Result<Ended, Fatal> {
        self.timeout_ok()?;
        let only = self.o.only_peers.as_deref().map(cli::split_list);
        let errors = crate::catchup::ask(self.cfg, db, &self.client, only.as_deref(), self.o.full)?;
        Ok(Ended { code: 0, errors })
    }

    /// `-T`, `-TT`, `-TI`
    fn test(&self, db: &mut Db, diff: bool) -> Result<Ended, Fatal> {
        self.timeout_ok()?;
        let o = self.o;
        // -T FILE / -T MY PEER FILE: the file is a path, the rest names
        let mut args = o.args.clone();
        if args.len() % 2 == 1 {
            let last = args.len() - 1;
            args[last] = paths::real_name(&args[last], &self.cwd);
            self.warn_useless(&args[last], false, false);
        }
        let copts = CompareOptions {
            diff,
            init: o.init,
            remote_only: o.mark_remote_only,
            only_tested_peer: o.mark_only_tested_peer,
            only_peers: o.only_peers.as_deref().map(cli::split_list),
            args,
            json: o.json,
            client: &self.client,
        };
        let (code, errors) = crate::compare::run(self.cfg, db, &copts)?;
        Ok(Ended { code, errors })
    }
}

/// `-x` may send changes while it checks: not in a dry run, with `-I`
/// (nothing is marked), with `-F` (forced rows take the lock-step path) or
/// without pipelining.
fn streams(o: &Options) -> bool {
    !o.dry_run && !o.init && !o.force_new && std::env::var_os("CSYNC2_NO_PIPELINE").is_none()
}
