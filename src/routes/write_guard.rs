//! HTTP writes while the database does not commit.
//!
//! Every write (any method but GET/HEAD; a ticket, kept in memory or
//! Redis, is not a write) answers 503 `unavailable` at once while the
//! writer's breaker says commits are stuck, and within `WRITE_TIMEOUT_MS`
//! (plus a moment, so a handler's own answer wins the race) otherwise: a
//! sign-up or a sign-in whose commit hangs must not keep its caller
//! waiting for as long as the hang lasts.

use std::time::{Duration, Instant};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, Error};

use crate::error::ApiError;
use crate::state::AppState;

/// Lets the handler's own deadline answer first.
const MARGIN: Duration = Duration::from_millis(250);

fn is_write(req: &ServiceRequest) -> bool {
    !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) && !req.path().ends_with("/sessions/ticket")
}

pub async fn guard_writes<B: MessageBody>(req: ServiceRequest, next: Next<B>) -> Result<ServiceResponse<EitherBody<B>>, Error> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let (Some(state), true) = (state, is_write(&req)) else {
        return next.call(req).await.map(ServiceResponse::map_into_left_body);
    };
    let verdict = state.writer.health().verdict(Instant::now());
    if verdict.refuses() {
        crate::metrics::METRICS.writer_refused.inc();
        let err = ApiError::Unavailable(format!("the database is not committing ({}); try again shortly", verdict.describe()));
        return Ok(req.error_response(err).map_into_right_body());
    }
    // (The request cannot be kept for the answer: routing needs it unshared.
    // An error is turned into its response further out.)
    match tokio::time::timeout(state.writer.write_timeout() + MARGIN, next.call(req)).await {
        Ok(response) => response.map(ServiceResponse::map_into_left_body),
        Err(_) => Err(ApiError::Unavailable("the database did not answer in time".into()).into()),
    }
}
