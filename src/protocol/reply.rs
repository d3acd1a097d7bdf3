//! Replies: the fixed status texts (protocol.md §2), how a client reads a
//! status line (§1.6), and the answer of our `X-STAT`
//! (doc/protocol-extension.md).

use super::conn::{Conn, ConnError};
use crate::urlenc;
use std::io::Read;

pub const OK_FINISHED: &str = "OK (cmd_finished).";
pub const OK_DATA_FOLLOWS: &str = "OK (data_follows).";
pub const OK_SEND_DATA: &str = "OK (send_data).";
pub const OK_NOT_FOUND: &str = "OK (not_found).";
pub const OK_PATH_NOT_FOUND: &str = "OK (path_not_found).";
pub const OK_CU_LATER: &str = "OK (cu_later).";
pub const OK_ACTIVATING_SSL: &str = "OK (activating_ssl).";
/// ours only: the answer to `X-CSYNC2RS-PIPELINE 1`
pub const OK_PIPELINING: &str = "OK (pipelining).";
/// ours only: the answer to `X-CATCHUP`; the server pushes next
pub const OK_CATCHING_UP: &str = "OK (catching_up).";
/// ours only: the server refuses catch-up requests (`CSYNC2_NO_CATCHUP`)
pub const ERR_CATCHUP_OFF: &str = "Catch-up requests are disabled on this server.";
pub const ERR_CONFLICT: &str = "File is also marked dirty here!";
pub const ERR_PARENT_MISSING: &str = "Parent dir missing.";
pub const ERR_GROUP_SET: &str = "Group list already set!";
pub const ERR_IDENT: &str = "Identification failed!";
pub const ERR_SLAVE: &str = "Permission denied for slave!";
pub const ERR_PERMISSION: &str = "Permission denied!";
pub const ERR_SSL_EXPECTED: &str = "SSL encrypted connection expected!";
pub const ERR_UNKNOWN: &str = "Unknown command!";
pub const ERR_PRE_SESSION: &str = "Expecting SSL (optional) and CONFIG as first commands.";
pub const ERR_CONFIG_NAME: &str = "Config names are limited to [a-z0-9]+.";
/// ours only: a change through a symlinked directory is refused
pub const ERR_SYMLINKED_DIR: &str = "Refused: a directory on the path is a symlink.";

/// How a client classifies a status line (protocol.md §1.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Conflict,
    ParentMissing,
    Error,
}

pub fn classify(line: &[u8]) -> Status {
    if line.starts_with(ERR_CONFLICT.as_bytes()) {
        Status::Conflict
    } else if line.starts_with(ERR_PARENT_MISSING.as_bytes()) {
        Status::ParentMissing
    } else if line.starts_with(b"OK (") {
        Status::Ok
    } else {
        Status::Error
    }
}

/// The SHA-256 of a file's content, lower-case hex: what `X-STAT` answers
/// for a regular file whose check text matches.
pub fn content_digest(r: &mut impl Read) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The peer's answer to `X-STAT`.
pub enum StatAnswer {
    /// the directory it would go in is missing
    ParentMissing,
    /// (check text, content digest); `---` and no digest: no such file
    Found(Vec<u8>, Vec<u8>),
    /// any other reply
    Refused(Vec<u8>),
}

impl StatAnswer {
    pub fn read(conn: &mut Conn) -> Result<StatAnswer, ConnError> {
        let r = conn.read_status()?;
        Ok(match classify(&r) {
            Status::ParentMissing => StatAnswer::ParentMissing,
            Status::Ok if r == OK_DATA_FOLLOWS.as_bytes() => {
                let t = urlenc::decode(&conn.read_line(16383)?);
                let d = conn.read_line(200)?;
                StatAnswer::Found(t, d)
            }
            Status::Ok => StatAnswer::Found(b"---".to_vec(), Vec::new()),
            _ => StatAnswer::Refused(r),
        })
    }
}

/// Sends a found `X-STAT` answer: status, encoded check text, and the
/// digest (`-` when there is none to compare).
pub fn send_stat_found(conn: &mut Conn, text: &[u8], digest: &str) -> Result<(), ConnError> {
    conn.send_line(OK_DATA_FOLLOWS)?;
    conn.write_all(&crate::msg!(urlenc::encode(text), "\n"))?;
    conn.send_line(digest)
}
