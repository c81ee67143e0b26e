#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod draw;
pub mod hub;
mod message;

pub use draw::draw;
pub use message::{Message, ROLES};
