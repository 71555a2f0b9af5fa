//! Where values come from: defaults, `webhook.toml`, `.env` and the environment, layered with
//! figment so that every value keeps the name of the source that set it.
//!
//! Each file line becomes its own figment provider named after the line (`.env line 4`,
//! `webhook.toml line 2`), so figment's per-value metadata is exactly the text a problem shows.
//! Only known keys are taken from the environment; unknown keys in `.env` are ignored (people
//! keep `RUST_LOG` and friends there), unknown keys in `webhook.toml` are problems (the file
//! is ours, so an unknown key is a typo).
//!
//! One value is not a key of ours: when no source sets `WEBHOOK_URL`, it is derived from
//! [`RENDER_EXTERNAL_URL`] in the environment (Render sets it on every web service), with the
//! origin [`RENDER_ORIGIN`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};

use crate::error::Problem;
use crate::keys::{KEYS, WEBHOOK_PATH, key_spec};

/// The variable Render sets on every web service to its public URL
/// (`https://<service>.onrender.com`). Not a configuration key: it is only read to derive
/// `WEBHOOK_URL` when no source sets that, never from `.env` or `webhook.toml`.
pub const RENDER_EXTERNAL_URL: &str = "RENDER_EXTERNAL_URL";

/// [`Settings::origin`](crate::Settings::origin) of a `WEBHOOK_URL` derived from
/// [`RENDER_EXTERNAL_URL`].
pub const RENDER_ORIGIN: &str = "RENDER_EXTERNAL_URL (environment)";

/// Where environment variables are read from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum EnvSource {
    /// The process environment (`std::env::var_os` for each known key; never modified).
    #[default]
    Process,
    /// An injected map, for tests and embedding: the process environment is not read.
    Map(BTreeMap<String, String>),
}

/// What [`load`](crate::load) reads.
///
/// Relative paths are resolved against `cwd`. Without an explicit file, `webhook.toml` and
/// `.env` in `cwd` are read when they exist; an explicit file that does not exist is a problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOptions {
    /// `--env-file`: read this file instead of `<cwd>/.env`; it must exist.
    pub env_file: Option<PathBuf>,
    /// Read this TOML file instead of `<cwd>/webhook.toml`; it must exist.
    pub config_file: Option<PathBuf>,
    /// The environment, highest precedence.
    pub env: EnvSource,
    /// Directory searched for `webhook.toml` and `.env`, and base of relative paths.
    pub cwd: PathBuf,
}

impl Default for LoadOptions {
    /// The process environment and the current directory (`.`).
    fn default() -> Self {
        LoadOptions::new(".")
    }
}

impl LoadOptions {
    /// Reads `webhook.toml` and `.env` from `cwd` and the process environment.
    pub fn new(cwd: impl Into<PathBuf>) -> Self {
        LoadOptions {
            env_file: None,
            config_file: None,
            env: EnvSource::Process,
            cwd: cwd.into(),
        }
    }

    /// Uses `path` instead of `<cwd>/.env` (the CLI's `--env-file`).
    pub fn env_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.env_file = Some(path.into());
        self
    }

    /// Uses `path` instead of `<cwd>/webhook.toml`.
    pub fn config_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config_file = Some(path.into());
        self
    }

    /// Takes environment variables from `vars` instead of the process environment.
    pub fn env_vars<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.env = EnvSource::Map(
            vars.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        );
        self
    }
}

/// A value with the name of the source that set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Raw {
    pub(crate) value: String,
    pub(crate) origin: String,
    /// Lower-precedence sources that set the key too (`.env line 4` under `environment`).
    pub(crate) shadowed: Vec<String>,
}

/// Everything read from the sources, merged.
#[derive(Debug, Default)]
pub(crate) struct Gathered {
    /// Winning value per known key; keys nobody set (no default either) are absent.
    pub(crate) values: BTreeMap<&'static str, Raw>,
    /// Files that were read, as shown to users.
    pub(crate) files: Vec<String>,
    /// Problems with the files themselves (missing, unreadable, syntax, unknown keys).
    pub(crate) problems: Vec<Problem>,
    /// Variables this server does not read whose names say which key was meant.
    pub(crate) misnamed: Vec<Misnamed>,
}

