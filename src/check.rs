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
    /// With -v, the messages of removals (by encoded name) and of changes,
    /// held until the pass ends: the real program records removals first,
    /// in descending name order, then the changes, and its messages come in
    /// that order. (The database work itself is done as the walk finds it,
    /// so that nothing but these messages grows with the tree.)
    held_removals: Option<Vec<(Vec<u8>, Vec<log::Held>)>>,
    held_changes: Option<Vec<log::Held>>,
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
            held_removals: None,
            held_changes: None,
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
    /// Memory stays bounded by the largest directory and the depth, not by
    /// the tree: each directory reads the stored rows of its entries (and
    /// those below entries it does not descend into, which can only be
    /// removals) a page at a time, skipping the subdirectories it walks;
    /// every file is stat'ed once.
    pub fn check_logical(&mut self, name: &[u8], recursive: bool) -> Result<(), Fatal> {
        let what = if recursive {
            "recursive check"
        } else {
            "check"
        };
        log::debug(2, msg!("Running ", what, " for ", name, " ..."));
        let stored = if self.opts.compare {
            None
        } else {
            self.db.file_checktxt(name)?
        };
        let had_row = stored.is_some();
        let real = self.cfg.prefix_decode(name).map_err(Fatal::msg)?;
        let root = recursive && name == b"/";
        let outer = self.in_root_pass;
        // a prefix's pass inside the pass of `/`: its removals are reported
        // with those of `/`
        let removals_outside = outer && name.first() == Some(&b'%');
        let hold = log::enabled(1);
        // with nothing stored below, the real program records each change
        // as it finds it (its messages come with the walk's)
        let hold_changes =
            hold && !self.opts.compare && (had_row || (recursive && self.any_rows_below(name)?));
        let saved_changes = std::mem::replace(&mut self.held_changes, hold_changes.then(Vec::new));
        let saved_removals = (!removals_outside)
            .then(|| std::mem::replace(&mut self.held_removals, hold.then(Vec::new)));
        self.in_root_pass = outer || root;
        self.plain_dirs.clear();
        let result = self.pass(name, &real, recursive, root, had_row, stored);
        self.in_root_pass = outer;
        if let Some(saved) = saved_removals {
            let mut removals =
                std::mem::replace(&mut self.held_removals, saved).unwrap_or_default();
            removals.sort_by(|a, b| b.0.cmp(&a.0));
            for (_, held) in removals {
                log::replay(held);
            }
        }
        let changes = std::mem::replace(&mut self.held_changes, saved_changes);
        log::replay(changes.unwrap_or_default());
        let _ = self.out.flush();
        result
    }

    /// Whether any row is stored below `name` (any row at all for `/`).
    fn any_rows_below(&mut self, name: &[u8]) -> Result<bool, Fatal> {
        let (lo, hi) = if name == b"/" {
            (Vec::new(), vec![0xff])
        } else {
            children_range(&crate::urlenc::encode(name))
        };
        Ok(!self.db.file_rows_range(&lo, false, &hi, 1)?.is_empty())
    }

    /// The walk of one check, then the removals of what it could not see.
    fn pass(
        &mut self,
        name: &[u8],
        real: &[u8],
        recursive: bool,
        root: bool,
        had_row: bool,
        stored: Option<Vec<u8>>,
    ) -> Result<(), Fatal> {
        let walked = self.walk(name, real, recursive, None, None, stored)?;
        if !self.opts.compare {
            if had_row && !walked.recorded {
                self.removal(name)?;
            }
            if recursive && !walked.descended {
                // what is below a root that is gone, a file, or not walked
                let (lo, hi) = children_range(&crate::urlenc::encode(name));
                self.removals_in(&lo, false, &hi)?;
            }
            if root {
                // the `%prefix%…` rows, whose prefixes the walk may not reach
                self.removals_in(b"%", false, b"&")?;
            }
        }
        Ok(())
    }

    /// A stored row the walk did not record: removed if the file is gone
    /// or below a symlink (rows the configuration ignores stay).
    fn removal(&mut self, file: &[u8]) -> Result<(), Fatal> {
        if self.cfg.class(file, false) == Class::Ignore {
            return Ok(());
        }
        let real = self.cfg.prefix_decode(file).map_err(Fatal::msg)?;
        // prefix roots are trusted; only components below them count
        let root = fsutil::prefix_root_len(file, &real);
        let gone = std::fs::symlink_metadata(as_path(&real)).is_err()
            || fsutil::under_symlink_cached(&real, root, &mut self.plain_dirs);
        if gone {
            let mut held = Vec::new();
            let holding = self.held_removals.is_some();
            let done = log::capture_if(holding, &mut held, || -> Result<(), Fatal> {
                if !self.opts.init {
                    mark::mark(self.cfg, self.db, &self.opts.mark, file, None, None)?;
                }
                self.db.delete_file(file)?;
                self.db.checkpoint()?;
                Ok(())
            });
            if let Some(list) = self.held_removals.as_mut() {
                list.push((crate::urlenc::encode(file), held));
            }
            done?;
        }
        Ok(())
    }

    /// Every stored row in the encoded range from `lo` (after it when
    /// `after`) to `hi`, a page at a time, as a [`removal`](Self::removal)
    /// candidate.
    fn removals_in(&mut self, lo: &[u8], after: bool, hi: &[u8]) -> Result<(), Fatal> {
        self.rows_in(lo, after, hi, &mut |c, _, name, _| c.removal(&name))
    }

    /// Calls `f` with every stored row (encoded name, name, check text) in
    /// the encoded range, a page at a time (`f` may change rows of it).
    fn rows_in(
        &mut self,
        lo: &[u8],
        after: bool,
        hi: &[u8],
        f: &mut RowFn<'_, 'a>,
    ) -> Result<(), Fatal> {
        const PAGE: u32 = 1024;
        let mut from = lo.to_vec();
        let mut after = after;
        loop {
            let page = self.db.file_rows_range(&from, after, hi, PAGE)?;
            let full = page.len() == PAGE as usize;
            for (enc, name, text) in page {
                from.clone_from(&enc);
                f(self, enc, name, text)?;
            }
            if !full {
                return Ok(());
            }
            after = true;
        }
    }

    /// `seen`: the lstat data (and symlink target) already read by the
    /// parent's directory scan, and the entry's class; None: find out here.
    /// `stored`: the entry's stored check text.
    fn walk(
        &mut self,
        name: &[u8],
        real: &[u8],
        recursive: bool,
        seen: Option<(Stat, Option<Vec<u8>>)>,
        class: Option<Class>,
        stored: Option<Vec<u8>>,
    ) -> Result<Walked, Fatal> {
        let mut out = Walked::default();
        if recursive && name.first() != Some(&b'%') {
            for p in self.cfg.prefixes_at(real) {
                log::debug(2, msg!("Prefix matched: ", p, " <- ", real, "."));
                self.check_logical(&p, true)?;
            }
        }
        let class = class.unwrap_or_else(|| self.cfg.class(name, self.opts.compare));
        if class == Class::Ignore {
            log::debug(2, msg!("Don't check at all: ", name));
            return Ok(out);
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
                // vanished (or never existed): the caller records the removal
                Err(_) => return Ok(out),
            },
        };
        if class == Class::Member {
            self.record(name, &st, target.as_deref(), stored)?;
            out.recorded = true;
        }
        if recursive && st.is_dir() {
            out.descended = true;
            let relevant = self.walk_dir(name, real)?;
            if (relevant || class == Class::Member)
                && let Some(fd) = self.opts.dump_dir_fd
            {
                dump_dir(fd, real)?;
            }
        }
        out.relevant = class == Class::Member;
        Ok(out)
    }

    /// Walks the entries of a directory (in descending name order, as the
    /// real program); returns whether the directory list (`-W`) should
    /// contain it.
    fn walk_dir(&mut self, name: &[u8], real: &[u8]) -> Result<bool, Fatal> {
        log::debug(
            2,
            msg!(
                "Checking ",
                if name == b"/" { &b""[..] } else { name },
                "/* .."
            ),
        );
        let name_enc = crate::urlenc::encode(name);
        let (lo, hi) = children_range(&name_enc);
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
                if !self.opts.compare {
                    self.removals_in(&lo, false, &hi)?;
                }
                return Ok(false);
            }
        };
        entries.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        // each entry's class, and the subdirectories the walk enters (their
        // rows are read by their own walk)
        let mut plan: Vec<(fsutil::Entry, Class)> = Vec::with_capacity(entries.len());
        let mut entered: Vec<Vec<u8>> = Vec::new();
        for e in entries {
            let child = join(name, &e.name);
            let class = self.cfg.class(&child, self.opts.compare);
            if class != Class::Ignore && e.stat.as_ref().is_some_and(|st| st.is_dir()) {
                entered.push(crate::urlenc::encode(&e.name));
            }
            plan.push((e, class));
        }
        // the entries' stored rows; rows further below entries not entered
        // can only be removals
        let mut stored: FastMap<Vec<u8>, Vec<u8>> = FastMap::default();
        if !self.opts.compare {
            entered.sort_unstable();
            let mut from = lo.clone();
            for sub in &entered {
                let mut until = lo.clone();
                until.extend_from_slice(sub);
                until.push(b'/');
                self.rows_in(&from, false, &until, &mut |c, enc, n, text| {
                    c.stored_or_removal(&mut stored, lo.len(), &enc, n, text)
                })?;
                // resume after the subdirectory's range: `SUB/` .. `SUB0`
                *until.last_mut().expect("not empty") = b'0';
                from = until;
            }
            self.rows_in(&from, false, &hi, &mut |c, enc, n, text| {
                c.stored_or_removal(&mut stored, lo.len(), &enc, n, text)
            })?;
        }
        let mut relevant = false;
        for (e, class) in plan.into_iter().rev() {
            let child = join(name, &e.name);
            let child_real = join(real, &e.name);
            // an entry that vanished between the scan and the stat is
            // skipped (a row of it stays a removal candidate below)
            let Some(st) = e.stat else { continue };
            let text = if class == Class::Member {
                stored.remove(&child)
            } else {
                None
            };
            relevant |= self
                .walk(
                    &child,
                    &child_real,
                    true,
                    Some((st, e.target)),
                    Some(class),
                    text,
                )?
                .relevant;
        }
        // rows of entries that are gone (or were not recorded)
        let mut left: Vec<Vec<u8>> = stored.into_keys().collect();
        left.sort_unstable_by_key(|n| std::cmp::Reverse(crate::urlenc::encode(n)));
        for file in left {
            self.removal(&file)?;
        }
        Ok(relevant)
    }

    /// A row in a directory's range: an entry's own row is kept for the
    /// walk, a row further below (of an entry the walk does not enter) is
    /// a removal candidate at once.
    fn stored_or_removal(
        &mut self,
        stored: &mut FastMap<Vec<u8>, Vec<u8>>,
        prefix_len: usize,
        enc: &[u8],
        name: Vec<u8>,
        text: Vec<u8>,
    ) -> Result<(), Fatal> {
        if enc[prefix_len..].contains(&b'/') {
            self.removal(&name)
        } else {
            stored.insert(name, text);
            Ok(())
        }
    }

    fn record(
        &mut self,
        name: &[u8],
        st: &Stat,
        target: Option<&[u8]>,
        stored: Option<Vec<u8>>,
    ) -> Result<(), Fatal> {
        if self.opts.compare {
            let _ = self.out.write_all(name);
            let _ = self.out.write_all(b"\n");
            return Ok(());
        }
        log::debug(2, msg!("Checking ", name, "."));
        let text = checktxt::for_stat(st, target, &self.cfg.ignore);
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
        let mut held = Vec::new();
        let holding = self.held_changes.is_some();
        let done = log::capture_if(holding, &mut held, || -> Result<(), Fatal> {
            self.db.set_file(name, &text)?;
            if !self.opts.init {
                mark::mark(self.cfg, self.db, &self.opts.mark, name, None, None)?;
            }
            self.db.checkpoint().map_err(Fatal::from)
        });
        if let Some(list) = self.held_changes.as_mut() {
            list.append(&mut held);
        }
        done
    }
}

/// What [`Checker::rows_in`] calls with each row: (encoded name, name,
/// check text).
type RowFn<'f, 'a> =
    dyn FnMut(&mut Checker<'a>, Vec<u8>, Vec<u8>, Vec<u8>) -> Result<(), Fatal> + 'f;

/// What the walk did with an entry.
#[derive(Default)]
struct Walked {
    /// the directory list (`-W`) should contain its parent
    relevant: bool,
    /// its row was compared (it is a member and exists)
    recorded: bool,
    /// it is a directory and its entries were walked
    descended: bool,
}

/// The encoded range of the rows below a directory (encoded name): from
/// `DIR/` to `DIR0` (`/` + 1), or everything that starts with `/` for `/`.
fn children_range(dir_enc: &[u8]) -> (Vec<u8>, Vec<u8>) {
    if dir_enc == b"/" {
        return (b"/".to_vec(), b"0".to_vec());
    }
    let mut lo = dir_enc.to_vec();
    lo.push(b'/');
    let mut hi = dir_enc.to_vec();
    hi.push(b'0');
    (lo, hi)
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
