//! Rooms: list, create, detail, membership.

use std::collections::{HashMap, HashSet};

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::auth::AuthUser;
use crate::cache::RoomMeta;
use crate::domain::{RoomId, RoomName, RoomNamePrefix, Topic, UserId, Username};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::models::{Room, RoomKind};
use crate::store::reads::ReadState;
use crate::store::rooms::{RoomFilter, DM_PREFIX};

#[derive(Serialize)]
pub struct RoomView<'a> {
    name: &'a RoomName,
    topic: &'a str,
    private: bool,
    member_count: i64,
    online_count: usize,
    last_seq: i64,
    kind: RoomKind,
    /// A direct-message room: the other person.
    #[serde(skip_serializing_if = "Option::is_none")]
    with: Option<Username>,
    /// For rooms the caller is a member of: their read marker, and messages
    /// by others after it (up to `UNREAD_CAP`).
    #[serde(skip_serializing_if = "Option::is_none")]
    last_read: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unread: Option<i64>,
}

#[derive(Serialize)]
struct RoomList<'a> {
    rooms: Vec<RoomView<'a>>,
    /// The cursor for the next page (`after`), null at the end.
    next: Option<&'a RoomName>,
}

#[derive(Deserialize)]
pub struct RoomListQuery {
    joined: Option<bool>,
    q: Option<RoomNamePrefix>,
    /// A room name; empty means "from the start".
    after: Option<String>,
    limit: Option<i64>,
}

fn view(room: &Room, member_count: i64, online_count: usize, with: Option<Username>) -> RoomView<'_> {
    RoomView {
        name: &room.name,
        topic: &room.topic,
        private: room.private,
        member_count,
        online_count,
        last_seq: room.last_seq,
        kind: room.kind,
        with,
        last_read: None,
        unread: None,
    }
}

fn meta_view(room: &RoomMeta, member_count: i64, online_count: usize, last_seq: i64, with: Option<Username>) -> RoomView<'_> {
    RoomView {
        name: &room.name,
        topic: &room.topic,
        private: room.private,
        member_count,
        online_count,
        last_seq,
        kind: room.kind,
        with,
        last_read: None,
        unread: None,
    }
}

/// The other person of each direct-message room among `rooms` (others are absent).
async fn partners(state: &AppState, user: UserId, rooms: &[(RoomId, RoomKind)]) -> Result<HashMap<RoomId, Username>, ApiError> {
    let dms: Vec<RoomId> = rooms.iter().filter(|(_, kind)| *kind == RoomKind::Dm).map(|(id, _)| *id).collect();
    Ok(state.store.dm_partners(user, &dms).await?.into_iter().collect())
}

/// Users online in each room, cluster-wide: from the local room actor when the
/// room runs here, else from the presence snapshot in Redis (one pipeline).
async fn online_counts(state: &AppState, rooms: &[RoomId]) -> HashMap<RoomId, usize> {
    let mut counts = HashMap::new();
    let mut elsewhere = Vec::new();
    for &room in rooms {
        if state.registry.get(room).is_some() {
            counts.insert(room, state.registry.online_count(room));
        } else {
            elsewhere.push(room);
        }
    }
    if state.bus.is_shared() && !elsewhere.is_empty() {
        counts.extend(state.registry.presence().online_counts(&elsewhere).await);
    }
    counts
}

/// `GET /api/v1/rooms?joined=&q=&after=&limit=`: by name, a page at a time.
pub async fn list_rooms(
    state: web::Data<AppState>,
    auth: AuthUser,
    query: web::Query<RoomListQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let limit = q.limit.unwrap_or(100);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::BadRequest("limit must be between 1 and 200".into()));
    }
    let filter = RoomFilter {
        joined: q.joined.unwrap_or(false),
        prefix: q.q.map(|p| p.as_str().to_string()).filter(|p| !p.is_empty()),
        after: q.after.filter(|a| !a.is_empty()).map(|a| RoomName::parse(&a)).transpose()?.map(|a| a.as_str().to_string()),
        limit: limit + 1,
    };
    let mut rooms = state.store.list_rooms_for(auth.user.id, &filter).await?;
    let more = rooms.len() as i64 > limit;
    rooms.truncate(limit as usize);
    let visible: Vec<_> = rooms.iter().filter(|s| !(auth.user.guest && s.room.private)).collect();
    let online = online_counts(&state, &visible.iter().map(|s| s.room.id).collect::<Vec<_>>()).await;
    let mut with = partners(&state, auth.user.id, &visible.iter().map(|s| (s.room.id, s.room.kind)).collect::<Vec<_>>()).await?;
    let reads: HashMap<RoomId, ReadState> = state
        .store
        .read_states(auth.user.id, &visible.iter().map(|s| s.room.id).collect::<Vec<_>>())
        .await?
        .into_iter()
        .map(|r| (RoomId(r.room_id), r))
        .collect();
    let views = visible
        .iter()
        .map(|s| {
            let mut v = view(&s.room, s.member_count, online.get(&s.room.id).copied().unwrap_or(0), with.remove(&s.room.id));
            if let Some(r) = reads.get(&s.room.id) {
                (v.last_read, v.unread) = (Some(r.last_read), Some(r.unread));
            }
            v
        })
        .collect();
    let next = more.then(|| rooms.last().map(|s| &s.room.name)).flatten();
    Ok(HttpResponse::Ok().json(RoomList { rooms: views, next }))
}

