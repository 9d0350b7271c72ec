//! Who is calling: bearer tokens on HTTP; `?ticket=` (or, discouraged,
//! `?token=`) on the WebSocket upgrade. Sessions expire (`expiry`).

pub mod expiry;
pub mod password;
pub mod ticket;

use std::future::Future;
use std::pin::Pin;

use actix_web::{dev::Payload, web, FromRequest, HttpRequest};

use crate::access::Access;
use crate::config::{AccountsConfig, SessionPolicy};
use crate::domain::TokenHash;
use crate::error::ApiError;
use crate::store::models::User;
use crate::store::Store;
use expiry::SessionClock;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub user: User,
    pub token: TokenHash,
    pub admin: bool,
    /// When the session stops working however it is used (its maximum age).
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

impl AuthUser {
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.admin {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "admin only: operators name admins in ADMIN_USERNAMES (comma-separated usernames) and restart the server; \
                 then sign in as one of them"
                    .into(),
            ))
        }
    }
}

/// Turns a presented token into its caller: the token cache, the session
/// clock and who the admins are. HTTP handlers get it through `AuthUser`,
/// the WebSocket upgrade directly.
pub struct Authenticator {
    access: Access,
    store: Store,
    clock: SessionClock,
    accounts: AccountsConfig,
}

impl Authenticator {
    pub fn new(access: Access, store: Store, accounts: AccountsConfig) -> Self {
        let clock = SessionClock::new(accounts.sessions);
        Authenticator { access, store, clock, accounts }
    }

    /// When sessions expire and how often their use is recorded.
    pub fn policy(&self) -> &SessionPolicy {
        self.clock.policy()
    }

    /// Resolves a presented token to its user, or 401.
    pub async fn authenticate(&self, presented: Option<&str>) -> Result<AuthUser, ApiError> {
        let presented = presented.map(str::trim).filter(|t| !t.is_empty() && t.len() <= 256);
        let Some(presented) = presented else {
            return Err(ApiError::unauthorized());
        };
        self.authenticate_hash(TokenHash::of(presented)).await
    }

    /// Resolves a token digest (from a ticket, say) to its live session, or 401.
    pub async fn authenticate_hash(&self, token: TokenHash) -> Result<AuthUser, ApiError> {
        let info = self.access.session_for_token(&token).await?.ok_or_else(ApiError::unauthorized)?;
        self.clock.admit(&self.store, &token, &info).await?;
        let expires_at = self.clock.hard_expiry(&info);
        let user = info.user;
        let admin = !user.guest && self.accounts.is_admin(user.username.as_str());
        Ok(AuthUser { user, token, admin, expires_at })
    }

    /// Records that a token is still in use (an open WebSocket keeps it alive).
    pub async fn touch(&self, token: &TokenHash) {
        self.clock.touch(&self.store, token, chrono::Utc::now()).await;
    }
}

/// The token of `Authorization: Bearer <token>`.
pub fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(actix_web::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token)
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let authenticator = req.app_data::<web::Data<Authenticator>>().cloned();
        let token = bearer_token(req).map(str::to_owned);
        Box::pin(async move {
            let authenticator = authenticator.ok_or_else(|| ApiError::Internal("Authenticator missing".into()))?;
            authenticator.authenticate(token.as_deref()).await
        })
    }
}
