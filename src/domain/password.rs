use super::ParseError;

/// 8..=256 characters. Never logged, never serialised.
pub struct Password(String);

impl Password {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let n = s.chars().count();
        if (8..=256).contains(&n) && !s.contains('\u{0}') {
            Ok(Password(s.to_string()))
        } else {
            Err(ParseError("password must be 8-256 characters".into()))
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_rules() {
        assert!(Password::parse("1234567").is_err());
        assert!(Password::parse("12345678").is_ok());
        assert!(Password::parse(&"p".repeat(256)).is_ok());
        assert!(Password::parse(&"p".repeat(257)).is_err());
        assert_eq!(format!("{:?}", Password::parse("secret-password").unwrap()), "Password(***)");
    }
}
