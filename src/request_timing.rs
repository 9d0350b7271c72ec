//! Request timing for every HTTP request: an id (the caller's `X-Request-Id`
//! when it is sane, else a fresh one) echoed in the response, one log line
//! with method, route pattern, status and duration, a warning when slow, and
//! the duration histogram. Never the raw path or query: they carry tokens
//! and private room names.

use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::rc::Rc;
use std::time::{Duration, Instant};

use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::Method;

use crate::metrics::METRICS;
use crate::telemetry::request::RequestTrace;
use crate::telemetry::slow::{self, SlowKind, SlowOp};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Accepts what a balancer or client sent when it is a plain token of at
/// most 64 characters; anything else is replaced, so logs stay clean.
fn incoming_id(req: &ServiceRequest) -> Option<String> {
    let v = req.headers().get(&REQUEST_ID)?.to_str().ok()?;
    let ok = !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    ok.then(|| v.to_string())
}

/// Methods outside this set are labelled `OTHER`, keeping label sets bounded.
pub fn method_label(m: &Method) -> &'static str {
    match m.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "OTHER",
    }
}

pub struct RequestTiming {
    slow: Duration,
}

impl RequestTiming {
    pub fn new(slow: Duration) -> Self {
        RequestTiming { slow }
    }
}

impl<S, B> Transform<S, ServiceRequest> for RequestTiming
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Transform = RequestTimingService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequestTimingService { service: Rc::new(service), slow: self.slow }))
    }
}

pub struct RequestTimingService<S> {
    service: Rc<S>,
    slow: Duration,
}

impl<S, B> Service<ServiceRequest> for RequestTimingService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let start = Instant::now();
        let id = incoming_id(&req).unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
        let method = method_label(req.method());
        let slow = self.slow;
        let trace = RequestTrace::start(req.headers().get("traceparent").and_then(|v| v.to_str().ok()));
        let fut = self.service.call(req);
        Box::pin(async move {
            let mut res = trace.clone().scope(fut).await?;
            let elapsed = start.elapsed();
            let route = res.request().match_pattern().unwrap_or_else(|| "unmatched".into());
            let status = res.status();
            METRICS.http_duration.with_label_values(&[method, &route, status.as_str()]).observe(elapsed.as_secs_f64());
            if let Ok(value) = HeaderValue::from_str(&id) {
                res.headers_mut().insert(REQUEST_ID, value);
            }
            let ms = elapsed.as_secs_f64() * 1000.0;
            let is_slow = elapsed >= slow;
            let t = trace.trace;
            if is_slow {
                METRICS.http_slow_requests.inc();
                log::warn!(target: "switchboard::http", "slow request {id}: {method} {route} {} {ms:.1} ms trace={t}", status.as_u16());
                slow::record(SlowOp {
                    at_ms: chrono::Utc::now().timestamp_millis(),
                    kind: SlowKind::Request,
                    what: format!("{method} {route} {}", status.as_u16()),
                    total_ms: slow::ms(elapsed),
                    stages: Vec::new(),
                    trace_id: Some(t.to_string()),
                });
            } else {
                log::info!(target: "switchboard::http", "{id} {method} {route} {} {ms:.1} ms trace={t}", status.as_u16());
            }
            trace.finish(method, &route, status.as_u16(), start, start + elapsed, is_slow);
            Ok(res)
        })
    }
}
