//! The error every primitive raises: exactly its text, no Rust decoration. A leaf module, so
//! argument readers and handles can both raise without importing each other.

use std::fmt;

/// An error raised into Lua with exactly this text.
#[derive(Debug)]
pub struct ApiError(pub String);

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ApiError {}

pub fn err(msg: impl Into<String>) -> mlua::Error {
    mlua::Error::external(ApiError(msg.into()))
}
