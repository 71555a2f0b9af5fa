//! The one module that uses the `config` crate: loads the configuration exactly as the server
//! does, turns the `.env` discovery, every `Settings::findings()` entry and every load
//! problem into [`Check`] lines, and copies what the other checks need into a [`Setup`].

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use config::{AppEnv, EnvSource, LoadOptions, Sender, Settings, is_placeholder};

use crate::checks::twilio::capitalised;
use crate::report::{Check, Section, Status};
use crate::setup::{SenderSetup, Setup};

/// Keys whose findings are shown under "Webhook URL" rather than "Configuration".
const WEBHOOK_KEYS: &[&str] = &["WEBHOOK_URL", "STATUS_CALLBACK_URL"];

/// The configuration as the checks see it.
#[derive(Debug)]
pub struct Loaded {
    /// Lines about files, keys and problems.
    pub checks: Vec<Check>,
    /// The settings, when they could be built (possibly leniently, see [`load`]).
    pub setup: Option<Setup>,
    /// Keys whose values are wrong: `setup` holds their defaults, so the checks that read
    /// them are skipped.
    pub broken: BTreeSet<String>,
    /// `(user:password@, user:***@)` and `(password=…, password=***)` of every configured URL
    /// that carries a password (Twilio can call a webhook with basic auth from its URL; libpq
    /// takes `?password=`): [`scrub`] hides them in every line, whichever check printed the URL.
    pub url_passwords: Vec<(String, String)>,
}

/// Replaces each `(secret, shown)` of `url_passwords` in every line of `checks`, and redacts
/// every other URL a line quotes (a webhook URL Twilio reports may carry its own password).
pub fn scrub(url_passwords: &[(String, String)], checks: &mut [Check]) {
    let clean = |text: &str| {
        let mut text = redact_quoted_urls(text);
        for (secret, shown) in url_passwords {
            text = text.replace(secret, shown);
        }
        text
    };
    for check in checks {
        check.detail = clean(&check.detail);
        if let Some(hint) = &mut check.hint {
            *hint = clean(hint);
        }
    }
}

