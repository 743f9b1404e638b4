//! Generates the gRPC code and the descriptor set served by reflection, with a
//! vendored protoc so that no system protoc is needed.
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // prost-build reads PROTOC; a build script is single-threaded, so setting
    // the variable cannot race with another thread reading the environment.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("PROTOC", protoc)
    };
    let include = protoc_bin_vendored::include_path()?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let protos = [
        "proto/ticketd/v1/common.proto",
        "proto/ticketd/v1/incident.proto",
        "proto/ticketd/v1/consultation.proto",
        "proto/ticketd/v1/notification.proto",
        "proto/ticketd/v1/webhook.proto",
    ];
    tonic_prost_build::configure()
        // prost's codec with small response chunks (grpc::codec says why).
        .codec_path("crate::grpc::codec::MessageCodec")
        .file_descriptor_set_path(out.join("ticketd_descriptor.bin"))
        .compile_protos(
            &protos.map(PathBuf::from),
            &[PathBuf::from("proto"), include],
        )?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