/// A variable this server does not read whose name says which key was meant: a name other
/// tutorials, SDK samples and apps use (`TWILIO_PHONE_NUMBER`), the key in lower case, or a
/// typo (`TWILIO_AUTH_TOKN`). It is a warning, not an error: `.env` and the environment hold
/// other programs' settings too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Misnamed {
    /// The name as written.
    pub(crate) found: String,
    /// Where: `.env line 3`, `environment`.
    pub(crate) source: String,
    /// The key it stands for.
    pub(crate) meant: &'static str,
}

/// Names other Twilio tutorials, SDK samples and webhook apps use for our keys.
const ALIASES: &[(&str, &str)] = &[
    ("TWILIO_SID", "TWILIO_ACCOUNT_SID"),
    ("TWILIO_ACCOUNT", "TWILIO_ACCOUNT_SID"),
    ("TWILIO_ACCOUNT_ID", "TWILIO_ACCOUNT_SID"),
    ("ACCOUNT_SID", "TWILIO_ACCOUNT_SID"),
    ("TWILIO_TOKEN", "TWILIO_AUTH_TOKEN"),
    ("TWILIO_AUTHTOKEN", "TWILIO_AUTH_TOKEN"),
    ("AUTH_TOKEN", "TWILIO_AUTH_TOKEN"),
    ("TWILIO_API_KEY", "TWILIO_API_KEY_SID"),
    ("TWILIO_API_SID", "TWILIO_API_KEY_SID"),
    ("TWILIO_KEY_SID", "TWILIO_API_KEY_SID"),
    ("TWILIO_API_SECRET", "TWILIO_API_KEY_SECRET"),
    ("TWILIO_KEY_SECRET", "TWILIO_API_KEY_SECRET"),
    ("TWILIO_PHONE_NUMBER", "TWILIO_WHATSAPP_FROM"),
    ("TWILIO_NUMBER", "TWILIO_WHATSAPP_FROM"),
    ("TWILIO_FROM", "TWILIO_WHATSAPP_FROM"),
    ("TWILIO_FROM_NUMBER", "TWILIO_WHATSAPP_FROM"),
    ("TWILIO_SENDER", "TWILIO_WHATSAPP_FROM"),
    ("TWILIO_WHATSAPP_NUMBER", "TWILIO_WHATSAPP_FROM"),
    ("TWILIO_WHATSAPP_SENDER", "TWILIO_WHATSAPP_FROM"),
    ("TWILIO_WHATSAPP_PHONE_NUMBER", "TWILIO_WHATSAPP_FROM"),
    ("WHATSAPP_FROM", "TWILIO_WHATSAPP_FROM"),
    ("WHATSAPP_NUMBER", "TWILIO_WHATSAPP_FROM"),
    ("TWILIO_MESSAGING_SERVICE", "TWILIO_MESSAGING_SERVICE_SID"),
    ("MESSAGING_SERVICE_SID", "TWILIO_MESSAGING_SERVICE_SID"),
    ("TWILIO_WEBHOOK_URL", "WEBHOOK_URL"),
    ("TWILIO_STATUS_CALLBACK_URL", "STATUS_CALLBACK_URL"),
    ("DB_URL", "DATABASE_URL"),
    ("POSTGRES_URL", "DATABASE_URL"),
    ("POSTGRESQL_URL", "DATABASE_URL"),
];

