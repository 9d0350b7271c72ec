//! Reading variables: typed, bounded, each bad value a one-line error naming
//! its variable. Every read also notes the variable's default, so the
//! documentation can be checked against the code (`Config::defaults`).

use std::cell::RefCell;
use std::fmt::Display;
use std::time::Duration;

/// A configuration problem, rendered as one line for the operator.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {problem} (got {value:?})")]
pub struct ConfigError {
    pub(super) var: &'static str,
    pub(super) value: String,
    pub(super) problem: String,
}

impl ConfigError {
    pub(super) fn new(var: &'static str, value: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError { var, value: value.into(), problem: problem.into() }
    }
}

/// Reads variables through a lookup function so tests need not touch the
/// process environment.
pub(super) struct Env<F: Fn(&str) -> Option<String>> {
    lookup: F,
    /// (variable, its default as the documentation writes it), in reading order.
    pub(super) defaults: RefCell<Vec<(&'static str, String)>>,
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    pub(super) fn new(lookup: F) -> Self {
        Env { lookup, defaults: RefCell::new(Vec::new()) }
    }

    /// Notes a default (first read wins: some variables are read twice).
    pub(super) fn note(&self, var: &'static str, default: impl Display) {
        let mut defaults = self.defaults.borrow_mut();
        if !defaults.iter().any(|(v, _)| *v == var) {
            defaults.push((var, default.to_string()));
        }
    }

    /// Replaces a noted default with how the documentation states it (one
    /// computed from the machine, say).
    pub(super) fn note_derived(&self, var: &'static str, text: &str) {
        let mut defaults = self.defaults.borrow_mut();
        defaults.retain(|(v, _)| *v != var);
        defaults.push((var, text.to_string()));
    }

    /// The value as set, if set and not blank; notes nothing.
    pub(super) fn raw(&self, var: &'static str) -> Option<String> {
        (self.lookup)(var).filter(|v| !v.trim().is_empty())
    }

    /// The value as set, blank included (for lists where empty means none).
    pub(super) fn set(&self, var: &'static str) -> Option<String> {
        (self.lookup)(var)
    }

    pub(super) fn string(&self, var: &'static str, default: &str) -> String {
        self.note(var, if default.is_empty() { "empty" } else { default });
        self.raw(var).unwrap_or_else(|| default.to_string())
    }

    /// An optional value: unset is `None`.
    pub(super) fn optional(&self, var: &'static str) -> Option<String> {
        self.note(var, "unset");
        self.raw(var)
    }

    pub(super) fn parse<T: std::str::FromStr + Display>(
        &self,
        var: &'static str,
        default: T,
        check: impl Fn(&T) -> bool,
        expected: &str,
    ) -> Result<T, ConfigError> {
        self.note(var, &default);
        let Some(value) = self.raw(var) else {
            return Ok(default);
        };
        match value.trim().parse::<T>() {
            Ok(v) if check(&v) => Ok(v),
            _ => Err(ConfigError::new(var, value, format!("expected {expected}"))),
        }
    }

    pub(super) fn millis(&self, var: &'static str, default_ms: u64, min: u64, max: u64) -> Result<Duration, ConfigError> {
        let expected = format!("milliseconds between {min} and {max}");
        self.parse(var, default_ms, |v| (min..=max).contains(v), &expected).map(Duration::from_millis)
    }

    /// A positive number of days (fractions allowed: tests use seconds).
    pub(super) fn days(&self, var: &'static str, default: f64) -> Result<Duration, ConfigError> {
        let days =
            self.parse(var, default, |v: &f64| v.is_finite() && *v > 0.0 && *v <= 36_500.0, "days, a number in (0, 36500]")?;
        Ok(Duration::from_secs_f64(days * 86_400.0))
    }

    pub(super) fn bool(&self, var: &'static str, default: bool) -> Result<bool, ConfigError> {
        self.note(var, default);
        let Some(value) = self.raw(var) else {
            return Ok(default);
        };
        match value.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(ConfigError::new(var, value, "expected true or false")),
        }
    }

    /// An optional URL with one of these schemes.
    pub(super) fn url(&self, var: &'static str, schemes: &[&str]) -> Result<Option<String>, ConfigError> {
        let Some(value) = self.optional(var) else {
            return Ok(None);
        };
        let value = value.trim().to_string();
        if schemes.iter().any(|s| value.starts_with(&format!("{s}://"))) {
            Ok(Some(value))
        } else {
            Err(ConfigError::new(var, value, format!("expected a URL starting with {}://", schemes.join(":// or "))))
        }
    }

    /// A comma-separated list, trimmed, blanks dropped.
    pub(super) fn list(&self, var: &'static str, default: &str) -> Vec<String> {
        self.string(var, default).split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
    }
}
