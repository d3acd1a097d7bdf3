//! Differential test harness: runs the real csync2 (`/usr/sbin/csync2`) and
//! ours on the same inputs and compares what an administrator or a script can
//! observe: stdout, exit code, selected stderr lines and the contents of the
//! SQLite database (raw bytes and storage classes of every row).
//!
//! Every scenario gets an [`Env`]: a private directory under `/tmp` holding
//!
//! * `etc/`     — `CSYNC2_SYSTEM_DIR` (config file and key files),
//! * `db_real/` — database directory (`-D`) of the real csync2,
//! * `db_ours/` — database directory (`-D`) of our csync2,
//! * `tree/`    — the synchronised tree, shared by both binaries (so both
//!   store the same absolute paths).
//!
//! Environment overrides (for validating the harness itself):
//!
//! * `CSYNC2_REAL` — path of the reference binary (default `/usr/sbin/csync2`);
//! * `CSYNC2_DIFF_OURS` — path of the binary under test (default: the one
//!   built by this crate). `CSYNC2_DIFF_OURS=/usr/sbin/csync2 cargo test
//!   --test local_diff` must pass completely: it runs the reference against
//!   itself.
//! * `CSYNC2_DIFF_KEEP=1` — keep the scenario directories even on success.
//!
//! The parts shared with the network harness (`tests/net/`) live in
//! submodules:
//!
//! * [`proc`]: the process runner (which binary, [`Proc`], [`Done`],
//!   [`run_cmd`] and [`Output`]);
//! * [`setup`]: scenario and host directories, system-directory files (config
//!   and keys), file-system primitives;
//! * [`wait`]: the wait-with-deadline helpers;
//! * [`idx`]: the index of every network test (addresses and ports).
//!
//! [`args!`] builds argument vectors for both families.

#![allow(dead_code)]

pub mod dbcase;
pub mod dbserver;
pub mod idx;
pub mod proc;
pub mod setup;
pub mod wait;

// (re-exports for the test files; each uses some of them)
#[allow(unused_imports)]
pub use proc::{
    Done, Output, Proc, TIMEOUT, Which, bin, captured, csync2_command, lines, ours_bin, real_bin,
    run_cmd,
};
#[allow(unused_imports)]
pub use setup::{set_mode, set_mtime};
#[allow(unused_imports)]
pub use wait::{poll_until, wait_until};

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Local host name used with `-N` unless a scenario changes it.
pub const HOST: &str = "h1.local.test";
/// Peer names used by the default configs.
pub const PEER2: &str = "h2.local.test";
pub const PEER3: &str = "h3.local.test";
/// A base mtime (2020-09-13) for files created by the scenarios.
pub const T0: i64 = 1_600_000_000;

/// A valid 64-character key (alphabet `A-Za-z0-9._`).
pub const KEY1: &str = "Aa0._bcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ012345678";
pub const KEY2: &str = "Zz9._yxwvutsrqponmlkjihgfedcbaZYXWVUTSRQPONMLKJIHGFEDCBA987654321";

/// Build an argument vector from heterogeneous values (`&str`, `String`,
/// `PathBuf`, `OsString`, …): `args!["-cr", env.tree()]`.
#[macro_export]
macro_rules! args {
    ($($e:expr),* $(,)?) => {
        vec![$(::std::ffi::OsString::from(&$e)),*]
    };
}

pub fn split_lines(b: &[u8]) -> Vec<&[u8]> {
    if b.is_empty() {
        return Vec::new();
    }
    let b = b.strip_suffix(b"\n").unwrap_or(b);
    b.split(|&c| c == b'\n').collect()
}

// ---------------------------------------------------------------------------
// Display helpers
// ---------------------------------------------------------------------------

/// Printable representation of raw bytes: printable ASCII as is, `\n`, `\t`,
/// `\\`, and `\xNN` for everything else that is not valid UTF-8 text.
pub fn show(b: &[u8]) -> String {
    let mut s = String::new();
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\n' => s.push_str("\\n"),
                '\t' => s.push_str("\\t"),
                '\r' => s.push_str("\\r"),
                '\\' => s.push_str("\\\\"),
                c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                    let _ = write!(s, "\\x{:02x}", c as u32);
                }
                c => s.push(c),
            }
        }
        for &x in chunk.invalid() {
            let _ = write!(s, "\\x{x:02x}");
        }
    }
    s
}

pub fn show_lossy(b: &[u8]) -> String {
    split_lines(b)
        .iter()
        .map(|l| format!("    {}\n", show(l)))
        .collect()
}

