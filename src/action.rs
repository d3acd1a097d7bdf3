//! Actions: scheduled into the `action` table when a file changes, run
//! at the end of every process that opened the database (state.md §6).

use crate::config::Config;
use crate::db::Db;
use crate::fnmatch::{Flags, fnmatch};
use crate::urlenc::decode;
use crate::{Fatal, log, msg};
use std::os::unix::process::CommandExt;

/// Schedules the actions of every active group selecting `name`:
/// `local` for changes found here, otherwise changes received from a peer.
pub fn schedule(cfg: &Config, db: &mut Db, name: &[u8], local: bool) -> Result<(), Fatal> {
    for g in cfg.matching_groups(false) {
        if !g.selects(name, false) {
            continue;
        }
        for a in &g.actions {
            let applies = if local { a.do_local } else { !a.do_local_only };
            if !applies {
                continue;
            }
            let hit = a.patterns.is_empty()
                || a.patterns.iter().any(|p| {
                    let flags = if p.windows(2).any(|w| w == b"**") {
                        Flags::LEADING_DIR
                    } else {
                        Flags::LEADING_DIR_PATHNAME
                    };
                    fnmatch(p, name, flags)
                });
            if !hit {
                continue;
            }
            for cmd in &a.commands {
                db.add_action(name, cmd, a.logfile())?;
            }
        }
    }
    Ok(())
}

/// Runs every pending action once, with `%%` replaced by the (still
/// URL-encoded) names of the files that triggered it.
pub fn run_pending(db: &mut Db) -> Result<(), Fatal> {
    let pending = db.action_commands()?;
    for (cmd_enc, log_enc) in pending {
        let files = db.action_files(&cmd_enc, &log_enc)?;
        let command = decode(&cmd_enc);
        let logfile = decode(&log_enc);
        let list = files
            .iter()
            .map(|f| shell_safe(f))
            .collect::<Vec<_>>()
            .join(&b' ');
        let expanded = match command.windows(2).position(|w| w == b"%%") {
            Some(i) => msg!(&command[..i], list, &command[i + 2..]),
            None => command.clone(),
        };
        log::debug(1, msg!("Running '", expanded, "' ..."));
        run_one(&expanded, &logfile);
        for f in &files {
            db.delete_action(&cmd_enc, &log_enc, f)?;
        }
    }
    db.commit()?;
    Ok(())
}

/// A URL-encoded name as one inert shell word: URL encoding leaves
/// `; & < > ( ) * ? [ ] { } ~ # !` and backquotes alone, and `%%` goes into
/// a `sh -c` line, so a file named `a;id>x` would run `id` as root (as it
/// does in the real csync2). Those bytes are %-encoded too.
fn shell_safe(name_enc: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(name_enc.len());
    for &b in name_enc {
        if b.is_ascii_alphanumeric() || b"/._+,=@%:-".contains(&b) || b >= 0x80 {
            out.push(b);
        } else {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
    out
}

fn run_one(command: &[u8], logfile: &[u8]) {
    use std::os::unix::ffi::OsStrExt;
    let out = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(std::ffi::OsStr::from_bytes(logfile));
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(std::ffi::OsStr::from_bytes(command))
        .stdin(std::process::Stdio::null());
    match out {
        Ok(f) => {
            let f2 = f.try_clone();
            cmd.stdout(f);
            match f2 {
                Ok(f2) => cmd.stderr(f2),
                Err(_) => cmd.stderr(std::process::Stdio::null()),
            };
        }
        Err(e) => {
            log::debug(
                0,
                msg!(
                    "Can't open action log file ",
                    logfile,
                    ": ",
                    log::strerror(&e)
                ),
            );
            cmd.stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
        }
    }
    // the child must not inherit our signal dispositions
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            libc::signal(libc::SIGCHLD, libc::SIG_DFL);
            Ok(())
        });
    }
    match cmd.status() {
        Ok(_) => {}
        Err(e) => log::debug(0, msg!("Can't run action: ", log::strerror(&e))),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_inert_shell_words() {
        let enc = crate::urlenc::encode(b"/t/a;id>x&(y)`z`*?[]{}~#!^ b");
        assert_eq!(
            super::shell_safe(&enc),
            b"/t/a%3Bid%3Ex%26%28y%29%60z%60%2A%3F%5B%5D%7B%7D%7E%23%21%5E%20b".to_vec()
        );
        let plain = b"/srv/www/index.html,v1+2=3@host:x-y_z.%C3";
        assert_eq!(super::shell_safe(plain), plain.to_vec());
    }
}
