//! PostgreSQL (`pgsql://`), with the tables and row encoding the real
//! csync2 creates there (doc/state.md §1.8): `TEXT NOT NULL` and
//! `INTEGER NOT NULL` columns holding the URL-encoded values.

use super::{Arg, Backend, DbError, Failure, ServerUrl, Stmt, Val};
use crate::log;
use postgres::error::SqlState;
use postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use postgres::{Client, Config, NoTls, Statement};
use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Duration;

/// The real one's tables, in its order and its words.
const SCHEMA: [(&str, &str); 5] = [
    (
        "action",
        "CREATE TABLE action (filename TEXT NOT NULL, command TEXT NOT NULL, logfile TEXT NOT NULL, UNIQUE (filename,command))",
    ),
    (
        "dirty",
        "CREATE TABLE dirty (filename TEXT NOT NULL, forced INTEGER NOT NULL, myname TEXT NOT NULL, peername TEXT NOT NULL, UNIQUE (filename,peername))",
    ),
    (
        "file",
        "CREATE TABLE file (filename TEXT NOT NULL, checktxt TEXT NOT NULL, UNIQUE (filename))",
    ),
    (
        "hint",
        "CREATE TABLE hint (filename TEXT NOT NULL, recursive INTEGER NOT NULL)",
    ),
    (
        "x509_cert",
        "CREATE TABLE x509_cert (peername TEXT NOT NULL, certdata TEXT NOT NULL, UNIQUE (peername))",
    ),
];

/// The statement in PostgreSQL's words: `$N` parameters, byte order for
/// every comparison and sort, and the conflicts SQLite's `ON CONFLICT`
/// clauses settle. `collate`: the database sorts otherwise than by bytes,
/// so comparisons say `COLLATE "C"` (which keeps them from using the
/// index: a database of ours is created with the `C` collation).
fn text(s: Stmt, collate: bool) -> String {
    use Stmt::*;
    let t = match s {
        FileSet => {
            "INSERT INTO file (filename, checktxt) VALUES (?1, ?2) ON CONFLICT (filename) DO UPDATE SET checktxt = EXCLUDED.checktxt"
                .to_string()
        }
        DirtyInsert | CertAdd | ActionAdd => format!("{} ON CONFLICT DO NOTHING", s.sqlite()),
        ActionFiles => s.sqlite().replace("rowid", "ctid"),
        // a UNION's ORDER BY takes no COLLATE
        FileBelow => {
            "SELECT filename, checktxt FROM file WHERE filename = ?1 OR (filename > ?2 AND filename < ?3) ORDER BY filename"
                .to_string()
        }
        _ => s.sqlite().to_string(),
    };
    let t = t.replace('?', "$");
    if !collate {
        return t;
    }
    t.replace("ORDER BY filename", "ORDER BY filename COLLATE \"C\"")
        .replace("filename >= $1", "filename >= $1 COLLATE \"C\"")
        .replace("filename > $1", "filename > $1 COLLATE \"C\"")
        .replace("filename < $2", "filename < $2 COLLATE \"C\"")
        .replace("filename > $2", "filename > $2 COLLATE \"C\"")
        .replace("filename < $3", "filename < $3 COLLATE \"C\"")
        .replace(
            "ORDER BY command DESC, logfile DESC",
            "ORDER BY command COLLATE \"C\" DESC, logfile COLLATE \"C\" DESC",
        )
}

/// An argument bound as the parameter's type: text as its raw bytes (a
/// `SQL_ASCII` database keeps them as they are), integers at any width.
#[derive(Debug)]
struct Bind<'a>(Arg<'a>);

impl ToSql for Bind<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut postgres::types::private::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self.0 {
            Arg::Text(t) => out.extend_from_slice(t),
            Arg::Int(n) => match *ty {
                Type::INT2 => out.extend_from_slice(&(n as i16).to_be_bytes()),
                Type::INT4 => out.extend_from_slice(&(n as i32).to_be_bytes()),
                Type::INT8 => out.extend_from_slice(&n.to_be_bytes()),
                _ => out.extend_from_slice(n.to_string().as_bytes()),
            },
        }
        Ok(IsNull::No)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// A column read as the C program sees it: integers as numbers, anything
/// else as its bytes.
struct Read(Val);

