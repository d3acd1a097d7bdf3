//! Where the database lives: the `-D` / `database` forms (state.md §1.1,
//! cli.md §8), SQLite paths and the server URLs
//! `pgsql://[user[:password]@]host[:port]/[database]` and `mysql://…`.

use super::DEFAULT_DB_DIR;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    Pgsql,
    Mysql,
}

/// A parsed server URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUrl {
    pub kind: ServerKind,
    /// None: the URL names no user
    pub user: Option<String>,
    pub password: Option<String>,
    /// empty: the server's local socket
    pub host: String,
    /// as the real one reads it, with `atoi` (0 for no digits); None when
    /// the URL has no `:port`
    pub port: Option<i64>,
    /// the database name, cleaned
    pub database: String,
    /// the URL without its password, for every message
    pub safe: String,
}

impl ServerUrl {
    pub fn scheme(&self) -> &'static str {
        match self.kind {
            ServerKind::Pgsql => "pgsql",
            ServerKind::Mysql => "mysql",
        }
    }

    /// A name for local files that belong to this database (the peers'
    /// status): scheme, server and database, with nothing that needs
    /// quoting in a file name.
    pub fn local_name(&self) -> String {
        let host = if self.host.is_empty() {
            "local"
        } else {
            &self.host
        };
        let port = self.port.map(|p| format!("-{p}")).unwrap_or_default();
        clean(&format!("{}-{host}{port}-{}", self.scheme(), self.database)).replace('_', "-")
    }
}

/// Where the database lives (cli.md §8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Sqlite { shown: String, path: PathBuf },
    Server(ServerUrl),
    Unsupported { shown: String, why: String },
}

/// The database string as `-vv` shows it (before a directory is expanded);
/// a server URL without its password.
pub fn shown_name(value: Option<&str>, host: &str, cfgname: Option<&str>) -> String {
    let v = value.unwrap_or("");
    if v.is_empty() || v.starts_with('/') {
        let dir = if v.is_empty() { DEFAULT_DB_DIR } else { v };
        format!("sqlite3://{dir}/{}.db3", base_name(host, cfgname))
    } else if let Ok(Location::Server(u)) = resolve(value, host, cfgname) {
        u.safe
    } else {
        v.to_string()
    }
}

fn base_name(host: &str, cfgname: Option<&str>) -> String {
    match cfgname {
        Some(c) if !c.is_empty() => format!("{host}_{c}"),
        _ => host.to_string(),
    }
}

/// Every character outside `[A-Za-z0-9_]` becomes `_`.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// C's `atoi`: leading blanks, a sign, digits; 0 when there are none.
fn atoi(s: &str) -> i64 {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let mut n: i64 = 0;
    for b in digits.bytes().take_while(u8::is_ascii_digit) {
        n = n.saturating_mul(10).saturating_add((b - b'0') as i64);
    }
    if neg { -n } else { n }
}

/// `[user[:password]@]host[:port]/[database]`: the user part ends at the
/// first `@`, the host at the first `:` or `/` after it (as the real one
/// splits it: `u:p@w@h` has host `w@h`).
fn parse_server(kind: ServerKind, url: &str, rest: &str, base: &str) -> ServerUrl {
    let (userinfo, hostpart) = match rest.find('@') {
        Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
        None => (None, rest),
    };
    let (user, password) = match userinfo {
        Some(u) => match u.find(':') {
            Some(i) => (Some(u[..i].to_string()), Some(u[i + 1..].to_string())),
            None => (Some(u.to_string()), None),
        },
        None => (None, None),
    };
    let (hostport, path) = match hostpart.find('/') {
        Some(i) => (&hostpart[..i], &hostpart[i + 1..]),
        None => (hostpart, ""),
    };
    let (host, port) = match hostport.find(':') {
        Some(i) => (&hostport[..i], Some(atoi(&hostport[i + 1..]))),
        None => (hostport, None),
    };
    let database = if path.is_empty() {
        clean(&format!("csync2_{base}"))
    } else {
        clean(path)
    };
    let scheme = match kind {
        ServerKind::Pgsql => "pgsql",
        ServerKind::Mysql => "mysql",
    };
    let safe = match (&user, &password) {
        (Some(u), Some(_)) => format!("{scheme}://{u}@{hostpart}"),
        _ => url.to_string(),
    };
    ServerUrl {
        kind,
        user,
        password,
        host: host.to_string(),
        port,
        database,
        safe,
    }
}

