//! Generates the client of `llmpool.v1` from the pool's own .proto (`proto/` at the
//! repository's root) with a pure-Rust protobuf compiler: no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let proto = root.join("llmpool/v1/llmpool.proto");
    println!("cargo:rerun-if-changed={}", proto.display());
    let fds = protox::compile([&proto], [&root])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(false)
        .build_transport(false)
        .compile_fds(fds)?;
    Ok(())
}
