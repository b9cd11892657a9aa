//! What a benchmark asks of a key-value store, independent of the store: the engine driver
//! `strata-bench` (benches/) and the service benchmark `strata bench` (cli/) draw keys,
//! values and operations from here, so that a YCSB workload means the same thing in both.
//!
//! - [`keys`]: key `i` as bytes, the value pool, a scattered write order, and how random
//!   workloads pick keys ([`Distribution`]: uniform, YCSB's scrambled Zipfian, latest).
//! - [`ycsb`]: the YCSB core workloads A–F as a pure choice of operation per draw.
//!
//! # Example
//!
//! ```
//! use strata_workload::keys::{make_key, Distribution, KeyPicker, Zipfian};
//! use strata_workload::ycsb::{OpKind, Ycsb};
//!
//! let zipf = Zipfian::new(1000);
//! let mut picker = KeyPicker::new(7, &zipf, Distribution::Zipfian);
//! let mut key = [0u8; 16];
//! make_key(&mut key, picker.next_key(), false);
//! assert!(key.iter().all(u8::is_ascii_digit));
//! // Workload B: 95% reads, 5% updates.
//! let b = Ycsb::from_letter('b').unwrap();
//! assert_eq!(b.op(0.5), OpKind::Read);
//! assert_eq!(b.op(0.97), OpKind::Update);
//! ```

#![warn(missing_docs)]

pub mod keys;
pub mod ycsb;

pub use keys::{Distribution, KeyPicker, ValuePool, Zipfian};
pub use ycsb::{OpKind, Ycsb};
