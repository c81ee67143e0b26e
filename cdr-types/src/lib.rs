#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod draw;
mod message;

pub use draw::draw;
pub use message::{Message, ROLES};
