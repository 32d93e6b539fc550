//! Compiles `relay.proto` with prost-build, and with the `tonic` feature `control.proto` and
//! KEDA's `externalscaler.proto` with tonic-prost-build (messages, client and server, and the
//! descriptor sets server reflection serves), using the system `protoc`.

fn main() -> std::io::Result<()> {
    println!("cargo:rerun-if-changed=relay.proto");
    println!("cargo:rerun-if-changed=control.proto");
    println!("cargo:rerun-if-changed=externalscaler.proto");
    // prost-build finds `protoc` through $PROTOC or $PATH (the system protobuf-compiler).
    prost_build::Config::new().bytes(["."]).compile_protos(&["relay.proto"], &["."])?;
    #[cfg(feature = "tonic")]
    {
        let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
        tonic_prost_build::configure()
            .file_descriptor_set_path(out.join("control_descriptor.bin"))
            .compile_protos(&["control.proto"], &["."])?;
        tonic_prost_build::configure()
            .file_descriptor_set_path(out.join("externalscaler_descriptor.bin"))
            .compile_protos(&["externalscaler.proto"], &["."])?;
    }
    Ok(())
}
