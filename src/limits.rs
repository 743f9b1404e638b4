//! What one server lets its clients hold open: connections, streams, and how
//! long a connection may sit silent. One clap group (flattened into `serve`),
//! so that every limit has a flag, an environment variable and a default.
use std::time::Duration;

use clap::Args;

use crate::config::parse_duration;

#[derive(Debug, Clone, Args)]
pub struct Limits {
    /// Open connections at most. Beyond it the server stops accepting (new
    /// connections wait in the kernel's backlog) until one closes; silent and
    /// idle ones are closed by the timeouts below. Keep it under the process's
    /// open-file limit (`ulimit -n`).
    #[arg(long, env = "TICKETD_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,
    /// A connection that has not sent its HTTP/2 preface and first SETTINGS
    /// within this time is closed (silent and slowloris connections).
    #[arg(long, env = "TICKETD_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub handshake_timeout: Duration,
    /// A connection with no call in progress for this long is closed (clients
    /// reconnect on their next call).
    #[arg(long, env = "TICKETD_IDLE_TIMEOUT", default_value = "5m", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// The server pings each connection this often (HTTP/2 keepalive)…
    #[arg(long, env = "TICKETD_KEEPALIVE_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub keepalive_interval: Duration,
    /// …and closes it when a ping is not answered within this time.
    #[arg(long, env = "TICKETD_KEEPALIVE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub keepalive_timeout: Duration,
    /// Concurrent calls (HTTP/2 streams) per connection, announced to clients
    /// in SETTINGS_MAX_CONCURRENT_STREAMS.
    #[arg(
        long,
        env = "TICKETD_MAX_STREAMS_PER_CONNECTION",
        default_value_t = 100
    )]
    pub max_streams_per_connection: u32,
    /// Open watch streams (WatchTicket, WatchNotifications) on this server;
    /// one more is RESOURCE_EXHAUSTED.
    #[arg(long, env = "TICKETD_MAX_WATCH_STREAMS", default_value_t = 10_000)]
    pub max_watch_streams: usize,
    /// Open watch streams of one caller (one token subject); one more is
    /// RESOURCE_EXHAUSTED.
    #[arg(
        long,
        env = "TICKETD_MAX_WATCH_STREAMS_PER_PRINCIPAL",
        default_value_t = 100
    )]
    pub max_watch_streams_per_principal: usize,
    /// Open streams that need no token (grpc.health.v1 Watch and reflection),
    /// together; one more is RESOURCE_EXHAUSTED.
    #[arg(
        long,
        env = "TICKETD_MAX_UNAUTHENTICATED_STREAMS",
        default_value_t = 100
    )]
    pub max_unauthenticated_streams: usize,
}

impl Default for Limits {
    /// The defaults of the flags.
    fn default() -> Self {
        #[derive(clap::Parser)]
        struct Defaults {
            #[command(flatten)]
            limits: Limits,
        }
        <Defaults as clap::Parser>::parse_from(["ticketd"]).limits
    }
}