/// Resolves `-D` / `database` into a location; Err is a fatal message.
pub fn resolve(
    value: Option<&str>,
    host: &str,
    cfgname: Option<&str>,
) -> std::result::Result<Location, String> {
    let base = base_name(host, cfgname);
    let v = value.unwrap_or("");
    if v.is_empty() || v.starts_with('/') {
        let dir = if v.is_empty() { DEFAULT_DB_DIR } else { v };
        let shown = format!("sqlite3://{dir}/{base}.db3");
        return Ok(Location::Sqlite {
            path: PathBuf::from(format!("{dir}/{base}.db3")),
            shown,
        });
    }
    // without "//" it is no scheme at all but a relative SQLite path
    let (scheme, rest) = match v.find("://") {
        Some(i) => (&v[..i], &v[i + 3..]),
        None => ("", v),
    };
    match scheme {
        "" | "sqlite" | "sqlite3" => {
            let p = std::path::Path::new(rest);
            let path = if p.is_dir() {
                let trimmed = rest.trim_end_matches('/');
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
        "pgsql" => Ok(Location::Server(parse_server(
            ServerKind::Pgsql,
            v,
            rest,
            &base,
        ))),
        "mysql" => Ok(Location::Server(parse_server(
            ServerKind::Mysql,
            v,
            rest,
            &base,
        ))),
        _ => Err(format!("Unknown database scheme: {v}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(v: &str, host: &str, cfg: Option<&str>) -> ServerUrl {
        match resolve(Some(v), host, cfg).unwrap() {
            Location::Server(u) => u,
            other => panic!("{v}: {other:?}"),
        }
    }

    #[test]
    fn sqlite_locations() {
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
        assert!(resolve(Some("PGSQL://u@h/"), "h", None).is_err());
        // no "//": a relative SQLite file of that name
        assert_eq!(
            resolve(Some("pgsql:postgres@127.0.0.1/"), "h", None).unwrap(),
            Location::Sqlite {
                shown: "pgsql:postgres@127.0.0.1/".into(),
                path: "pgsql:postgres@127.0.0.1/".into()
            }
        );
    }

    #[test]
    fn server_urls() {
        let u = server("pgsql://us:pw@127.0.0.1:5433/db", "h", None);
        assert_eq!(u.kind, ServerKind::Pgsql);
        assert_eq!(u.user.as_deref(), Some("us"));
        assert_eq!(u.password.as_deref(), Some("pw"));
        assert_eq!((u.host.as_str(), u.port), ("127.0.0.1", Some(5433)));
        assert_eq!(u.database, "db");
        assert_eq!(u.safe, "pgsql://us@127.0.0.1:5433/db");
        // the user part ends at the first '@'
        let u = server("pgsql://us:p@w@127.0.0.1:1/", "h", None);
        assert_eq!(u.password.as_deref(), Some("p"));
        assert_eq!(u.host, "w@127.0.0.1");
        // default name, cleaned; the config name appended
        let u = server("mysql://root@localhost/", "a1.accept-test", Some("x1"));
        assert_eq!(u.database, "csync2_a1_accept_test_x1");
        assert_eq!((u.port, u.password), (None, None));
        assert_eq!(u.safe, "mysql://root@localhost/");
        let u = server("pgsql://127.0.0.1", "h", None);
        assert_eq!((u.user, u.database.as_str()), (None, "csync2_h"));
        assert_eq!(
            server("pgsql://u@h/cand-single", "h", None).database,
            "cand_single"
        );
        assert_eq!(server("pgsql://u@h:notaport/", "h", None).port, Some(0));
        assert_eq!(server("pgsql://u@h:12ab/", "h", None).port, Some(12));
        assert_eq!(server("pgsql://u@/", "h", None).host, "");
        assert_eq!(
            shown_name(Some("pgsql://a:secret@h/"), "h", None),
            "pgsql://a@h/"
        );
        assert_eq!(
            server("mysql://a:b@h:3/d", "h", None).local_name(),
            "mysql-h-3-d"
        );
    }
}
