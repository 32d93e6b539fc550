//! Compiles `relay.proto` with prost-build and the system `protoc`.

fn main() -> std::io::Result<()> {
    println!("cargo:rerun-if-changed=relay.proto");
    // prost-build finds `protoc` through $PROTOC or $PATH (the system protobuf-compiler).
    prost_build::Config::new().bytes(["."]).compile_protos(&["relay.proto"], &["."])
}
