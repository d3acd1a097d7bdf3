//! The `csync2` binary. `no_main`: Rust's runtime would set SIGPIPE to
//! "ignore" before `main`; csync2 inherits the caller's disposition, and
//! scripts see the difference (`csync2 -L | head -1` ends quietly).
#![no_main]

use std::io::Write;

#[unsafe(no_mangle)]
pub extern "C" fn main(
    _argc: std::ffi::c_int,
    _argv: *const *const std::ffi::c_char,
) -> std::ffi::c_int {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let code = csync2::app::main(&argv);
    // no Rust runtime shutdown here: flush stdout ourselves
    let _ = std::io::stdout().flush();
    code
}
