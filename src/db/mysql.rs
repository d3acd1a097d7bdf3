//! MySQL and MariaDB (`mysql://`). The tables have the real csync2's
//! names, columns and keys, so it reads and writes them too, but binary
//! text columns: the real one's `TEXT` takes the server's collation, so
//! `CASE` and `case` (or `cafe` and `café`) shared one row and a name that
//! is not UTF-8 could not be stored at all; and `recursive` is quoted (a
//! reserved word: the real one never could create its hint table).

use super::{Arg, Backend, DbError, Failure, ServerUrl, Stmt, Val};
use crate::log;
use mysql::prelude::Queryable;
use mysql::{Conn, OptsBuilder, Params, Statement, Value};
use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Duration;

/// The real one's tables and keys (no UNIQUE on MySQL), with binary text.
const SCHEMA: [(&str, &str); 5] = [
    (
        "action",
        "CREATE TABLE action (filename TEXT CHARACTER SET binary NOT NULL, command TEXT CHARACTER SET binary NOT NULL, logfile TEXT CHARACTER SET binary NOT NULL, KEY filename (filename(255)), KEY command (command(255)))",
    ),
    (
        "dirty",
        "CREATE TABLE dirty (filename TEXT CHARACTER SET binary NOT NULL, forced INTEGER NOT NULL, myname TEXT CHARACTER SET binary NOT NULL, peername TEXT CHARACTER SET binary NOT NULL, KEY filename (filename(255)), KEY dirty_host (peername(255)))",
    ),
    (
        "file",
        "CREATE TABLE file (filename TEXT CHARACTER SET binary NOT NULL, checktxt TEXT CHARACTER SET binary NOT NULL, KEY filename (filename(255)))",
    ),
    (
        "hint",
        "CREATE TABLE hint (filename TEXT CHARACTER SET binary NOT NULL, `recursive` INTEGER NOT NULL)",
    ),
    (
        "x509_cert",
        "CREATE TABLE x509_cert (peername TEXT CHARACTER SET binary NOT NULL, certdata TEXT CHARACTER SET binary NOT NULL, KEY peername (peername(255)))",
    ),
];

/// The statement in MySQL's words, and which of the caller's arguments
/// its `?`s take (the tables have no unique keys, so "insert unless
/// present" names the key columns twice).
fn text(s: Stmt) -> (String, Option<&'static [usize]>) {
    use Stmt::*;
    let (t, order): (String, Option<&'static [usize]>) = match s {
        DirtyInsert => (
            "INSERT INTO dirty (filename, forced, myname, peername) SELECT ?, ?, ?, ? FROM DUAL WHERE NOT EXISTS (SELECT 1 FROM dirty WHERE filename = ? AND peername = ?)".into(),
            Some(&[0, 1, 2, 3, 0, 3]),
        ),
        CertAdd => (
            "INSERT INTO x509_cert (peername, certdata) SELECT ?, ? FROM DUAL WHERE NOT EXISTS (SELECT 1 FROM x509_cert WHERE peername = ?)".into(),
            Some(&[0, 1, 0]),
        ),
        ActionAdd => (
            "INSERT INTO action (filename, command, logfile) SELECT ?, ?, ? FROM DUAL WHERE NOT EXISTS (SELECT 1 FROM action WHERE filename = ? AND command = ?)".into(),
            Some(&[0, 1, 2, 0, 1]),
        ),
        // no insertion order to read back: newest-first is not kept
        ActionFiles => (s.sqlite().replace(" ORDER BY rowid DESC", ""), None),
        _ => (s.sqlite().to_string(), None),
    };
    let mut out = String::with_capacity(t.len());
    let mut chars = t.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '?' {
            while chars.peek().is_some_and(char::is_ascii_digit) {
                chars.next();
            }
        }
    }
    (out.replace("recursive", "`recursive`"), order)
}

fn value(a: &Arg) -> Value {
    match a {
        Arg::Text(t) => Value::Bytes(t.to_vec()),
        Arg::Int(n) => Value::Int(*n),
    }
}

fn val(v: Value) -> Val {
    match v {
        Value::NULL => Val::Null,
        Value::Bytes(b) => Val::Text(b),
        Value::Int(n) => Val::Int(n),
        Value::UInt(n) => Val::Int(n as i64),
        Value::Float(f) => Val::Real(f as f64),
        Value::Double(f) => Val::Real(f),
        other => Val::Text(other.as_sql(true).into_bytes()),
    }
}

fn reason(e: &mysql::Error) -> String {
    match e {
        mysql::Error::MySqlError(m) => m.message.clone(),
        mysql::Error::DriverError(d) => d.to_string(),
        mysql::Error::IoError(e) => e.to_string(),
        other => other.to_string(),
    }
}

fn failure(e: mysql::Error) -> Failure {
    match &e {
        // deadlock, lock wait timeout: the transaction was rolled back
        mysql::Error::MySqlError(m) if m.code == 1213 || m.code == 1205 => {
            Failure::Retry(reason(&e))
        }
        // server shutdown, connection killed, gone away, lost
        mysql::Error::MySqlError(m) if [1053, 1927, 2006, 2013].contains(&m.code) => {
            Failure::Lost(reason(&e))
        }
        other if other.is_connectivity_error() => Failure::Lost(reason(&e)),
        _ => Failure::Error(reason(&e)),
    }
}

struct Mysql {
    conn: Conn,
    prepared: HashMap<Stmt, Statement>,
}

