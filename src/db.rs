//! The state database (state.md §1): same file, same schema, same encoding
//! as the real csync2, so both programs can use one database.
//!
//! Every string is stored URL-encoded as TEXT (raw bytes ≥ 0x80, possibly
//! invalid UTF-8). The API below takes and returns decoded byte strings.

use crate::log;
use crate::urlenc::{decode, encode};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, ToSql};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const DEFAULT_DB_DIR: &str = "/var/lib/csync2";

pub const SCHEMA: [(&str, &str); 5] = [
    (
        "file",
        "CREATE TABLE file (\tfilename, checktxt,\tUNIQUE ( filename ) ON CONFLICT REPLACE)",
    ),
    (
        "dirty",
        "CREATE TABLE dirty (\tfilename, forced, myname, peername,\tUNIQUE ( filename, peername ) ON CONFLICT IGNORE)",
    ),
    (
        "hint",
        "CREATE TABLE hint (\tfilename, recursive,\tUNIQUE ( filename, recursive ) ON CONFLICT IGNORE)",
    ),
    (
        "action",
        "CREATE TABLE action (\tfilename, command, logfile,\tUNIQUE ( filename, command ) ON CONFLICT IGNORE)",
    ),
    (
        "x509_cert",
        "CREATE TABLE x509_cert (\tpeername, certdata,\tUNIQUE ( peername ) ON CONFLICT IGNORE)",
    ),
];

/// Binds an already-encoded byte string as TEXT (never BLOB: the C program
/// compares with `filename = '…'`, and TEXT never equals BLOB).
pub struct Txt<'a>(pub &'a [u8]);

impl ToSql for Txt<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(ValueRef::Text(self.0)))
    }
}

/// Where the database lives (cli.md §8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Sqlite { shown: String, path: PathBuf },
    Unsupported { shown: String, why: String },
}

/// The database string as `-vv` shows it (before a directory is expanded).
pub fn shown_name(value: Option<&str>, host: &str, cfgname: Option<&str>) -> String {
    let v = value.unwrap_or("");
    if v.is_empty() || v.starts_with('/') {
        let base = match cfgname {
            Some(c) if !c.is_empty() => format!("{host}_{c}"),
            _ => host.to_string(),
        };
        let dir = if v.is_empty() { DEFAULT_DB_DIR } else { v };
        format!("sqlite3://{dir}/{base}.db3")
    } else {
        v.to_string()
    }
}

/// Resolves `-D` / `database` into a location; Err is a fatal message.
pub fn resolve(
    value: Option<&str>,
    host: &str,
    cfgname: Option<&str>,
) -> std::result::Result<Location, String> {
    let base = match cfgname {
        Some(c) if !c.is_empty() => format!("{host}_{c}"),
        _ => host.to_string(),
    };
    let v = value.unwrap_or("");
    if v.is_empty() || v.starts_with('/') {
        let dir = if v.is_empty() { DEFAULT_DB_DIR } else { v };
        let shown = format!("sqlite3://{dir}/{base}.db3");
        return Ok(Location::Sqlite {
            path: PathBuf::from(format!("{dir}/{base}.db3")),
            shown,
        });
    }
    let (scheme, rest) = match v.find("://") {
        Some(i) => (&v[..i], &v[i + 3..]),
        None => ("", v),
    };
    match scheme {
        "" | "sqlite" | "sqlite3" => {
            let p = std::path::Path::new(rest);
            let path = if p.is_dir() {
                let trimmed = rest.trim_end_matches('/');
                let trimmed = if trimmed.is_empty() { "" } else { trimmed };
                PathBuf::from(format!("{trimmed}/{base}.db3"))
            } else {
                PathBuf::from(rest)
            };
            Ok(Location::Sqlite {
                shown: v.to_string(),
                path,
            })
        }
        "sqlite2" => Ok(Location::Unsupported {
            shown: v.to_string(),
            why: "SQLite 2 databases are not supported by this build".to_string(),
        }),
        "mysql" | "pgsql" => Ok(Location::Unsupported {
            shown: v.to_string(),
            why: format!("{scheme} databases are not supported by this build of csync2-rs"),
        }),
        _ => Err(format!("Unknown database scheme: {v}")),
    }
}

static BUSY_LIMIT: AtomicU32 = AtomicU32::new(12);

