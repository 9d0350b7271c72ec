//! Session expiry: a token unused for `SESSION_IDLE_DAYS`, or older than
//! `SESSION_MAX_DAYS`, stops working.
//!
//! Expiry is judged on every authentication from the session's two times,
//! which the token cache carries, so a cached token expires on time too.
//! Use is written back at most every `touch_every` per token and instance
//! (an UPDATE per active token now and then, not per request); this
//! instance's own newer record counts even while the cache holds older times.

use std::time::Duration;

use chrono::{DateTime, Utc};
use moka::future::Cache;

use crate::config::SessionPolicy;
use crate::domain::TokenHash;
use crate::error::ApiError;
use crate::store::models::SessionInfo;
use crate::store::Store;

pub struct SessionClock {
    policy: SessionPolicy,
    /// When this instance last recorded use, per token.
    touched: Cache<TokenHash, DateTime<Utc>>,
}

impl SessionClock {
    pub fn new(policy: SessionPolicy) -> Self {
        let touched = Cache::builder().max_capacity(1_000_000).time_to_live(policy.idle).build();
        SessionClock { policy, touched }
    }

    pub fn policy(&self) -> &SessionPolicy {
        &self.policy
    }

    /// When the session stops working even if used: its maximum age.
    pub fn hard_expiry(&self, info: &SessionInfo) -> DateTime<Utc> {
        info.created_at + chrono::Duration::from_std(self.policy.max_age).unwrap_or(chrono::Duration::MAX)
    }

    /// Refuses an expired session; records use when it is due.
    pub async fn admit(&self, store: &Store, token: &TokenHash, info: &SessionInfo) -> Result<(), ApiError> {
        let now = Utc::now();
        let last_used = match self.touched.get(token).await {
            Some(t) if t > info.last_used_at => t,
            _ => info.last_used_at,
        };
        if expired(now, info.created_at, last_used, &self.policy) {
            return Err(ApiError::Unauthorized("the session has expired; sign in again".into()));
        }
        if elapsed(now, last_used) >= self.policy.touch_every() {
            self.touch(store, token, now).await;
        }
        Ok(())
    }

    /// Records use now (a WebSocket that stays open keeps its token alive).
    pub async fn touch(&self, store: &Store, token: &TokenHash, now: DateTime<Utc>) {
        self.touched.insert(*token, now).await;
        let (store, token) = (store.clone(), *token);
        actix::spawn(async move {
            if let Err(e) = store.touch_session(&token).await {
                log::debug!("could not record session use: {e}");
            }
        });
    }
}

fn elapsed(now: DateTime<Utc>, then: DateTime<Utc>) -> Duration {
    (now - then).to_std().unwrap_or(Duration::ZERO)
}

/// Whether a session with these times has expired at `now`.
pub fn expired(now: DateTime<Utc>, created: DateTime<Utc>, last_used: DateTime<Utc>, policy: &SessionPolicy) -> bool {
    elapsed(now, created) >= policy.max_age || elapsed(now, last_used) >= policy.idle
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_and_age_limits() {
        let day = Duration::from_secs(86_400);
        let p = SessionPolicy { idle: day * 30, max_age: day * 90, guest_retention: day * 7 };
        let now = Utc::now();
        let ago = |d: u32| now - chrono::Duration::days(i64::from(d));
        assert!(!expired(now, ago(10), ago(1), &p));
        assert!(expired(now, ago(40), ago(30), &p), "idle 30 days");
        assert!(!expired(now, ago(89), ago(0), &p));
        assert!(expired(now, ago(90), ago(0), &p), "90 days old, however used");
        // Clocks that disagree (a time in the future) never expire a session.
        assert!(!expired(now, now + chrono::Duration::days(1), now + chrono::Duration::days(1), &p));
    }
}