#[derive(Deserialize)]
pub struct NewRoom {
    name: String,
    #[serde(default)]
    topic: Option<String>,
    #[serde(default)]
    private: Option<bool>,
}

pub async fn create_room(state: web::Data<AppState>, auth: AuthUser, body: web::Json<NewRoom>) -> Result<HttpResponse, ApiError> {
    if auth.user.guest {
        return Err(ApiError::Forbidden("guests cannot create rooms".into()));
    }
    let name = RoomName::parse(&body.name)?;
    if name.as_str().starts_with(DM_PREFIX) {
        return Err(ApiError::BadRequest(format!("room names starting with {DM_PREFIX} are kept for direct messages")));
    }
    let topic = Topic::parse(body.topic.as_deref().unwrap_or(""))?;
    let room = state.store.create_room(&name, &topic, body.private.unwrap_or(false), auth.user.id).await?;
    // A negative entry from an earlier lookup of this name must go everywhere.
    state.caches.rooms.invalidate_grant(&name).await;
    Ok(HttpResponse::Created().json(view(&room, 1, 0, None)))
}

pub async fn get_room(state: web::Data<AppState>, auth: AuthUser, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let room = state.access.visible_room(&auth.user, &path).await?;
    let (last_seq, members) = state.store.room_counts(room.id).await?;
    let online = online_counts(&state, &[room.id]).await.get(&room.id).copied().unwrap_or(0);
    let with = partners(&state, auth.user.id, &[(room.id, room.kind)]).await?.remove(&room.id);
    Ok(HttpResponse::Ok().json(meta_view(&room, members, online, last_seq, with)))
}

#[derive(Deserialize)]
pub struct NewDm {
    username: String,
}

/// `POST /api/v1/dms` `{"username"}`: the direct-message room of the caller
/// and that user (201 when this created it, 200 when it existed). Guests
/// neither start nor receive one.
pub async fn open_dm(state: web::Data<AppState>, auth: AuthUser, body: web::Json<NewDm>) -> Result<HttpResponse, ApiError> {
    if auth.user.guest {
        return Err(ApiError::Forbidden("guests cannot send direct messages".into()));
    }
    let username = Username::parse(&body.username)?;
    let (other, _) =
        state.store.user_by_name(username.as_str()).await?.ok_or_else(|| ApiError::NotFound("user not found".into()))?;
    if other.guest {
        return Err(ApiError::Forbidden("guests cannot receive direct messages".into()));
    }
    if other.id == auth.user.id {
        return Err(ApiError::BadRequest("a direct message needs another user".into()));
    }
    let (room, created) = state.store.open_dm(auth.user.id, other.id).await?;
    // Earlier answers for this name or these memberships (none, for a new
    // room, unless a lookup raced it) go everywhere.
    state.caches.rooms.invalidate_grant(&room.name).await;
    for user in [auth.user.id, other.id] {
        state.caches.members.grant(&crate::cache::Membership(room.id, user), true).await;
    }
    let (last_seq, members) = state.store.room_counts(room.id).await?;
    let online = online_counts(&state, &[room.id]).await.get(&room.id).copied().unwrap_or(0);
    let mut answer = if created { HttpResponse::Created() } else { HttpResponse::Ok() };
    Ok(answer.json(view(&Room { last_seq, ..room.clone() }, members, online, Some(other.username))))
}

#[derive(Deserialize)]
pub struct RoomChange {
    topic: String,
}

/// `PATCH /api/v1/rooms/{name}`: the owner changes the topic.
pub async fn update_room(
    state: web::Data<AppState>,
    auth: AuthUser,
    path: web::Path<String>,
    body: web::Json<RoomChange>,
) -> Result<HttpResponse, ApiError> {
    let room = state.access.visible_room(&auth.user, &path).await?;
    if room.owner_id != Some(auth.user.id) {
        return Err(ApiError::Forbidden("only the room's owner can change it".into()));
    }
    let topic = Topic::parse(&body.topic)?;
    state.access.set_topic(&room, &topic).await?;
    let (last_seq, members) = state.store.room_counts(room.id).await?;
    let online = online_counts(&state, &[room.id]).await.get(&room.id).copied().unwrap_or(0);
    let updated = RoomMeta { topic: topic.as_str().to_string(), ..room };
    Ok(HttpResponse::Ok().json(meta_view(&updated, members, online, last_seq, None)))
}