/// The key `name` was probably meant for, if it is not one itself. Typos are looked for only
/// among names starting with `TWIL` when `typos_anywhere` is false (the process
/// environment is full of other programs' variables) and only for keys of 8 characters or
/// more (`HOME` is one letter away from `HOST`).
fn meant(name: &str, typos_anywhere: bool) -> Option<&'static str> {
    if key_spec(name).is_some() {
        return None;
    }
    if let Some(&(_, key)) = ALIASES.iter().find(|(alias, _)| *alias == name) {
        return Some(key);
    }
    let upper = name.to_ascii_uppercase();
    if let Some(spec) = key_spec(&upper) {
        return Some(spec.name);
    }
    if !typos_anywhere && !upper.starts_with("TWIL") {
        return None;
    }
    let mut close = KEYS
        .iter()
        .filter(|k| k.name.len() >= 8)
        .map(|k| (strsim::damerau_levenshtein(&upper, k.name), k.name))
        .filter(|(d, _)| *d <= 2);
    let first = close.next()?;
    // Two keys as close as each other: no guess.
    let best = close.try_fold(first, |best, c| match c.0.cmp(&best.0) {
        std::cmp::Ordering::Less => Some(c),
        std::cmp::Ordering::Equal => None,
        std::cmp::Ordering::Greater => Some(best),
    })?;
    Some(best.1)
}

/// One figment provider: a named set of values.
struct Layer {
    name: String,
    values: Dict,
}

impl Layer {
    fn new(name: impl Into<String>) -> Self {
        Layer {
            name: name.into(),
            values: Dict::new(),
        }
    }

    fn with(mut self, key: &str, value: &str) -> Self {
        self.values
            .insert(key.to_owned(), Value::from(value.to_owned()));
        self
    }
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.name.clone())
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.values.clone()))
    }
}

/// Reads every source named by `opts` and merges them, lowest first.
pub(crate) fn gather(opts: &LoadOptions) -> Gathered {
    let mut gathered = Gathered::default();
    let mut layers = vec![defaults_layer()];
    if let Some(file) = locate(
        &opts.cwd,
        opts.config_file.as_deref(),
        "webhook.toml",
        &mut gathered,
    ) {
        layers.extend(toml_layers(&file, &mut gathered));
    }
    if let Some(file) = locate(&opts.cwd, opts.env_file.as_deref(), ".env", &mut gathered) {
        layers.extend(dotenv_layers(&file, &mut gathered));
    }
    layers.push(env_layer(&opts.env, &mut gathered));
    merge(layers, &mut gathered);
    render_fallback(&opts.env, &mut gathered);
    gathered
}

/// Defaults and `env` only: no file is looked for.
pub(crate) fn gather_env_only(env: &EnvSource) -> Gathered {
    let mut gathered = Gathered::default();
    let mut layers = vec![defaults_layer()];
    layers.push(env_layer(env, &mut gathered));
    merge(layers, &mut gathered);
    render_fallback(env, &mut gathered);
    gathered
}

/// A file to read, with the name problems show for it.
struct SourceFile {
    path: PathBuf,
    shown: String,
}

fn locate(
    cwd: &Path,
    explicit: Option<&Path>,
    default_name: &str,
    gathered: &mut Gathered,
) -> Option<SourceFile> {
    match explicit {
        Some(given) => {
            let path = cwd.join(given);
            let shown = given.display().to_string();
            // Not only regular files: `--env-file <(op inject …)` is a pipe, /dev/null empty.
            if path.exists() && !path.is_dir() {
                Some(SourceFile { path, shown })
            } else {
                gathered.problems.push(Problem {
                    key: None,
                    source: shown,
                    message: if path.is_dir() {
                        "is a directory, not a file".to_owned()
                    } else {
                        "file not found".to_owned()
                    },
                    fix: format!(
                        "create the file or give the path of an existing one (relative paths start at {})",
                        std::fs::canonicalize(cwd)
                            .unwrap_or_else(|_| cwd.to_path_buf())
                            .display()
                    ),
                });
                None
            }
        }
        None => {
            let path = cwd.join(default_name);
            path.is_file().then(|| SourceFile {
                path,
                shown: default_name.to_owned(),
            })
        }
    }
}

/// Whether `text` holds the closing `quote` of a value (for `"`, one not escaped with `\`).
fn closes(text: &str, quote: char) -> bool {
    let mut escaped = false;
    for c in text.chars() {
        match c {
            '\\' if quote == '"' && !escaped => escaped = true,
            c if c == quote && !escaped => return true,
            _ => escaped = false,
        }
    }
    false
}

