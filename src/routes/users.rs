//! `POST /api/v1/users` (sign up) and `GET /api/v1/me`.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::auth::AuthUser;
use crate::domain::{Password, Username};
use crate::error::ApiError;
use crate::limits::creation::Creation;
use crate::state::AppState;
use crate::store::StoreError;

#[derive(Deserialize)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

#[derive(Serialize)]
struct CreatedUser<'a> {
    id: String,
    username: &'a str,
}

pub async fn create_user(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<Credentials>,
) -> Result<HttpResponse, ApiError> {
    let Credentials { username, password } = body.into_inner();
    let username = Username::parse(&username)?;
    let password = Password::parse(&password)?;
    state.limits.creations.admit(Creation::Account, state.limits.client_ip(&req)).await?;
    // Cheap check first so a taken name does not cost a hash.
    if state.store.user_by_name(username.as_str()).await?.is_some() {
        return Err(ApiError::Conflict("username is taken".into()));
    }
    let hash = state.hasher.hash(password).await?;
    let user = state.store.create_user(&username, Some(&hash), false).await.map_err(|e| match e {
        StoreError::Conflict(_) => ApiError::Conflict("username is taken".into()),
        other => other.into(),
    })?;
    Ok(HttpResponse::Created().json(CreatedUser { id: user.id.to_string(), username: user.username.as_str() }))
}

pub async fn get_me(auth: AuthUser) -> HttpResponse {
    HttpResponse::Ok().json(&auth.user)
}
