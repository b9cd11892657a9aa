//! Compiles the minimal etcd KV proto (`proto/etcd/`) into `OUT_DIR/{etcdserverpb,mvccpb}.rs`
//! for `strata bench`'s etcd client (`src/bench/etcd.rs`), the way `rpc/build.rs` does
//! Strata's: `protox` (pure Rust, no system `protoc`) to a descriptor set, then
//! `tonic-prost-build`.

use std::path::PathBuf;

const PROTOS: &[&str] = &["etcdserverpb/rpc.proto", "mvccpb/kv.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("proto/etcd");
    println!("cargo:rerun-if-changed=build.rs");
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={}", root.join(proto).display());
    }
    let fds = protox::compile(PROTOS, [&root])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(false)
        .build_transport(true)
        .compile_fds(fds)?;
    Ok(())
}
