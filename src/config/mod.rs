//! The configuration: grammar, model and matcher.

pub mod lexer;
pub mod matcher;
pub mod model;
pub mod parser;

pub use model::*;
pub use parser::{ConfigError, ParseOptions, parse_file};
