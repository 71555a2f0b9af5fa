//! The one printer: renders a [`Report`] as text (one `✅`/`⚠️`/`❌` line per check, the fix under
//! every `❌`, a summary line) or as the versioned JSON document described in the README.
//!
//! Rendering returns a `String`; the caller writes it through `anstream`, which drops the colour
//! codes when stdout is not a terminal or `NO_COLOR` is set. JSON never contains colour.

use std::fmt::Write as _;

use anstyle::{AnsiColor, Style};
use serde::Serialize;

use crate::report::{Report, Status, Summary};

/// Version of the `--json` document. Bumped only when a field is removed or changes meaning;
/// new fields may appear without a bump.
pub const JSON_VERSION: u32 = 1;

const BOLD: Style = Style::new().bold();

fn status_style(status: Status) -> Style {
    let colour = match status {
        Status::Ok => AnsiColor::Green,
        Status::Warning => AnsiColor::Yellow,
        Status::Error => AnsiColor::Red,
    };
    Style::new().fg_color(Some(anstyle::Color::Ansi(colour)))
}

/// Renders the report for a person: sections in order, each line `  <icon> <name>: <detail>`,
/// then `     Fix: …` under errors or `     Note: …` under other lines that carry a hint,
/// and a final `Summary: …` line.
pub fn render_text(report: &Report) -> String {
    let mut out = String::new();
    for (i, (section, worst)) in report.sections().into_iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let heading = BOLD.fg_color(status_style(worst).get_fg_color());
        let _ = writeln!(out, "{heading}{}{heading:#}", section.title());
        for check in report.checks.iter().filter(|c| c.section == section) {
            let _ = writeln!(
                out,
                "  {} {BOLD}{}{BOLD:#}: {}",
                check.status.icon(),
                check.name,
                check.detail
            );
            if let Some(hint) = &check.hint {
                let (label, style) = match check.status {
                    Status::Error => ("Fix", status_style(Status::Error)),
                    _ => ("Note", Style::new().dimmed()),
                };
                let _ = writeln!(out, "     {style}{label}: {hint}{style:#}");
            }
        }
    }
    if !report.checks.is_empty() {
        out.push('\n');
    }
    let style = status_style(report.worst());
    let _ = writeln!(out, "{style}{}{style:#}", summary_line(report.summary()));
    out
}

/// `Summary: 7 ok, 1 warning, 2 errors.`
pub fn summary_line(s: Summary) -> String {
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    format!(
        "Summary: {} ok, {}, {}.",
        s.ok,
        plural(s.warnings, "warning", "warnings"),
        plural(s.errors, "error", "errors")
    )
}

#[derive(Serialize)]
struct JsonDoc<'a> {
    version: u32,
    command: &'a str,
    status: Status,
    summary: Summary,
    sections: Vec<JsonSection>,
    checks: Vec<JsonCheck<'a>>,
}

#[derive(Serialize)]
struct JsonSection {
    id: &'static str,
    title: &'static str,
    status: Status,
}

#[derive(Serialize)]
struct JsonCheck<'a> {
    section: &'static str,
    name: &'a str,
    status: Status,
    detail: &'a str,
    hint: Option<&'a str>,
}

/// Renders the report as the `--json` document (pretty-printed, newline-terminated).
///
/// `command` is the subcommand that produced it: `check`, `simulate` or `send-test`.
pub fn render_json(report: &Report, command: &str) -> String {
    let doc = JsonDoc {
        version: JSON_VERSION,
        command,
        status: report.worst(),
        summary: report.summary(),
        sections: report
            .sections()
            .into_iter()
            .map(|(s, status)| JsonSection {
                id: s.id(),
                title: s.title(),
                status,
            })
            .collect(),
        // In display order: grouped by section as the text is, in the order each was found.
        checks: report
            .sections()
            .into_iter()
            .flat_map(|(section, _)| report.checks.iter().filter(move |c| c.section == section))
            .map(|c| JsonCheck {
                section: c.section.id(),
                name: &c.name,
                status: c.status,
                detail: &c.detail,
                hint: c.hint.as_deref(),
            })
            .collect(),
    };
    // Serialising plain strings and numbers cannot fail; fall back to a minimal document anyway.
    let mut text = serde_json::to_string_pretty(&doc)
        .unwrap_or_else(|e| format!("{{\"version\":{JSON_VERSION},\"error\":\"{e}\"}}"));
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Check, Section};

    fn strip(s: &str) -> String {
        let mut out = String::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                for c in chars.by_ref() {
                    if c == 'm' {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    #[test]
    fn text_puts_the_fix_under_errors_and_ends_with_a_summary() {
        let mut r = Report::default();
        r.push(Check::ok(Section::Config, ".env", "read /x/.env"));
        r.push(Check::error(
            Section::Config,
            "PORT",
            "\"x\" is not a number",
            "Set PORT to 5000.",
        ));
        r.push(Check::warning(
            Section::Ngrok,
            "agent",
            "not running",
            Some("Start ngrok."),
        ));
        assert_eq!(
            strip(&render_text(&r)),
            "Configuration\n  ✅ .env: read /x/.env\n  ❌ PORT: \"x\" is not a number\n     Fix: Set PORT to 5000.\n\
             \nngrok\n  ⚠️ agent: not running\n     Note: Start ngrok.\n\nSummary: 1 ok, 1 warning, 1 error.\n"
        );
    }

    #[test]
    fn json_has_the_documented_shape() {
        let mut r = Report::default();
        r.push(Check::error(
            Section::WebhookUrl,
            "WEBHOOK_URL",
            "not set",
            "Set it.",
        ));
        let v: serde_json::Value = serde_json::from_str(&render_json(&r, "check")).expect("json");
        assert_eq!(v["version"], 1);
        assert_eq!(v["command"], "check");
        assert_eq!(v["status"], "error");
        assert_eq!(
            v["summary"],
            serde_json::json!({"ok":0,"warnings":0,"errors":1})
        );
        assert_eq!(
            v["checks"][0],
            serde_json::json!({"section":"webhook_url","name":"WEBHOOK_URL","status":"error","detail":"not set","hint":"Set it."})
        );
        assert_eq!(v["sections"][0]["id"], "webhook_url");
    }
}
