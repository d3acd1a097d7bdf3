//! Private database servers for the backend tests: a PostgreSQL and a
//! MariaDB in temporary directories, on their own sockets and on TCP ports
//! `25000 + slot` (PostgreSQL) and `25500 + slot` (MariaDB) of 127.0.0.1,
//! shifted by `CSYNC2_TEST_PORT_OFFSET`: below the kernel's ephemeral
//! range (32768 and up), where a client connection's local port could
//! already hold the address. Each test takes its slot from
//! [`super::idx::DbSrv`]. The servers are stopped by their PID when the
//! value is dropped (never by name: other servers may run on the machine).
//!
//! Both have a trusted superuser (`postgres`, `root`), a user `pwuser`
//! with password `secret`, and a user `nocreate` that may log in but not
//! create databases.

use super::idx::{DbSrv, port_offset};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const PASSWORD: &str = "secret";

fn pg_bin(tool: &str) -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed (/usr/lib/postgresql): run tests/run-all.sh")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("bin").join("initdb").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("no PostgreSQL version with initdb")
        .join("bin")
        .join(tool)
}

fn uid_gid(user: &str) -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    for l in passwd.lines() {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() > 3 && f[0] == user {
            return (f[2].parse().unwrap(), f[3].parse().unwrap());
        }
    }
    panic!("no user {user} (the postgresql package creates it)");
}

fn listening(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddrV4::new(Ipv4Addr::LOCALHOST, port).into(),
        Duration::from_millis(200),
    )
    .is_ok()
}

