//! The state database (state.md §1): the same tables, rows and encoding as
//! the real csync2, on SQLite (the default), PostgreSQL or MySQL/MariaDB,
//! so both programs can use one database.
//!
//! `Db` is the only face the rest of the program sees; which server it
//! talks to is decided here, from the location (`resolve`). Each backend
//! (`sqlite`, `pgsql`, `mysql`) runs the statements of [`Stmt`] in its own
//! SQL dialect; batching, encoding and error texts are shared.
//!
//! Every string is stored URL-encoded as text (raw bytes ≥ 0x80, possibly
//! invalid UTF-8). The API below takes and returns decoded byte strings.

mod location;
mod mysql;
mod pgsql;
mod sqlite;

use crate::urlenc::{decode, encode};
use std::cell::RefCell;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use location::{Location, ServerKind, ServerUrl, resolve, shown_name};

pub const DEFAULT_DB_DIR: &str = "/var/lib/csync2";

/// A statement argument: encoded text (bound as text, never as a blob: the
/// C program compares with `filename = '…'`) or an integer.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Arg<'a> {
    Text(&'a [u8]),
    Int(i64),
}

/// A value read from the database.
#[derive(Clone, Debug, PartialEq)]
pub enum Val {
    Null,
    Int(i64),
    Real(f64),
    Text(Vec<u8>),
}

impl Val {
    /// The value as the C program's string conversion shows it.
    fn bytes(&self) -> Vec<u8> {
        match self {
            Val::Text(t) => t.clone(),
            Val::Int(n) => n.to_string().into_bytes(),
            Val::Real(f) => f.to_string().into_bytes(),
            Val::Null => Vec::new(),
        }
    }

    /// A flag column (`forced`, `recursive`) as the C program's `atoi`.
    fn truthy(&self) -> bool {
        match self {
            Val::Int(n) => *n != 0,
            Val::Text(t) => crate::config::parser::atoi(t) != 0,
            _ => false,
        }
    }

    fn arg(&self) -> Arg<'_> {
        match self {
            Val::Int(n) => Arg::Int(*n),
            Val::Text(t) => Arg::Text(t),
            Val::Real(f) => Arg::Int(*f as i64),
            Val::Null => Arg::Text(b""),
        }
    }
}

/// An argument kept for replaying a transaction.
#[derive(Clone, Debug)]
enum Owned {
    Text(Vec<u8>),
    Int(i64),
}

impl Owned {
    fn of(a: &Arg) -> Owned {
        match a {
            Arg::Text(t) => Owned::Text(t.to_vec()),
            Arg::Int(n) => Owned::Int(*n),
        }
    }

    fn arg(&self) -> Arg<'_> {
        match self {
            Owned::Text(t) => Arg::Text(t),
            Owned::Int(n) => Arg::Int(*n),
        }
    }
}

/// Every statement csync2 runs, named; each backend has its text. The
/// SQLite texts are the reference (`?N` parameters, in order, once each).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Stmt {
    FileChecktxt,
    FileAll,
    FileOne,
    FileBelow,
    FileRange,
    FileRangeAfter,
    FileSet,
    FileDelete,
    DirtyDelete,
    DirtyInsert,
    DirtyAll,
    DirtyForPeer,
    DirtyPeers,
    ForceAll,
    ForceBelow,
    ForceOne,
    DirtyAny,
    DirtyFlush,
    FileRawOne,
    FileRawAll,
    DirtyRaw,
    FileNamesRaw,
    CertGet,
    CertAdd,
    HintAdd,
    Hints,
    HintsSorted,
    HintDelete,
    ActionAdd,
    ActionCommands,
    ActionFiles,
    ActionDelete,
}

