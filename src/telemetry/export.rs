//! Hands finished spans to OpenTelemetry's batch processor and OTLP/HTTP
//! exporter. Our spans are rebuilt from timestamps the server takes anyway,
//! once an operation is over (that is when we know whether it was slow, and
//! slow ones are kept whatever the sampler said), so they go straight to the
//! processor as `SpanData` rather than through a live `Tracer`.

use std::borrow::Cow;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use opentelemetry::trace::{SpanContext, SpanKind, Status, TraceFlags, TraceState};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SpanData, SpanEvents, SpanLinks, SpanProcessor};
use opentelemetry_sdk::Resource;

use super::ids::{SpanId, TraceId};

/// One finished span.
#[derive(Debug, Clone)]
pub struct SpanRecord {
    pub name: Cow<'static, str>,
    pub kind: SpanKind,
    pub span: SpanId,
    pub parent: Option<SpanId>,
    /// The parent lives in another process (an HTTP caller, the origin instance).
    pub parent_remote: bool,
    pub start: Instant,
    pub end: Instant,
    pub attributes: Vec<KeyValue>,
    pub error: Option<Cow<'static, str>>,
}

impl SpanRecord {
    pub fn new(name: impl Into<Cow<'static, str>>, parent: Option<SpanId>, start: Instant, end: Instant) -> SpanRecord {
        SpanRecord {
            name: name.into(),
            kind: SpanKind::Internal,
            span: SpanId::random(),
            parent,
            parent_remote: false,
            start,
            end: end.max(start),
            attributes: Vec::new(),
            error: None,
        }
    }

    pub fn kind(mut self, kind: SpanKind) -> Self {
        self.kind = kind;
        self
    }

    pub fn id(mut self, span: SpanId) -> Self {
        self.span = span;
        self
    }

    pub fn attr(mut self, kv: KeyValue) -> Self {
        self.attributes.push(kv);
        self
    }
}

struct Export {
    processor: BatchSpanProcessor,
    scope: InstrumentationScope,
}

static EXPORT: OnceLock<Export> = OnceLock::new();

/// Whether spans are exported at all: without an endpoint nothing is built.
#[inline]
pub fn enabled() -> bool {
    EXPORT.get().is_some()
}

/// Where, as whom and how spans are sent; from the standard variables.
#[derive(Debug, Clone)]
pub struct ExportSettings {
    pub service_name: String,
    pub instance_id: String,
}

/// Starts the exporter (its own thread; `OTEL_EXPORTER_OTLP_ENDPOINT` and the
/// other `OTEL_EXPORTER_OTLP_*` variables are read by the exporter itself).
pub fn start(settings: &ExportSettings) -> Result<(), ExportError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder().with_http().build()?;
    let mut config = BatchConfigBuilder::default();
    // The SDK's default queue (2,048 spans) overflows in bursts of sampled
    // deliveries; the queue is allocated whole (~350 bytes a span), so not
    // much more. An operator's own setting wins.
    if std::env::var_os("OTEL_BSP_MAX_QUEUE_SIZE").is_none() {
        config = config.with_max_queue_size(8_192);
    }
    if std::env::var_os("OTEL_BSP_SCHEDULE_DELAY").is_none() {
        config = config.with_scheduled_delay(Duration::from_secs(1));
    }
    let mut processor = BatchSpanProcessor::builder(exporter).with_batch_config(config.build()).build();
    let resource = Resource::builder()
        .with_service_name(settings.service_name.clone())
        .with_attribute(KeyValue::new("service.instance.id", settings.instance_id.clone()))
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    processor.set_resource(&resource);
    let scope = InstrumentationScope::builder("switchboard").with_version(env!("CARGO_PKG_VERSION")).build();
    EXPORT.set(Export { processor, scope }).map_err(|_| ExportError::StartedTwice)
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("OTEL_EXPORTER_OTLP_ENDPOINT: the trace exporter could not start: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    #[error("the trace exporter was started twice")]
    StartedTwice,
}

/// Sends what is queued; used on shutdown.
pub fn flush() {
    if let Some(export) = EXPORT.get() {
        if let Err(e) = export.processor.force_flush() {
            log::warn!("traces: the last spans could not be sent: {e}");
        }
    }
}

/// Queues one trace's finished spans. `sampled` is the trace's flag as
/// callers downstream saw it; a slow operation's spans arrive here unsampled
/// too and are kept.
pub fn emit(trace: TraceId, sampled: bool, spans: Vec<SpanRecord>) {
    let Some(export) = EXPORT.get() else { return };
    // Instants become wall-clock times against one reading of both clocks.
    let (now, wall) = (Instant::now(), SystemTime::now());
    let at = |t: Instant| match now.checked_duration_since(t) {
        Some(ago) => wall.checked_sub(ago).unwrap_or(wall),
        None => wall + t.duration_since(now),
    };
    let flags = if sampled { TraceFlags::SAMPLED } else { TraceFlags::default() };
    for s in spans {
        let status = match s.error {
            Some(description) => Status::Error { description },
            None => Status::Unset,
        };
        export.processor.on_end(SpanData {
            span_context: SpanContext::new(
                opentelemetry::trace::TraceId::from(trace.0),
                opentelemetry::trace::SpanId::from(s.span.0),
                flags,
                false,
                TraceState::default(),
            ),
            parent_span_id: opentelemetry::trace::SpanId::from(s.parent.map_or(0, |p| p.0)),
            parent_span_is_remote: s.parent_remote,
            span_kind: s.kind,
            name: s.name,
            start_time: at(s.start),
            end_time: at(s.end),
            attributes: s.attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status,
            instrumentation_scope: export.scope.clone(),
        });
    }
}
