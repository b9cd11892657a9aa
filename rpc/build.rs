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
    write_methods(&fds.file)?;
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

/// Writes `OUT_DIR/methods.rs`: `METHODS`, the path (`package.Service/Method`) of every RPC the
/// protos define, sorted, so that code keyed by method (the RPC metrics) can use a fixed table
/// instead of a map that grows with whatever paths clients send.
fn write_methods(
    files: &[protox::prost_reflect::prost_types::FileDescriptorProto],
) -> std::io::Result<()> {
    let mut methods = Vec::new();
    for file in files {
        let package = file.package();
        for service in &file.service {
            for method in &service.method {
                methods.push(format!("{package}.{}/{}", service.name(), method.name()));
            }
        }
    }
    methods.sort();
    let mut out =
        String::from("/// Every RPC the protos define, as `package.Service/Method`, sorted.\n");
    out.push_str("pub const METHODS: &[&str] = &[\n");
    for m in &methods {
        out.push_str(&format!("    {m:?},\n"));
    }
    out.push_str("];\n");
    let dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(dir.join("methods.rs"), out)
}
