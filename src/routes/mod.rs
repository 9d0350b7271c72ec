//! HTTP routes, one module per resource, and the JSON/query error handlers
//! that keep every failure in the contract's error shape.

pub mod admin;
pub mod health;
pub mod messages;
pub mod metrics;
pub mod moderation;
pub mod rooms;
pub mod sessions;
pub mod sockets;
pub mod static_files;
pub mod users;
pub mod write_guard;

use actix_web::{error::JsonPayloadError, http::Method, web, HttpRequest};

use crate::error::ApiError;

/// Every route once: method(s), pattern, the status a success answers with,
/// and its handler. Mounting and the zero series of the request metric both
/// read this table, so a route cannot be served without being labelled.
macro_rules! route_table {
    ($($method:ident $(| $also:ident)? $pattern:literal $status:literal => $handler:path,)+) => {
        /// (method, route pattern, success status) of every route: the label
        /// values of `switchboard_http_request_duration_seconds`.
        pub const ROUTES: &[(&str, &str, &str)] = &[$((stringify!($method), $pattern, stringify!($status))),+];

        fn table() -> Vec<(&'static str, actix_web::Route)> {
            vec![$(($pattern, route(&[stringify!($method) $(, stringify!($also))?]).to($handler))),+]
        }
    };
}

route_table! {
    POST "/api/v1/users" 201 => users::create_user,
    GET "/api/v1/me" 200 => users::get_me,
    POST "/api/v1/sessions" 200 => sessions::create_session,
    DELETE "/api/v1/sessions" 204 => sessions::delete_session,
    POST "/api/v1/sessions/guest" 200 => sessions::create_guest_session,
    POST "/api/v1/sessions/ticket" 200 => sessions::create_ticket,
    GET "/api/v1/rooms" 200 => rooms::list_rooms,
    POST "/api/v1/rooms" 201 => rooms::create_room,
    POST "/api/v1/dms" 201 => rooms::open_dm,
    GET "/api/v1/rooms/{name}" 200 => rooms::get_room,
    PATCH "/api/v1/rooms/{name}" 200 => rooms::update_room,
    POST "/api/v1/rooms/{name}/members" 204 => rooms::add_member,
    GET "/api/v1/rooms/{name}/members" 200 => rooms::list_members,
    DELETE "/api/v1/rooms/{name}/members/{username}" 204 => rooms::remove_member,
    POST "/api/v1/rooms/{name}/bans" 204 => moderation::ban_user,
    DELETE "/api/v1/rooms/{name}/bans/{username}" 204 => moderation::lift_ban,
    POST "/api/v1/admin/users/{username}/suspension" 204 => moderation::suspend_user,
    DELETE "/api/v1/admin/users/{username}/suspension" 204 => moderation::reinstate_user,
    GET "/api/v1/rooms/{name}/messages" 200 => messages::list_messages,
    PUT "/api/v1/rooms/{name}/read" 204 => rooms::mark_read,
    POST "/api/v1/rooms/{name}/messages" 201 => messages::post_message,
    PATCH "/api/v1/rooms/{name}/messages/{id}" 200 => messages::edit_message,
    DELETE "/api/v1/rooms/{name}/messages/{id}" 204 => messages::delete_message,
    GET "/api/v1/admin/stats" 200 => admin::get_stats,
    GET "/ws" 101 => sockets::connect,
    GET "/healthz" 200 => health::healthz,
    GET "/readyz" 200 => health::readyz,
    GET "/metrics" 200 => metrics::metrics,
    // Pages and assets are compressed once at start-up (see assets.rs).
    // HEAD too: uptime probes and CDNs ask it (actix sends headers only).
    GET | HEAD "/" 200 => static_files::index,
    GET | HEAD "/admin" 200 => static_files::admin,
    GET | HEAD "/static/{file}" 200 => static_files::asset,
}

/// The JSON API; its answers are compressed per request.
const API: &str = "/api/v1";

pub fn configure(cfg: &mut web::ServiceConfig, max_body_bytes: usize) {
    cfg.app_data(web::JsonConfig::default().limit(max_body_bytes).content_type_required(false).error_handler(json_error))
        .app_data(web::PayloadConfig::default().limit(max_body_bytes))
        .app_data(web::PathConfig::default().error_handler(|e, _| ApiError::BadRequest(e.to_string()).into()))
        .app_data(web::QueryConfig::default().error_handler(|e, _| ApiError::BadRequest(e.to_string()).into()));
    // Every worker mounts the routes; their series are exposed once.
    static EXPOSED: std::sync::Once = std::sync::Once::new();
    EXPOSED.call_once(|| {
        for (method, pattern, status) in ROUTES {
            crate::metrics::METRICS.initialise_route(method, pattern, status);
        }
    });
    let mut api = web::scope(API)
        .wrap(actix_web::middleware::from_fn(write_guard::guard_writes))
        .wrap(actix_web::middleware::Compress::default());
    let mut others = Vec::new();
    for (pattern, route) in table() {
        match pattern.strip_prefix(API) {
            Some(rest) => api = api.route(rest, route),
            None => others.push((pattern, route)),
        }
    }
    cfg.service(api);
    for (pattern, route) in others {
        cfg.route(pattern, route);
    }
}

/// A route answering any of `methods` (names from the table above).
fn route(methods: &[&str]) -> actix_web::Route {
    let guard = |m: &str| actix_web::guard::Method(Method::from_bytes(m.as_bytes()).expect("the table names HTTP methods"));
    let mut any = actix_web::guard::Any(guard(methods[0]));
    for m in &methods[1..] {
        any = any.or(guard(m));
    }
    web::route().guard(any)
}

fn json_error(err: JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    let api = match &err {
        JsonPayloadError::Overflow { limit } | JsonPayloadError::OverflowKnownLength { limit, .. } => {
            ApiError::TooLarge(format!("request bodies are limited to {limit} bytes"))
        }
        JsonPayloadError::Payload(actix_web::error::PayloadError::Overflow) => {
            ApiError::TooLarge("request body too large".into())
        }
        JsonPayloadError::Deserialize(e) => ApiError::BadRequest(format!("invalid JSON body: {e}")),
        other => ApiError::BadRequest(format!("invalid request body: {other}")),
    };
    api.into()
}

/// Unknown paths and methods answer in the contract's shape too.
pub async fn not_found(req: HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!("no route for {} {}", req.method(), req.path().chars().take(200).collect::<String>())))
}