fn wait_listening(port: u16, what: &str, log: &Path) {
    let end = Instant::now() + Duration::from_secs(60);
    while !listening(port) {
        if Instant::now() > end {
            panic!(
                "{what} did not listen on port {port}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Stops a server we started: `sig`, up to 30 s, then SIGKILL.
fn stop_child(child: &mut Child, sig: i32) {
    let pid = child.id() as i32;
    unsafe { libc::kill(pid, sig) };
    let end = Instant::now() + Duration::from_secs(30);
    while Instant::now() < end {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let _ = child.wait();
}

fn scratch(label: &str) -> PathBuf {
    let d = PathBuf::from(format!("/tmp/csync2-dbsrv-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub struct Pg {
    pub port: u16,
    pub dir: PathBuf,
    child: Option<Child>,
}

impl Pg {
    pub fn start(slot: DbSrv) -> Pg {
        let port = 25000 + slot as u16 + port_offset();
        assert!(!listening(port), "port {port} is taken");
        let dir = scratch(&format!("pg{}", slot as u16));
        let (uid, gid) = uid_gid("postgres");
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
        // PostgreSQL refuses to run as root: its own user runs it
        run(
            Command::new(pg_bin("initdb"))
                .args(["--locale=C", "-U", "postgres", "-A", "trust", "-D"])
                .arg(dir.join("data"))
                .uid(uid)
                .gid(gid),
            "initdb",
        );
        std::fs::write(
            dir.join("data/pg_hba.conf"),
            "local all all trust\n\
             host all pwuser 127.0.0.1/32 scram-sha-256\n\
             host all all 127.0.0.1/32 trust\n",
        )
        .unwrap();
        let mut pg = Pg {
            port,
            dir,
            child: None,
        };
        pg.resume();
        pg.psql(
            "postgres",
            &format!(
                "CREATE ROLE pwuser LOGIN SUPERUSER PASSWORD '{PASSWORD}'; CREATE ROLE nocreate LOGIN"
            ),
        );
        pg
    }

    /// Starts the server (again) on its data directory.
    pub fn resume(&mut self) {
        assert!(self.child.is_none());
        let (uid, gid) = uid_gid("postgres");
        let log = std::fs::File::create(self.dir.join("log")).unwrap();
        std::os::unix::fs::chown(self.dir.join("log"), Some(uid), Some(gid)).unwrap();
        let child = Command::new(pg_bin("postgres"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-k")
            .arg(&self.dir)
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(["-c", "max_connections=200"])
            .uid(uid)
            .gid(gid)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start postgres");
        self.child = Some(child);
        wait_listening(self.port, "postgres", &self.dir.join("log"));
        // listening comes before accepting: wait for a query to work
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = Command::new("psql")
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
                .args(["-U", "postgres", "-d", "postgres", "-Atc", "SELECT 1"])
                .output()
                .is_ok_and(|o| o.status.success());
            if ok {
                break;
            }
            assert!(Instant::now() < end, "postgres does not answer");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the server (its data stays for `resume`): a fast shutdown,
    /// which ends the open sessions.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop_child(&mut c, libc::SIGINT);
        }
    }

    /// `pgsql://USER@127.0.0.1:PORT/DB`
    pub fn url(&self, user: &str, db: &str) -> String {
        format!("pgsql://{user}@127.0.0.1:{}/{db}", self.port)
    }

    /// Runs SQL as the superuser; the rows, `|`-separated, one a line.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        run(
            Command::new("psql")
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
                .args([
                    "-U",
                    "postgres",
                    "-d",
                    db,
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-Atc",
                    sql,
                ]),
            &format!("psql {sql}"),
        )
    }

    pub fn databases(&self) -> Vec<String> {
        self.psql("postgres", "SELECT datname FROM pg_database ORDER BY 1")
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        self.stop();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// `mariadb-install-db` into `data`. Several at once (parallel tests)
/// sometimes fail in the bootstrap: one at a time, under a lock, and a
/// failed one is tried again on a clean directory.
fn install_mariadb(data: &Path) {
    use std::os::fd::AsRawFd;
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open("/tmp/csync2-dbsrv-install.lock")
        .unwrap();
    unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    let mut last = String::new();
    for _ in 0..3 {
        let _ = std::fs::remove_dir_all(data);
        let out = Command::new("mariadb-install-db")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .args(["--user=root", "--auth-root-authentication-method=normal"])
            .arg("--skip-test-db")
            .stdin(Stdio::null())
            .output()
            .expect("run mariadb-install-db");
        if out.status.success() {
            return;
        }
        last = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("mariadb-install-db failed three times: {last}");
}

pub struct My {
    pub port: u16,
    pub dir: PathBuf,
    child: Option<Child>,
}

impl My {
    pub fn start(slot: DbSrv) -> My {
        let port = 25500 + slot as u16 + port_offset();
        assert!(!listening(port), "port {port} is taken");
        let dir = scratch(&format!("my{}", slot as u16));
        install_mariadb(&dir.join("data"));
        let mut my = My {
            port,
            dir,
            child: None,
        };
        my.resume();
        my.sql(
            "",
            &format!(
                "CREATE USER 'pwuser'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}'; \
                 GRANT ALL ON *.* TO 'pwuser'@'127.0.0.1'; \
                 CREATE USER 'nocreate'@'127.0.0.1'; \
                 GRANT SELECT ON mysql.* TO 'nocreate'@'127.0.0.1'"
            ),
        );
        my
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("sock")
    }

    pub fn resume(&mut self) {
        assert!(self.child.is_none());
        let d = &self.dir;
        let log = std::fs::File::create(d.join("log")).unwrap();
        // Debian's server defaults (utf8mb4, case-insensitive collation):
        // the ones under which the real csync2 loses names
        let child = Command::new("mariadbd")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", d.join("data").display()))
            .arg(format!("--socket={}", self.socket().display()))
            .arg(format!("--pid-file={}", d.join("pid").display()))
            .arg(format!("--port={}", self.port))
            .args(["--bind-address=127.0.0.1", "--user=root", "--skip-log-bin"])
            .args([
                "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_general_ci",
            ])
            .args([
                "--innodb-buffer-pool-size=32M",
                "--innodb-log-file-size=16M",
            ])
            .args(["--max-connections=200", "--skip-name-resolve"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start mariadbd");
        self.child = Some(child);
        wait_listening(self.port, "mariadbd", &self.dir.join("log"));
        // listening comes before answering (recovery after a stop)
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = Command::new("mariadb")
                .arg("--no-defaults")
                .arg(format!("--socket={}", self.socket().display()))
                .args(["-u", "root", "-e", "SELECT 1"])
                .output()
                .is_ok_and(|o| o.status.success());
            if ok {
                break;
            }
            assert!(Instant::now() < end, "mariadbd does not answer");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop_child(&mut c, libc::SIGTERM);
        }
    }

    /// `mysql://USER@127.0.0.1:PORT/DB`
    pub fn url(&self, user: &str, db: &str) -> String {
        format!("mysql://{user}@127.0.0.1:{}/{db}", self.port)
    }

    /// Runs SQL as root; the rows, tab-separated, one a line.
    pub fn sql(&self, db: &str, sql: &str) -> String {
        let mut cmd = Command::new("mariadb");
        cmd.arg("--no-defaults")
            .arg(format!("--socket={}", self.socket().display()))
            .args(["-u", "root", "-N", "-B", "--raw", "-e", sql]);
        if !db.is_empty() {
            cmd.arg(db);
        }
        run(&mut cmd, &format!("mariadb {sql}"))
    }

    pub fn databases(&self) -> Vec<String> {
        self.sql("", "SHOW DATABASES")
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for My {
    fn drop(&mut self) {
        self.stop();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
