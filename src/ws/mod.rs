//! The WebSocket edge: the upgrade, one `Session` actor per connection and
//! the plain-data cores it asks (the index of live connections, for
//! revocation and draining, is `crate::connections`).

pub mod admission;
pub mod outbound;
pub mod protocol;
pub mod rate_limit;
pub mod session;
pub mod streams;
pub mod test_hooks;
pub mod timers;
pub mod upgrade;

/// Every error code's counter (`switchboard_ws_errors_total`), at zero from start-up.
pub fn expose_metrics() {
    let metrics = &crate::metrics::METRICS;
    metrics.expose(&metrics.ws_errors, crate::error::ErrorCode::ALL.map(crate::error::ErrorCode::as_str));
}