impl<'a> FromSql<'a> for Read {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Read(match *ty {
            Type::INT2 => Val::Int(i16::from_sql(ty, raw)? as i64),
            Type::INT4 => Val::Int(i32::from_sql(ty, raw)? as i64),
            Type::INT8 => Val::Int(i64::from_sql(ty, raw)?),
            Type::FLOAT4 => Val::Real(f32::from_sql(ty, raw)? as f64),
            Type::FLOAT8 => Val::Real(f64::from_sql(ty, raw)?),
            _ => Val::Text(raw.to_vec()),
        }))
    }

    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Read(Val::Null))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// The server's own words for an error, else the client's.
fn reason(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{}: {}", d.severity(), d.message()),
        None => match std::error::Error::source(e) {
            Some(s) => format!("{e}: {s}"),
            None => e.to_string(),
        },
    }
}

fn failure(e: postgres::Error) -> Failure {
    let code = e.code().cloned();
    if code == Some(SqlState::T_R_DEADLOCK_DETECTED)
        || code == Some(SqlState::T_R_SERIALIZATION_FAILURE)
    {
        return Failure::Retry(reason(&e));
    }
    // class 08 (connection exception), 57P01..57P03 (shut down), or the
    // socket itself failed
    let gone = match &code {
        Some(c) => c.code().starts_with("08") || c.code().starts_with("57P"),
        None => e.to_string().starts_with("error communicating"),
    };
    if e.is_closed() || gone {
        return Failure::Lost(reason(&e));
    }
    Failure::Error(reason(&e))
}

struct Pgsql {
    client: Client,
    /// the database's collation is not byte order
    collate: bool,
    prepared: HashMap<Stmt, Statement>,
}

fn config(url: &ServerUrl, dbname: &str) -> Result<Config, String> {
    let mut c = Config::new();
    // the real one's libpq connects as "csync2" when the URL names nobody
    c.user(url.user.as_deref().unwrap_or("csync2"));
    if let Some(p) = &url.password {
        c.password(p);
    }
    if url.host.is_empty() {
        c.host_path("/var/run/postgresql");
    } else {
        c.host(&url.host);
    }
    match url.port {
        None => {}
        Some(p) if (1..=65535).contains(&p) => {
            c.port(p as u16);
        }
        Some(p) => return Err(format!("invalid port number: \"{p}\"")),
    }
    c.dbname(dbname)
        .connect_timeout(Duration::from_secs(10))
        .application_name("csync2");
    Ok(c)
}

/// Connects, creating the database on first use (over a connection to
/// the `postgres` database, as the real one does), and its tables.
pub(super) fn open(url: &ServerUrl) -> Result<Box<dyn Backend>, DbError> {
    let cant = |why: String| DbError(format!("Can't open database: {} ({why})", url.safe));
    let cfg = config(url, &url.database).map_err(cant)?;
    let client = match cfg.connect(NoTls) {
        Ok(c) => c,
        Err(e) if e.code() == Some(&SqlState::INVALID_CATALOG_NAME) => {
            create_database(url).map_err(cant)?;
            cfg.connect(NoTls).map_err(|e| cant(reason(&e)))?
        }
        Err(e) => return Err(cant(reason(&e))),
    };
    let mut client = client;
    // raw bytes in and out, as libpq's default on a SQL_ASCII database:
    // names that are not UTF-8 are kept (a UTF8 database still refuses them)
    client
        .batch_execute("SET client_encoding = 'SQL_ASCII'")
        .map_err(|e| cant(reason(&e)))?;
    let collation = client
        .query_one(
            "SELECT datcollate FROM pg_database WHERE datname = current_database()",
            &[],
        )
        .map_err(|e| cant(reason(&e)))?;
    let collate = !matches!(collation.get::<_, &str>(0), "C" | "POSIX");
    let mut db = Pgsql {
        client,
        collate,
        prepared: HashMap::new(),
    };
    db.ensure_schema()?;
    Ok(Box::new(db))
}