thread_local! {
    /// when the current busy episode began, and how many -vv lines it printed
    static BUSY: std::cell::Cell<(Instant, u64)> = std::cell::Cell::new((Instant::now(), 0));
}

fn busy_handler(count: i32) -> bool {
    // The real one sleeps a whole second per busy result, (pid % 7) +
    // lock-timeout + 1 times; a waiter then sleeps through the moments the
    // lock is free and many concurrent sessions starve. Same time budget
    // and the same -vv lines (one per second), but polled in short steps.
    let now = Instant::now();
    let (since, lines) = BUSY.with(|c| {
        if count == 0 {
            c.set((now, 0));
        }
        c.get()
    });
    let waited = now.duration_since(since);
    let budget = Duration::from_secs(BUSY_LIMIT.load(Ordering::Relaxed) as u64 + 1);
    if waited >= budget {
        return false;
    }
    if waited.as_secs() >= lines {
        log::debug(2, "Database is busy, sleeping a sec.");
        BUSY.with(|c| c.set((since, waited.as_secs() + 1)));
    }
    let step = Duration::from_millis((1u64 << count.clamp(0, 6)).min(50));
    std::thread::sleep(step.min(budget - waited));
    true
}

pub struct Db {
    conn: Connection,
    batching: bool,
    in_tx: bool,
    statements: u32,
    /// statements since the database was opened
    total: u64,
    /// the first this many statements are committed one by one, as the
    /// real program does (visible in a database left by a killed `-cr`)
    eager: u64,
    tx_start: Instant,
    /// how it was opened, for another connection to it
    opened: (Location, i32, bool, bool),
}

/// A database failure: the message the real program prints.
#[derive(Debug)]
pub struct DbError(pub String);

pub type Result<T> = std::result::Result<T, DbError>;

fn db_error(label: &str, e: rusqlite::Error, sql: &str) -> DbError {
    if let rusqlite::Error::SqliteFailure(f, _) = &e
        && f.code == rusqlite::ErrorCode::DatabaseBusy
    {
        return DbError(
            "Database backend is exceedingly busy => Terminating (requesting retry).".to_string(),
        );
    }
    let msg = match &e {
        rusqlite::Error::SqliteFailure(_, Some(m)) => m.clone(),
        other => other.to_string(),
    };
    DbError(format!(
        "Database Error: {label} [1]: {msg} on executing {sql}"
    ))
}

/// A file row in a walk: encoded name, then name and check text decoded.
pub type WalkRow = (Vec<u8>, Vec<u8>, Vec<u8>);

/// A dirty row as stored: encoded filename, myname, peername.
pub type RawDirty = (Vec<u8>, Vec<u8>, Vec<u8>);

/// A hint: decoded name, recursive flag, and the stored name and flag value
/// (to delete exactly that row).
pub type Hint = (Vec<u8>, bool, Vec<u8>, rusqlite::types::Value);

/// A row of the dirty table, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirtyRow {
    pub filename: Vec<u8>,
    pub forced: bool,
    pub myname: Vec<u8>,
    pub peername: Vec<u8>,
}

fn bytes(row: &rusqlite::Row, i: usize) -> rusqlite::Result<Vec<u8>> {
    Ok(match row.get_ref(i)? {
        ValueRef::Text(t) | ValueRef::Blob(t) => t.to_vec(),
        ValueRef::Integer(n) => n.to_string().into_bytes(),
        ValueRef::Real(f) => f.to_string().into_bytes(),
        ValueRef::Null => Vec::new(),
    })
}

fn truthy(row: &rusqlite::Row, i: usize) -> rusqlite::Result<bool> {
    Ok(match row.get_ref(i)? {
        ValueRef::Integer(n) => n != 0,
        ValueRef::Text(t) => crate::config::parser::atoi(t) != 0,
        _ => false,
    })
}

/// `filename > 'N/' and filename < 'N0'`: the encoded names below N.
fn below_bounds(name_enc: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut lo = name_enc.to_vec();
    lo.push(b'/');
    let mut hi = name_enc.to_vec();
    hi.push(b'0');
    (lo, hi)
}