fn read(file: &SourceFile, gathered: &mut Gathered) -> Option<String> {
    match std::fs::read_to_string(&file.path) {
        Ok(text) => {
            gathered.files.push(file.shown.clone());
            // A byte-order mark (Windows editors) would otherwise become part of the first key.
            Some(
                text.strip_prefix('\u{feff}')
                    .map(str::to_owned)
                    .unwrap_or(text),
            )
        }
        Err(e) => {
            gathered.problems.push(Problem {
                key: None,
                source: file.shown.clone(),
                message: format!("cannot read the file ({e})"),
                fix: "make it a readable UTF-8 text file".to_owned(),
            });
            None
        }
    }
}

fn defaults_layer() -> Layer {
    KEYS.iter()
        .filter_map(|k| k.default.map(|d| (k.name, d)))
        .fold(Layer::new("default"), |layer, (k, d)| layer.with(k, d))
}

fn line_of(text: &str, byte: usize) -> usize {
    text[..byte.min(text.len())]
        .bytes()
        .filter(|&b| b == b'\n')
        .count()
        + 1
}

fn toml_layers(file: &SourceFile, gathered: &mut Gathered) -> Vec<Layer> {
    let Some(text) = read(file, gathered) else {
        return Vec::new();
    };
    let table: BTreeMap<String, toml::Spanned<toml::Value>> = match toml::from_str(&text) {
        Ok(table) => table,
        Err(e) => {
            let source = match e.span() {
                Some(span) => format!("{} line {}", file.shown, line_of(&text, span.start)),
                None => file.shown.clone(),
            };
            gathered.problems.push(Problem {
                key: None,
                source,
                // One line per problem: the parser's message may span several ("invalid
                // string\nexpected `\"`, `'`").
                message: format!(
                    "invalid TOML: {}",
                    e.message().trim().lines().collect::<Vec<_>>().join("; ")
                ),
                fix: "write each setting on its own line as key = \"value\"".to_owned(),
            });
            return Vec::new();
        }
    };
    // In file order, so problems read top to bottom and "set twice" names the later line.
    let mut entries: Vec<_> = table.into_iter().collect();
    entries.sort_by_key(|(_, value)| value.span().start);
    let mut seen: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut layers = Vec::new();
    for (written, value) in entries {
        let line = line_of(&text, value.span().start);
        let source = format!("{} line {line}", file.shown);
        let Some(spec) = key_spec(&written.to_ascii_uppercase()) else {
            gathered.problems.push(Problem {
                key: Some(written),
                source,
                message: "unknown setting".to_owned(),
                fix: "remove it, or use a key from .env.example in lower case (e.g. webhook_url)"
                    .to_owned(),
            });
            continue;
        };
        if let Some(first) = seen.insert(spec.name, line) {
            gathered.problems.push(Problem {
                key: Some(spec.name.to_owned()),
                source,
                message: format!("set twice (lines {first} and {line})"),
                fix: "keep only one of the two lines".to_owned(),
            });
            continue;
        }
        let text_value = match value.into_inner() {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            _ => {
                gathered.problems.push(Problem {
                    key: Some(spec.name.to_owned()),
                    source,
                    message: "expected a string or a number".to_owned(),
                    fix: format!("write it as {} = \"value\"", spec.name.to_ascii_lowercase()),
                });
                continue;
            }
        };
        if !text_value.is_empty() {
            layers.push(Layer::new(source).with(spec.name, &text_value));
        }
    }
    layers
}

