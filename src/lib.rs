//! csync2-rs: a drop-in reimplementation of LINBIT's csync2.
//!
//! Data flows one way: command line (`cli`) → start-up (`setup`) →
//! configuration (`config`) → state (`db`, `checktxt`) → operations
//! (`check`, `mark`, `update`, `compare`, …) → wire protocol (`protocol`).
//! The server (`server`) is another entry point on the same layers.
//! doc/architecture.md maps every role to its file.

pub mod action;
pub mod app;
pub mod backup;
pub mod beneath;
pub mod catchup;
pub mod certgen;
pub mod check;
pub mod checktxt;
pub mod cleanup;
pub mod cli;
pub mod client;
pub mod compare;
pub mod config;
pub mod db;
pub mod fasthash;
pub mod fnmatch;
pub mod fsutil;
pub mod json;
pub mod keygen;
pub mod listing;
pub mod log;
pub mod mark;
pub mod paths;
pub mod progress;
pub mod protocol;
pub mod server;
pub mod setup;
pub mod status;
pub mod tls;
pub mod update;
pub mod urlenc;
pub mod watch;

/// A fatal error: its message is printed and the program exits 1.
#[derive(Debug)]
pub struct Fatal(pub Vec<u8>);

impl Fatal {
    pub fn msg(m: impl Into<Vec<u8>>) -> Fatal {
        Fatal(m.into())
    }
}

impl From<db::DbError> for Fatal {
    fn from(e: db::DbError) -> Fatal {
        Fatal(e.0.into_bytes())
    }
}
