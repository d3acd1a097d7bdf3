//! Change detection: `-c`, `-cr`, `-cI`, `-o`, and the check half of `-x`
//! (state.md §3.3–§3.5, config.md §6.5–§6.7).

use crate::checktxt;
use crate::config::Config;
use crate::config::matcher::Class;
use crate::db::Db;
use crate::fasthash::FastMap;
use crate::fsutil::{self, Stat};
use crate::log::Errors;
use crate::mark::{self, MarkOptions};
use crate::paths::{as_path, join};
use crate::{Fatal, log, msg};
use std::io::Write;

#[derive(Clone)]
pub struct CheckOptions {
    /// `-I`: record files without marking them dirty
    pub init: bool,
    /// `-o`: print members, touch nothing
    pub compare: bool,
    pub mark: MarkOptions,
    /// `-W FD`: post-order list of relevant directories
    pub dump_dir_fd: Option<i32>,
}

/// One check of one logical name.
#[derive(Default)]
struct Pass {
    /// stored check texts of the subtree not yet visited by the walk
    known: FastMap<Vec<u8>, Vec<u8>>,
    /// new and changed files, applied after the removals (the real program
    /// records removals first); None: apply at once (nothing to remove)
    changes: Option<Vec<(Vec<u8>, Vec<u8>)>>,
}

pub struct Checker<'a> {
    cfg: &'a Config,
    db: &'a mut Db,
    opts: &'a CheckOptions,
    /// directories known not to be symlinks
    plain_dirs: FastMap<Vec<u8>, bool>,
    out: std::io::BufWriter<std::io::Stdout>,
    /// told of each new or changed file as the walk finds it (before the
    /// database records it)
    watch: Option<Watch<'a>>,
    /// inside the walk of a recursive check of `/`
    in_root_pass: bool,
    errors: Errors,
}

/// Told of each new or changed file (see [`Checker::watch`]).
pub type Watch<'a> = &'a mut dyn FnMut(&[u8]);

