//! The browser client and admin page, embedded in the binary so a deployment
//! is one file.

use actix_web::{web, HttpResponse};

use crate::error::ApiError;

const INDEX_HTML: &str = include_str!("../../static/index.html");
const ADMIN_HTML: &str = include_str!("../../static/admin.html");
const APP_JS: &str = include_str!("../../static/app.js");
const APP_CSS: &str = include_str!("../../static/app.css");
const ADMIN_JS: &str = include_str!("../../static/admin.js");
const ADMIN_CSS: &str = include_str!("../../static/admin.css");

fn html(body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header((
            "Content-Security-Policy",
            "default-src 'self'; connect-src 'self' ws: wss:; style-src 'self'; script-src 'self'; img-src 'self' data:; \
             frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ))
        .insert_header(("X-Frame-Options", "DENY"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .body(body)
}

pub async fn index() -> HttpResponse {
    html(INDEX_HTML)
}

pub async fn admin() -> HttpResponse {
    html(ADMIN_HTML)
}

pub async fn asset(path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let (body, content_type) = match path.as_str() {
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "app.css" => (APP_CSS, "text/css; charset=utf-8"),
        "admin.js" => (ADMIN_JS, "text/javascript; charset=utf-8"),
        "admin.css" => (ADMIN_CSS, "text/css; charset=utf-8"),
        _ => return Err(ApiError::NotFound("no such asset".into())),
    };
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(body))
}
