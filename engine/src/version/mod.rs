//! Versions: which table files make up the database, and the MANIFEST that records it.

pub mod edit;
pub mod level_iter;
pub mod set;
#[allow(clippy::module_inception)]
pub mod version;

pub use edit::{FileMetaData, VersionEdit, NUM_LEVELS};
pub use set::{ManifestWriter, VersionSet};
pub use version::{Lookup, Version};
