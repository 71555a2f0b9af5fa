//! The data every check produces: [`Check`] lines grouped by [`Section`], with an ordered
//! [`Status`]. Checks never print; the [`printer`](crate::printer) renders a [`Report`].

use serde::Serialize;

/// Outcome of one check. Ordered: `Ok < Warning < Error`, so the worst of a list is its `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Works as it should (`✅`).
    Ok,
    /// Works, but something is missing or will only be fine later (`⚠️`).
    Warning,
    /// Broken: messages will not arrive or will be refused (`❌`). Makes the exit code 1.
    Error,
}

impl Status {
    /// The symbol a user sees at the start of the line.
    pub fn icon(self) -> &'static str {
        match self {
            Status::Ok => "✅",
            Status::Warning => "⚠️",
            Status::Error => "❌",
        }
    }
}

/// Group of related checks, printed under one heading in this order.
///
/// The JSON `section` field is [`Section::id`]; the text heading is [`Section::title`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Section {
    /// The command line could not be parsed (`--json` only: text output is clap's message).
    Usage,
    /// `.env` file and every configuration key.
    Config,
    /// WEBHOOK_URL's shape.
    WebhookUrl,
    /// ngrok's local agent API.
    Ngrok,
    /// Is the server listening on PORT.
    Backend,
    /// DATABASE_URL reachable, migrations.
    Database,
    /// REDIS_URL reachable.
    Redis,
    /// Twilio account, credentials and the webhook URL Twilio has (`--online`).
    Twilio,
    /// Signed and tampered test requests to WEBHOOK_URL (`--online`).
    Probe,
    /// `simulate`: a signed sample message posted to the server.
    Simulate,
    /// `send-test`: a real message sent through Twilio.
    SendTest,
}

impl Section {
    /// Stable identifier used in `--json` output.
    pub fn id(self) -> &'static str {
        match self {
            Section::Usage => "usage",
            Section::Config => "config",
            Section::WebhookUrl => "webhook_url",
            Section::Ngrok => "ngrok",
            Section::Backend => "backend",
            Section::Database => "database",
            Section::Redis => "redis",
            Section::Twilio => "twilio",
            Section::Probe => "probe",
            Section::Simulate => "simulate",
            Section::SendTest => "send_test",
        }
    }

    /// Heading shown in text output.
    pub fn title(self) -> &'static str {
        match self {
            Section::Usage => "Command line",
            Section::Config => "Configuration",
            Section::WebhookUrl => "Webhook URL",
            Section::Ngrok => "ngrok",
            Section::Backend => "Backend",
            Section::Database => "Database",
            Section::Redis => "Redis",
            Section::Twilio => "Twilio (online)",
            Section::Probe => "Signed test request (online)",
            Section::Simulate => "Simulated inbound message",
            Section::SendTest => "Test message through Twilio",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Where the line is printed.
    pub section: Section,
    /// What was checked: a key (`WEBHOOK_URL`) or a short noun phrase (`tunnel`).
    pub name: String,
    /// How it went.
    pub status: Status,
    /// What was found, in one line.
    pub detail: String,
    /// The fix in one sentence (always set for errors), or a note for the other statuses.
    pub hint: Option<String>,
}

impl Check {
    /// A passing check.
    pub fn ok(section: Section, name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check::new(section, name, Status::Ok, detail, None::<String>)
    }

    /// A warning with an optional note.
    pub fn warning(
        section: Section,
        name: impl Into<String>,
        detail: impl Into<String>,
        hint: Option<impl Into<String>>,
    ) -> Check {
        Check::new(section, name, Status::Warning, detail, hint)
    }

    /// A failure with its fix.
    pub fn error(
        section: Section,
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check::new(section, name, Status::Error, detail, Some(fix))
    }

    /// A check with any status.
    pub fn new(
        section: Section,
        name: impl Into<String>,
        status: Status,
        detail: impl Into<String>,
        hint: Option<impl Into<String>>,
    ) -> Check {
        Check {
            section,
            name: name.into(),
            status,
            detail: detail.into(),
            hint: hint.map(Into::into),
        }
    }

    /// The same check with another status (e.g. a warning that `--online` turns into an error).
    pub fn with_status(mut self, status: Status) -> Check {
        self.status = status;
        self
    }
}

/// How many checks ended in each status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// `✅` lines.
    pub ok: usize,
    /// `⚠️` lines.
    pub warnings: usize,
    /// `❌` lines.
    pub errors: usize,
}

/// Everything one command found, in the order the checks ran.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The lines, grouped by section when printed.
    pub checks: Vec<Check>,
}

impl Report {
    /// Adds one check.
    pub fn push(&mut self, check: Check) {
        self.checks.push(check);
    }

    /// Adds several checks.
    pub fn extend(&mut self, checks: impl IntoIterator<Item = Check>) {
        self.checks.extend(checks);
    }

    /// Counts per status.
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for c in &self.checks {
            match c.status {
                Status::Ok => s.ok += 1,
                Status::Warning => s.warnings += 1,
                Status::Error => s.errors += 1,
            }
        }
        s
    }

    /// The worst status of all checks (`Ok` for an empty report).
    pub fn worst(&self) -> Status {
        self.checks
            .iter()
            .map(|c| c.status)
            .max()
            .unwrap_or(Status::Ok)
    }

    /// The sections that have checks, in display order, each with its worst status.
    pub fn sections(&self) -> Vec<(Section, Status)> {
        let mut out: Vec<(Section, Status)> = Vec::new();
        for c in &self.checks {
            match out.iter_mut().find(|(s, _)| *s == c.section) {
                Some((_, worst)) => *worst = (*worst).max(c.status),
                None => out.push((c.section, c.status)),
            }
        }
        out.sort_by_key(|(s, _)| *s);
        out
    }

    /// Process exit code: 0 when nothing is `❌`, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        u8::from(self.worst() == Status::Error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_order_makes_error_the_worst() {
        assert!(Status::Ok < Status::Warning && Status::Warning < Status::Error);
        let mut r = Report::default();
        assert_eq!(r.exit_code(), 0);
        r.push(Check::warning(
            Section::Ngrok,
            "agent",
            "not running",
            None::<&str>,
        ));
        assert_eq!((r.worst(), r.exit_code()), (Status::Warning, 0));
        r.push(Check::error(Section::Config, "PORT", "bad", "fix it"));
        assert_eq!((r.worst(), r.exit_code()), (Status::Error, 1));
    }

    #[test]
    fn sections_are_in_display_order_with_their_worst_status() {
        let mut r = Report::default();
        r.push(Check::ok(Section::Backend, "port", "listening"));
        r.push(Check::error(Section::Config, "A", "x", "y"));
        r.push(Check::ok(Section::Config, "B", "z"));
        r.push(Check::warning(
            Section::Backend,
            "healthz",
            "404",
            None::<&str>,
        ));
        assert_eq!(
            r.sections(),
            vec![
                (Section::Config, Status::Error),
                (Section::Backend, Status::Warning)
            ]
        );
        assert_eq!(
            r.summary(),
            Summary {
                ok: 2,
                warnings: 1,
                errors: 1
            }
        );
    }
}
