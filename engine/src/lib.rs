//! Strata: an embeddable LSM-tree key-value storage engine.

#![warn(missing_docs)]

pub mod coding;
pub mod error;
pub mod fs;
pub mod iter;
pub mod key;
pub mod wal;

pub use error::{Error, Result};
