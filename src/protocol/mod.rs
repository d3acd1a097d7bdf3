//! The csync2 wire protocol (protocol.md): line codec and framing, fixed
//! reply texts, and the rsync signature/delta payloads.

pub mod codec;
pub mod conn;
pub mod delta;

pub const OK_FINISHED: &str = "OK (cmd_finished).";
pub const OK_DATA_FOLLOWS: &str = "OK (data_follows).";
pub const OK_SEND_DATA: &str = "OK (send_data).";
pub const OK_NOT_FOUND: &str = "OK (not_found).";
pub const OK_PATH_NOT_FOUND: &str = "OK (path_not_found).";
pub const OK_CU_LATER: &str = "OK (cu_later).";
pub const OK_ACTIVATING_SSL: &str = "OK (activating_ssl).";
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