impl Stmt {
    pub(crate) fn sqlite(self) -> &'static str {
        use Stmt::*;
        match self {
            FileChecktxt => "SELECT checktxt FROM file WHERE filename = ?1",
            FileAll => "SELECT filename, checktxt FROM file ORDER BY filename",
            FileOne => "SELECT filename, checktxt FROM file WHERE filename = ?1 ORDER BY filename",
            FileBelow => {
                "SELECT filename, checktxt FROM file WHERE filename = ?1 UNION ALL SELECT filename, checktxt FROM file WHERE filename > ?2 AND filename < ?3 ORDER BY filename"
            }
            FileRange => {
                "SELECT filename, checktxt FROM file WHERE filename >= ?1 AND filename < ?2 ORDER BY filename LIMIT ?3"
            }
            FileRangeAfter => {
                "SELECT filename, checktxt FROM file WHERE filename > ?1 AND filename < ?2 ORDER BY filename LIMIT ?3"
            }
            // UNIQUE ( filename ) ON CONFLICT REPLACE: the insert replaces the row
            FileSet => "INSERT INTO file (filename, checktxt) VALUES (?1, ?2)",
            FileDelete => "DELETE FROM file WHERE filename = ?1",
            DirtyDelete => "DELETE FROM dirty WHERE filename = ?1 AND peername = ?2",
            DirtyInsert => {
                "INSERT INTO dirty (filename, forced, myname, peername) VALUES (?1, ?2, ?3, ?4)"
            }
            DirtyAll => "SELECT forced, myname, peername, filename FROM dirty ORDER BY filename",
            DirtyForPeer => {
                "SELECT forced, myname, peername, filename FROM dirty WHERE peername = ?1 ORDER BY filename"
            }
            DirtyPeers => "SELECT peername FROM dirty GROUP BY peername",
            ForceAll => "UPDATE dirty SET forced = 1",
            ForceBelow => {
                "UPDATE dirty SET forced = 1 WHERE filename = ?1 OR (filename > ?2 AND filename < ?3)"
            }
            ForceOne => "UPDATE dirty SET forced = 1 WHERE filename = ?1",
            DirtyAny => "SELECT 1 FROM dirty WHERE filename = ?1 LIMIT 1",
            DirtyFlush => "DELETE FROM dirty WHERE filename = ?1",
            FileRawOne => {
                "SELECT checktxt, filename FROM file WHERE filename = ?1 ORDER BY filename"
            }
            FileRawAll => "SELECT checktxt, filename FROM file ORDER BY filename",
            DirtyRaw => "SELECT filename, myname, peername FROM dirty ORDER BY filename",
            FileNamesRaw => "SELECT filename FROM file ORDER BY filename",
            CertGet => "SELECT certdata FROM x509_cert WHERE peername = ?1",
            CertAdd => "INSERT INTO x509_cert (peername, certdata) VALUES (?1, ?2)",
            HintAdd => "INSERT INTO hint (filename, recursive) VALUES (?1, ?2)",
            Hints => "SELECT filename, recursive FROM hint",
            HintsSorted => "SELECT recursive, filename FROM hint ORDER BY filename",
            HintDelete => "DELETE FROM hint WHERE filename = ?1 AND recursive = ?2",
            ActionAdd => "INSERT INTO action (filename, command, logfile) VALUES (?1, ?2, ?3)",
            ActionCommands => {
                "SELECT command, logfile FROM action GROUP BY command, logfile ORDER BY command DESC, logfile DESC"
            }
            ActionFiles => {
                "SELECT filename FROM action WHERE command = ?1 AND logfile = ?2 ORDER BY rowid DESC"
            }
            ActionDelete => {
                "DELETE FROM action WHERE command = ?1 AND logfile = ?2 AND filename = ?3"
            }
        }
    }
}

/// How a backend call failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// locked by another connection for longer than the lock timeout
    Busy,
    /// the server aborted the transaction (deadlock, serialization): run
    /// it again
    Retry(String),
    /// the connection is gone
    Lost(String),
    /// any other error, with the server's message
    Error(String),
}

/// One way of storing the tables. Calls take `&mut self`; `Db` keeps the
/// backend in a `RefCell` so that reads stay `&self` for its users.
pub(crate) trait Backend: Send {
    /// The statement's text in this dialect (run, and shown in errors).
    fn sql(&self, s: Stmt) -> std::borrow::Cow<'static, str>;
    fn exec(&mut self, s: Stmt, args: &[Arg]) -> std::result::Result<usize, Failure>;
    fn query(&mut self, s: Stmt, args: &[Arg]) -> std::result::Result<Vec<Vec<Val>>, Failure>;
    /// Begins a write transaction, taking the write lock where the backend
    /// has one (SQLite), so waiting happens here.
    fn begin(&mut self) -> std::result::Result<(), Failure>;
    fn commit(&mut self) -> std::result::Result<(), Failure>;
    fn rollback(&mut self);
    /// Whether an aborted transaction is reported as `Failure::Retry` and
    /// must be replayed.
    fn replays(&self) -> bool {
        false
    }
}

