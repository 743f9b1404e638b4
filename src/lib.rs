//! ticketd: a gRPC ticket backend for logistics platforms.
pub mod app;
pub mod auth;
pub mod config;
pub mod domain;
pub mod events;
pub mod grpc;
pub mod report;
pub mod service;
pub mod store;
pub mod telemetry;

/// The generated protobuf and gRPC code of `proto/ticketd/v1`.
pub mod pb {
    tonic::include_proto!("ticketd.v1");

    /// The descriptor set served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("ticketd_descriptor");
}
