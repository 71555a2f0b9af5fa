//! [`ConfigError`]: every problem found while loading, reported together.

use std::fmt;

/// The source of a key no source sets.
pub(crate) const NOT_SET: &str = "not set";

/// One thing wrong with the configuration: which key, where its value came from, what is
/// wrong and how to fix it. Never contains a secret value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The key (`PORT`), or `None` for a problem with a whole file (a TOML syntax error).
    pub key: Option<String>,
    /// Where the value came from: `.env line 4`, `webhook.toml line 2`, `environment`,
    /// `default`, `not set`, or a file path.
    pub source: String,
    /// What is wrong, e.g. `"80a" is not a whole number`.
    pub message: String,
    /// The fix in one sentence, e.g. `set PORT to a whole number from 1 to 65535`.
    pub fix: String,
}

impl fmt::Display for Problem {
    /// `PORT (environment): "80a" is not a whole number; fix: set PORT to …`; a key that is
    /// not set has no source to show: `TWILIO_AUTH_TOKEN: not set: …`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) if self.source == NOT_SET => {
                write!(f, "{key}: {}; fix: {}", self.message, self.fix)
            }
            Some(key) => write!(
                f,
                "{key} ({}): {}; fix: {}",
                self.source, self.message, self.fix
            ),
            None => write!(f, "{}: {}; fix: {}", self.source, self.message, self.fix),
        }
    }
}

/// The configuration cannot be used.
///
/// `Display` prints a header line and then every problem on its own line, indented:
///
/// ```text
/// invalid configuration (2 problems):
///   PORT (environment): "80a" is not a whole number; fix: set PORT to a whole number from 1 to 65535
///   APP_ENV (.env line 2): "prod" is not an environment name; fix: set APP_ENV to development or production
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// One or more values are wrong, or (with `APP_ENV=production`) unsafe. Holds all of them.
    #[error("{}", render(.0))]
    Invalid(Vec<Problem>),
}

impl ConfigError {
    /// Every problem found: problems with files first (in file order), then bad values in the
    /// order of [`KEYS`](crate::KEYS), then what `APP_ENV=production` refuses.
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid(problems) => problems,
        }
    }
}

fn render(problems: &[Problem]) -> String {
    let noun = if problems.len() == 1 {
        "problem"
    } else {
        "problems"
    };
    let mut out = format!("invalid configuration ({} {noun}):", problems.len());
    for p in problems {
        out.push_str("\n  ");
        out.push_str(&p.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_lists_every_problem_on_its_own_line() {
        let err = ConfigError::Invalid(vec![
            Problem {
                key: Some("PORT".into()),
                source: "environment".into(),
                message: "\"80a\" is not a whole number".into(),
                fix: "set PORT to a whole number from 1 to 65535".into(),
            },
            Problem {
                key: None,
                source: "webhook.toml line 3".into(),
                message: "invalid TOML: expected `=`".into(),
                fix: "write each setting as key = \"value\"".into(),
            },
        ]);
        assert_eq!(
            err.to_string(),
            "invalid configuration (2 problems):\n  \
             PORT (environment): \"80a\" is not a whole number; fix: set PORT to a whole number from 1 to 65535\n  \
             webhook.toml line 3: invalid TOML: expected `=`; fix: write each setting as key = \"value\""
        );
        assert_eq!(err.problems().len(), 2);
    }

    #[test]
    fn a_key_that_is_not_set_shows_no_source() {
        let p = Problem {
            key: Some("TWILIO_AUTH_TOKEN".into()),
            source: "not set".into(),
            message: "not set: every webhook will be refused with 403".into(),
            fix: "set it".into(),
        };
        assert_eq!(
            p.to_string(),
            "TWILIO_AUTH_TOKEN: not set: every webhook will be refused with 403; fix: set it"
        );
    }

    #[test]
    fn one_problem_is_singular() {
        let err = ConfigError::Invalid(vec![Problem {
            key: Some("APP_ENV".into()),
            source: "default".into(),
            message: "m".into(),
            fix: "f".into(),
        }]);
        assert!(
            err.to_string()
                .starts_with("invalid configuration (1 problem):\n")
        );
    }
}