pub struct Db {
    be: RefCell<Box<dyn Backend>>,
    batching: bool,
    in_tx: bool,
    statements: u32,
    /// statements since the database was opened
    total: u64,
    /// the first this many statements are committed one by one, as the
    /// real program does (visible in a database left by a killed `-cr`)
    eager: u64,
    tx_start: Instant,
    /// the open transaction's statements, for a server backend that aborts
    /// it (deadlock): they run again in a new one
    tx_log: Vec<(Stmt, Vec<Owned>)>,
    /// how it was opened, for another connection to it
    opened: (Location, i32, bool, bool),
}

/// A database failure: the message the real program prints.
#[derive(Debug)]
pub struct DbError(pub String);

pub type Result<T> = std::result::Result<T, DbError>;

const EXCEEDINGLY_BUSY: &str =
    "Database backend is exceedingly busy => Terminating (requesting retry).";

/// A file row in a walk: encoded name, then name and check text decoded.
pub type WalkRow = (Vec<u8>, Vec<u8>, Vec<u8>);

/// A dirty row as stored: encoded filename, myname, peername.
pub type RawDirty = (Vec<u8>, Vec<u8>, Vec<u8>);

/// A hint: decoded name, recursive flag, and the stored name and flag value
/// (to delete exactly that row).
pub type Hint = (Vec<u8>, bool, Vec<u8>, Val);

/// A row of the dirty table, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirtyRow {
    pub filename: Vec<u8>,
    pub forced: bool,
    pub myname: Vec<u8>,
    pub peername: Vec<u8>,
}

/// `filename > 'N/' and filename < 'N0'`: the encoded names below N.
fn below_bounds(name_enc: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut lo = name_enc.to_vec();
    lo.push(b'/');
    let mut hi = name_enc.to_vec();
    hi.push(b'0');
    (lo, hi)
}

/// How many times an aborted transaction is run again before giving up.
const REPLAYS: u32 = 50;

impl Db {
    pub fn open(
        loc: &Location,
        lock_timeout: i32,
        batching: bool,
        async_writes: bool,
    ) -> Result<Db> {
        let be: Box<dyn Backend> = match loc {
            Location::Sqlite { shown, path } => {
                sqlite::open(shown, path, lock_timeout, async_writes)?
            }
            Location::Server(url) => match url.kind {
                ServerKind::Pgsql => pgsql::open(url)?,
                ServerKind::Mysql => mysql::open(url)?,
            },
            Location::Unsupported { shown, why } => {
                return Err(DbError(format!("Can't open database: {shown} ({why})")));
            }
        };
        Ok(Db {
            be: RefCell::new(be),
            batching,
            in_tx: false,
            total: 0,
            eager: 50,
            statements: 0,
            tx_start: Instant::now(),
            tx_log: Vec::new(),
            opened: (loc.clone(), lock_timeout, batching, async_writes),
        })
    }

    /// The file a `--watch` daemon holds locked while it runs on this
    /// database (`--status` tells from the lock, not from the file).
    pub fn watch_lock_file(&self) -> Option<PathBuf> {
        self.peer_state_file().map(|p| p.with_extension("watch"))
    }

    /// The file beside the database where the update records each peer's
    /// last successful push and last error (`--status`). A server
    /// database has it in the default database directory, named after it.
    pub fn peer_state_file(&self) -> Option<PathBuf> {
        match &self.opened.0 {
            Location::Sqlite { path, .. } => {
                let mut p = path.clone().into_os_string();
                p.push(".peers");
                Some(PathBuf::from(p))
            }
            Location::Server(url) => Some(PathBuf::from(format!(
                "{DEFAULT_DB_DIR}/{}.peers",
                url.local_name()
            ))),
            Location::Unsupported { .. } => None,
        }
    }

    /// Another connection to the same database (a thread of its own that
    /// serves a session; the backend's locking orders their writes).
    pub fn reopen(&self) -> Result<Db> {
        let (loc, lock_timeout, batching, async_writes) = &self.opened;
        Db::open(loc, *lock_timeout, *batching, *async_writes)
    }

