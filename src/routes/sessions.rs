//! Sign in, guest sign in, sign out, WebSocket tickets.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::users::Credentials;
use crate::auth::AuthUser;
use crate::domain::{Token, Username};
use crate::error::ApiError;
use crate::limits::creation::Creation;
use crate::state::AppState;
use crate::store::models::{SessionInfo, User};
use crate::store::StoreError;

#[derive(Serialize)]
struct SessionCreated<'a> {
    token: &'a str,
    user: &'a User,
}

#[derive(Deserialize)]
pub struct GuestRequest {
    pub username: String,
}

async fn issue_token(state: &AppState, user: &User) -> Result<HttpResponse, ApiError> {
    let token = Token::generate();
    let hash = token.hash();
    state.store.create_session(&hash, user.id).await?;
    // The database's clock stamps the row; this one is within a round trip.
    let now = chrono::Utc::now();
    let session = SessionInfo { user: user.clone(), created_at: now, last_used_at: now };
    state.access.remember_new_token(&hash, &session).await;
    Ok(HttpResponse::Ok().json(SessionCreated { token: token.as_str(), user }))
}

pub async fn create_session(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<Credentials>,
) -> Result<HttpResponse, ApiError> {
    let ip = state.limits.client_ip(&req);
    state.limits.check_login(ip)?;
    let Credentials { username, password } = body.into_inner();
    let bad = || ApiError::Unauthorized("invalid username or password".into());
    // A name that cannot exist or an absurd password still costs one verify,
    // so timing does not tell which part was wrong.
    let found = if Username::parse(&username).is_ok() { state.store.user_by_name(&username).await? } else { None };
    let (user, hash) = match found {
        Some((user, hash)) if !user.guest => (Some(user), hash),
        _ => (None, None),
    };
    let password = if password.chars().count() <= 256 { password } else { String::new() };
    let ok = state.hasher.verify(password, hash).await?;
    match (ok, user) {
        (true, Some(user)) if state.store.is_suspended(user.id).await? => {
            Err(ApiError::Forbidden("this account is suspended".into()))
        }
        (true, Some(user)) => issue_token(&state, &user).await,
        _ => {
            state.limits.record_login_failure(ip);
            Err(bad())
        }
    }
}

pub async fn create_guest_session(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<GuestRequest>,
) -> Result<HttpResponse, ApiError> {
    if !state.config.accounts.allow_guests {
        return Err(ApiError::Forbidden("guest access is disabled".into()));
    }
    let wanted = Username::parse(&body.username)?;
    state.limits.creations.admit(Creation::Guest, state.limits.client_ip(&req)).await?;
    let mut candidate = wanted.clone();
    for _ in 0..8 {
        match state.store.create_user(&candidate, None, true).await {
            Ok(user) => return issue_token(&state, &user).await,
            Err(StoreError::Conflict(_)) => {
                let suffix: String = (0..4)
                    .map(|_| {
                        let n = rand::random::<u8>() % 36;
                        char::from_digit(u32::from(n), 36).unwrap_or('x')
                    })
                    .collect();
                candidate = wanted.with_suffix(&suffix);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::Conflict("could not find a free guest name; try another".into()))
}

/// Revokes the presented token and closes the sockets it opened, on every instance.
pub async fn delete_session(state: web::Data<AppState>, auth: AuthUser) -> Result<HttpResponse, ApiError> {
    state.access.revoke_token(&auth.token).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Serialize)]
struct TicketIssued<'a> {
    ticket: &'a str,
    /// Seconds (at least 1: a shorter lifetime is for tests).
    expires_in: u64,
}

/// `POST /api/v1/sessions/ticket`: a single-use ticket for `/ws?ticket=`,
/// so the long-lived token stays out of URLs.
pub async fn create_ticket(state: web::Data<AppState>, auth: AuthUser) -> Result<HttpResponse, ApiError> {
    let ticket = state.tickets.issue(&auth.token).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(TicketIssued { ticket: ticket.as_str(), expires_in: state.tickets.ttl().as_secs().max(1) }))
}
