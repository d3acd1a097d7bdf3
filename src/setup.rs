//! The process environment and start-up: the system directory, this host's
//! name, the port, and loading a configuration with its state database
//! (cli.md §1 steps 10–13, §7, §9; config.md §1.4). Used by every entry
//! point: the client modes in `app`, the server, and the session opener in
//! `client`.

use crate::config::{self, Config, ParseOptions};
use crate::db::{self, Db};
use crate::{Fatal, log, msg, paths};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// The port when `-p` is not given.
pub const DEFAULT_PORT: &str = "30865";

/// `CSYNC2_SYSTEM_DIR`, else `/etc`: where the config, keys and
/// certificates are.
pub fn system_dir() -> Vec<u8> {
    match std::env::var_os("CSYNC2_SYSTEM_DIR") {
        Some(v) => v.as_bytes().to_vec(),
        None => b"/etc".to_vec(),
    }
}

/// This host's name: `-N` (at most 255 bytes) or the system host name, in
/// lower case.
pub fn hostname(opt: Option<&[u8]>) -> Vec<u8> {
    let mut name = match opt {
        Some(n) => n[..n.len().min(255)].to_vec(),
        None => nix::unistd::gethostname()
            .map(|h| h.as_bytes().to_vec())
            .unwrap_or_default(),
    };
    name.make_ascii_lowercase();
    name
}

/// The port as a number (a service name is looked up in /etc/services).
pub fn port_number(port: &str) -> std::io::Result<u16> {
    if let Ok(n) = port.parse() {
        return Ok(n);
    }
    let name = std::ffi::CString::new(port).unwrap_or_default();
    let proto = c"tcp";
    let ent = unsafe { libc::getservbyname(name.as_ptr(), proto.as_ptr()) };
    if ent.is_null() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("unknown port '{port}'"),
        ));
    }
    Ok(u16::from_be(unsafe { (*ent).s_port } as u16))
}

/// The client's timeout when neither `--timeout` nor `CSYNC2_TIMEOUT`
/// gives one.
pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// A number of seconds (fractions allowed, not negative).
pub fn seconds(v: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(v).ok()?.trim();
    let n: f64 = s.parse().ok()?;
    (n.is_finite() && n >= 0.0).then_some(n)
}

/// How long a client waits for a peer that sends nothing: `--timeout`,
/// else `CSYNC2_TIMEOUT`, else 60 seconds; 0 means forever (None).
/// Err: the environment variable is not a number of seconds.
pub fn client_timeout(option: Option<&[u8]>) -> Result<Option<std::time::Duration>, String> {
    let secs = match option {
        Some(v) => seconds(v).ok_or_else(|| "bad --timeout".to_string())?,
        None => match std::env::var_os("CSYNC2_TIMEOUT") {
            Some(v) => seconds(v.as_bytes()).ok_or_else(|| {
                format!(
                    "CSYNC2_TIMEOUT must be a number of seconds, not '{}'.",
                    v.to_string_lossy()
                )
            })?,
            None => return Ok(Some(DEFAULT_TIMEOUT)),
        },
    };
    Ok((secs > 0.0).then(|| std::time::Duration::from_secs_f64(secs)))
}

/// Whether a config name is acceptable (`-C`, and CONFIG on the wire).
pub fn valid_config_name(name: &[u8]) -> bool {
    name.iter()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

/// Who this process is: the system directory and this host's name.
#[derive(Debug, Clone)]
pub struct Host {
    pub sysdir: Vec<u8>,
    pub myname: Vec<u8>,
}

impl Host {
    /// From the environment and `-N`.
    pub fn from_env(name: Option<&[u8]>) -> Host {
        Host {
            sysdir: system_dir(),
            myname: hostname(name),
        }
    }
}

/// What changes how a configuration and its database are loaded.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `-G`
    pub only_groups: Option<Vec<Vec<u8>>>,
    /// `-P`
    pub only_peers: Option<Vec<Vec<u8>>>,
    /// `-D`
    pub dbspec: Option<Vec<u8>>,
    /// `-B`
    pub no_batch: bool,
    /// `-A`
    pub async_db: bool,
}

/// Loading the config or the database failed; the message was printed.
#[derive(Debug)]
pub struct LoadFailed;

/// Prints a fatal error (through the logger, so `-l` silences stderr).
pub fn report_fatal(f: &Fatal) -> i32 {
    log::debug(0, &f.0);
    1
}

/// Reads the config named `cfgname`, printing what is wrong with it (a
/// `--watch` daemon checks a changed config this way before it restarts).
pub fn load_config(host: &Host, o: &LoadOptions, cfgname: &[u8]) -> Result<Config, LoadFailed> {
    if !valid_config_name(cfgname) {
        log::debug(0, "Config names are limited to [a-z0-9]+.");
        return Err(LoadFailed);
    }
    let sysdir = &host.sysdir;
    let myname = &host.myname;
    let cfg_path = if cfgname.is_empty() {
        msg!(sysdir, "/csync2.cfg")
    } else {
        msg!(sysdir, "/csync2_", cfgname, ".cfg")
    };
    log::debug(2, msg!("Config-File:   ", cfg_path));
    let popts = ParseOptions {
        myhostname: myname,
        sysdir: paths::as_path(sysdir),
        only_groups: o.only_groups.as_deref(),
        only_peers: o.only_peers.as_deref(),
    };
    match config::parse_file(
        &PathBuf::from(std::ffi::OsStr::from_bytes(&cfg_path)),
        &popts,
    ) {
        Ok(c) => Ok(c),
        Err(e) => {
            if e.plain_stderr {
                log::raw_stderr(e.message.as_bytes());
            } else {
                log::debug(0, e.message.as_bytes());
            }
            if let Some(d) = &e.detail {
                log::debug(0, d.as_bytes());
            }
            Err(LoadFailed)
        }
    }
}

/// Reads the config named `cfgname` and opens its database, printing any
/// fatal error; Err means "exit 1" (config.md §1.4, cli.md §1 steps 10–13).
pub fn load(host: &Host, o: &LoadOptions, cfgname: &[u8]) -> Result<(Config, Db), LoadFailed> {
    let cfg = load_config(host, o, cfgname)?;
    let myname = &host.myname;
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
            report_fatal(&Fatal::msg(m));
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
            report_fatal(&e.into());
            Err(LoadFailed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ports() {
        assert_eq!(hostname(Some(b"Node1.Example")), b"node1.example");
        assert_eq!(hostname(Some(&[b'a'; 300])).len(), 255);
        assert_eq!(port_number("30865").unwrap(), 30865);
        assert!(port_number("no-such-service-here").is_err());
        assert!(valid_config_name(b"abc1"));
        assert!(valid_config_name(b""));
        assert!(!valid_config_name(b"Abc"));
        assert!(!valid_config_name(b"a-b"));
        assert_eq!(seconds(b"2.5"), Some(2.5));
        assert_eq!(seconds(b"-1"), None);
        assert_eq!(seconds(b"x"), None);
        assert_eq!(
            client_timeout(Some(b"3")).unwrap(),
            Some(std::time::Duration::from_secs(3))
        );
        assert_eq!(client_timeout(Some(b"0")).unwrap(), None);
    }
}