impl<'a> Checker<'a> {
    pub fn new(cfg: &'a Config, db: &'a mut Db, opts: &'a CheckOptions) -> Checker<'a> {
        Checker {
            cfg,
            db,
            opts,
            plain_dirs: FastMap::default(),
            out: std::io::BufWriter::new(std::io::stdout()),
            watch: None,
            in_root_pass: false,
            errors: Errors::default(),
        }
    }

    /// The errors met so far (directories that could not be read).
    pub fn errors(&self) -> Errors {
        self.errors.clone()
    }

    /// Tells `w` of each new or changed file that gets marked dirty.
    pub fn watch(mut self, w: Watch<'a>) -> Checker<'a> {
        self.watch = Some(w);
        self
    }

    /// Checks a canonical real path, then its prefix-encoded forms.
    pub fn check_real(&mut self, real: &[u8], recursive: bool) -> Result<(), Fatal> {
        self.check_logical(real, recursive)?;
        for form in self.cfg.prefix_forms(real) {
            self.check_logical(&form, recursive)?;
        }
        Ok(())
    }

    /// One check of a logical name (real path or `%prefix%…`).
    ///
    /// The stored rows of the subtree are read once; the walk takes each row
    /// it visits, so only rows it never reached need an `lstat` to find
    /// removals, and every file is stat'ed once.
    pub fn check_logical(&mut self, name: &[u8], recursive: bool) -> Result<(), Fatal> {
        let what = if recursive {
            "recursive check"
        } else {
            "check"
        };
        log::debug(2, msg!("Running ", what, " for ", name, " ..."));
        let mut pass = Pass::default();
        if !self.opts.compare {
            pass.known = self.db.file_rows(name, recursive)?.into_iter().collect();
            if !pass.known.is_empty() {
                pass.changes = Some(Vec::new());
            }
        }
        let real = self.cfg.prefix_decode(name).map_err(Fatal::msg)?;
        // `/`'s rows include every `%prefix%…` row: its removal pass also
        // takes those of the prefixes its walk reaches, as the real one
        let root = recursive && name == b"/";
        let outer = self.in_root_pass;
        self.in_root_pass = outer || root;
        let walked = self.walk(&mut pass, name, &real, recursive, None);
        self.in_root_pass = outer;
        walked?;
        if !self.opts.compare {
            if !(outer && name.first() == Some(&b'%')) {
                self.removals(std::mem::take(&mut pass.known))?;
            }
            for (file, text) in pass.changes.take().unwrap_or_default() {
                self.apply_change(&file, &text)?;
            }
        }
        let _ = self.out.flush();
        Ok(())
    }

    /// Rows the walk did not visit: removed if gone or below a symlink.
    fn removals(&mut self, leftover: FastMap<Vec<u8>, Vec<u8>>) -> Result<(), Fatal> {
        let mut rows: Vec<Vec<u8>> = leftover.into_keys().collect();
        // the real program goes through them in descending encoded-name order
        rows.sort_unstable_by_key(|n| std::cmp::Reverse(crate::urlenc::encode(n)));
        self.plain_dirs.clear();
        for file in rows {
            if self.cfg.class(&file, false) == Class::Ignore {
                continue;
            }
            let real = self.cfg.prefix_decode(&file).map_err(Fatal::msg)?;
            // prefix roots are trusted; only components below them count
            let root = fsutil::prefix_root_len(&file, &real);
            let gone = std::fs::symlink_metadata(as_path(&real)).is_err()
                || fsutil::under_symlink_cached(&real, root, &mut self.plain_dirs);
            if gone {
                if !self.opts.init {
                    mark::mark(self.cfg, self.db, &self.opts.mark, &file, None, None)?;
                }
                self.db.delete_file(&file)?;
                self.db.checkpoint()?;
            }
        }
        Ok(())
    }

    /// Returns whether the directory list (`-W`) should contain the parent.
    /// `seen`: the lstat data (and symlink target) already read by the
    /// parent's directory scan; None: stat here.
    fn walk(
        &mut self,
        pass: &mut Pass,
        name: &[u8],
        real: &[u8],
        recursive: bool,
        seen: Option<(Stat, Option<Vec<u8>>)>,
    ) -> Result<bool, Fatal> {
        if recursive && name.first() != Some(&b'%') {
            for p in self.cfg.prefixes_at(real) {
                log::debug(2, msg!("Prefix matched: ", p, " <- ", real, "."));
                self.check_logical(&p, true)?;
            }
        }
        let class = self.cfg.class(name, self.opts.compare);
        if class == Class::Ignore {
            log::debug(2, msg!("Don't check at all: ", name));
            return Ok(false);
        }
        let (st, target) = match seen {
            Some(s) => s,
            None => match fsutil::lstat(real) {
                Ok(st) => {
                    let t = if st.is_symlink() {
                        fsutil::readlink(real)
                    } else {
                        None
                    };
                    (st, t)
                }
                // vanished (or never existed): a later check records the removal
                Err(_) => return Ok(false),
            },
        };
        if class == Class::Member {
            self.record(pass, name, &st, target.as_deref())?;
        }
        if recursive && st.is_dir() {
            let relevant = self.walk_dir(pass, name, real)?;
            if (relevant || class == Class::Member)
                && let Some(fd) = self.opts.dump_dir_fd
            {
                dump_dir(fd, real)?;
            }
        }
        Ok(class == Class::Member)
    }

    fn walk_dir(&mut self, pass: &mut Pass, name: &[u8], real: &[u8]) -> Result<bool, Fatal> {
        log::debug(
            2,
            msg!(
                "Checking ",
                if name == b"/" { &b""[..] } else { name },
                "/* .."
            ),
        );
        let mut entries = match fsutil::read_dir(real, |n| !crate::beneath::is_temp_name(n)) {
            Ok(e) => e,
            Err(e) => {
                self.errors.error(msg!(
                    log::strerror(&e),
                    " in scandir: ",
                    real,
                    " (",
                    name,
                    ")"
                ));
                return Ok(false);
            }
        };
        entries.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        let mut relevant = false;
        for e in entries.into_iter().rev() {
            let child = join(name, &e.name);
            let child_real = join(real, &e.name);
            // an entry that vanished between the scan and the stat is
            // skipped, and so is a server's temporary file
            let Some(st) = e.stat else { continue };
            relevant |= self.walk(pass, &child, &child_real, true, Some((st, e.target)))?;
        }
        Ok(relevant)
    }

    fn record(
        &mut self,
        pass: &mut Pass,
        name: &[u8],
        st: &Stat,
        target: Option<&[u8]>,
    ) -> Result<(), Fatal> {
        if self.opts.compare {
            let _ = self.out.write_all(name);
            let _ = self.out.write_all(b"\n");
            return Ok(());
        }
        log::debug(2, msg!("Checking ", name, "."));
        let text = checktxt::for_stat(st, target, &self.cfg.ignore);
        let stored = match pass.known.remove(name) {
            Some(t) => Some(t),
            // outside the preloaded range (e.g. a prefix root seen twice)
            None if pass.changes.is_some() => self.db.file_checktxt(name)?,
            None => None,
        };
        match &stored {
            Some(s) if *s == text => return Ok(()),
            Some(_) => log::debug(2, msg!("File has changed: ", name)),
            None => log::debug(2, msg!("New file: ", name)),
        }
        if !self.opts.init
            && let Some(w) = self.watch.as_mut()
        {
            w(name);
        }
        match &mut pass.changes {
            Some(list) => list.push((name.to_vec(), text)),
            None => self.apply_change(name, &text)?,
        }
        Ok(())
    }

    fn apply_change(&mut self, name: &[u8], text: &[u8]) -> Result<(), Fatal> {
        self.db.set_file(name, text)?;
        if !self.opts.init {
            mark::mark(self.cfg, self.db, &self.opts.mark, name, None, None)?;
        }
        self.db.checkpoint().map_err(Fatal::from)
    }
}

fn dump_dir(fd: i32, dir: &[u8]) -> Result<(), Fatal> {
    let mut buf = dir.to_vec();
    buf.push(0);
    let r = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
    if r < 0 || r as usize != buf.len() {
        let e = std::io::Error::last_os_error();
        return Err(Fatal::msg(format!(
            "Error while writing to dump_dir_fd {fd}: {}",
            log::strerror(&e)
        )));
    }
    Ok(())
}