fn dotenv_layers(file: &SourceFile, gathered: &mut Gathered) -> Vec<Layer> {
    let Some(text) = read(file, gathered) else {
        return Vec::new();
    };
    // dotenvy parses the values (quotes, escapes, multi-line values); the line of each
    // assignment comes from a scan of the raw lines for `KEY=` / `export KEY=`.
    let mut lines_of: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    // The quote a multi-line value is still open in: its lines are not assignments.
    let mut open: Option<char> = None;
    for (i, line) in text.lines().enumerate() {
        if let Some(quote) = open {
            if closes(line, quote) {
                open = None;
            }
            continue;
        }
        let line = line.trim_start();
        let line = line.strip_prefix("export ").map_or(line, str::trim_start);
        if let Some((key, value)) = line.split_once('=')
            && !key.starts_with('#')
        {
            lines_of
                .entry(key.trim().to_owned())
                .or_default()
                .push(i + 1);
            let value = value.trim_start();
            if let Some(quote) = value.chars().next().filter(|c| matches!(c, '"' | '\''))
                && !closes(&value[1..], quote)
            {
                open = Some(quote);
            }
        }
    }
    let mut layers = Vec::new();
    let mut taken: BTreeSet<String> = BTreeSet::new();
    for item in dotenvy::from_read_iter(text.as_bytes()) {
        let (key, value) = match item {
            Ok(pair) => pair,
            Err(dotenvy::Error::LineParse(bad, _)) => {
                // dotenvy gives the text from the bad line on (sometimes only its value).
                let first = bad.lines().next().unwrap_or_default().trim();
                let line = text.lines().position(|l| l.trim() == first).or_else(|| {
                    (!first.is_empty())
                        .then(|| text.lines().position(|l| l.contains(first)))
                        .flatten()
                });
                let source = match line {
                    Some(i) => format!("{} line {}", file.shown, i + 1),
                    None => file.shown.clone(),
                };
                let raw = line.and_then(|i| text.lines().nth(i)).unwrap_or(first);
                let (message, fix) = unparsable(raw);
                gathered.problems.push(Problem {
                    key: None,
                    source,
                    message: message.to_owned(),
                    fix: fix.to_owned(),
                });
                continue;
            }
            Err(e) => {
                gathered.problems.push(Problem {
                    key: None,
                    source: file.shown.clone(),
                    message: format!("cannot read the file ({e})"),
                    fix: "make it a readable UTF-8 text file".to_owned(),
                });
                break;
            }
        };
        let lines = lines_of.get(&key).map(Vec::as_slice).unwrap_or_default();
        let source = match lines.first() {
            Some(line) => format!("{} line {line}", file.shown),
            None => file.shown.clone(),
        };
        let Some(spec) = key_spec(&key) else {
            if let Some(meant) = meant(&key, true)
                && !value.is_empty()
            {
                gathered.misnamed.push(Misnamed {
                    found: key,
                    source,
                    meant,
                });
            }
            continue;
        };
        if !taken.insert(key.clone()) {
            continue; // reported once below
        }
        if lines.len() > 1 {
            let list: Vec<String> = lines.iter().map(usize::to_string).collect();
            gathered.problems.push(Problem {
                key: Some(key.clone()),
                source: file.shown.clone(),
                message: format!("set {} times (lines {})", lines.len(), list.join(", ")),
                fix: "keep only one of the lines".to_owned(),
            });
            continue;
        }
        if !value.is_empty() {
            layers.push(Layer::new(source).with(spec.name, &value));
        }
    }
    layers
}

/// Why a `.env` line does not parse, and the fix, from the line itself.
fn unparsable(line: &str) -> (&'static str, &'static str) {
    let value = line.split_once('=').map_or(line, |(_, v)| v).trim();
    if value.matches('\'').count() % 2 == 1 || value.matches('"').count() % 2 == 1 {
        (
            "cannot parse this line: a quote is not closed",
            "close the quote on the same line, e.g. KEY='value'",
        )
    } else if value.starts_with('"') && value.contains('\\') {
        (
            "cannot parse this line: a backslash in double quotes that .env does not know",
            "use single quotes for values with backslashes, e.g. KEY='a\\b'",
        )
    } else {
        (
            "cannot parse this line",
            "write KEY=value and put values with spaces, quotes or # in single quotes",
        )
    }
}

