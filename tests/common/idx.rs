//! Test indices, allocated in one place.
//!
//! A network test derives its loopback addresses and TCP ports from its
//! index, so that tests run in parallel without clashing:
//!
//! * [`Net`]: hosts `n<k>.<test>.test` at `127.61.<idx>.<k>`, ports
//!   `31000 + 8·idx + slot` (`tests/net/mod.rs`: `hosts`, `port`); the
//!   index also picks the TLS key types (`tls_key`);
//! * [`Tls`]: the tests of `tests/net_tls.rs`, hosts
//!   `n<k>.tls-<test>.test` at `127.62.<idx>.<k>`, ports
//!   `32000 + 8·idx + slot`.
//!
//! Every test takes its index from these enums (the harness functions take
//! them, not numbers). The values are explicit discriminants: the compiler
//! rejects two variants with the same value (E0081), so no two tests of one
//! family can share an index. A new test adds a variant with an unused
//! value; existing values never change (host names and addresses are
//! appended to `/etc/hosts`).
//!
//! Two checkouts running their suites at once (git worktrees) would clash on
//! the ports: `CSYNC2_TEST_PORT_OFFSET` (e.g. 2000) shifts every port of one
//! run ([`port_offset`]).

/// Indices of the `127.61.<idx>.<k>` family (1..=120). The variant is
/// named after the test name given with it to the harness.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Net {
    // tests/net_interop.rs
    Newfiles = 1,
    Delta = 2,
    Mtimeonly = 3,
    Modeowner = 4,
    Deletions = 5,
    Nesteddirs = 6,
    Symlinks = 7,
    Symprefix = 8,
    Special = 9,
    Socket = 10,
    Hardnames = 11,
    Missingparent = 12,
    Conflict = 13,
    Force = 14,
    Peerdown = 15,
    Dryrun = 16,
    Concurrent = 17,
    Probeident = 18,
    Probelines = 19,
    Probesig = 20,
    Probeops = 21,
    Autoresolve = 22,
    Twenty = 23,
    // tests/net_conflict.rs
    Autofirst = 40,
    Autoage = 41,
    Autosize = 42,
    Autoside = 43,
    Slaverecv = 44,
    Slavepush = 45,
    // tests/net_backup.rs
    Backups = 46,
    Badbackup = 47,
    // tests/net_actions.rs
    Actions = 48,
    // tests/net_compare.rs
    Cmpforms = 49,
    Cmpdiffs = 50,
    Cmpmark = 51,
    Cmpq16 = 52,
    // tests/net_multihost.rs
    Multihost = 53,
    // tests/net_conflict.rs
    Samechange = 54,
    // tests/net_pipeline.rs
    Pipemany = 55,
    Pipedry = 56,
    Pipeconflict = 57,
    // tests/net_bigfile.rs
    Bigfile = 58,
    // tests/net_inetd.rs
    Inetd = 59,
    // tests/net_compare.rs
    Cmpjson = 60,
    // tests/net_progress.rs
    Progress = 61,
    // tests/net_load.rs
    Load = 62,
    // tests/net_kill.rs
    Netkill = 64,
    // tests/net_hostile.rs
    Hostile = 67,
    Hostileb = 68,
    // tests/net_stream.rs
    Stream = 69,
    // tests/net_typechange.rs
    Typechange = 70,
    // tests/net_timeout.rs
    Timeout = 71,
    // tests/net_manypeers.rs
    Manypeers = 72,
    // tests/net_pipeline.rs
    Pipedel = 73,
    // tests/net_diskfull.rs
    Diskfull = 74,
    // tests/net_slowpeer.rs
    Slowpeer = 75,
    // tests/net_catchup.rs
    Catchup = 76,
    Catchup4 = 77,
    Catchupx = 78,
    // tests/net_watch.rs
    Watch = 79,
    // tests/net_watch2.rs
    Watchreal = 80,
    Watchthree = 81,
    Watchconfl = 82,
    Watchhung = 83,
    Watchdown = 84,
    Watchqueue = 85,
    Watchterm = 86,
    Watchburst = 87,
    Watchlate = 88,
    // tests/net_watch.rs
    WatchReload = 100,
    // tests/db_push.rs
    Pgpushoo = 89,
    Pgpushor = 90,
    Pgpushro = 91,
    Mypushoo = 92,
    Mypushro = 93,
    Pgtls = 94,
    Mytls = 95,
    // tests/db_watch.rs
    Dbwatchpg = 96,
    Dbwatchmy = 97,
    // tests/db_push.rs
    Mypushor = 98,
}

impl Net {
    /// The number (third byte of the addresses).
    pub const fn n(self) -> u8 {
        self as u8
    }
}

/// Indices of the `127.62.<idx>.<k>` family of `tests/net_tls.rs`
/// (1..=61).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Tls {
    Rsa1024 = 1,
    Rsa2048 = 2,
    Rsa4096 = 3,
    P256 = 4,
    P384 = 5,
    Ed25519 = 6,
    Shared = 7,
    Realpair = 8,
    Pinning = 9,
    Nossl = 10,
    Nocert = 11,
    Genp256 = 12,
    Genrsa = 13,
}

impl Tls {
    /// The number (third byte of the addresses).
    pub const fn n(self) -> u8 {
        self as u8
    }
}

/// The shift added to every test port: `CSYNC2_TEST_PORT_OFFSET`, default 0.
pub fn port_offset() -> u16 {
    match std::env::var("CSYNC2_TEST_PORT_OFFSET") {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("CSYNC2_TEST_PORT_OFFSET={v:?} is not a port offset")),
        Err(_) => 0,
    }
}

/// Slots of the private database servers of `tests/common/dbserver.rs`
/// (PostgreSQL on port `25000 + slot`, MariaDB on `25500 + slot`, both
/// plus the offset); one per test that starts a server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum DbSrv {
    // tests/db_pgsql.rs
    PgLocal = 1,
    PgSwap = 2,
    PgBad = 3,
    PgGone = 4,
    PgPush = 5,
    PgBusy = 6,
    PgPushRo = 7,
    PgConc = 8,
    PgPushOr = 9,
    PgTls = 10,
    PgDeadlock = 11,
    // tests/db_mysql.rs
    MyLocal = 21,
    MySwap = 22,
    MyBad = 23,
    MyGone = 24,
    MyNames = 25,
    MyPush = 26,
    MyPushRo = 27,
    MyConc = 28,
    MyBusy = 29,
    MyTls = 30,
    MyDeadlock = 31,
    // tests/db_watch.rs
    PgWatch = 12,
    MyWatch = 32,
    MyPushOr = 33,
}
