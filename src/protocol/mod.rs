//! The csync2 wire protocol (protocol.md), shared by the client, the
//! pipeline, the stream and the server:
//!
//! * `request`: every request as a typed value, encoded and parsed here;
//! * `reply`: the fixed reply texts, how a client classifies a status line,
//!   and the multi-line answers of our extensions;
//! * `kind`: the kinds of file and their names on the wire;
//! * `codec`: tokenising lines and building them;
//! * `conn`: framing (lines, blobs, corking) over a stream;
//! * `delta`: the rsync signature and delta payloads.

pub mod codec;
pub mod conn;
pub mod delta;
pub mod kind;
pub mod reply;
pub mod request;

pub use kind::FileKind;
pub use reply::*;
pub use request::{MakeArg, Request, Target};
