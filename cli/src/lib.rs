//! `strata`, Strata's command-line tool, as a library: the command tree ([`cli`]), the
//! replica processes ([`replica`]), the local-cluster launcher ([`launch`], which the test
//! harness reuses), and how commands print ([`output`]) and fail ([`error`]).

#![warn(missing_docs)]

pub mod cli;
pub mod error;
pub mod launch;
pub mod output;
pub mod replica;
