//! HTTP routes, one module per resource, and the JSON/query error handlers
//! that keep every failure in the contract's error shape.

pub mod admin;
pub mod health;
pub mod messages;
pub mod metrics;
pub mod rooms;
pub mod sessions;
pub mod static_files;
pub mod users;

use actix_web::{error::JsonPayloadError, web, HttpRequest};

use crate::error::ApiError;

pub fn configure(cfg: &mut web::ServiceConfig, max_body_bytes: usize) {
    cfg.app_data(web::JsonConfig::default().limit(max_body_bytes).content_type_required(false).error_handler(json_error))
        .app_data(web::PayloadConfig::default().limit(max_body_bytes))
        .app_data(web::PathConfig::default().error_handler(|e, _| ApiError::BadRequest(e.to_string()).into()))
        .app_data(web::QueryConfig::default().error_handler(|e, _| ApiError::BadRequest(e.to_string()).into()))
        .service(
            web::scope("/api/v1")
                .wrap(actix_web::middleware::Compress::default())
                .route("/users", web::post().to(users::create_user))
                .route("/me", web::get().to(users::get_me))
                .route("/sessions", web::post().to(sessions::create_session))
                .route("/sessions", web::delete().to(sessions::delete_session))
                .route("/sessions/guest", web::post().to(sessions::create_guest_session))
                .route("/sessions/ticket", web::post().to(sessions::create_ticket))
                .route("/rooms", web::get().to(rooms::list_rooms))
                .route("/rooms", web::post().to(rooms::create_room))
                .route("/rooms/{name}", web::get().to(rooms::get_room))
                .route("/rooms/{name}", web::patch().to(rooms::update_room))
                .route("/rooms/{name}/members", web::post().to(rooms::add_member))
                .route("/rooms/{name}/members", web::get().to(rooms::list_members))
                .route("/rooms/{name}/members/{username}", web::delete().to(rooms::remove_member))
                .route("/rooms/{name}/messages", web::get().to(messages::list_messages))
                .route("/rooms/{name}/messages", web::post().to(messages::post_message))
                .route("/admin/stats", web::get().to(admin::get_stats)),
        )
        .route("/ws", web::get().to(crate::ws::upgrade::connect))
        .route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(metrics::metrics))
        // Pages and assets are compressed once at start-up (see assets.rs).
        // HEAD too: uptime probes and CDNs ask it (actix sends headers only).
        .route("/", web::route().guard(get_or_head()).to(static_files::index))
        .route("/admin", web::route().guard(get_or_head()).to(static_files::admin))
        .route("/static/{file}", web::route().guard(get_or_head()).to(static_files::asset));
}

fn get_or_head() -> impl actix_web::guard::Guard {
    actix_web::guard::Any(actix_web::guard::Get()).or(actix_web::guard::Head())
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
