//! Moderation: room bans (by the room's owner or an admin) and account
//! suspensions (admins).

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use crate::auth::AuthUser;
use crate::cache::RoomMeta;
use crate::domain::{RoomName, Username};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::models::User;
use crate::store::moderation::BanEnd;

/// Longest timed ban: ten years (longer is "until lifted").
const MAX_BAN_MINUTES: i64 = 10 * 365 * 24 * 60;

#[derive(Deserialize)]
pub struct NewBan {
    username: String,
    #[serde(default)]
    minutes: Option<i64>,
}

/// The room, for its owner or an admin (a private room is found for an
/// admin too); anyone else learns no more than the room's visibility allows.
async fn moderated_room(state: &AppState, auth: &AuthUser, name: &str) -> Result<RoomMeta, ApiError> {
    let room = if auth.admin {
        let name = RoomName::parse(name)?;
        state.access.room(&name).await?.ok_or_else(ApiError::not_found_room)?
    } else {
        state.access.visible_room(&auth.user, name).await?
    };
    if !auth.admin && room.owner_id != Some(auth.user.id) {
        return Err(ApiError::Forbidden("only the room's owner or an admin can ban".into()));
    }
    Ok(room)
}

async fn user_named(state: &AppState, name: &str) -> Result<User, ApiError> {
    let username = Username::parse(name)?;
    let (user, _) =
        state.store.user_by_name(username.as_str()).await?.ok_or_else(|| ApiError::NotFound("user not found".into()))?;
    Ok(user)
}

/// `POST /api/v1/rooms/{name}/bans` `{"username","minutes"?}`.
pub async fn ban_user(
    state: web::Data<AppState>,
    auth: AuthUser,
    path: web::Path<String>,
    body: web::Json<NewBan>,
) -> Result<HttpResponse, ApiError> {
    let room = moderated_room(&state, &auth, &path).await?;
    let end = match body.minutes {
        None => BanEnd::Lifted,
        Some(m) if (1..=MAX_BAN_MINUTES).contains(&m) => BanEnd::At(chrono::Utc::now() + chrono::Duration::minutes(m)),
        Some(_) => return Err(ApiError::BadRequest(format!("minutes must be between 1 and {MAX_BAN_MINUTES}, or absent"))),
    };
    let user = user_named(&state, &body.username).await?;
    if user.id == auth.user.id {
        return Err(ApiError::BadRequest("you cannot ban yourself".into()));
    }
    if room.owner_id == Some(user.id) {
        return Err(ApiError::BadRequest("the room's owner cannot be banned from it".into()));
    }
    state.access.ban(&room, user.id, end, auth.user.id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `DELETE /api/v1/rooms/{name}/bans/{username}`.
pub async fn lift_ban(
    state: web::Data<AppState>,
    auth: AuthUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (room, username) = path.into_inner();
    let room = moderated_room(&state, &auth, &room).await?;
    let user = user_named(&state, &username).await?;
    if !state.access.lift_ban(&room, user.id).await? {
        return Err(ApiError::NotFound("no ban for this user in this room".into()));
    }
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /api/v1/admin/users/{username}/suspension`: every session revoked
/// at once; signing in answers 403 until lifted.
pub async fn suspend_user(state: web::Data<AppState>, auth: AuthUser, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let user = user_named(&state, &path).await?;
    if user.id == auth.user.id {
        return Err(ApiError::BadRequest("you cannot suspend yourself".into()));
    }
    state.access.suspend(user.id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `DELETE /api/v1/admin/users/{username}/suspension`.
pub async fn reinstate_user(
    state: web::Data<AppState>,
    auth: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let user = user_named(&state, &path).await?;
    state.store.set_suspended(user.id, false).await?;
    Ok(HttpResponse::NoContent().finish())
}