    /// The URL as it may be shown (without a password).
    fn shown(&self) -> String {
        match &self.opened.0 {
            Location::Sqlite { shown, .. } | Location::Unsupported { shown, .. } => shown.clone(),
            Location::Server(url) => url.safe.clone(),
        }
    }

    fn error(&self, label: &str, s: Option<Stmt>, f: Failure) -> DbError {
        match f {
            Failure::Busy => DbError(EXCEEDINGLY_BUSY.to_string()),
            Failure::Lost(m) => DbError(format!(
                "Lost the connection to database {}: {m}",
                self.shown()
            )),
            Failure::Retry(m) | Failure::Error(m) => match s {
                Some(s) => {
                    let sql = self.be.borrow().sql(s);
                    DbError(format!(
                        "Database Error: {label} [1]: {m} on executing {sql}"
                    ))
                }
                None => DbError(format!("Database Error: {label} [1]: {m}")),
            },
        }
    }

    /// Begins a write transaction (also with -B: then it spans one file's
    /// statements, so a file row is never committed without its dirty rows).
    fn before_write(&mut self) -> Result<()> {
        if !self.in_tx {
            let r = self.be.get_mut().begin();
            r.map_err(|f| self.error("Starting transaction", None, f))?;
            self.in_tx = true;
            self.statements = 0;
            self.tx_start = Instant::now();
            self.tx_log.clear();
        }
        self.statements += 1;
        self.total += 1;
        Ok(())
    }

    /// Takes the write lock now (a transaction that later statements join):
    /// on SQLite, what is read next cannot change before this connection
    /// commits.
    pub fn begin_write(&mut self) -> Result<()> {
        self.before_write()
    }

    /// Commits when the batch is large or old. Call only between whole-file
    /// operations, so a crash never separates a file row from its dirty rows.
    pub fn checkpoint(&mut self) -> Result<()> {
        if self.in_tx
            && (!self.batching
                || self.total <= self.eager
                || self.statements > 1000
                || self.tx_start.elapsed() > Duration::from_secs(3))
        {
            self.commit()?;
        }
        Ok(())
    }

    /// Batches from the first statement on: for the update and the
    /// server, where nothing tells the difference and each commit costs
    /// fsyncs.
    pub fn batch_from_start(&mut self) {
        self.eager = 0;
    }

    pub fn commit(&mut self) -> Result<()> {
        if !self.in_tx {
            return Ok(());
        }
        let mut tries = 0;
        loop {
            match self.be.get_mut().commit() {
                Ok(()) => break,
                Err(Failure::Retry(m)) if tries < REPLAYS => {
                    tries += 1;
                    self.replay(m)?;
                }
                Err(f) => {
                    self.in_tx = false;
                    return Err(self.error("Committing transaction", None, f));
                }
            }
        }
        self.in_tx = false;
        self.tx_log.clear();
        Ok(())
    }

