//! The HTTP gateway: commands in over JSON, onto Kafka as Avro; queries answered from the
//! hot store.
//!
//! - [`config`]: gateway settings (limits, timeouts).
//! - [`error`]: the JSON error body (`{code, message, field}`) and its HTTP statuses.
//! - [`auth`]: API keys — generation, hashing, lookup of the tenant they name.
//! - [`request`]: request bodies and their validation into command payloads.
//! - [`producer`]: publishes commands to `billing.commands`, acknowledged by the broker.
//! - [`routes`]: the `/v1` handlers, health, metrics and the OpenAPI document.
//! - [`openapi`]: the OpenAPI 3.1 description of the API.
//! - [`metrics`]: every metric the gateway exports.
//! - [`server`]: the router and `serve(listener, gateway, shutdown)`.

pub mod auth;
pub mod config;
pub mod error;
pub mod metrics;
pub mod openapi;
pub mod producer;
pub mod request;
pub mod routes;
pub mod server;

pub use config::GatewayConfig;
pub use server::{Gateway, serve};
