//! Configuration from the environment (the contract's variables plus documented
//! knobs), in sections: each module is handed the section it uses.
//!
//! Every variable has a safe default; a bad value is a one-line error naming the
//! variable, never a panic.

mod env;
mod sections;

use std::path::PathBuf;

pub use env::ConfigError;
pub use sections::{
    AccountsConfig, CacheConfig, ClusterConfig, DatabaseConfig, DrainConfig, HttpConfig, LimitsConfig, ObservabilityConfig,
    RedisConfig, RoomsConfig, SessionPolicy, SocketConfig, WriterConfig,
};

use env::Env;

/// Where messages are stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Database {
    /// A PostgreSQL server (`postgres://…`): any number of instances.
    Postgres { url: String },
    /// The embedded SQLite file: one instance, nothing to set up.
    Sqlite { path: PathBuf },
}

impl Database {
    /// For logs: the URL without its password, or the file.
    pub fn describe(&self) -> String {
        match self {
            Database::Postgres { url } => redact_url(url),
            Database::Sqlite { path } => format!("sqlite://{}", path.display()),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub http: HttpConfig,
    pub database: DatabaseConfig,
    pub redis: RedisConfig,
    pub writer: WriterConfig,
    pub rooms: RoomsConfig,
    pub sockets: SocketConfig,
    pub limits: LimitsConfig,
    pub drain: DrainConfig,
    pub cache: CacheConfig,
    pub observability: ObservabilityConfig,
    pub cluster: ClusterConfig,
    pub accounts: AccountsConfig,
    /// Test-only fault injection frames (`ws::test_hooks`).
    pub test_hooks: bool,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::read(&Env::new(lookup))
    }

    /// Every variable read, with its default as the documentation states it.
    pub fn defaults() -> Vec<(&'static str, String)> {
        let env = Env::new(|_: &str| None);
        // The defaults are valid (a unit test says so); the list is complete either way.
        let _ = Self::read(&env);
        env.defaults.into_inner()
    }

    fn read<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let config = Config {
            http: HttpConfig::parse(env)?,
            database: DatabaseConfig::parse(env)?,
            redis: RedisConfig::parse(env)?,
            writer: WriterConfig::parse(env)?,
            rooms: RoomsConfig::parse(env)?,
            sockets: SocketConfig::parse(env)?,
            limits: LimitsConfig::parse(env)?,
            drain: DrainConfig::parse(env)?,
            cache: CacheConfig::parse(env)?,
            observability: ObservabilityConfig::parse(env)?,
            cluster: ClusterConfig::parse(env)?,
            accounts: AccountsConfig::parse(env)?,
            test_hooks: env.bool("SWITCHBOARD_TEST_HOOKS", false)?,
        };
        config.check_embedded_database(env)?;
        Ok(config)
    }

    /// The embedded database serves one instance: refuse what means several.
    fn check_embedded_database<F: Fn(&str) -> Option<String>>(&self, env: &Env<F>) -> Result<(), ConfigError> {
        let Database::Sqlite { path } = &self.database.kind else { return Ok(()) };
        let shared = if self.redis.url.is_some() {
            "REDIS_URL"
        } else if !self.redis.cluster_urls.is_empty() {
            "REDIS_CLUSTER_URLS"
        } else if self.database.replica_url.is_some() {
            "DATABASE_REPLICA_URL"
        } else {
            return Ok(());
        };
        Err(ConfigError::new(
            "DATABASE_URL",
            env.raw("DATABASE_URL").unwrap_or_else(|| format!("unset: sqlite://{}", path.display())),
            format!(
                "{shared} is set, which means several instances (or a replica), but the embedded SQLite database serves one; \
                 set DATABASE_URL to a PostgreSQL URL (postgres://user@host:5432/switchboard) shared by every instance"
            ),
        ))
    }
}

