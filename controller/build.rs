//! Compiles the control-plane protobuf with `protox` (pure Rust, no `protoc`
//! binary needed) and generates the tonic client and server from it.

use std::error::Error;

const PROTO_ROOT: &str = "proto";
const PROTOS: &[&str] = &["proto/weir/controller/v1/controller.proto"];

fn main() -> Result<(), Box<dyn Error>> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(PROTOS, [PROTO_ROOT])?;
    tonic_prost_build::configure()
        // Config maps become `BTreeMap`s, as in the metadata image: ordered, so
        // encoding the same image twice gives the same bytes.
        .btree_map(".")
        .compile_fds(descriptors)?;
    Ok(())
}