/// A variable from `env`: `Ok(None)` when unset or empty, `Err(())` when not UTF-8.
fn env_var(env: &EnvSource, name: &str) -> Result<Option<String>, ()> {
    let value = match env {
        EnvSource::Map(map) => map.get(name).cloned(),
        EnvSource::Process => match std::env::var_os(name) {
            None => None,
            Some(os) => Some(os.into_string().map_err(|_| ())?),
        },
    };
    Ok(value.filter(|v| !v.is_empty()))
}

fn env_layer(env: &EnvSource, gathered: &mut Gathered) -> Layer {
    // Names set to a non-empty text value (as `env_var` reads them), each read once.
    let names: Vec<String> = match env {
        EnvSource::Map(map) => map
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, _)| k.clone())
            .collect(),
        EnvSource::Process => std::env::vars_os()
            .filter(|(_, v)| v.to_str().is_some_and(|v| !v.is_empty()))
            .filter_map(|(k, _)| k.into_string().ok())
            .collect(),
    };
    for name in names {
        if let Some(meant) = meant(&name, false) {
            gathered.misnamed.push(Misnamed {
                found: name,
                source: "environment".to_owned(),
                meant,
            });
        }
    }
    let mut layer = Layer::new("environment");
    for spec in KEYS {
        match env_var(env, spec.name) {
            Ok(Some(value)) => layer = layer.with(spec.name, &value),
            Ok(None) => {}
            Err(()) => gathered.problems.push(Problem {
                key: Some(spec.name.to_owned()),
                source: "environment".to_owned(),
                message: "not valid UTF-8".to_owned(),
                fix: format!("set {} to plain text", spec.name),
            }),
        }
    }
    layer
}

/// When no source sets `WEBHOOK_URL`, derives it from `RENDER_EXTERNAL_URL` in `env`:
/// its value without surrounding whitespace and trailing slashes, plus the webhook path.
/// The result is checked like any `WEBHOOK_URL` (a malformed or http one is reported with the
/// origin [`RENDER_ORIGIN`]).
fn render_fallback(env: &EnvSource, gathered: &mut Gathered) {
    const KEY: &str = "WEBHOOK_URL";
    if gathered.values.contains_key(KEY) {
        return; // set explicitly: that always wins
    }
    match env_var(env, RENDER_EXTERNAL_URL) {
        Ok(Some(base)) => {
            let base = base.trim().trim_end_matches('/');
            gathered.values.insert(
                KEY,
                Raw {
                    value: format!("{base}{WEBHOOK_PATH}"),
                    origin: RENDER_ORIGIN.to_owned(),
                    shadowed: Vec::new(),
                },
            );
        }
        Ok(None) => {}
        Err(()) => gathered.problems.push(Problem {
            key: Some(KEY.to_owned()),
            source: RENDER_ORIGIN.to_owned(),
            message:
                "RENDER_EXTERNAL_URL is not valid UTF-8, so WEBHOOK_URL cannot be derived from it"
                    .to_owned(),
            fix: "set WEBHOOK_URL to the public URL configured in Twilio".to_owned(),
        }),
    }
}

fn merge(layers: Vec<Layer>, gathered: &mut Gathered) {
    // Every non-default source of each key, lowest precedence first (the last one wins).
    let mut setters: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for layer in layers.iter().skip(1) {
        for key in layer.values.keys() {
            setters
                .entry(key.clone())
                .or_default()
                .push(layer.name.clone());
        }
    }
    let figment = layers.into_iter().fold(Figment::new(), Figment::merge);
    for spec in KEYS {
        let Ok(value) = figment.find_value(spec.name) else {
            continue;
        };
        let Some(value) = value.as_str() else {
            continue;
        };
        let origin = figment
            .find_metadata(spec.name)
            .map_or_else(|| "unknown source".to_owned(), |m| m.name.to_string());
        let mut shadowed = setters.remove(spec.name).unwrap_or_default();
        shadowed.retain(|name| *name != origin);
        gathered.values.insert(
            spec.name,
            Raw {
                value: value.to_owned(),
                origin,
                shadowed,
            },
        );
    }
}

#[cfg(test)]
mod tests;