/// The URL with any password replaced, for logs and error messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            if userinfo.contains(':') {
                format!("{scheme}://{user}:***@{host}{tail}")
            } else {
                format!("{scheme}://{user}@{host}{tail}")
            }
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::time::Duration;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(move |k| map.get(k).cloned())
    }

    #[test]
    fn the_embedded_database_is_the_default_and_refused_beside_redis() {
        let c = config(&[("DATA_DIR", "/srv/chat")]).expect("valid");
        assert_eq!(c.database.kind, Database::Sqlite { path: PathBuf::from("/srv/chat/switchboard.db") });
        let c = config(&[("DATABASE_URL", "sqlite:///tmp/x.db")]).expect("valid");
        assert_eq!(c.database.kind, Database::Sqlite { path: PathBuf::from("/tmp/x.db") });
        let c = config(&[("DATABASE_URL", "postgres://u@h/db")]).expect("valid");
        assert_eq!(c.database.kind, Database::Postgres { url: "postgres://u@h/db".into() });
        for (var, value) in [
            ("REDIS_URL", "redis://127.0.0.1:6379"),
            ("REDIS_CLUSTER_URLS", "redis://a:1"),
            ("DATABASE_REPLICA_URL", "postgres://r/db"),
        ] {
            let err = config(&[(var, value)]).expect_err("SQLite with a shared service").to_string();
            assert!(err.starts_with("DATABASE_URL: ") && err.contains(var) && err.contains("postgres://"), "{err}");
        }
        assert!(config(&[("REDIS_URL", "redis://h"), ("DATABASE_URL", "postgres://u@h/db")]).is_ok());
    }

    #[test]
    fn defaults_match_the_contract() {
        let c = config(&[]).expect("defaults are valid");
        assert_eq!(c.http.bind_addr.to_string(), "0.0.0.0:8080");
        assert_eq!(c.database.kind, Database::Sqlite { path: PathBuf::from("./data/switchboard.db") });
        assert!(c.redis.url.is_none());
        assert!(c.accounts.allow_guests);
        assert_eq!(c.sockets.rate_limit_per_sec, 20.0);
        assert_eq!(c.sockets.rate_limit_burst, 40.0);
        assert_eq!(c.rooms.replay_limit, 1000);
        assert_eq!(c.accounts.sessions.idle, Duration::from_secs(30 * 86_400));
        assert_eq!(c.accounts.sessions.max_age, Duration::from_secs(90 * 86_400));
        assert_eq!(c.accounts.sessions.guest_retention, Duration::from_secs(7 * 86_400));
        assert_eq!((c.limits.signups_per_min, c.limits.guests_per_min), (10, 30));
        assert_eq!(c.accounts.sessions.touch_every(), Duration::from_secs(3600));
        assert_eq!(c.rooms.default_rooms.iter().map(|r| r.as_str()).collect::<Vec<_>>(), vec!["general"]);
    }

    #[test]
    fn traces_are_off_by_default_and_bad_otel_settings_name_their_variable() {
        let c = config(&[]).expect("defaults are valid");
        assert_eq!(c.observability.traces.endpoint, None);
        assert_eq!(c.observability.traces.slow_delivery, Duration::from_millis(100));
        let on = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")];
        assert_eq!(config(&on).expect("valid").observability.traces.endpoint.as_deref(), Some("http://collector:4318"));
        let off = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"), ("OTEL_SDK_DISABLED", "true")];
        assert_eq!(config(&off).expect("valid").observability.traces.endpoint, None);
        let none = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"), ("OTEL_TRACES_EXPORTER", "none")];
        assert_eq!(config(&none).expect("valid").observability.traces.endpoint, None);
        for (vars, var) in [
            (vec![("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4318")], "OTEL_EXPORTER_OTLP_ENDPOINT"),
            (vec![("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "collector:4318")], "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            (
                vec![("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"), ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")],
                "OTEL_EXPORTER_OTLP_PROTOCOL",
            ),
            (vec![("OTEL_TRACES_SAMPLER", "sometimes")], "OTEL_TRACES_SAMPLER"),
            (vec![("OTEL_TRACES_SAMPLER", "traceidratio"), ("OTEL_TRACES_SAMPLER_ARG", "1.5")], "OTEL_TRACES_SAMPLER_ARG"),
            (vec![("OTEL_TRACES_EXPORTER", "zipkin")], "OTEL_TRACES_EXPORTER"),
            (vec![("SLOW_DELIVERY_MS", "soon")], "SLOW_DELIVERY_MS"),
        ] {
            let err = config(&vars).unwrap_err().to_string();
            assert!(err.starts_with(&format!("{var}:")), "{err}");
        }
    }

    #[test]
    fn default_rooms_can_be_listed_or_turned_off() {
        let c = config(&[("DEFAULT_ROOMS", " lobby, help ,lobby")]).expect("valid");
        assert_eq!(c.rooms.default_rooms.iter().map(|r| r.as_str()).collect::<Vec<_>>(), vec!["lobby", "help"]);
        assert!(config(&[("DEFAULT_ROOMS", "")]).expect("valid").rooms.default_rooms.is_empty());
        let err = config(&[("DEFAULT_ROOMS", "Not A Room")]).unwrap_err().to_string();
        assert!(err.starts_with("DEFAULT_ROOMS:"), "{err}");
    }

    #[test]
    fn session_days_accept_fractions_and_refuse_nonsense() {
        let c = config(&[("SESSION_IDLE_DAYS", "0.5")]).expect("valid");
        assert_eq!(c.accounts.sessions.idle, Duration::from_secs(43_200));
        for bad in ["0", "-1", "NaN", "inf", "soon"] {
            let err = config(&[("GUEST_RETENTION_DAYS", bad)]).unwrap_err().to_string();
            assert!(err.starts_with("GUEST_RETENTION_DAYS:"), "{err}");
        }
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = config(&[("RATE_LIMIT_PER_SEC", "fast")]).unwrap_err().to_string();
        assert!(err.starts_with("RATE_LIMIT_PER_SEC:"), "{err}");
        for bad in ["nowhere", "localhost", ":8080", "localhost:http", "localhost:99999"] {
            let err = config(&[("BIND_ADDR", bad)]).unwrap_err().to_string();
            assert!(err.starts_with("BIND_ADDR:") && err.contains("address and port"), "{err}");
        }
        let c = config(&[("BIND_ADDR", "localhost:8081")]).expect("a host name is resolved");
        assert_eq!(c.http.bind_addr, std::net::SocketAddr::from(([127, 0, 0, 1], 8081)));
        let c = config(&[("BIND_ADDR", "[::1]:8082")]).expect("IPv6");
        assert_eq!(c.http.bind_addr.port(), 8082);
        let err = config(&[("REDIS_URL", "localhost:6379")]).unwrap_err().to_string();
        assert!(err.starts_with("REDIS_URL:"), "{err}");
        let err = config(&[("ALLOW_GUESTS", "maybe")]).unwrap_err().to_string();
        assert!(err.starts_with("ALLOW_GUESTS:"), "{err}");
        for bad in ["cdn.example.com", "https://", "https://cdn\"x", "https://cdn/?v=1", "javascript:alert(1)"] {
            let err = config(&[("ASSET_BASE_URL", bad)]).unwrap_err().to_string();
            assert!(err.starts_with("ASSET_BASE_URL:"), "{err}");
        }
        let c = config(&[("ASSET_BASE_URL", "https://cdn.example.com/sb/")]).expect("valid");
        assert_eq!(c.http.asset_base_url.as_deref(), Some("https://cdn.example.com/sb"));
    }

    #[test]
    fn admins_are_case_insensitive() {
        let c = config(&[("ADMIN_USERNAMES", " Alice, bob ,,")]).expect("valid");
        assert!(c.accounts.is_admin("alice"));
        assert!(c.accounts.is_admin("BOB"));
        assert!(!c.accounts.is_admin("carol"));
    }

    /// The variables a Markdown table documents, each with its default cell
    /// (a row may name several variables, their defaults split by " / " or
    /// ", "; where the counts differ, only the first is taken as documented).
    fn documented(file: &str) -> HashMap<String, String> {
        let path = format!("{}/{file}", env!("CARGO_MANIFEST_DIR"));
        let doc = std::fs::read_to_string(&path).expect(file);
        let mut documented = HashMap::new();
        for row in doc.lines().filter(|l| l.starts_with("| `")) {
            let cells: Vec<&str> = row.trim_matches('|').split(" | ").map(str::trim).collect();
            let (Some(names), Some(defaults)) = (cells.first(), cells.get(1)) else { continue };
            let vars: Vec<&str> = names.split('`').skip(1).step_by(2).collect();
            let parts: Vec<&str> = defaults.split(" / ").flat_map(|p| p.split(", ")).collect();
            let split = parts.len() == vars.len();
            for (i, var) in vars.iter().enumerate().take(if split { vars.len() } else { 1 }) {
                let part = if split { parts[i] } else { defaults };
                documented.insert(var.to_string(), part.replace('`', "").trim().to_string());
            }
        }
        documented
    }

    fn agrees(doc: &str, default: &str) -> bool {
        doc == default || (default == "unset" && doc.starts_with("unset"))
    }

    /// docs/api.md's configuration table is the operator's reference: it
    /// must list every variable read here, each with its true default; the
    /// README's shorter table must not contradict the code either.
    #[test]
    fn the_documented_tables_list_every_variable_with_its_default() {
        let (api, readme) = (documented("docs/api.md"), documented("README.md"));
        let mut wrong = Vec::new();
        for (var, default) in Config::defaults() {
            match api.get(var) {
                None => wrong.push(format!("{var}: not in docs/api.md")),
                Some(doc) if agrees(doc, &default) => {}
                Some(doc) => wrong.push(format!("{var}: docs/api.md says {doc:?}, the code {default:?}")),
            }
            if let Some(doc) = readme.get(var).filter(|doc| !agrees(doc, &default)) {
                wrong.push(format!("{var}: README.md says {doc:?}, the code {default:?}"));
            }
        }
        assert!(!readme.is_empty(), "README.md has no variable table");
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact_url("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }
}