impl Db {
    pub fn open(
        loc: &Location,
        lock_timeout: i32,
        batching: bool,
        async_writes: bool,
    ) -> Result<Db> {
        let (shown, path) = match loc {
            Location::Sqlite { shown, path } => (shown, path),
            Location::Unsupported { shown, why } => {
                return Err(DbError(format!("Can't open database: {shown} ({why})")));
            }
        };
        let fail = || {
            if !path.starts_with("/") {
                eprintln!(
                    "Cannot open database file: {}, maybe you need three slashes (like sqlite:///var/lib/csync2/csync2.db)",
                    path.display()
                );
            }
            DbError(format!("Can't open database: {shown}"))
        };
        let mut conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|_| fail())?;
        let limit = (std::process::id() % 7) as i32 + lock_timeout;
        BUSY_LIMIT.store(limit.max(0) as u32, Ordering::Relaxed);
        conn.busy_handler(Some(busy_handler))
            .map_err(|e| db_error("Setting busy handler", e, ""))?;
        // SQLite opens lazily: a bad path shows up at the first statement.
        // Other failures (e.g. not a database) surface, as in the real
        // program, when the schema is created.
        if let Err(rusqlite::Error::SqliteFailure(f, _)) =
            conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
        {
            match f.code {
                rusqlite::ErrorCode::CannotOpen => return Err(fail()),
                rusqlite::ErrorCode::DatabaseBusy => {
                    return Err(DbError(
                        "Database backend is exceedingly busy => Terminating (requesting retry)."
                            .to_string(),
                    ));
                }
                _ => {}
            }
        }
        if async_writes {
            conn.execute_batch("PRAGMA synchronous = OFF")
                .map_err(|e| db_error("PRAGMA", e, "PRAGMA synchronous = OFF"))?;
        }
        let mut db = Db {
            conn,
            batching,
            in_tx: false,
            total: 0,
            eager: 50,
            statements: 0,
            tx_start: Instant::now(),
            opened: (loc.clone(), lock_timeout, batching, async_writes),
        };
        db.ensure_schema()?;
        Ok(db)
    }

    /// The file a `--watch` daemon holds locked while it runs on this
    /// database (`--status` tells from the lock, not from the file).
    pub fn watch_lock_file(&self) -> Option<PathBuf> {
        self.peer_state_file().map(|p| p.with_extension("watch"))
    }

    /// The file beside the database where the update records each peer's
    /// last successful push and last error (`--status`).
    pub fn peer_state_file(&self) -> Option<PathBuf> {
        match &self.opened.0 {
            Location::Sqlite { path, .. } => {
                let mut p = path.clone().into_os_string();
                p.push(".peers");
                Some(PathBuf::from(p))
            }
            Location::Unsupported { .. } => None,
        }
    }

    /// Another connection to the same database (a thread of its own that
    /// serves a session; SQLite's locking orders their writes).
    pub fn reopen(&self) -> Result<Db> {
        let (loc, lock_timeout, batching, async_writes) = &self.opened;
        Db::open(loc, *lock_timeout, *batching, *async_writes)
    }

    fn has_schema(&self) -> bool {
        self.conn
            .query_row("SELECT count(*) from file", [], |_| Ok(()))
            .is_ok()
    }

    fn ensure_schema(&mut self) -> Result<()> {
        if self.has_schema() {
            return Ok(());
        }
        // several processes may meet a fresh database at once (the real
        // one then fails with "table file already exists"): create it
        // under the write lock, after looking again
        let locked = self.conn.execute_batch("BEGIN IMMEDIATE").is_ok();
        if locked && self.has_schema() {
            let _ = self.conn.execute_batch("COMMIT");
            return Ok(());
        }
        log::debug(2, "Upgrading database schema to version 0.");
        for (table, sql) in SCHEMA {
            if let Err(e) = self.conn.execute_batch(sql) {
                if locked {
                    let _ = self.conn.execute_batch("ROLLBACK");
                }
                return Err(db_error(&format!("Creating {table} table"), e, sql));
            }
        }
        if locked {
            self.conn
                .execute_batch("COMMIT")
                .map_err(|e| db_error("Creating the schema", e, "COMMIT"))?;
        }
        Ok(())
    }

    /// Begins a write transaction (also with -B: then it spans one file's
    /// statements, so a file row is never committed without its dirty rows).
    fn before_write(&mut self) -> Result<()> {
        if !self.in_tx {
            // IMMEDIATE: take the write lock now, where the busy handler
            // waits for it; a deferred transaction upgrading from a read lock
            // gets SQLITE_BUSY at once when another writer is active
            self.conn
                .execute_batch("BEGIN IMMEDIATE")
                .map_err(|e| db_error("Starting transaction", e, "BEGIN IMMEDIATE"))?;
            self.in_tx = true;
            self.statements = 0;
            self.tx_start = Instant::now();
        }
        self.statements += 1;
        self.total += 1;
        Ok(())
    }

    /// Takes the write lock now (a transaction that later statements join):
    /// what is read next cannot change before this connection commits.
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
        if self.in_tx {
            self.in_tx = false;
            self.conn
                .execute_batch("COMMIT")
                .map_err(|e| db_error("Committing transaction", e, "COMMIT"))?;
        }
        Ok(())
    }

    fn exec(&mut self, label: &str, sql: &str, args: &[&dyn ToSql]) -> Result<usize> {
        self.before_write()?;
        let mut st = self
            .conn
            .prepare_cached(sql)
            .map_err(|e| db_error(label, e, sql))?;
        st.execute(args).map_err(|e| db_error(label, e, sql))
    }

    fn query<T>(
        &self,
        label: &str,
        sql: &str,
        args: &[&dyn ToSql],
        f: impl FnMut(&rusqlite::Row) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        let mut st = self
            .conn
            .prepare_cached(sql)
            .map_err(|e| db_error(label, e, sql))?;
        let rows = st.query_map(args, f).map_err(|e| db_error(label, e, sql))?;
        rows.collect::<rusqlite::Result<Vec<T>>>()
            .map_err(|e| db_error(label, e, sql))
    }

    // ---- file table -------------------------------------------------------

    pub fn file_checktxt(&self, name: &[u8]) -> Result<Option<Vec<u8>>> {
        let enc = encode(name);
        let mut v = self.query(
            "Checking file",
            "SELECT checktxt FROM file WHERE filename = ?1",
            &[&Txt(&enc)],
            |r| bytes(r, 0),
        )?;
        Ok(v.pop().map(|c| decode(&c)))
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
        let map = |r: &rusqlite::Row| Ok((decode(&bytes(r, 0)?), decode(&bytes(r, 1)?)));
        if recursive && name == b"/" {
            self.query(
                "Reading file list",
                "SELECT filename, checktxt FROM file ORDER BY filename",
                &[],
                map,
            )
        } else if recursive {
            let (lo, hi) = below_bounds(&enc);
            self.query(
                "Reading file list",
                "SELECT filename, checktxt FROM file WHERE filename = ?1 UNION ALL SELECT filename, checktxt FROM file WHERE filename > ?2 AND filename < ?3 ORDER BY filename",
                &[&Txt(&enc), &Txt(&lo), &Txt(&hi)],
                map,
            )
        } else {
            self.query(
                "Reading file list",
                "SELECT filename, checktxt FROM file WHERE filename = ?1 ORDER BY filename",
                &[&Txt(&enc)],
                map,
            )
        }
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
        let sql = if after {
            "SELECT filename, checktxt FROM file WHERE filename > ?1 AND filename < ?2 ORDER BY filename LIMIT ?3"
        } else {
            "SELECT filename, checktxt FROM file WHERE filename >= ?1 AND filename < ?2 ORDER BY filename LIMIT ?3"
        };
        self.query(
            "Reading file list",
            sql,
            &[&Txt(lo), &Txt(hi), &limit],
            |r| {
                let enc = bytes(r, 0)?;
                let name = decode(&enc);
                Ok((enc, name, decode(&bytes(r, 1)?)))
            },
        )
    }

    pub fn all_files(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.file_rows(b"/", true)
    }

    pub fn set_file(&mut self, name: &[u8], checktxt: &[u8]) -> Result<()> {
        // UNIQUE ( filename ) ON CONFLICT REPLACE: the insert replaces the row
        self.exec(
            "Adding file to file db",
            "INSERT INTO file (filename, checktxt) VALUES (?1, ?2)",
            &[&Txt(&encode(name)), &Txt(&encode(checktxt))],
        )?;
        Ok(())
    }

    pub fn delete_file(&mut self, name: &[u8]) -> Result<()> {
        self.exec(
            "Removing file from file db",
            "DELETE FROM file WHERE filename = ?1",
            &[&Txt(&encode(name))],
        )?;
        Ok(())
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
            "DELETE FROM dirty WHERE filename = ?1 AND peername = ?2",
            &[&Txt(&enc), &Txt(&peer_enc)],
        )?;
        self.exec(
            "Marking file as dirty",
            "INSERT INTO dirty (filename, forced, myname, peername) VALUES (?1, ?2, ?3, ?4)",
            &[
                &Txt(&enc),
                &(forced as i64),
                &Txt(&encode(myname)),
                &Txt(&peer_enc),
            ],
        )?;
        Ok(())
    }

    pub fn dirty_rows(&self) -> Result<Vec<DirtyRow>> {
        self.dirty_query(
            "SELECT forced, myname, peername, filename FROM dirty ORDER BY filename",
            &[],
        )
    }

    /// One peer's dirty rows, ordered by the encoded file name.
    pub fn dirty_rows_for(&self, peer: &[u8]) -> Result<Vec<DirtyRow>> {
        self.dirty_query(
            "SELECT forced, myname, peername, filename FROM dirty WHERE peername = ?1 ORDER BY filename",
            &[&Txt(&encode(peer))],
        )
    }

    /// Distinct peer names with dirty rows (decoded).
    pub fn dirty_peers(&self) -> Result<Vec<Vec<u8>>> {
        self.query(
            "DB Dump - Dirty peers",
            "SELECT peername FROM dirty GROUP BY peername",
            &[],
            |r| Ok(decode(&bytes(r, 0)?)),
        )
    }

    fn dirty_query(&self, sql: &str, args: &[&dyn ToSql]) -> Result<Vec<DirtyRow>> {
        self.query("DB Dump - Dirty", sql, args, |r| {
            Ok(DirtyRow {
                forced: truthy(r, 0)?,
                myname: decode(&bytes(r, 1)?),
                peername: decode(&bytes(r, 2)?),
                filename: decode(&bytes(r, 3)?),
            })
        })
    }

    /// Sets the force flag on dirty rows of `name` (and below it).
    pub fn force_dirty(&mut self, name: &[u8], recursive: bool) -> Result<()> {
        let enc = encode(name);
        if recursive && name == b"/" {
            self.exec("Forcing dirty", "UPDATE dirty SET forced = 1", &[])?;
        } else if recursive {
            let (lo, hi) = below_bounds(&enc);
            self.exec(
                "Forcing dirty",
                "UPDATE dirty SET forced = 1 WHERE filename = ?1 OR (filename > ?2 AND filename < ?3)",
                &[&Txt(&enc), &Txt(&lo), &Txt(&hi)],
            )?;
        } else {
            self.exec(
                "Forcing dirty",
                "UPDATE dirty SET forced = 1 WHERE filename = ?1",
                &[&Txt(&enc)],
            )?;
        }
        Ok(())
    }

    pub fn delete_dirty(&mut self, name: &[u8], peer: &[u8]) -> Result<()> {
        self.exec(
            "Removing dirty entry",
            "DELETE FROM dirty WHERE filename = ?1 AND peername = ?2",
            &[&Txt(&encode(name)), &Txt(&encode(peer))],
        )?;
        Ok(())
    }

    /// Any dirty row for this file, towards any peer.
    pub fn is_dirty(&self, name: &[u8]) -> Result<bool> {
        let v = self.query(
            "Checking for dirty entry",
            "SELECT 1 FROM dirty WHERE filename = ?1 LIMIT 1",
            &[&Txt(&encode(name))],
            |_| Ok(()),
        )?;
        Ok(!v.is_empty())
    }

    /// FLUSH: forget the file's dirty rows towards every peer.
    pub fn delete_dirty_all(&mut self, name: &[u8]) -> Result<()> {
        self.exec(
            "Flushing dirty entries",
            "DELETE FROM dirty WHERE filename = ?1",
            &[&Txt(&encode(name))],
        )?;
        Ok(())
    }

    /// File rows as stored (encoded checktxt, encoded filename), ordered by
    /// the encoded name; one file or all (LIST).
    pub fn file_rows_raw(&self, name: Option<&[u8]>) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let map = |r: &rusqlite::Row| Ok((bytes(r, 0)?, bytes(r, 1)?));
        match name {
            Some(n) => self.query(
                "DB Dump - Files for sync pair",
                "SELECT checktxt, filename FROM file WHERE filename = ?1 ORDER BY filename",
                &[&Txt(&encode(n))],
                map,
            ),
            None => self.query(
                "DB Dump - Files for sync pair",
                "SELECT checktxt, filename FROM file ORDER BY filename",
                &[],
                map,
            ),
        }
    }

    /// Deletes a dirty row by its stored (possibly odd) encoded values.
    pub fn delete_dirty_raw(&mut self, name_enc: &[u8], peer_enc: &[u8]) -> Result<()> {
        self.exec(
            "Removing dirty entry",
            "DELETE FROM dirty WHERE filename = ?1 AND peername = ?2",
            &[&Txt(name_enc), &Txt(peer_enc)],
        )?;
        Ok(())
    }

    /// Dirty rows as stored (encoded filename, encoded myname, encoded peer).
    pub fn dirty_rows_raw(&self) -> Result<Vec<RawDirty>> {
        self.query(
            "DB Dump - Dirty",
            "SELECT filename, myname, peername FROM dirty ORDER BY filename",
            &[],
            |r| Ok((bytes(r, 0)?, bytes(r, 1)?, bytes(r, 2)?)),
        )
    }

    pub fn file_names_raw(&self) -> Result<Vec<Vec<u8>>> {
        self.query(
            "DB Dump - File",
            "SELECT filename FROM file ORDER BY filename",
            &[],
            |r| bytes(r, 0),
        )
    }

    pub fn delete_file_raw(&mut self, name_enc: &[u8]) -> Result<()> {
        self.exec(
            "Removing file from file db",
            "DELETE FROM file WHERE filename = ?1",
            &[&Txt(name_enc)],
        )?;
        Ok(())
    }

    // ---- x509_cert table ---------------------------------------------------

    /// The pinned certificate (upper-case hex DER) of a peer.
    pub fn peer_cert(&self, peer: &[u8]) -> Result<Option<Vec<u8>>> {
        let mut v = self.query(
            "Checking peer x509 certificate",
            "SELECT certdata FROM x509_cert WHERE peername = ?1",
            &[&Txt(&encode(peer))],
            |r| bytes(r, 0),
        )?;
        Ok(v.pop().map(|c| decode(&c)))
    }

    pub fn add_peer_cert(&mut self, peer: &[u8], hex: &[u8]) -> Result<()> {
        self.exec(
            "Adding peer x509 certificate",
            "INSERT INTO x509_cert (peername, certdata) VALUES (?1, ?2)",
            &[&Txt(&encode(peer)), &Txt(&encode(hex))],
        )?;
        Ok(())
    }

    // ---- hint table -------------------------------------------------------

    pub fn add_hint(&mut self, name: &[u8], recursive: bool) -> Result<()> {
        self.exec(
            "Adding hint",
            "INSERT INTO hint (filename, recursive) VALUES (?1, ?2)",
            &[&Txt(&encode(name)), &(recursive as i64)],
        )?;
        Ok(())
    }

    /// Hints in table order, decoded, with the raw stored values for deletion.
    pub fn hints(&self) -> Result<Vec<Hint>> {
        self.query(
            "Reading hints",
            "SELECT filename, recursive FROM hint",
            &[],
            |r| {
                let raw = bytes(r, 0)?;
                let rec: rusqlite::types::Value = r.get(1)?;
                Ok((decode(&raw), truthy(r, 1)?, raw, rec))
            },
        )
    }

    pub fn hints_sorted(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.query(
            "DB Dump - Hint",
            "SELECT recursive, filename FROM hint ORDER BY filename",
            &[],
            |r| Ok((bytes(r, 0)?, decode(&bytes(r, 1)?))),
        )
    }

    pub fn delete_hint(
        &mut self,
        raw_name: &[u8],
        recursive: &rusqlite::types::Value,
    ) -> Result<()> {
        self.exec(
            "Removing hint",
            "DELETE FROM hint WHERE filename = ?1 AND recursive = ?2",
            &[&Txt(raw_name), recursive],
        )?;
        Ok(())
    }

    // ---- action table -----------------------------------------------------

    pub fn add_action(&mut self, name: &[u8], command: &[u8], logfile: &[u8]) -> Result<()> {
        self.exec(
            "Add action",
            "INSERT INTO action (filename, command, logfile) VALUES (?1, ?2, ?3)",
            &[
                &Txt(&encode(name)),
                &Txt(&encode(command)),
                &Txt(&encode(logfile)),
            ],
        )?;
        Ok(())
    }

    /// Distinct (command, logfile) pairs as stored, in descending order.
    pub fn action_commands(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.query(
            "Checking for pending actions",
            "SELECT command, logfile FROM action GROUP BY command, logfile ORDER BY command DESC, logfile DESC",
            &[],
            |r| Ok((bytes(r, 0)?, bytes(r, 1)?)),
        )
    }

    /// Stored (encoded) file names for one stored command/logfile pair, in
    /// reverse insertion order.
    pub fn action_files(&self, command_enc: &[u8], logfile_enc: &[u8]) -> Result<Vec<Vec<u8>>> {
        self.query(
            "Reading action files",
            "SELECT filename FROM action WHERE command = ?1 AND logfile = ?2 ORDER BY rowid DESC",
            &[&Txt(command_enc), &Txt(logfile_enc)],
            |r| bytes(r, 0),
        )
    }

    pub fn delete_action(
        &mut self,
        command_enc: &[u8],
        logfile_enc: &[u8],
        file_enc: &[u8],
    ) -> Result<()> {
        self.exec(
            "Removing action",
            "DELETE FROM action WHERE command = ?1 AND logfile = ?2 AND filename = ?3",
            &[&Txt(command_enc), &Txt(logfile_enc), &Txt(file_enc)],
        )?;
        Ok(())
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let _ = self.commit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_db(tag: &str) -> (Db, PathBuf) {
        let p = std::env::temp_dir().join(format!("c2db-{tag}-{}.db3", std::process::id()));
        let _ = std::fs::remove_file(&p);
        let loc = Location::Sqlite {
            shown: String::new(),
            path: p.clone(),
        };
        (Db::open(&loc, 12, true, false).unwrap(), p)
    }

    #[test]
    fn schema_is_byte_identical() {
        let (db, p) = temp_db("schema");
        let sql: Vec<String> = db
            .query(
                "t",
                "SELECT sql FROM sqlite_master WHERE type='table' ORDER BY rootpage",
                &[],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            sql,
            SCHEMA
                .iter()
                .map(|(_, s)| s.to_string())
                .collect::<Vec<_>>()
        );
        drop(db);
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn strings_are_encoded_text() {
        let (mut db, p) = temp_db("enc");
        db.set_file(b"/a b/\xff:x", b"v1:type=dir").unwrap();
        db.mark_dirty(b"/a b/\xff:x", true, b"me", b"peer").unwrap();
        db.commit().unwrap();
        let (t, v): (String, Vec<u8>) = db
            .conn
            .query_row(
                "SELECT typeof(filename), CAST(filename AS BLOB) FROM file",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(t, "text");
        assert_eq!(v, b"/a%20b/\xff%3Ax");
        let ty: String = db
            .conn
            .query_row("SELECT typeof(forced) FROM dirty", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ty, "integer");
        assert_eq!(
            db.file_checktxt(b"/a b/\xff:x").unwrap().unwrap(),
            b"v1:type=dir"
        );
        drop(db);
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn range_query_stays_below_the_directory() {
        let (mut db, p) = temp_db("range");
        for n in [&b"/t"[..], b"/t/a", b"/t/b/c", b"/t0", b"/t-x", b"/u"] {
            db.set_file(n, b"v1").unwrap();
        }
        let names = db.file_names(b"/t", true).unwrap();
        assert_eq!(
            names,
            vec![b"/t".to_vec(), b"/t/a".to_vec(), b"/t/b/c".to_vec()]
        );
        assert_eq!(db.file_names(b"/", true).unwrap().len(), 6);
        drop(db);
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn resolve_locations() {
        let l = resolve(None, "h1", None).unwrap();
        assert_eq!(
            l,
            Location::Sqlite {
                shown: "sqlite3:///var/lib/csync2/h1.db3".into(),
                path: "/var/lib/csync2/h1.db3".into()
            }
        );
        assert_eq!(
            shown_name(None, "h1", None),
            "sqlite3:///var/lib/csync2/h1.db3"
        );
        let l = resolve(Some("/x/"), "h1", Some("abc")).unwrap();
        assert_eq!(
            l,
            Location::Sqlite {
                shown: "sqlite3:///x//h1_abc.db3".into(),
                path: "/x//h1_abc.db3".into()
            }
        );
        assert!(
            resolve(Some("foo://bar"), "h", None)
                .unwrap_err()
                .contains("Unknown database scheme: foo://bar")
        );
        assert!(matches!(
            resolve(Some("mysql://x"), "h", None).unwrap(),
            Location::Unsupported { .. }
        ));
    }
}