/// `CREATE DATABASE`, the name quoted (the real one's unquoted name is
/// folded to lower case, so a name with capitals never worked), in byte
/// order and without an encoding check, so any file name fits.
fn create_database(url: &ServerUrl) -> Result<(), String> {
    let mut admin = config(url, "postgres")?
        .connect(NoTls)
        .map_err(|e| reason(&e))?;
    log::debug(1, format!("Creating database {}.", url.database));
    let sql = format!(
        "CREATE DATABASE \"{}\" TEMPLATE template0 ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C'",
        url.database
    );
    match admin.batch_execute(&sql) {
        Ok(()) => Ok(()),
        // another process created it meanwhile (at the same moment: the
        // catalog's unique index says so)
        Err(e)
            if e.code() == Some(&SqlState::DUPLICATE_DATABASE)
                || e.code() == Some(&SqlState::UNIQUE_VIOLATION) =>
        {
            Ok(())
        }
        Err(e) => Err(format!(
            "could not create database {}: {}",
            url.database,
            reason(&e)
        )),
    }
}

impl Pgsql {
    fn has_schema(&mut self) -> bool {
        self.client
            .simple_query("SELECT count(*) from file")
            .is_ok()
    }

    fn ensure_schema(&mut self) -> Result<(), DbError> {
        if self.has_schema() {
            return Ok(());
        }
        // processes meeting a fresh database at once create it one after
        // the other: the lock lasts until the transaction ends
        let err = |label: &str, sql: &str, e: postgres::Error| {
            DbError(format!(
                "Database Error: {label} [1]: {} on executing {sql}",
                reason(&e)
            ))
        };
        let mut tx = self
            .client
            .transaction()
            .map_err(|e| err("Starting transaction", "BEGIN", e))?;
        let lock = "SELECT pg_advisory_xact_lock(30865)";
        tx.batch_execute(lock)
            .map_err(|e| err("Locking", lock, e))?;
        let exists = tx
            .query_one(
                "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = 'file'",
                &[],
            )
            .map(|r| r.get::<_, i64>(0) > 0)
            .map_err(|e| err("Looking for the tables", "pg_tables", e))?;
        if !exists {
            log::debug(2, "Upgrading database schema to version 0.");
            for (table, sql) in SCHEMA {
                // a table the real one could not create (or someone
                // dropped) is made; the others stay as they are
                let have = tx
                    .query_one(
                        "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = $1",
                        &[&table],
                    )
                    .map(|r| r.get::<_, i64>(0) > 0)
                    .map_err(|e| err("Looking for the tables", "pg_tables", e))?;
                if !have {
                    tx.batch_execute(sql)
                        .map_err(|e| err(&format!("Creating {table} table"), sql, e))?;
                }
            }
        }
        tx.commit()
            .map_err(|e| err("Creating the schema", "COMMIT", e))
    }

    fn statement(&mut self, s: Stmt) -> Result<Statement, Failure> {
        if let Some(st) = self.prepared.get(&s) {
            return Ok(st.clone());
        }
        let st = self
            .client
            .prepare(&text(s, self.collate))
            .map_err(failure)?;
        self.prepared.insert(s, st.clone());
        Ok(st)
    }
}

impl Backend for Pgsql {
    fn sql(&self, s: Stmt) -> Cow<'static, str> {
        Cow::Owned(text(s, self.collate))
    }

    fn exec(&mut self, s: Stmt, args: &[Arg]) -> Result<usize, Failure> {
        let st = self.statement(s)?;
        let binds: Vec<Bind> = args.iter().map(|a| Bind(*a)).collect();
        let refs: Vec<&(dyn ToSql + Sync)> = binds.iter().map(|b| b as _).collect();
        let n = self.client.execute(&st, &refs).map_err(failure)?;
        Ok(n as usize)
    }

    fn query(&mut self, s: Stmt, args: &[Arg]) -> Result<Vec<Vec<Val>>, Failure> {
        let st = self.statement(s)?;
        let binds: Vec<Bind> = args.iter().map(|a| Bind(*a)).collect();
        let refs: Vec<&(dyn ToSql + Sync)> = binds.iter().map(|b| b as _).collect();
        let rows = self.client.query(&st, &refs).map_err(failure)?;
        rows.iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| r.try_get::<_, Read>(i).map(|v| v.0))
                    .collect::<Result<Vec<Val>, _>>()
                    .map_err(failure)
            })
            .collect()
    }

    fn begin(&mut self) -> Result<(), Failure> {
        self.client.batch_execute("BEGIN").map_err(failure)
    }

    fn commit(&mut self) -> Result<(), Failure> {
        self.client.batch_execute("COMMIT").map_err(failure)
    }

    fn rollback(&mut self) {
        let _ = self.client.batch_execute("ROLLBACK");
    }

    fn replays(&self) -> bool {
        true
    }
}