fn opts(url: &ServerUrl, db: Option<&str>) -> OptsBuilder {
    let host = if url.host.is_empty() {
        "localhost"
    } else {
        &url.host
    };
    // the real one reads the port with atoi: 0 (no digits) is the default
    let port = match url.port {
        Some(p) if (1..=65535).contains(&p) => p as u16,
        _ => 3306,
    };
    OptsBuilder::new()
        .ip_or_hostname(Some(host))
        .tcp_port(port)
        .user(url.user.clone())
        .pass(url.password.clone())
        .db_name(db)
        .tcp_connect_timeout(Some(Duration::from_secs(10)))
}

/// Connects, creating the database on first use, and its tables.
pub(super) fn open(url: &ServerUrl) -> Result<Box<dyn Backend>, DbError> {
    let cant = |why: String| DbError(format!("Can't open database: {} ({why})", url.safe));
    let conn = match Conn::new(opts(url, Some(&url.database))) {
        Ok(c) => c,
        // 1049: unknown database
        Err(mysql::Error::MySqlError(m)) if m.code == 1049 => {
            let mut admin = Conn::new(opts(url, None)).map_err(|e| cant(reason(&e)))?;
            log::debug(1, format!("Creating database {}.", url.database));
            admin
                .query_drop(format!("CREATE DATABASE IF NOT EXISTS `{}`", url.database))
                .map_err(|e| {
                    cant(format!(
                        "could not create database {}: {}",
                        url.database,
                        reason(&e)
                    ))
                })?;
            Conn::new(opts(url, Some(&url.database))).map_err(|e| cant(reason(&e)))?
        }
        Err(e) => return Err(cant(reason(&e))),
    };
    let mut db = Mysql {
        conn,
        prepared: HashMap::new(),
    };
    db.ensure_schema()?;
    Ok(Box::new(db))
}

impl Mysql {
    fn ensure_schema(&mut self) -> Result<(), DbError> {
        let err = |label: &str, sql: &str, e: mysql::Error| {
            DbError(format!(
                "Database Error: {label} [1]: {} on executing {sql}",
                reason(&e)
            ))
        };
        let list = "SHOW TABLES";
        let have: Vec<Vec<u8>> = self
            .conn
            .query(list)
            .map_err(|e| err("Looking for the tables", list, e))?;
        if SCHEMA
            .iter()
            .all(|(t, _)| have.iter().any(|h| h == t.as_bytes()))
        {
            return Ok(());
        }
        // processes meeting a fresh database at once create it one after
        // the other (MySQL's DDL is not transactional: a named lock)
        let lock = "SELECT GET_LOCK('csync2-schema', 60)";
        self.conn
            .query_drop(lock)
            .map_err(|e| err("Locking", lock, e))?;
        let r = self.create_missing(&err);
        let _ = self.conn.query_drop("SELECT RELEASE_LOCK('csync2-schema')");
        r
    }

    fn create_missing(
        &mut self,
        err: &dyn Fn(&str, &str, mysql::Error) -> DbError,
    ) -> Result<(), DbError> {
        let have: Vec<Vec<u8>> = self
            .conn
            .query("SHOW TABLES")
            .map_err(|e| err("Looking for the tables", "SHOW TABLES", e))?;
        let mut said = false;
        // a table the real one could not create (hint) is made; the
        // others stay as they are
        for (table, sql) in SCHEMA {
            if have.iter().any(|h| h == table.as_bytes()) {
                continue;
            }
            if !said {
                log::debug(2, "Upgrading database schema to version 0.");
                said = true;
            }
            self.conn
                .query_drop(sql)
                .map_err(|e| err(&format!("Creating {table} table"), sql, e))?;
        }
        Ok(())
    }

    fn statement(&mut self, s: Stmt) -> Result<Statement, Failure> {
        if let Some(st) = self.prepared.get(&s) {
            return Ok(st.clone());
        }
        let st = self.conn.prep(text(s).0).map_err(failure)?;
        self.prepared.insert(s, st.clone());
        Ok(st)
    }

    fn params(s: Stmt, args: &[Arg]) -> Params {
        if args.is_empty() {
            return Params::Empty;
        }
        Params::Positional(match text(s).1 {
            Some(order) => order.iter().map(|&i| value(&args[i])).collect(),
            None => args.iter().map(value).collect(),
        })
    }
}

impl Backend for Mysql {
    fn sql(&self, s: Stmt) -> Cow<'static, str> {
        Cow::Owned(text(s).0)
    }

    fn exec(&mut self, s: Stmt, args: &[Arg]) -> Result<usize, Failure> {
        if s == Stmt::FileSet {
            // no unique key to replace by: the row goes, then comes again
            self.exec(Stmt::FileDelete, &args[..1])?;
        }
        let st = self.statement(s)?;
        self.conn
            .exec_drop(&st, Self::params(s, args))
            .map_err(failure)?;
        Ok(self.conn.affected_rows() as usize)
    }

    fn query(&mut self, s: Stmt, args: &[Arg]) -> Result<Vec<Vec<Val>>, Failure> {
        let st = self.statement(s)?;
        let rows: Vec<mysql::Row> = self
            .conn
            .exec(&st, Self::params(s, args))
            .map_err(failure)?;
        Ok(rows
            .into_iter()
            .map(|r| r.unwrap().into_iter().map(val).collect())
            .collect())
    }

    fn begin(&mut self) -> Result<(), Failure> {
        self.conn.query_drop("START TRANSACTION").map_err(failure)
    }

    fn commit(&mut self) -> Result<(), Failure> {
        self.conn.query_drop("COMMIT").map_err(failure)
    }

    fn rollback(&mut self) {
        let _ = self.conn.query_drop("ROLLBACK");
    }

    fn replays(&self) -> bool {
        true
    }
}
