//! ticketd: a gRPC ticket backend for logistics platforms.
pub mod app;
pub mod auth;
pub mod config;
pub mod domain;
pub mod events;
pub mod grpc;
pub mod limits;
pub mod metrics;
pub mod net;
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

/// mimalloc for every binary built on this crate (server, benchmarks, tests).
/// SQLite rows are allocated on sqlx's worker thread and freed on the runtime's;
/// glibc serialises such cross-thread frees on its arena locks, which made a
/// 100,000-row export 1.3–1.5× slower. Transparent huge pages are off
/// (`no_thp`): with them 10,000 open streams took 154 MiB instead of 100 MiB.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
