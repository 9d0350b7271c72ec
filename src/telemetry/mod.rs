//! Traces: OpenTelemetry spans over OTLP/HTTP, off unless
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is
//! set. Logs stay with env_logger; the lines about a request or a slow
//! delivery carry its trace id.
//!
//! - `delivery`: one message from socket to sockets, across instances (the
//!   bus carries W3C `traceparent`).
//! - `request`: one HTTP request and the queries and Redis commands it ran.
//! - `export`: finished spans to the SDK's batch processor and exporter.
//! - `slow`: the latest slow deliveries and requests, for `/admin`.

pub mod delivery;
pub mod export;
pub mod ids;
pub mod request;
pub mod sampler;
pub mod slow;

use std::sync::OnceLock;
use std::time::Duration;

use sampler::Sampler;

/// How traces are made; from `OTEL_*` and `SLOW_DELIVERY_MS`.
#[derive(Debug, Clone)]
pub struct TraceConfig {
    /// Some when an OTLP endpoint is configured.
    pub endpoint: Option<String>,
    pub service_name: String,
    pub sampler: Sampler,
    /// Deliveries at least this slow are logged, listed on /admin and their
    /// spans kept whatever the sampler said.
    pub slow_delivery: Duration,
}

struct Settings {
    sampler: Sampler,
    slow_delivery: Duration,
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();
static DEFAULT: Settings = Settings { sampler: Sampler::AlwaysOff, slow_delivery: Duration::from_millis(100) };

fn settings() -> &'static Settings {
    SETTINGS.get().unwrap_or(&DEFAULT)
}

pub fn sampler() -> &'static Sampler {
    &settings().sampler
}

pub fn slow_delivery() -> Duration {
    settings().slow_delivery
}

/// Applies the configuration and, with an endpoint, starts the exporter.
/// Once per process; a second call (tests starting several apps in one
/// process) keeps the first.
pub fn init(config: &TraceConfig, instance_id: &str) -> Result<(), export::ExportError> {
    if SETTINGS.set(Settings { sampler: config.sampler.clone(), slow_delivery: config.slow_delivery }).is_err() {
        return Ok(());
    }
    if let Some(endpoint) = &config.endpoint {
        export::start(&export::ExportSettings {
            service_name: config.service_name.clone(),
            instance_id: instance_id.to_string(),
        })?;
        log::info!("traces: exporting to {endpoint} as {} ({instance_id}), sampler {:?}", config.service_name, config.sampler);
    }
    Ok(())
}

/// Sends the spans still queued; on shutdown.
pub fn flush() {
    export::flush();
}
