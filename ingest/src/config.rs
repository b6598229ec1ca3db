//! Gateway settings.

use std::time::Duration;

/// Limits and timeouts of the HTTP gateway.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Largest request body accepted, in bytes; larger ones get 413.
    pub max_body_bytes: usize,
    /// Most commands in one `POST /v1/commands:batch`.
    pub max_batch_commands: usize,
    /// Longest a `?wait=applied` request waits before answering 202 "pending".
    pub wait_timeout: Duration,
    /// Most invoices on one page of `GET /v1/invoices`.
    pub max_page_size: usize,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            max_body_bytes: 8 << 20,
            max_batch_commands: 10_000,
            wait_timeout: Duration::from_secs(30),
            max_page_size: 500,
        }
    }
}
