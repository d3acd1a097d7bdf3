//! Local scenarios on a server database (tests/db_pgsql.rs,
//! tests/db_mysql.rs): one tree and config, each binary run with
//! `-N h1 -D URL`, and the server's tables read back.

use super::dbserver::{My, Pg};
use super::proc::{Output, Which, run_cmd};
use super::setup::{self, SYSTEM_DIR};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

/// The tables and columns csync2 keeps.
pub const TABLES: [(&str, &str); 5] = [
    ("file", "filename, checktxt"),
    ("dirty", "filename, forced, myname, peername"),
    ("hint", "filename, recursive"),
    ("action", "filename, command, logfile"),
    ("x509_cert", "peername, certdata"),
];

/// A server the scenarios run against.
pub trait Srv {
    fn url(&self, user: &str, db: &str) -> String;
    fn port(&self) -> u16;
    /// Every table's rows, sorted (a missing table: `None`).
    fn dump(&self, db: &str) -> BTreeMap<&'static str, Option<Vec<String>>>;
}

impl Srv for Pg {
    fn url(&self, user: &str, db: &str) -> String {
        Pg::url(self, user, db)
    }

    fn port(&self) -> u16 {
        self.port
    }

    fn dump(&self, db: &str) -> BTreeMap<&'static str, Option<Vec<String>>> {
        let have = self.psql(
            db,
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'",
        );
        TABLES
            .iter()
            .map(|(t, cols)| {
                if !have.lines().any(|l| l == *t) {
                    return (*t, None);
                }
                let mut rows: Vec<String> = self
                    .psql(db, &format!("SELECT {cols} FROM {t}"))
                    .lines()
                    .map(str::to_string)
                    .collect();
                rows.sort();
                (*t, Some(rows))
            })
            .collect()
    }
}

impl Srv for My {
    fn url(&self, user: &str, db: &str) -> String {
        My::url(self, user, db)
    }

    fn port(&self) -> u16 {
        self.port
    }

    fn dump(&self, db: &str) -> BTreeMap<&'static str, Option<Vec<String>>> {
        let have = self.sql(db, "SHOW TABLES");
        TABLES
            .iter()
            .map(|(t, cols)| {
                if !have.lines().any(|l| l == *t) {
                    return (*t, None);
                }
                let cols = cols.replace("recursive", "`recursive`");
                let mut rows: Vec<String> = self
                    .sql(db, &format!("SELECT {cols} FROM {t}"))
                    .lines()
                    .map(|l| l.replace('\t', "|"))
                    .collect();
                rows.sort();
                (*t, Some(rows))
            })
            .collect()
    }
}

pub struct Local {
    pub dir: PathBuf,
    pub etc: PathBuf,
    pub tree: PathBuf,
}

impl Local {
    /// A fresh scenario: config `csync2.cfg` (h1 h2 h3, the whole tree but
    /// `skip/`) and `csync2_r.cfg` (h1 h2, without `sub/`, for `-R`).
    pub fn new(label: &str) -> Local {
        let dir = PathBuf::from(format!("/tmp/csync2-dbt-{label}-{}", std::process::id()));
        setup::fresh_dir(&dir);
        let l = Local {
            etc: dir.join("etc"),
            tree: dir.join("tree"),
            dir,
        };
        setup::create_dirs(&[&l.etc, &l.tree]);
        setup::write_keys(&l.etc, &[("g.key", super::KEY1)]);
        let t = l.tree.display();
        setup::write_etc(
            &l.etc,
            "csync2.cfg",
            &format!(
                "group g {{\n host h1 h2 h3;\n key g.key;\n include {t};\n exclude {t}/skip;\n \
                 action {{ pattern {t}/act*; exec \"true %%\"; do-local; }}\n}}\n"
            ),
        );
        setup::write_etc(
            &l.etc,
            "csync2_r.cfg",
            &format!(
                "group g {{\n host h1 h2;\n key g.key;\n include {t};\n exclude {t}/sub;\n}}\n"
            ),
        );
        l
    }

    /// A path in the tree, as an argument.
    pub fn p(&self, rel: &str) -> String {
        if rel.is_empty() {
            self.tree.display().to_string()
        } else {
            format!("{}/{rel}", self.tree.display())
        }
    }

    pub fn file(&self, rel: &[u8], content: &[u8]) {
        use std::os::unix::ffi::OsStrExt;
        let p = self.tree.join(std::ffi::OsStr::from_bytes(rel));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
    }

    /// `csync2 -N h1 -D URL ARGS…` by `which`.
    pub fn run(&self, which: Which, url: &str, args: &[&str]) -> Output {
        let mut a: Vec<OsString> = ["-N", "h1", "-D", url].iter().map(OsString::from).collect();
        a.extend(args.iter().map(OsString::from));
        run_cmd(
            which,
            &a,
            &[(SYSTEM_DIR, self.etc.clone().into_os_string())],
            &self.dir,
        )
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Runs `args` with the real csync2 on `real_db` and ours on `ours_db`:
/// same exit code, same stdout.
pub fn both(l: &Local, srv: &dyn Srv, user: &str, dbs: (&str, &str), args: &[&str]) {
    let r = l.run(Which::Real, &srv.url(user, dbs.0), args);
    let o = l.run(Which::Ours, &srv.url(user, dbs.1), args);
    assert_eq!(
        (r.code, super::show_lossy(&r.stdout)),
        (o.code, super::show_lossy(&o.stdout)),
        "{args:?}: real (left) and ours (right) differ; stderr real: {} ours: {}",
        r.stderr_str(),
        o.stderr_str()
    );
}

/// Our run of `args` fails as a bad database should: exit 1, one line on
/// stderr, naming `shown` and never `secret`.
pub fn fails_cleanly(l: &Local, url: &str, args: &[&str], shown: &str, what: &str) -> String {
    let o = l.run(Which::Ours, url, args);
    let err = o.stderr_str();
    assert_eq!(
        o.code,
        Some(1),
        "{what}: {url}: exit 1 expected, got {}: {err}",
        o.status_text()
    );
    assert_eq!(
        err.lines().count(),
        1,
        "{what}: one error line expected: {err}"
    );
    assert!(err.contains(shown), "{what}: the line names {shown}: {err}");
    assert!(
        !err.contains("secret") && !err.contains("wrong"),
        "{what}: no password: {err}"
    );
    assert!(!err.contains("exceedingly busy"), "{what}: {err}");
    err
}

/// Removes the `--status` records our runs left in `/var/lib/csync2` for
/// the databases of this server.
pub fn forget_records(srv: &dyn Srv) {
    let tag = format!("-127-0-0-1-{}-", srv.port());
    if let Ok(rd) = std::fs::read_dir("/var/lib/csync2") {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if (n.starts_with("pgsql-") || n.starts_with("mysql-")) && n.contains(&tag) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}
