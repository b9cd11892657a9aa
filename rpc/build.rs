//! Compiles `proto/strata/v1/*.proto` into Rust with no system `protoc`: `protox` (pure Rust)
//! parses the files into a descriptor set, `tonic-prost-build` generates messages, clients and
//! servers from it into `OUT_DIR/strata.v1.rs`.

use std::path::PathBuf;

/// The proto files, relative to `proto/` (also their import paths).
const PROTOS: &[&str] = &[
    "strata/v1/error.proto",
    "strata/v1/master.proto",
    "strata/v1/kv.proto",
    "strata/v1/migration.proto",
    "strata/v1/paxos.proto",
    "strata/v1/node.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("proto");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={}", root.display());
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={}", root.join(proto).display());
    }

    let fds = protox::compile(PROTOS, [&root])?;
    tonic_prost_build::configure()
        // Every proto map is a BTreeMap: iteration in key order, so that code computing on a
        // configuration (the shard master's rebalancer) never depends on hash order.
        .btree_map(".")
        // Malformed bodies are INVALID_ARGUMENT, not tonic's INTERNAL (src/codec.rs).
        .codec_path("crate::codec::StrataCodec")
        .build_client(true)
        .build_server(true)
        .build_transport(true)
        .compile_fds(fds)?;
    Ok(())
}