/// Most members listed (the page shows who is in a room, not a directory).
const MEMBER_LIST_LIMIT: i64 = 1000;

#[derive(Serialize)]
struct MemberView<'a> {
    username: &'a Username,
    owner: bool,
    online: bool,
}

#[derive(Serialize)]
struct MemberList<'a> {
    members: Vec<MemberView<'a>>,
}

/// Users online in the room anywhere in the cluster: the local room actor
/// knows (it hears presence from the other instances); a room not running
/// here is asked of the presence snapshot in Redis.
async fn online_users(state: &AppState, room: RoomId) -> HashSet<UserId> {
    if let Some(addr) = state.registry.get(room) {
        if let Ok(ids) = addr.send(crate::chat::room::OnlineUsers).await {
            return ids.into_iter().collect();
        }
    }
    if state.bus.is_shared() {
        return state.registry.presence().others(room).await.into_iter().map(|r| r.user_id).collect();
    }
    HashSet::new()
}

/// `GET /api/v1/rooms/{name}/members`: members by name, the owner marked,
/// and who is online; a private room only for its members (404 otherwise).
pub async fn list_members(state: web::Data<AppState>, auth: AuthUser, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let room = state.access.visible_room(&auth.user, &path).await?;
    let members = state.store.room_members(room.id, MEMBER_LIST_LIMIT).await?;
    let online = online_users(&state, room.id).await;
    let views =
        members.iter().map(|(id, username, owner)| MemberView { username, owner: *owner, online: online.contains(id) }).collect();
    Ok(HttpResponse::Ok().json(MemberList { members: views }))
}

#[derive(Deserialize)]
pub struct NewMember {
    username: String,
}

pub async fn add_member(
    state: web::Data<AppState>,
    auth: AuthUser,
    path: web::Path<String>,
    body: web::Json<NewMember>,
) -> Result<HttpResponse, ApiError> {
    let room = state.access.visible_room(&auth.user, &path).await?;
    if room.kind == RoomKind::Dm {
        return Err(ApiError::Forbidden("a direct-message room keeps its two members".into()));
    }
    if room.owner_id != Some(auth.user.id) {
        return Err(ApiError::Forbidden("only the room's owner can add members".into()));
    }
    let username = Username::parse(&body.username)?;
    let (user, _) =
        state.store.user_by_name(username.as_str()).await?.ok_or_else(|| ApiError::NotFound("user not found".into()))?;
    if room.private && user.guest {
        return Err(ApiError::BadRequest("guests cannot be members of private rooms".into()));
    }
    if room.private {
        state.access.add_private_member(room.id, user.id).await?;
    } else {
        state.access.add_member(room.id, user.id).await?;
    }
    Ok(HttpResponse::NoContent().finish())
}

/// Removes a member (the owner removes anyone else; anyone may remove
/// themselves). Their open sockets leave the room at once.
pub async fn remove_member(
    state: web::Data<AppState>,
    auth: AuthUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (room_name, username) = path.into_inner();
    let room = state.access.visible_room(&auth.user, &room_name).await?;
    if room.kind == RoomKind::Dm {
        return Err(ApiError::Forbidden("a direct-message room keeps its two members".into()));
    }
    let username = Username::parse(&username)?;
    let (user, _) =
        state.store.user_by_name(username.as_str()).await?.ok_or_else(|| ApiError::NotFound("user not found".into()))?;
    let is_owner = room.owner_id == Some(auth.user.id);
    if !is_owner && user.id != auth.user.id {
        return Err(ApiError::Forbidden("only the room's owner can remove other members".into()));
    }
    if room.owner_id == Some(user.id) {
        return Err(ApiError::BadRequest("the owner cannot be removed".into()));
    }
    if !state.access.remove_member(&room, user.id).await? {
        return Err(ApiError::NotFound("not a member".into()));
    }
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
pub struct ReadUpTo {
    seq: i64,
}

/// `PUT /api/v1/rooms/{name}/read` `{"seq"}`: the caller has read the room
/// up to `seq` (see `ReadMarks::mark`).
pub async fn mark_read(
    state: web::Data<AppState>,
    auth: AuthUser,
    path: web::Path<String>,
    body: web::Json<ReadUpTo>,
) -> Result<HttpResponse, ApiError> {
    state.read_marks.mark(&auth.user, &path, body.seq).await?;
    Ok(HttpResponse::NoContent().finish())
}
