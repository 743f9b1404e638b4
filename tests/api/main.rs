//! Integration tests over real gRPC. Run on SQLite by default, on PostgreSQL
//! with `TICKETD_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test`.
mod auth;
mod bad_input;
mod batches;
mod concurrency;
mod connections;
mod consultations;
mod deadlines;
mod email;
mod export;
mod fuzz;
mod helpers;
mod incidents;
mod isolation;
mod limits;
mod malformed;
mod notifications;
mod operations;
mod outage;
mod pagination;
mod process;
mod search;
mod sla;
mod telemetry;
mod tenancy;
mod transitions;
mod watch;