/// `text` with each space-separated word that holds a URL passed through
/// [`config::redact_url`], except the fixes' own examples (`redis://:PASSWORD@host`).
fn redact_quoted_urls(text: &str) -> String {
    if !text.contains("://") {
        return text.to_owned();
    }
    let example = |(secret, _): &(String, String)| {
        secret
            .trim_end_matches('@')
            .rsplit([':', '='])
            .next()
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_uppercase()))
    };
    text.split(' ')
        .map(|word| {
            let parts = if word.contains("://") {
                config::secret_parts(word)
            } else {
                Vec::new()
            };
            if parts.iter().all(example) {
                word.to_owned()
            } else {
                config::redact_url(word)
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The secret parts of the configured URLs (`user:password@`, `?password=…`), each with its
/// redacted form.
fn url_passwords(s: &Settings) -> Vec<(String, String)> {
    [
        s.webhook_url.clone(),
        s.status_callback_url.clone(),
        s.status_callback_url(),
        Some(s.database_url.expose().to_owned()),
        s.redis_url.as_ref().map(|u| u.expose().to_owned()),
    ]
    .into_iter()
    .flatten()
    .flat_map(|url| config::secret_parts(&url))
    .collect()
}

fn section_for(key: &str) -> Section {
    if WEBHOOK_KEYS.contains(&key) {
        Section::WebhookUrl
    } else {
        Section::Config
    }
}

/// What the configuration lines are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `check` without `--online`: could this setup work once everything runs?
    Check,
    /// `check --online`: does Twilio reach WEBHOOK_URL now?
    CheckOnline,
    /// `simulate` / `send-test`: act on the values; a missing WEBHOOK_URL is fine there
    /// (`simulate` signs for the local URL).
    Act,
}

/// Loads `.env` (or `env_file`) and the process environment from `cwd`.
///
/// A configuration that does not load becomes one `❌` per problem. With `APP_ENV=production`
/// the loader refuses unsafe values; the remaining checks then run on the same values loaded
/// as development, so one run still reports on ngrok, the backend and the database. A wrong
/// value (`PORT=80a`) only takes out the checks that read it ([`Loaded::broken`]); a file that
/// cannot be read takes out every check after the configuration. `purpose` decides which
/// warnings the CLI shows as `❌` (see [`Purpose`]).
pub fn load(cwd: &Path, env_file: Option<&Path>, purpose: Purpose) -> Loaded {
    let mut opts = LoadOptions::new(cwd);
    if let Some(path) = env_file {
        opts = opts.env_file(path);
    }
    let mut checks = Vec::new();
    // One load: `load_partial` gives what `config::load` would (no problems: the settings; else
    // the same problems) and, either way, the values as configured.
    let configured = config::load_partial(&opts);
    if configured.problems.is_empty() {
        let loaded = configured.loaded;
        checks.extend(file_checks(
            cwd,
            env_file,
            &loaded.sources,
            loaded.settings.app_env,
        ));
        checks.extend(findings(&loaded.settings, purpose));
        return Loaded {
            setup: Some(to_setup(&loaded.settings)),
            checks,
            broken: BTreeSet::new(),
            url_passwords: url_passwords(&loaded.settings),
        };
    }
    checks.extend(problem_checks(&configured.problems));
    let dev = lenient(&opts);
    checks.splice(
        0..0,
        file_checks(
            cwd,
            env_file,
            &dev.loaded.sources,
            configured.loaded.settings.app_env,
        ),
    );
    // A line of a file that could not be read may have set any key: checking the
    // defaults instead would report on something the user did not configure.
    let whole_file = dev.problems.iter().any(|p| p.key.is_none());
    if !whole_file {
        // The other keys' findings; a key with a ❌ line is not shown twice, and a
        // broken key's default is not shown as if it were configured.
        // Taken from the values as configured (not the development reload), so that
        // what depends on APP_ENV reads as it will in the server.
        let reported: BTreeSet<&str> = configured
            .problems
            .iter()
            .chain(&dev.problems)
            .filter_map(|p| p.key.as_deref())
            .collect();
        checks.extend(
            findings(&configured.loaded.settings, purpose)
                .into_iter()
                .filter(|c| !reported.contains(c.name.as_str())),
        );
    }
    Loaded {
        checks,
        setup: (!whole_file).then(|| to_setup(&dev.loaded.settings)),
        broken: dev.problems.into_iter().filter_map(|p| p.key).collect(),
        url_passwords: url_passwords(&dev.loaded.settings),
    }
}

/// The same sources with `APP_ENV=development` on top, so production-only refusals do not
/// hide the other checks; a key whose value is broken is left at its default and listed in
/// the returned problems.
fn lenient(opts: &LoadOptions) -> config::Partial {
    let mut vars: std::collections::BTreeMap<String, String> = match &opts.env {
        // The keys, and RENDER_EXTERNAL_URL, from which the loader derives WEBHOOK_URL on Render.
        EnvSource::Process => config::KEYS
            .iter()
            .map(|k| k.name)
            .chain([config::RENDER_EXTERNAL_URL])
            .filter_map(|name| std::env::var(name).ok().map(|v| (name.to_owned(), v)))
            .collect(),
        EnvSource::Map(m) => m.clone(),
    };
    vars.insert("APP_ENV".to_owned(), "development".to_owned());
    let mut dev = opts.clone();
    dev.env = EnvSource::Map(vars);
    config::load_partial(&dev)
}

fn file_checks(
    cwd: &Path,
    env_file: Option<&Path>,
    sources: &[String],
    app_env: AppEnv,
) -> Vec<Check> {
    let mut out: Vec<Check> = sources
        .iter()
        .map(|shown| {
            let path = cwd.join(shown);
            let name = if path.extension().is_some_and(|e| e == "toml") {
                "config file"
            } else {
                "env file"
            };
            Check::ok(Section::Config, name, format!("read {}", path.display()))
        })
        .collect();
    let env_read = env_file.is_some() || cwd.join(".env").is_file();
    if !env_read {
        let detail = format!(
            "no .env in {}; using the process environment only",
            cwd.display()
        );
        out.push(if app_env == AppEnv::Production {
            Check::ok(Section::Config, "env file", detail)
        } else {
            Check::warning(
                Section::Config,
                "env file",
                detail,
                Some("Copy .env.example to .env and fill it in, or pass --env-file PATH."),
            )
        });
    }
    out
}

/// Every finding as a line; the source is shown on lines that need a change.
fn findings(settings: &Settings, purpose: Purpose) -> Vec<Check> {
    settings
        .findings()
        .into_iter()
        .map(|mut f| {
            let status = match f.status {
                config::Status::Ok => Status::Ok,
                config::Status::Warning if breaks_delivery(settings, f.key, f.check, purpose) => {
                    Status::Error
                }
                config::Status::Warning => Status::Warning,
                config::Status::Problem => Status::Error,
            };
            if (f.key, f.check) == ("WEBHOOK_URL", "missing") && status == Status::Error {
                // The server copes (it rebuilds the URL per request in development); this
                // tool cannot check anything against a URL it does not have.
                f.message = "not set: there is no URL to check against ngrok, the Twilio Console \
                             and the signature (the server would rebuild it from each request's \
                             Host header)"
                    .to_owned();
            }
            let detail = if status == Status::Ok
                || matches!(f.source.as_str(), "not set" | "default" | "derived")
            {
                f.message
            } else {
                format!("{} ({})", f.message, f.source)
            };
            Check::new(
                section_for(f.key),
                f.key,
                status,
                detail,
                f.hint.as_deref().map(capitalised),
            )
        })
        .collect()
}

/// Warnings the server can live with at start but that lose every inbound message, so the
/// CLI shows them as `❌`: a WEBHOOK_URL on the wrong path (Twilio gets 404), missing (nothing
/// can be checked; DESIGN.md's "WEBHOOK_URL missing" diagnosis), or plain-http on a public host
/// (Twilio's URL and the signed URL differ in scheme). A plain-http or private-address URL
/// stays a warning offline, since it is how `simulate` tests a local server; with `--online`
/// the question is whether Twilio reaches it, and it does not.
fn breaks_delivery(settings: &Settings, key: &str, check: &str, purpose: Purpose) -> bool {
    if key != "WEBHOOK_URL" {
        return false;
    }
    let public = settings
        .webhook_url
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
        .and_then(|u| u.host_str().map(|h| !crate::http::is_loopback(h)))
        .unwrap_or(false);
    match check {
        "wrong_path" => true,
        "missing" => purpose != Purpose::Act,
        "not_https" => public || purpose == Purpose::CheckOnline,
        "unreachable_host" => purpose == Purpose::CheckOnline,
        _ => false,
    }
}

fn problem_checks(problems: &[config::Problem]) -> Vec<Check> {
    problems
        .iter()
        .map(|p| {
            let (section, name) = match &p.key {
                Some(k) => (section_for(k), k.clone()),
                None => (Section::Config, p.source.clone()),
            };
            // "not set" is already the message's first words; a file or the environment is
            // where the value is to be changed.
            let detail = if p.key.is_some() && p.source != "not set" {
                format!("{} ({})", p.message, p.source)
            } else {
                p.message.clone()
            };
            Check::error(section, name, detail, capitalised(&p.fix))
        })
        .collect()
}

fn real(value: Option<&str>) -> Option<String> {
    value
        .filter(|v| !v.trim().is_empty() && !is_placeholder(v))
        .map(str::to_owned)
}

fn to_setup(s: &Settings) -> Setup {
    Setup {
        production: s.app_env == AppEnv::Production,
        webhook_url: s.webhook_url.clone(),
        port: s.port,
        host: s.host.clone(),
        database_url: s.database_url.expose().to_owned(),
        database_url_shown: s.database_url_redacted(),
        redis_url: s.redis_url.as_ref().map(|r| r.expose().to_owned()),
        redis_url_shown: s.redis_url_redacted(),
        account_sid: real(s.account_sid.as_deref()),
        auth_token: real(s.auth_token.as_ref().map(|t| t.expose())),
        auth_token_secondary: real(s.auth_token_secondary.as_ref().map(|t| t.expose())),
        // As the server: a configured API key is what REST calls use, placeholder or not (its
        // finding says it will be refused; asking Twilio shows it).
        api_key: match (
            s.api_key_sid.clone(),
            s.api_key_secret.as_ref().map(|t| t.expose().to_owned()),
        ) {
            (Some(k), Some(v)) => Some((k, v)),
            _ => None,
        },
        sender: s.sender.as_ref().map(|sender| match sender {
            Sender::WhatsAppFrom(f) => SenderSetup::WhatsAppFrom(f.clone()),
            Sender::MessagingService(m) => SenderSetup::MessagingService(m.clone()),
        }),
        api_base_url: s.api_base_url.clone(),
        status_callback_url: s.status_callback_url(),
        sources: ["DATABASE_URL", "REDIS_URL"]
            .into_iter()
            .map(|k| {
                let origin = s.origin(k);
                let source = match s.overridden(k) {
                    [] => origin.to_owned(),
                    lost => format!("{origin}, which overrides {}", lost.join(" and ")),
                };
                (k, source)
            })
            .collect(),
    }
}

/// The working directory, for `.env` discovery and relative paths.
pub fn current_dir() -> PathBuf {
    std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."))
}