    /// Runs the aborted transaction's statements again in a new one.
    fn replay(&mut self, why: String) -> Result<()> {
        crate::log::debug(2, format!("Transaction aborted ({why}), running it again."));
        let mut tries = 0;
        'again: loop {
            let be = self.be.get_mut();
            be.rollback();
            // a short pause, longer each time, lets the other side finish
            std::thread::sleep(Duration::from_millis(5 << tries.min(6)));
            tries += 1;
            if let Err(f) = be.begin() {
                return Err(self.error("Starting transaction", None, f));
            }
            for i in 0..self.tx_log.len() {
                let (s, args) = &self.tx_log[i];
                let args: Vec<Arg> = args.iter().map(Owned::arg).collect();
                match self.be.get_mut().exec(*s, &args) {
                    Ok(_) => {}
                    Err(Failure::Retry(_)) if tries < REPLAYS => continue 'again,
                    Err(f) => return Err(self.error("Replaying transaction", Some(*s), f)),
                }
            }
            self.tx_start = Instant::now();
            return Ok(());
        }
    }

    fn exec(&mut self, label: &str, s: Stmt, args: &[Arg]) -> Result<usize> {
        self.before_write()?;
        let mut tries = 0;
        loop {
            match self.be.get_mut().exec(s, args) {
                Ok(n) => {
                    if self.be.get_mut().replays() {
                        self.tx_log.push((s, args.iter().map(Owned::of).collect()));
                    }
                    return Ok(n);
                }
                Err(Failure::Retry(m)) if tries < REPLAYS => {
                    tries += 1;
                    self.replay(m)?;
                }
                Err(f) => return Err(self.error(label, Some(s), f)),
            }
        }
    }

    fn query(&self, label: &str, s: Stmt, args: &[Arg]) -> Result<Vec<Vec<Val>>> {
        let r = self.be.borrow_mut().query(s, args);
        r.map_err(|f| self.error(label, Some(s), f))
    }

    // ---- file table -------------------------------------------------------

    pub fn file_checktxt(&self, name: &[u8]) -> Result<Option<Vec<u8>>> {
        let enc = encode(name);
        let mut v = self.query("Checking file", Stmt::FileChecktxt, &[Arg::Text(&enc)])?;
        Ok(v.pop().map(|r| decode(&r[0].bytes())))
    }

    /// Names (decoded) of rows equal to `name`, and with `recursive` also below
    /// it (every row for `/`), in encoded order.
    pub fn file_names(&self, name: &[u8], recursive: bool) -> Result<Vec<Vec<u8>>> {
        Ok(self
            .file_rows(name, recursive)?
            .into_iter()
            .map(|(n, _)| n)
            .collect())
    }

    /// (name, checktxt) rows as in `file_names`, both decoded.
    pub fn file_rows(&self, name: &[u8], recursive: bool) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let enc = encode(name);
        let label = "Reading file list";
        let rows = if recursive && name == b"/" {
            self.query(label, Stmt::FileAll, &[])?
        } else if recursive {
            let (lo, hi) = below_bounds(&enc);
            self.query(
                label,
                Stmt::FileBelow,
                &[Arg::Text(&enc), Arg::Text(&lo), Arg::Text(&hi)],
            )?
        } else {
            self.query(label, Stmt::FileOne, &[Arg::Text(&enc)])?
        };
        Ok(rows
            .into_iter()
            .map(|r| (decode(&r[0].bytes()), decode(&r[1].bytes())))
            .collect())
    }

    /// At most `limit` rows whose encoded name is at or after `lo` (after
    /// it when `after`) and before `hi`, in encoded order: (encoded name,
    /// name, check text), the last two decoded. A walk pages through a
    /// range with these, so it never holds more than a page.
    pub fn file_rows_range(
        &self,
        lo: &[u8],
        after: bool,
        hi: &[u8],
        limit: u32,
    ) -> Result<Vec<WalkRow>> {
        let s = if after {
            Stmt::FileRangeAfter
        } else {
            Stmt::FileRange
        };
        let rows = self.query(
            "Reading file list",
            s,
            &[Arg::Text(lo), Arg::Text(hi), Arg::Int(limit as i64)],
        )?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let enc = r[0].bytes();
                let name = decode(&enc);
                (enc, name, decode(&r[1].bytes()))
            })
            .collect())
    }

    pub fn all_files(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.file_rows(b"/", true)
    }

    pub fn set_file(&mut self, name: &[u8], checktxt: &[u8]) -> Result<()> {
        self.exec(
            "Adding file to file db",
            Stmt::FileSet,
            &[Arg::Text(&encode(name)), Arg::Text(&encode(checktxt))],
        )?;
        Ok(())
    }

    pub fn delete_file(&mut self, name: &[u8]) -> Result<()> {
        self.delete_file_raw(&encode(name))
    }

    // ---- dirty table ------------------------------------------------------

    pub fn mark_dirty(
        &mut self,
        name: &[u8],
        forced: bool,
        myname: &[u8],
        peer: &[u8],
    ) -> Result<()> {
        let enc = encode(name);
        let peer_enc = encode(peer);
        self.exec(
            "Marking file as dirty",
            Stmt::DirtyDelete,
            &[Arg::Text(&enc), Arg::Text(&peer_enc)],
        )?;
        self.exec(
            "Marking file as dirty",
            Stmt::DirtyInsert,
            &[
                Arg::Text(&enc),
                Arg::Int(forced as i64),
                Arg::Text(&encode(myname)),
                Arg::Text(&peer_enc),
            ],
        )?;
        Ok(())
    }

    pub fn dirty_rows(&self) -> Result<Vec<DirtyRow>> {
        self.dirty_query(Stmt::DirtyAll, &[])
    }

    /// One peer's dirty rows, ordered by the encoded file name.
    pub fn dirty_rows_for(&self, peer: &[u8]) -> Result<Vec<DirtyRow>> {
        self.dirty_query(Stmt::DirtyForPeer, &[Arg::Text(&encode(peer))])
    }

    /// Distinct peer names with dirty rows (decoded).
    pub fn dirty_peers(&self) -> Result<Vec<Vec<u8>>> {
        let rows = self.query("DB Dump - Dirty peers", Stmt::DirtyPeers, &[])?;
        Ok(rows.into_iter().map(|r| decode(&r[0].bytes())).collect())
    }

    fn dirty_query(&self, s: Stmt, args: &[Arg]) -> Result<Vec<DirtyRow>> {
        let rows = self.query("DB Dump - Dirty", s, args)?;
        Ok(rows
            .into_iter()
            .map(|r| DirtyRow {
                forced: r[0].truthy(),
                myname: decode(&r[1].bytes()),
                peername: decode(&r[2].bytes()),
                filename: decode(&r[3].bytes()),
            })
            .collect())
    }

    /// Sets the force flag on dirty rows of `name` (and below it).
    pub fn force_dirty(&mut self, name: &[u8], recursive: bool) -> Result<()> {
        let enc = encode(name);
        if recursive && name == b"/" {
            self.exec("Forcing dirty", Stmt::ForceAll, &[])?;
        } else if recursive {
            let (lo, hi) = below_bounds(&enc);
            self.exec(
                "Forcing dirty",
                Stmt::ForceBelow,
                &[Arg::Text(&enc), Arg::Text(&lo), Arg::Text(&hi)],
            )?;
        } else {
            self.exec("Forcing dirty", Stmt::ForceOne, &[Arg::Text(&enc)])?;
        }
        Ok(())
    }

    pub fn delete_dirty(&mut self, name: &[u8], peer: &[u8]) -> Result<()> {
        self.delete_dirty_raw(&encode(name), &encode(peer))
    }

    /// Any dirty row for this file, towards any peer.
    pub fn is_dirty(&self, name: &[u8]) -> Result<bool> {
        let v = self.query(
            "Checking for dirty entry",
            Stmt::DirtyAny,
            &[Arg::Text(&encode(name))],
        )?;
        Ok(!v.is_empty())
    }

    /// FLUSH: forget the file's dirty rows towards every peer.
    pub fn delete_dirty_all(&mut self, name: &[u8]) -> Result<()> {
        self.exec(
            "Flushing dirty entries",
            Stmt::DirtyFlush,
            &[Arg::Text(&encode(name))],
        )?;
        Ok(())
    }

    /// File rows as stored (encoded checktxt, encoded filename), ordered by
    /// the encoded name; one file or all (LIST).
    pub fn file_rows_raw(&self, name: Option<&[u8]>) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let label = "DB Dump - Files for sync pair";
        let rows = match name {
            Some(n) => self.query(label, Stmt::FileRawOne, &[Arg::Text(&encode(n))])?,
            None => self.query(label, Stmt::FileRawAll, &[])?,
        };
        Ok(rows
            .into_iter()
            .map(|r| (r[0].bytes(), r[1].bytes()))
            .collect())
    }

    /// Deletes a dirty row by its stored (possibly odd) encoded values.
    pub fn delete_dirty_raw(&mut self, name_enc: &[u8], peer_enc: &[u8]) -> Result<()> {
        self.exec(
            "Removing dirty entry",
            Stmt::DirtyDelete,
            &[Arg::Text(name_enc), Arg::Text(peer_enc)],
        )?;
        Ok(())
    }

    /// Dirty rows as stored (encoded filename, encoded myname, encoded peer).
    pub fn dirty_rows_raw(&self) -> Result<Vec<RawDirty>> {
        let rows = self.query("DB Dump - Dirty", Stmt::DirtyRaw, &[])?;
        Ok(rows
            .into_iter()
            .map(|r| (r[0].bytes(), r[1].bytes(), r[2].bytes()))
            .collect())
    }

    pub fn file_names_raw(&self) -> Result<Vec<Vec<u8>>> {
        let rows = self.query("DB Dump - File", Stmt::FileNamesRaw, &[])?;
        Ok(rows.into_iter().map(|r| r[0].bytes()).collect())
    }

    pub fn delete_file_raw(&mut self, name_enc: &[u8]) -> Result<()> {
        self.exec(
            "Removing file from file db",
            Stmt::FileDelete,
            &[Arg::Text(name_enc)],
        )?;
        Ok(())
    }

    // ---- x509_cert table ---------------------------------------------------

    /// The pinned certificate (upper-case hex DER) of a peer.
    pub fn peer_cert(&self, peer: &[u8]) -> Result<Option<Vec<u8>>> {
        let mut v = self.query(
            "Checking peer x509 certificate",
            Stmt::CertGet,
            &[Arg::Text(&encode(peer))],
        )?;
        Ok(v.pop().map(|r| decode(&r[0].bytes())))
    }

    pub fn add_peer_cert(&mut self, peer: &[u8], hex: &[u8]) -> Result<()> {
        self.exec(
            "Adding peer x509 certificate",
            Stmt::CertAdd,
            &[Arg::Text(&encode(peer)), Arg::Text(&encode(hex))],
        )?;
        Ok(())
    }

    // ---- hint table -------------------------------------------------------

    pub fn add_hint(&mut self, name: &[u8], recursive: bool) -> Result<()> {
        self.exec(
            "Adding hint",
            Stmt::HintAdd,
            &[Arg::Text(&encode(name)), Arg::Int(recursive as i64)],
        )?;
        Ok(())
    }

    /// Hints in table order, decoded, with the raw stored values for deletion.
    pub fn hints(&self) -> Result<Vec<Hint>> {
        let rows = self.query("Reading hints", Stmt::Hints, &[])?;
        Ok(rows
            .into_iter()
            .map(|mut r| {
                let rec = r.pop().unwrap_or(Val::Null);
                let raw = r[0].bytes();
                (decode(&raw), rec.truthy(), raw, rec)
            })
            .collect())
    }

    pub fn hints_sorted(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let rows = self.query("DB Dump - Hint", Stmt::HintsSorted, &[])?;
        Ok(rows
            .into_iter()
            .map(|r| (r[0].bytes(), decode(&r[1].bytes())))
            .collect())
    }

    pub fn delete_hint(&mut self, raw_name: &[u8], recursive: &Val) -> Result<()> {
        self.exec(
            "Removing hint",
            Stmt::HintDelete,
            &[Arg::Text(raw_name), recursive.arg()],
        )?;
        Ok(())
    }

    // ---- action table -----------------------------------------------------

    pub fn add_action(&mut self, name: &[u8], command: &[u8], logfile: &[u8]) -> Result<()> {
        self.exec(
            "Add action",
            Stmt::ActionAdd,
            &[
                Arg::Text(&encode(name)),
                Arg::Text(&encode(command)),
                Arg::Text(&encode(logfile)),
            ],
        )?;
        Ok(())
    }

    /// Distinct (command, logfile) pairs as stored, in descending order.
    pub fn action_commands(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let rows = self.query("Checking for pending actions", Stmt::ActionCommands, &[])?;
        Ok(rows
            .into_iter()
            .map(|r| (r[0].bytes(), r[1].bytes()))
            .collect())
    }

    /// Stored (encoded) file names for one stored command/logfile pair, in
    /// reverse insertion order.
    pub fn action_files(&self, command_enc: &[u8], logfile_enc: &[u8]) -> Result<Vec<Vec<u8>>> {
        let rows = self.query(
            "Reading action files",
            Stmt::ActionFiles,
            &[Arg::Text(command_enc), Arg::Text(logfile_enc)],
        )?;
        Ok(rows.into_iter().map(|r| r[0].bytes()).collect())
    }

    pub fn delete_action(
        &mut self,
        command_enc: &[u8],
        logfile_enc: &[u8],
        file_enc: &[u8],
    ) -> Result<()> {
        self.exec(
            "Removing action",
            Stmt::ActionDelete,
            &[
                Arg::Text(command_enc),
                Arg::Text(logfile_enc),
                Arg::Text(file_enc),
            ],
        )?;
        Ok(())
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let _ = self.commit();
    }
}