/// csync2's URL decoding (for display only).
pub fn url_decode(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && b.len() - i >= 3 {
            let h = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(v) = h {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// csync2's URL encoding (bytes 0x01-0x20, 0x7f and `"'%$:|\`).
pub fn url_encode(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    for &c in b {
        if (1..=0x20).contains(&c) || c == 0x7f || b"\"'%$:|\\".contains(&c) {
            out.extend_from_slice(format!("%{c:02X}").as_bytes());
        } else {
            out.push(c);
        }
    }
    out
}

fn shell_quote(a: &OsStr) -> String {
    let b = a.as_bytes();
    if !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(c))
    {
        show(b)
    } else {
        format!("'{}'", show(b).replace('\'', "'\\''"))
    }
}

pub fn cmdline(args: &[OsString]) -> String {
    let mut s = String::from("csync2");
    for a in args {
        s.push(' ');
        s.push_str(&shell_quote(a));
    }
    s
}

// ---------------------------------------------------------------------------
// Database dumps
// ---------------------------------------------------------------------------

/// One SQLite value with its storage class.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Val {
    Null,
    Integer(i64),
    /// f64 bits (only for ordering; csync2 never stores REAL)
    Real(u64),
    Text(Vec<u8>),
    Blob(Vec<u8>),
}

impl Val {
    fn from_ref(v: rusqlite::types::ValueRef<'_>) -> Val {
        use rusqlite::types::ValueRef;
        match v {
            ValueRef::Null => Val::Null,
            ValueRef::Integer(i) => Val::Integer(i),
            ValueRef::Real(f) => Val::Real(f.to_bits()),
            ValueRef::Text(t) => Val::Text(t.to_vec()),
            ValueRef::Blob(b) => Val::Blob(b.to_vec()),
        }
    }
    /// Readable form: storage class, URL-decoded text (and the raw stored
    /// bytes when they differ from the decoded ones).
    pub fn show(&self) -> String {
        match self {
            Val::Null => "NULL".into(),
            Val::Integer(i) => format!("INTEGER {i}"),
            Val::Real(b) => format!("REAL {}", f64::from_bits(*b)),
            Val::Text(t) => {
                let d = url_decode(t);
                if d == *t {
                    format!("TEXT \"{}\"", show(t))
                } else {
                    format!("TEXT \"{}\" (stored \"{}\")", show(&d), show(t))
                }
            }
            Val::Blob(b) => format!(
                "BLOB x'{}'",
                b.iter().map(|x| format!("{x:02x}")).collect::<String>()
            ),
        }
    }
    pub fn text(&self) -> Option<&[u8]> {
        match self {
            Val::Text(t) => Some(t),
            _ => None,
        }
    }
}

pub type Row = Vec<Val>;

fn show_row(cols: &[String], r: &Row) -> String {
    let mut s = String::from("(");
    for (i, v) in r.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        let _ = write!(
            s,
            "{}={}",
            cols.get(i).map(String::as_str).unwrap_or("?"),
            v.show()
        );
    }
    s.push(')');
    s
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Table {
    pub columns: Vec<String>,
    /// Sorted rows (a multiset).
    pub rows: Vec<Row>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DbDump {
    /// `sqlite_master` rows (type, name, tbl_name, sql), sorted.
    pub schema: Vec<Row>,
    pub tables: BTreeMap<String, Table>,
}

impl DbDump {
    pub fn rows(&self, table: &str) -> &[Row] {
        self.tables
            .get(table)
            .map(|t| t.rows.as_slice())
            .unwrap_or(&[])
    }
    /// Decoded first column values of a table (e.g. file names), sorted.
    pub fn names(&self, table: &str) -> Vec<Vec<u8>> {
        self.rows(table)
            .iter()
            .filter_map(|r| r.first().and_then(Val::text).map(url_decode))
            .collect()
    }
}

/// Read every table of an SQLite database (read-only) as raw values.
pub fn dump_db(path: &Path) -> Result<DbDump, String> {
    use rusqlite::{Connection, OpenFlags};
    if !path.exists() {
        return Err(format!("database file {} does not exist", path.display()));
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut dump = DbDump::default();
    let mut names = Vec::new();
    {
        let mut st = conn
            .prepare("SELECT type, name, tbl_name, sql FROM sqlite_master")
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let mut rows = st.query([]).map_err(|e| e.to_string())?;
        while let Some(r) = rows.next().map_err(|e| e.to_string())? {
            let row: Row = (0..4)
                .map(|i| Val::from_ref(r.get_ref(i).unwrap()))
                .collect();
            if row[0] == Val::Text(b"table".to_vec())
                && let Val::Text(n) = &row[1]
            {
                names.push(String::from_utf8_lossy(n).into_owned());
            }
            dump.schema.push(row);
        }
        dump.schema.sort();
    }
    for name in names {
        let sql = format!("SELECT * FROM \"{}\"", name.replace('"', "\"\""));
        let mut st = conn.prepare(&sql).map_err(|e| format!("{sql}: {e}"))?;
        let columns: Vec<String> = st.column_names().map(|s| s.to_string()).collect();
        let n = columns.len();
        let mut rows = st.query([]).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(|e| e.to_string())? {
            out.push(
                (0..n)
                    .map(|i| Val::from_ref(r.get_ref(i).unwrap()))
                    .collect::<Row>(),
            );
        }
        out.sort();
        dump.tables.insert(name, Table { columns, rows: out });
    }
    Ok(dump)
}

/// Describe the differences between two dumps; empty when equal.
pub fn diff_dumps(real: &DbDump, ours: &DbDump) -> String {
    let mut s = String::new();
    if real.schema != ours.schema {
        let _ = writeln!(s, "  sqlite_master differs:");
        let cols = ["type", "name", "tbl_name", "sql"].map(String::from);
        for r in real.schema.iter().filter(|r| !ours.schema.contains(r)) {
            let _ = writeln!(s, "    only REAL: {}", show_row(&cols, r));
        }
        for r in ours.schema.iter().filter(|r| !real.schema.contains(r)) {
            let _ = writeln!(s, "    only OURS: {}", show_row(&cols, r));
        }
    }
    let names: BTreeSet<&String> = real.tables.keys().chain(ours.tables.keys()).collect();
    for name in names {
        let empty = Table::default();
        let (rt, ot) = match (real.tables.get(name), ours.tables.get(name)) {
            (Some(r), Some(o)) => (r, o),
            (Some(r), None) => {
                let _ = writeln!(
                    s,
                    "  table `{name}`: exists only in REAL ({} rows)",
                    r.rows.len()
                );
                (r, &empty)
            }
            (None, Some(o)) => {
                let _ = writeln!(
                    s,
                    "  table `{name}`: exists only in OURS ({} rows)",
                    o.rows.len()
                );
                (&empty, o)
            }
            (None, None) => unreachable!(),
        };
        if rt.columns != ot.columns && !rt.columns.is_empty() && !ot.columns.is_empty() {
            let _ = writeln!(
                s,
                "  table `{name}`: columns differ: REAL {:?} OURS {:?}",
                rt.columns, ot.columns
            );
        }
        let d = diff_rows(
            if rt.columns.is_empty() {
                &ot.columns
            } else {
                &rt.columns
            },
            &rt.rows,
            &ot.rows,
        );
        if !d.is_empty() {
            let _ = writeln!(
                s,
                "  table `{name}` differs (REAL {} rows, OURS {} rows):",
                rt.rows.len(),
                ot.rows.len()
            );
            s.push_str(&d);
        }
    }
    s
}

/// Multiset difference of two sorted row lists, rows grouped by their first
/// column so that changed rows are shown next to each other.
fn diff_rows(cols: &[String], real: &[Row], ours: &[Row]) -> String {
    let mut only_r: Vec<&Row> = Vec::new();
    let mut only_o: Vec<&Row> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < real.len() || j < ours.len() {
        if j >= ours.len() || (i < real.len() && real[i] < ours[j]) {
            only_r.push(&real[i]);
            i += 1;
        } else if i >= real.len() || ours[j] < real[i] {
            only_o.push(&ours[j]);
            j += 1;
        } else {
            i += 1;
            j += 1;
        }
    }
    let mut keys: BTreeMap<Option<&Val>, (Vec<&Row>, Vec<&Row>)> = BTreeMap::new();
    for r in &only_r {
        keys.entry(r.first()).or_default().0.push(r);
    }
    for r in &only_o {
        keys.entry(r.first()).or_default().1.push(r);
    }
    let mut s = String::new();
    let mut n = 0;
    for (_, (rs, os)) in keys {
        for r in rs {
            let _ = writeln!(s, "    - REAL {}", show_row(cols, r));
        }
        for r in os {
            let _ = writeln!(s, "    + OURS {}", show_row(cols, r));
        }
        n += 1;
        if n >= 40 {
            let _ = writeln!(s, "    … (more differences not shown)");
            break;
        }
    }
    s
}

// ---------------------------------------------------------------------------
// Stdout / stderr comparison
// ---------------------------------------------------------------------------

/// Stderr lines that scripts or admins rely on and that must be identical.
/// Everything else on stderr may differ (ours may add detail).
pub const IMPORTANT_STDERR: &[&str] = &[
    "WARNING: Parameter will be ignored: ",
    "This host (",
    "Never run -R with -G!",
    "Prefix '",
    "Removing ",
    "Config error",
    "Config names are limited",
    "Can't create key file",
    "Near line ",
    "Host pair not found",
];

/// The important stderr lines of an output, in order; except that the
/// `Removing …` lines of `-R -v` (whose order follows SQLite's row order) are
/// sorted and put at the end.
pub fn important_stderr(b: &[u8]) -> Vec<Vec<u8>> {
    let mut lines: Vec<Vec<u8>> = split_lines(b)
        .into_iter()
        .filter(|l| IMPORTANT_STDERR.iter().any(|p| l.starts_with(p.as_bytes())))
        .map(|l| l.to_vec())
        .collect();
    let mut removing: Vec<Vec<u8>> = Vec::new();
    lines.retain(|l| {
        if l.starts_with(b"Removing ") {
            removing.push(l.clone());
            false
        } else {
            true
        }
    });
    removing.sort();
    lines.extend(removing);
    lines
}

fn diff_lines(what: &str, real: &[u8], ours: &[u8]) -> String {
    let rl = split_lines(real);
    let ol = split_lines(ours);
    let mut s = String::new();
    let first = (0..rl.len().max(ol.len()))
        .find(|&i| rl.get(i) != ol.get(i))
        .unwrap_or(0);
    let _ = writeln!(
        s,
        "  {what} differs (REAL {} lines/{} bytes, OURS {} lines/{} bytes); first difference at line {}:",
        rl.len(),
        real.len(),
        ol.len(),
        ours.len(),
        first + 1
    );
    let _ = writeln!(
        s,
        "    REAL: {}",
        rl.get(first)
            .map(|l| format!("\"{}\"", show(l)))
            .unwrap_or("<no line>".into())
    );
    let _ = writeln!(
        s,
        "    OURS: {}",
        ol.get(first)
            .map(|l| format!("\"{}\"", show(l)))
            .unwrap_or("<no line>".into())
    );
    if real.ends_with(b"\n") != ours.ends_with(b"\n") && !real.is_empty() && !ours.is_empty() {
        let _ = writeln!(s, "    (final newline differs)");
    }
    let lim = 40;
    let _ = writeln!(s, "  full REAL {what}:");
    for l in rl.iter().take(lim) {
        let _ = writeln!(s, "    | {}", show(l));
    }
    if rl.len() > lim {
        let _ = writeln!(s, "    | … ({} more)", rl.len() - lim);
    }
    let _ = writeln!(s, "  full OURS {what}:");
    for l in ol.iter().take(lim) {
        let _ = writeln!(s, "    | {}", show(l));
    }
    if ol.len() > lim {
        let _ = writeln!(s, "    | … ({} more)", ol.len() - lim);
    }
    s
}

// ---------------------------------------------------------------------------
// The scenario environment
// ---------------------------------------------------------------------------

pub struct Env {
    pub name: String,
    pub base: PathBuf,
    pub etc: PathBuf,
    pub tree: PathBuf,
    pub db_real: PathBuf,
    pub db_ours: PathBuf,
    /// `-N` value.
    pub host: RefCell<String>,
    /// Extra arguments put before the scenario's arguments (e.g. `-C abc`).
    pub pre_args: RefCell<Vec<OsString>>,
    /// Extra environment for both binaries.
    pub extra_env: RefCell<Vec<(String, OsString)>>,
    /// Extra environment only for one binary.
    pub env_real: RefCell<Vec<(String, OsString)>>,
    pub env_ours: RefCell<Vec<(String, OsString)>>,
    history: RefCell<Vec<String>>,
    step_no: Cell<usize>,
}

impl Env {
    /// Create a fresh environment `/tmp/c2d-<name>-<pid>` with `etc/`,
    /// `db_real/`, `db_ours/`, `tree/` and the key files `etc/g1.key`,
    /// `etc/g2.key`. No config is written yet.
    pub fn new(name: &str) -> Env {
        real_bin(); // fail early with a clear message
        let base = PathBuf::from(format!("/tmp/c2d-{}-{}", name, std::process::id()));
        setup::fresh_dir(&base);
        let dirs = setup::HostDirs::create(&base, &["db_real", "db_ours"]);
        let env = Env {
            name: name.to_string(),
            etc: dirs.etc,
            tree: dirs.tree,
            db_real: base.join("db_real"),
            db_ours: base.join("db_ours"),
            base,
            host: RefCell::new(HOST.to_string()),
            pre_args: RefCell::new(Vec::new()),
            extra_env: RefCell::new(Vec::new()),
            env_real: RefCell::new(Vec::new()),
            env_ours: RefCell::new(Vec::new()),
            history: RefCell::new(Vec::new()),
            step_no: Cell::new(0),
        };
        // fixed mode for the tree root, so that its checktxt is predictable
        std::fs::set_permissions(&env.tree, std::fs::Permissions::from_mode(0o755)).unwrap();
        setup::write_keys(&env.etc, &[("g1.key", KEY1), ("g2.key", KEY2)]);
        env
    }

    /// Substitute `{TREE}`, `{BASE}`, `{HOST}` in a text.
    pub fn subst(&self, text: &str) -> String {
        text.replace("{TREE}", &self.tree.to_string_lossy())
            .replace("{BASE}", &self.base.to_string_lossy())
            .replace("{HOST}", &self.host.borrow())
    }

    /// Write `etc/csync2.cfg` (placeholders substituted, see [`Env::subst`]).
    pub fn config(&self, text: &str) {
        self.config_named("csync2.cfg", text);
    }

    pub fn config_named(&self, file: &str, text: &str) {
        let t = self.subst(text);
        self.note(format!("config {file}:\n{}", indent(&t)));
        setup::write_etc(&self.etc, file, &t);
    }

    pub fn write_etc(&self, file: &str, content: &str) {
        setup::write_etc(&self.etc, file, content);
    }

    pub fn set_host(&self, h: &str) {
        *self.host.borrow_mut() = h.to_string();
    }

    /// Absolute path inside the tree (relative part as raw bytes; an empty
    /// relative part means the tree root).
    pub fn p(&self, rel: impl AsRef<[u8]>) -> PathBuf {
        let rel = rel.as_ref();
        if rel.is_empty() {
            return self.tree.clone();
        }
        let mut v = self.tree.as_os_str().as_bytes().to_vec();
        v.push(b'/');
        v.extend_from_slice(rel);
        PathBuf::from(OsString::from_vec(v))
    }

    /// Same as [`Env::p`] but as an `OsString` argument.
    pub fn t(&self, rel: impl AsRef<[u8]>) -> OsString {
        self.p(rel).into_os_string()
    }

    pub fn db_dir(&self, which: Which) -> &Path {
        match which {
            Which::Real => &self.db_real,
            Which::Ours => &self.db_ours,
        }
    }

    /// The database file of one side (`<dbdir>/<host>[_<cfg>].db3`).
    pub fn db_file(&self, which: Which) -> PathBuf {
        self.db_dir(which)
            .join(format!("{}.db3", self.host.borrow().to_lowercase()))
    }

    fn note(&self, s: String) {
        self.history.borrow_mut().push(s);
    }

    /// Run one binary with the standard arguments
    /// `-N <host> -D <its db dir> <pre_args> <args>`.
    pub fn run(&self, which: Which, args: &[OsString]) -> Output {
        let mut full: Vec<OsString> = vec![
            "-N".into(),
            self.host.borrow().clone().into(),
            "-D".into(),
            self.db_dir(which).as_os_str().to_owned(),
        ];
        full.extend(self.pre_args.borrow().iter().cloned());
        full.extend(args.iter().cloned());
        self.run_raw(which, &full)
    }

    /// Run one binary with exactly these arguments (no `-N`/`-D` added);
    /// still with `CSYNC2_SYSTEM_DIR` and cwd = base.
    pub fn run_raw(&self, which: Which, args: &[OsString]) -> Output {
        let mut envs: Vec<(&str, OsString)> =
            vec![("CSYNC2_SYSTEM_DIR", self.etc.as_os_str().to_owned())];
        let extra = self.extra_env.borrow();
        for (k, v) in extra.iter() {
            envs.push((k.as_str(), v.clone()));
        }
        let side = match which {
            Which::Real => self.env_real.borrow(),
            Which::Ours => self.env_ours.borrow(),
        };
        for (k, v) in side.iter() {
            envs.push((k.as_str(), v.clone()));
        }
        run_cmd(which, args, &envs, &self.base)
    }

    /// Run the real binary, then ours, with the same arguments.
    pub fn run_both(&self, args: &[OsString]) -> (Output, Output) {
        let r = self.run(Which::Real, args);
        let o = self.run(Which::Ours, args);
        (r, o)
    }

    pub fn run_both_raw(&self, args: &[OsString]) -> (Output, Output) {
        let r = self.run_raw(Which::Real, args);
        let o = self.run_raw(Which::Ours, args);
        (r, o)
    }

    /// Dump the database of one side (the default file name).
    pub fn dump(&self, which: Which) -> DbDump {
        dump_db(&self.db_file(which)).unwrap_or_else(|e| panic!("{}: {e}", which.label()))
    }

    /// Compare stdout, exit code, important stderr lines and all database
    /// files of both sides; panics with a precise report on any difference.
    pub fn assert_same(&self, real: &Output, ours: &Output) {
        let mut problems = String::new();
        if real.timed_out {
            let _ = writeln!(problems, "  REAL timed out (harness problem?)");
        }
        if real.code != ours.code || real.timed_out != ours.timed_out {
            let _ = writeln!(
                problems,
                "  exit status differs: REAL {}, OURS {}",
                real.status_text(),
                ours.status_text()
            );
        }
        if real.stdout != ours.stdout {
            problems.push_str(&diff_lines("stdout", &real.stdout, &ours.stdout));
        }
        let rs = important_stderr(&real.stderr);
        let os = important_stderr(&ours.stderr);
        if rs != os {
            let _ = writeln!(problems, "  important stderr lines differ:");
            for l in &rs {
                let _ = writeln!(problems, "    REAL: {}", show(l));
            }
            for l in &os {
                let _ = writeln!(problems, "    OURS: {}", show(l));
            }
        }
        problems.push_str(&self.diff_databases());
        if !problems.is_empty() {
            self.fail(real, ours, &problems);
        }
    }

    /// Compare the database directories of both sides: the same file names,
    /// and for every database the same schema and rows.
    pub fn diff_databases(&self) -> String {
        let mut s = String::new();
        let list = |d: &Path| -> BTreeSet<OsString> {
            std::fs::read_dir(d)
                .map(|it| {
                    it.filter_map(|e| e.ok())
                        .map(|e| e.file_name())
                        .filter(|n| !n.as_bytes().ends_with(b"-journal"))
                        // ours only: each peer's last push, for --status
                        .filter(|n| !n.as_bytes().ends_with(b".peers"))
                        .collect()
                })
                .unwrap_or_default()
        };
        let rl = list(&self.db_real);
        let ol = list(&self.db_ours);
        if rl != ol {
            let _ = writeln!(
                s,
                "  database directory contents differ: REAL {:?}, OURS {:?}",
                rl, ol
            );
        }
        for n in rl.intersection(&ol) {
            let rp = self.db_real.join(n);
            let op = self.db_ours.join(n);
            match (dump_db(&rp), dump_db(&op)) {
                (Ok(r), Ok(o)) => {
                    let d = diff_dumps(&r, &o);
                    if !d.is_empty() {
                        let _ = writeln!(s, "  database {} differs:", n.to_string_lossy());
                        s.push_str(&d);
                    }
                }
                (Err(e), Ok(_)) => {
                    let _ = writeln!(s, "  REAL database unreadable: {e}");
                }
                (Ok(_), Err(e)) => {
                    let _ = writeln!(s, "  OURS database unreadable: {e}");
                }
                (Err(e1), Err(e2)) => {
                    if e1.replace("db_real", "") != e2.replace("db_ours", "") {
                        let _ = writeln!(s, "  databases unreadable: REAL {e1}; OURS {e2}");
                    }
                }
            }
        }
        s
    }

    fn fail(&self, real: &Output, ours: &Output, problems: &str) -> ! {
        let mut msg = String::new();
        let _ = writeln!(
            msg,
            "\n=== csync2 differential mismatch in scenario `{}` (dir {}) ===",
            self.name,
            self.base.display()
        );
        let _ = writeln!(
            msg,
            "command (step {}): {}\n  (OURS ran the same with its own database directory {})",
            self.step_no.get(),
            cmdline(&real.args),
            self.db_ours.display()
        );
        msg.push_str(problems);
        let _ = writeln!(
            msg,
            "  REAL {} stderr:\n{}",
            real.status_text(),
            show_lossy(&real.stderr)
        );
        let _ = writeln!(
            msg,
            "  OURS {} stderr:\n{}",
            ours.status_text(),
            show_lossy(&ours.stderr)
        );
        let _ = writeln!(
            msg,
            "history of this scenario (configs and the last 60 entries):"
        );
        let hist = self.history.borrow();
        let mut skipped = 0;
        for (i, h) in hist.iter().enumerate() {
            if h.starts_with("config ") || i + 60 >= hist.len() {
                if skipped > 0 {
                    let _ = writeln!(msg, "  … {skipped} entries omitted …");
                    skipped = 0;
                }
                let _ = writeln!(msg, "  {h}");
            } else {
                skipped += 1;
            }
        }
        panic!("{msg}");
    }

    /// Run both binaries and assert that they agree. Returns both outputs.
    pub fn step(&self, args: Vec<OsString>) -> (Output, Output) {
        self.step_no.set(self.step_no.get() + 1);
        let (r, o) = self.run_both(&args);
        self.note(format!(
            "step {}: {}  -> REAL {}, OURS {}",
            self.step_no.get(),
            cmdline(&r.args),
            r.status_text(),
            o.status_text()
        ));
        if std::env::var_os("CSYNC2_DIFF_TRACE").is_some() {
            eprintln!(
                "[{}] step {}: {} -> REAL {}\n  stdout:\n{}  stderr:\n{}",
                self.name,
                self.step_no.get(),
                cmdline(&r.args),
                r.status_text(),
                show_lossy(&r.stdout),
                show_lossy(&r.stderr)
            );
        }
        self.assert_same(&r, &o);
        (r, o)
    }

    /// As [`Env::step`], and additionally check the real binary's exit code
    /// (guards the scenario itself against being vacuous).
    pub fn step_expect(&self, args: Vec<OsString>, real_code: i32) -> (Output, Output) {
        let (r, o) = self.step(args);
        if r.code != Some(real_code) {
            self.fail(
                &r,
                &o,
                &format!(
                    "  SCENARIO ERROR: the REAL binary exited with {} but the scenario expects {}\n",
                    r.status_text(),
                    real_code
                ),
            );
        }
        (r, o)
    }

    /// Apply file-system mutations, then run the command with both binaries
    /// and compare.
    pub fn after(&self, mutate: impl FnOnce(&Env), args: Vec<OsString>) -> (Output, Output) {
        mutate(self);
        self.step(args)
    }

    /// Copy the database files of one side over those of the other side
    /// (used to make one implementation read the other's database).
    pub fn copy_db(&self, from: Which, to: Which) {
        let (f, t) = (self.db_dir(from), self.db_dir(to));
        for e in std::fs::read_dir(t).unwrap() {
            std::fs::remove_file(e.unwrap().path()).unwrap();
        }
        for e in std::fs::read_dir(f).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), t.join(e.file_name())).unwrap();
        }
        self.note(format!(
            "copied database {} -> {}",
            from.label(),
            to.label()
        ));
    }

    // -----------------------------------------------------------------
    // File-system mutations (paths relative to the tree, raw bytes)
    // -----------------------------------------------------------------

    fn note_fs(&self, what: &str, rel: &[u8]) {
        self.note(format!("fs: {what} {}", show(rel)));
    }

    /// Create or overwrite a regular file with content, mode and mtime.
    pub fn file(&self, rel: impl AsRef<[u8]>, content: impl AsRef<[u8]>, mode: u32, mtime: i64) {
        let rel = rel.as_ref();
        setup::make_file(&self.p(rel), content.as_ref(), mode, mtime);
        self.note_fs(&format!("file mode={mode:o} mtime={mtime}"), rel);
    }

    /// Create a directory (parents must exist) with a mode.
    pub fn mkdir(&self, rel: impl AsRef<[u8]>, mode: u32) {
        let rel = rel.as_ref();
        setup::make_dir(&self.p(rel), mode);
        self.note_fs(&format!("mkdir mode={mode:o}"), rel);
    }

    /// Create a symlink `rel -> target`.
    pub fn symlink(&self, rel: impl AsRef<[u8]>, target: impl AsRef<[u8]>) {
        let rel = rel.as_ref();
        setup::make_symlink(&self.p(rel), target.as_ref());
        self.note_fs(&format!("symlink -> {}", show(target.as_ref())), rel);
    }

    /// Replace a symlink by one with a new target.
    pub fn retarget(&self, rel: impl AsRef<[u8]>, target: impl AsRef<[u8]>) {
        let rel = rel.as_ref();
        std::fs::remove_file(self.p(rel)).unwrap();
        self.symlink(rel, target);
    }

    pub fn fifo(&self, rel: impl AsRef<[u8]>, mode: u32, mtime: i64) {
        let rel = rel.as_ref();
        setup::make_fifo(&self.p(rel), mode, mtime);
        self.note_fs(&format!("fifo mode={mode:o} mtime={mtime}"), rel);
    }

    fn mknod(&self, rel: &[u8], blk: bool, major: u64, minor: u64, mode: u32, mtime: i64) {
        setup::make_dev(&self.p(rel), blk, (major, minor), mode, mtime);
        self.note_fs(
            &format!(
                "mknod {} {major}:{minor} mode={mode:o} mtime={mtime}",
                if blk { "blk" } else { "chr" }
            ),
            rel,
        );
    }

    pub fn chr(&self, rel: impl AsRef<[u8]>, major: u64, minor: u64, mode: u32, mtime: i64) {
        self.mknod(rel.as_ref(), false, major, minor, mode, mtime);
    }

    pub fn blk(&self, rel: impl AsRef<[u8]>, major: u64, minor: u64, mode: u32, mtime: i64) {
        self.mknod(rel.as_ref(), true, major, minor, mode, mtime);
    }

    /// Create a unix socket inode (see [`setup::make_socket`]).
    pub fn socket(&self, rel: impl AsRef<[u8]>, mode: u32, mtime: i64) {
        let rel = rel.as_ref();
        setup::make_socket(&self.p(rel), mode, mtime);
        self.note_fs(&format!("socket mode={mode:o} mtime={mtime}"), rel);
    }

    pub fn chmod(&self, rel: impl AsRef<[u8]>, mode: u32) {
        let rel = rel.as_ref();
        set_mode(&self.p(rel), mode);
        self.note_fs(&format!("chmod {mode:o}"), rel);
    }

    /// lchown (does not follow symlinks).
    pub fn chown(&self, rel: impl AsRef<[u8]>, uid: u32, gid: u32) {
        let rel = rel.as_ref();
        setup::lchown(&self.p(rel), uid, gid);
        self.note_fs(&format!("chown {uid}:{gid}"), rel);
    }

    /// Set atime and mtime (not following symlinks).
    pub fn mtime(&self, rel: impl AsRef<[u8]>, mtime: i64) {
        let rel = rel.as_ref();
        set_mtime(&self.p(rel), mtime);
        self.note_fs(&format!("mtime {mtime}"), rel);
    }

    /// Remove a file, symlink, special file or a whole directory tree.
    pub fn remove(&self, rel: impl AsRef<[u8]>) {
        let rel = rel.as_ref();
        setup::remove_any(&self.p(rel));
        self.note_fs("remove", rel);
    }

    pub fn rename(&self, from: impl AsRef<[u8]>, to: impl AsRef<[u8]>) {
        let (from, to) = (from.as_ref(), to.as_ref());
        std::fs::rename(self.p(from), self.p(to)).unwrap();
        self.note(format!("fs: rename {} -> {}", show(from), show(to)));
    }

    /// Create one entry of every file type inside directory `dir` (which
    /// must exist; "" = the tree root): 15 entries (16 rows with the tree
    /// root).
    pub fn populate_all_types(&self, dir: &str) {
        self.populate_types(dir, true);
    }

    /// As [`Env::populate_all_types`], optionally without the 4 symlinks.
    pub fn populate_types(&self, dir: &str, symlinks: bool) {
        let j = |n: &str| {
            if dir.is_empty() {
                n.to_string()
            } else {
                format!("{dir}/{n}")
            }
        };
        self.file(j("regular.txt"), "hello world\n", 0o644, T0);
        self.file(j("empty"), "", 0o600, T0 + 1);
        self.file(j("setuid-exec"), "#!/bin/sh\n", 0o4751, T0 + 2);
        self.mkdir(j("dir"), 0o755);
        self.file(j("dir/inner.txt"), "inner", 0o640, T0 + 3);
        self.mkdir(j("emptydir"), 0o700);
        if symlinks {
            self.symlink(j("link"), "regular.txt");
            self.symlink(j("dangling"), "does/not/exist");
            self.symlink(j("link-odd"), "target with space:%|$");
            self.symlink(j("dirlink"), "dir");
        }
        self.fifo(j("fifo"), 0o644, T0 + 4);
        self.chr(j("chardev"), 1, 3, 0o644, T0 + 5);
        self.blk(j("blockdev"), 7, 0, 0o660, T0 + 6);
        self.blk(j("bigdev"), 300, 70000, 0o600, T0 + 7);
        self.socket(j("socket"), 0o755, T0 + 8);
    }

    /// Create files whose names contain every kind of awkward byte, directly
    /// in `dir` ("" = tree root). Returns their tree-relative names (the last
    /// two are a directory, which holds one more file, and a symlink).
    pub fn populate_hard_names(&self, dir: &str) -> Vec<Vec<u8>> {
        let mut names: Vec<Vec<u8>> = vec![
            b"with space".to_vec(),
            b"with\ttab".to_vec(),
            b"with\nnewline".to_vec(),
            b"percent%41%zz%".to_vec(),
            b"colon:name".to_vec(),
            b"single'quote".to_vec(),
            b"double\"quote".to_vec(),
            b"back\\slash".to_vec(),
            b"dollar$HOME".to_vec(),
            b"pipe|name".to_vec(),
            "unicode-\u{e4}\u{f6}\u{fc}-\u{65e5}\u{672c}-\u{1f600}"
                .as_bytes()
                .to_vec(),
            b"invalid-\xff\xfe-utf8".to_vec(),
            b"ctrl-\x01-\x1f-\x7f".to_vec(),
            b"semi;amp&hash#star*q?[br]~".to_vec(),
            b"-leading-dash".to_vec(),
            b".hidden".to_vec(),
            b"a0x".to_vec(),
            b"a:x".to_vec(),
            b"a x".to_vec(),
            vec![b'L'; 255],
        ];
        let mut long_mixed = b"mixed %:' ".to_vec();
        long_mixed.resize(255, b'm');
        names.push(long_mixed);
        names.push(b"dir with %25 and \xff".to_vec());
        names.push(b"link\nwith newline".to_vec());
        let names: Vec<Vec<u8>> = names
            .into_iter()
            .map(|n| {
                let mut rel = if dir.is_empty() {
                    Vec::new()
                } else {
                    format!("{dir}/").into_bytes()
                };
                rel.extend_from_slice(&n);
                rel
            })
            .collect();
        let nfiles = names.len() - 2;
        for (i, rel) in names[..nfiles].iter().enumerate() {
            self.file(rel, format!("content {i}\n"), 0o644, T0 + i as i64);
        }
        // a directory and a symlink with hard names too
        self.mkdir(&names[nfiles], 0o755);
        let mut inner = names[nfiles].clone();
        inner.extend_from_slice(b"/inner :$|file");
        self.file(&inner, "x", 0o644, T0);
        self.symlink(&names[nfiles + 1], b"target\twith tab %20 \xfe");
        names
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("CSYNC2_DIFF_KEEP").is_some() {
            eprintln!("(scenario directory kept: {})", self.base.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.base);
        }
    }
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("    {l}\n")).collect()
}
