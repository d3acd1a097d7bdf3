//! SQLite, the default (state.md §1.2–§1.6): the same file, schema bytes
//! and busy handling as the real csync2.

use super::{Arg, Backend, DbError, EXCEEDINGLY_BUSY, Failure, Stmt, Val};
use crate::log;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, ToSql};
use std::borrow::Cow;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

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

/// Binds an argument; text as TEXT, never BLOB (the C program compares
/// with `filename = '…'`, and TEXT never equals BLOB).
struct Bind<'a>(Arg<'a>);

impl ToSql for Bind<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self.0 {
            Arg::Text(t) => ToSqlOutput::Borrowed(ValueRef::Text(t)),
            Arg::Int(n) => ToSqlOutput::Borrowed(ValueRef::Integer(n)),
        })
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

fn failure(e: rusqlite::Error) -> Failure {
    if let rusqlite::Error::SqliteFailure(f, _) = &e
        && f.code == rusqlite::ErrorCode::DatabaseBusy
    {
        return Failure::Busy;
    }
    Failure::Error(match e {
        rusqlite::Error::SqliteFailure(_, Some(m)) => m,
        other => other.to_string(),
    })
}

fn schema_error(label: &str, e: rusqlite::Error, sql: &str) -> DbError {
    match failure(e) {
        Failure::Busy => DbError(EXCEEDINGLY_BUSY.to_string()),
        Failure::Error(m) | Failure::Retry(m) | Failure::Lost(m) => DbError(format!(
            "Database Error: {label} [1]: {m} on executing {sql}"
        )),
    }
}

fn val(v: ValueRef) -> Val {
    match v {
        ValueRef::Text(t) | ValueRef::Blob(t) => Val::Text(t.to_vec()),
        ValueRef::Integer(n) => Val::Int(n),
        ValueRef::Real(f) => Val::Real(f),
        ValueRef::Null => Val::Null,
    }
}

struct Sqlite {
    conn: Connection,
}

/// Opens (creating if absent) the database file and its schema.
pub(super) fn open(
    shown: &str,
    path: &Path,
    lock_timeout: i32,
    async_writes: bool,
) -> Result<Box<dyn Backend>, DbError> {
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
        .map_err(|e| schema_error("Setting busy handler", e, ""))?;
    // SQLite opens lazily: a bad path shows up at the first statement.
    // Other failures (e.g. not a database) surface, as in the real
    // program, when the schema is created.
    if let Err(rusqlite::Error::SqliteFailure(f, _)) =
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
    {
        match f.code {
            rusqlite::ErrorCode::CannotOpen => return Err(fail()),
            rusqlite::ErrorCode::DatabaseBusy => return Err(DbError(EXCEEDINGLY_BUSY.into())),
            _ => {}
        }
    }
    if async_writes {
        conn.execute_batch("PRAGMA synchronous = OFF")
            .map_err(|e| schema_error("PRAGMA", e, "PRAGMA synchronous = OFF"))?;
    }
    let db = Sqlite { conn };
    db.ensure_schema()?;
    Ok(Box::new(db))
}

impl Sqlite {
    fn has_schema(&self) -> bool {
        self.conn
            .query_row("SELECT count(*) from file", [], |_| Ok(()))
            .is_ok()
    }

    fn ensure_schema(&self) -> Result<(), DbError> {
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
                return Err(schema_error(&format!("Creating {table} table"), e, sql));
            }
        }
        if locked {
            self.conn
                .execute_batch("COMMIT")
                .map_err(|e| schema_error("Creating the schema", e, "COMMIT"))?;
        }
        Ok(())
    }
}

impl Backend for Sqlite {
    fn sql(&self, s: Stmt) -> Cow<'static, str> {
        Cow::Borrowed(s.sqlite())
    }

    fn exec(&mut self, s: Stmt, args: &[Arg]) -> Result<usize, Failure> {
        let binds: Vec<Bind> = args.iter().map(|a| Bind(*a)).collect();
        let mut st = self.conn.prepare_cached(s.sqlite()).map_err(failure)?;
        st.execute(rusqlite::params_from_iter(binds.iter()))
            .map_err(failure)
    }

    fn query(&mut self, s: Stmt, args: &[Arg]) -> Result<Vec<Vec<Val>>, Failure> {
        let binds: Vec<Bind> = args.iter().map(|a| Bind(*a)).collect();
        let mut st = self.conn.prepare_cached(s.sqlite()).map_err(failure)?;
        let n = st.column_count();
        let rows = st
            .query_map(rusqlite::params_from_iter(binds.iter()), |r| {
                (0..n).map(|i| Ok(val(r.get_ref(i)?))).collect()
            })
            .map_err(failure)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(failure)
    }

    fn begin(&mut self) -> Result<(), Failure> {
        // IMMEDIATE: take the write lock now, where the busy handler
        // waits for it; a deferred transaction upgrading from a read lock
        // gets SQLITE_BUSY at once when another writer is active
        self.conn.execute_batch("BEGIN IMMEDIATE").map_err(failure)
    }

    fn commit(&mut self) -> Result<(), Failure> {
        self.conn.execute_batch("COMMIT").map_err(failure)
    }

    fn rollback(&mut self) {
        let _ = self.conn.execute_batch("ROLLBACK");
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Db, Location};
    use super::*;
    use std::path::PathBuf;

    fn temp_db(tag: &str) -> (Db, PathBuf) {
        let p = std::env::temp_dir().join(format!("c2db-{tag}-{}.db3", std::process::id()));
        let _ = std::fs::remove_file(&p);
        let loc = Location::Sqlite {
            shown: String::new(),
            path: p.clone(),
        };
        (Db::open(&loc, 12, true, false).unwrap(), p)
    }

    fn look(p: &Path) -> Connection {
        Connection::open(p).unwrap()
    }

    #[test]
    fn schema_is_byte_identical() {
        let (db, p) = temp_db("schema");
        drop(db);
        let c = look(&p);
        let mut st = c
            .prepare("SELECT sql FROM sqlite_master WHERE type='table' ORDER BY rootpage")
            .unwrap();
        let sql: Vec<String> = st
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            sql,
            SCHEMA
                .iter()
                .map(|(_, s)| s.to_string())
                .collect::<Vec<_>>()
        );
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn strings_are_encoded_text() {
        let (mut db, p) = temp_db("enc");
        db.set_file(b"/a b/\xff:x", b"v1:type=dir").unwrap();
        db.mark_dirty(b"/a b/\xff:x", true, b"me", b"peer").unwrap();
        db.commit().unwrap();
        let c = look(&p);
        let (t, v): (String, Vec<u8>) = c
            .query_row(
                "SELECT typeof(filename), CAST(filename AS BLOB) FROM file",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(t, "text");
        assert_eq!(v, b"/a%20b/\xff%3Ax");
        let ty: String = c
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
    fn hints_keep_their_stored_value() {
        let (mut db, p) = temp_db("hint");
        db.add_hint(b"/a b", true).unwrap();
        db.add_hint(b"/c", false).unwrap();
        db.commit().unwrap();
        let h = db.hints().unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!((h[0].0.as_slice(), h[0].1), (&b"/a b"[..], true));
        assert_eq!(h[0].2, b"/a%20b");
        db.delete_hint(&h[0].2, &h[0].3).unwrap();
        db.commit().unwrap();
        assert_eq!(db.hints().unwrap().len(), 1);
        drop(db);
        std::fs::remove_file(p).unwrap();
    }
}
