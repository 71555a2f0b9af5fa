//! `render.yaml` against the code, so the Blueprint cannot drift from what the server needs.
//!
//! - Every environment variable is a key `config` reads; secrets are never literal values;
//!   `PORT` is left to Render.
//! - The Blueprint's environment, with sample values for the `sync: false` secrets and
//!   Render-shaped connection strings for the database and Key Value, loads with
//!   `APP_ENV=production` and every configuration finding is ✅: nothing the server needs in
//!   production is missing.
//! - `fromDatabase` / `fromService` point at resources the Blueprint defines; the Key Value
//!   instance is private and never evicts queue entries.
//! - The build, pre-deploy and start commands name this package and binary, and actually run:
//!   the pre-deploy command migrates a database, and the start command serves 200 on
//!   `healthCheckPath`, both with the Blueprint's production environment (a temporary SQLite
//!   file and the in-process queue stand in for Render's PostgreSQL and Key Value).
//! - `maxShutdownDelaySeconds` covers the server's drain on SIGTERM.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde::Deserialize;

/// The root of `render.yaml`: only the fields this project uses are known, so a misspelt field
/// (`healthcheckPath`) fails the parse instead of being ignored by Render.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Blueprint {
    services: Vec<Service>,
    #[serde(default)]
    databases: Vec<Database>,
}

// Some fields are only declared so that `deny_unknown_fields` accepts them.
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Service {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    runtime: Option<String>,
    region: Option<String>,
    plan: Option<String>,
    build_command: Option<String>,
    pre_deploy_command: Option<String>,
    start_command: Option<String>,
    health_check_path: Option<String>,
    auto_deploy_trigger: Option<String>,
    max_shutdown_delay_seconds: Option<u64>,
    num_instances: Option<u32>,
    #[serde(default)]
    env_vars: Vec<EnvVar>,
    maxmemory_policy: Option<String>,
    ip_allow_list: Option<Vec<IpAllow>>,
}

#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Database {
    name: String,
    region: Option<String>,
    plan: Option<String>,
    postgres_major_version: Option<String>,
    database_name: Option<String>,
    user: Option<String>,
    ip_allow_list: Option<Vec<IpAllow>>,
}

#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IpAllow {
    source: String,
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct EnvVar {
    key: String,
    value: Option<String>,
    sync: Option<bool>,
    generate_value: Option<bool>,
    from_database: Option<FromDatabase>,
    from_service: Option<FromService>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FromDatabase {
    name: String,
    property: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FromService {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    property: Option<String>,
    env_var_key: Option<String>,
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn blueprint() -> Blueprint {
    let path = repo_root().join("render.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("render.yaml does not parse: {e}"))
}

/// The one web service: the webhook server.
fn web(bp: &Blueprint) -> &Service {
    let webs: Vec<&Service> = bp.services.iter().filter(|s| s.kind == "web").collect();
    assert_eq!(
        webs.len(),
        1,
        "render.yaml must define exactly one web service"
    );
    webs[0]
}

/// What a user types when Render prompts for a `sync: false` value: realistic, valid values.
fn sample_secret(key: &str, service_name: &str) -> String {
    match key {
        "TWILIO_ACCOUNT_SID" => "AC3f9a1c7e2b8d4f6a0c5e7b9d1f3a5c7e".to_owned(),
        "TWILIO_AUTH_TOKEN" => "0123456789abcdef0123456789abcdef".to_owned(),
        "WEBHOOK_URL" => format!("https://{service_name}.onrender.com/api/v1/whatsapp/webhook"),
        "TWILIO_WHATSAPP_FROM" => "whatsapp:+14155238886".to_owned(),
        other => panic!(
            "render.yaml prompts for {other} (sync: false): add a sample value for it to this test"
        ),
    }
}

/// The environment Render gives the web service: literal values, sample answers to the
/// prompts, connection strings in the shape Render's internal ones have, and `PORT`.
fn render_env(bp: &Blueprint) -> BTreeMap<String, String> {
    let web = web(bp);
    let mut env = BTreeMap::new();
    for var in &web.env_vars {
        let value = if let Some(v) = &var.value {
            v.clone()
        } else if var.sync == Some(false) {
            sample_secret(&var.key, &web.name)
        } else if let Some(db) = &var.from_database {
            assert_eq!(db.property, "connectionString", "{}", var.key);
            "postgresql://whatsapp_webhook:s3cr3t@dpg-d0abc123def456-a/whatsapp_webhook".to_owned()
        } else if let Some(svc) = &var.from_service {
            assert_eq!(svc.kind, "keyvalue", "{}: only Key Value is wired", var.key);
            assert_eq!(
                svc.property.as_deref(),
                Some("connectionString"),
                "{}",
                var.key
            );
            "redis://red-d0abc123def456:6379".to_owned()
        } else {
            panic!(
                "{}: no value, sync: false, fromDatabase or fromService",
                var.key
            );
        };
        assert!(
            env.insert(var.key.clone(), value).is_none(),
            "{} is set twice",
            var.key
        );
    }
    env.insert("PORT".to_owned(), "10000".to_owned());
    env
}

#[test]
fn blueprint_defines_a_rust_web_service_postgres_and_key_value_in_one_region() {
    let bp = blueprint();
    let web = web(&bp);
    assert_eq!(
        web.runtime.as_deref(),
        Some("rust"),
        "Render's native Rust runtime"
    );
    let kv: Vec<&Service> = bp
        .services
        .iter()
        .filter(|s| s.kind == "keyvalue")
        .collect();
    assert_eq!(kv.len(), 1, "one Key Value instance for the work queue");
    assert_eq!(bp.databases.len(), 1, "one PostgreSQL database");
    // Private networking (internal connection strings) only works within one region.
    let region = web.region.as_deref().expect("web service region");
    assert_eq!(kv[0].region.as_deref(), Some(region));
    assert_eq!(bp.databases[0].region.as_deref(), Some(region));
    assert!(
        web.num_instances.is_none_or(|n| n >= 1),
        "numInstances must be at least 1"
    );
}

#[test]
fn env_vars_are_config_keys_secrets_are_prompted_and_port_is_left_to_render() {
    let bp = blueprint();
    let web = web(&bp);
    for var in &web.env_vars {
        let spec = config::key_spec(&var.key).unwrap_or_else(|| {
            panic!(
                "{} is not a configuration key (config::KEYS); the server would ignore it",
                var.key
            )
        });
        let sources = [
            var.value.is_some(),
            var.sync == Some(false),
            var.generate_value == Some(true),
            var.from_database.is_some(),
            var.from_service.is_some(),
        ];
        assert_eq!(
            sources.iter().filter(|s| **s).count(),
            1,
            "{}: exactly one of value, sync: false, generateValue, fromDatabase, fromService",
            var.key
        );
        assert!(
            !(spec.secret && var.value.is_some()),
            "{} is a secret: never commit its value, use sync: false or fromDatabase/fromService",
            var.key
        );
        assert!(
            var.generate_value.is_none(),
            "{}: a generated random value is not a valid Twilio credential",
            var.key
        );
    }
    let keys: Vec<&str> = web.env_vars.iter().map(|v| v.key.as_str()).collect();
    assert!(
        !keys.contains(&"PORT"),
        "Render injects PORT; setting it would fight the platform"
    );
    assert!(
        !keys.contains(&"HOST"),
        "the default HOST 0.0.0.0 is what Render needs"
    );
    for secret in ["TWILIO_AUTH_TOKEN", "TWILIO_ACCOUNT_SID", "WEBHOOK_URL"] {
        let var = web.env_vars.iter().find(|v| v.key == secret);
        assert_eq!(
            var.and_then(|v| v.sync),
            Some(false),
            "{secret} must be prompted for (sync: false)"
        );
    }
}

#[test]
fn blueprint_env_passes_production_validation_with_every_finding_ok() {
    let bp = blueprint();
    let env = render_env(&bp);
    let settings = config::Settings::from_vars(env.clone()).unwrap_or_else(|e| {
        panic!(
            "the Blueprint's environment is refused in production:\n{e}\nenv keys: {:?}",
            env.keys()
        )
    });
    assert_eq!(settings.app_env, config::AppEnv::Production);
    assert_eq!(settings.port, 10000, "Render's PORT is honoured");
    assert_eq!(settings.host, "0.0.0.0");
    assert!(
        settings.database_url.expose().starts_with("postgres"),
        "PostgreSQL, not the embedded SQLite"
    );
    assert!(
        settings.redis_url.is_some(),
        "Redis Streams queue, so several instances share the work"
    );
    assert!(settings.sender.is_some(), "replies are sent, not dry run");
    let not_ok: Vec<String> = settings
        .findings()
        .into_iter()
        .filter(|f| f.status != config::Status::Ok)
        .map(|f| format!("{} ({}): {}", f.key, f.check, f.message))
        .collect();
    assert!(
        not_ok.is_empty(),
        "production findings that are not ✅: {not_ok:#?}"
    );
    // The status callback URL Twilio gets follows from WEBHOOK_URL on the same host.
    assert_eq!(
        settings.status_callback_url().as_deref(),
        Some(
            format!(
                "https://{}.onrender.com{}",
                web(&bp).name,
                webhook_core::routes::STATUS_PATH
            )
            .as_str()
        )
    );
}

#[test]
fn production_validation_notices_a_missing_prompted_key() {
    // The check above is only meaningful if dropping what the Blueprint provides is noticed.
    let bp = blueprint();
    for key in ["TWILIO_AUTH_TOKEN", "WEBHOOK_URL"] {
        let mut env = render_env(&bp);
        env.remove(key);
        let err = config::Settings::from_vars(env).expect_err(key);
        assert!(err.to_string().contains(key), "{key}: {err}");
    }
    let mut env = render_env(&bp);
    env.remove("DATABASE_URL");
    let settings = config::Settings::from_vars(env).expect("SQLite is only a warning");
    assert!(
        settings
            .findings()
            .iter()
            .any(|f| f.key == "DATABASE_URL" && f.status != config::Status::Ok)
    );
}

#[test]
fn references_point_at_resources_the_blueprint_defines() {
    let bp = blueprint();
    for var in &web(&bp).env_vars {
        if let Some(db) = &var.from_database {
            assert!(
                bp.databases.iter().any(|d| d.name == db.name),
                "{}: no database named {}",
                var.key,
                db.name
            );
        }
        if let Some(svc) = &var.from_service {
            assert!(
                bp.services
                    .iter()
                    .any(|s| s.name == svc.name && s.kind == svc.kind),
                "{}: no {} service named {}",
                var.key,
                svc.kind,
                svc.name
            );
            assert!(svc.env_var_key.is_none() || svc.property.is_none());
        }
    }
}

#[test]
fn key_value_and_database_are_private_and_the_queue_is_never_evicted() {
    let bp = blueprint();
    let kv = bp
        .services
        .iter()
        .find(|s| s.kind == "keyvalue")
        .expect("Key Value service");
    // Render requires ipAllowList on Key Value; empty means private network only.
    let allow = kv
        .ip_allow_list
        .as_ref()
        .expect("ipAllowList is required on a Key Value instance");
    assert!(
        allow.is_empty(),
        "Redis must not be reachable from the internet"
    );
    assert_eq!(
        kv.maxmemory_policy.as_deref(),
        Some("noeviction"),
        "an evicted queue entry is a reply delayed until the next sweep"
    );
    let db = &bp.databases[0];
    assert!(
        db.ip_allow_list.as_ref().is_some_and(Vec::is_empty),
        "PostgreSQL must not be reachable from the internet"
    );
}

/// Splits a command line on spaces (Render runs pre-deploy commands without a shell, so the
/// Blueprint's commands stay simple words).
fn words(cmd: &str) -> Vec<&str> {
    assert!(
        !cmd.contains(['&', '|', ';', '$', '"', '\'']),
        "{cmd:?}: keep commands free of shell syntax (pre-deploy commands run without a shell)"
    );
    cmd.split_whitespace().collect()
}

/// The file name of this package's binary, as Cargo builds it.
fn bin_name() -> String {
    Path::new(env!("CARGO_BIN_EXE_webhook-server"))
        .file_name()
        .expect("binary file name")
        .to_string_lossy()
        .into_owned()
}

/// `(program, args)` of a Blueprint command that runs the release binary.
fn release_command(cmd: &str) -> (String, Vec<String>) {
    let w = words(cmd);
    let program = w[0].to_owned();
    assert_eq!(
        program,
        format!("./target/release/{}", bin_name()),
        "{cmd:?} must run the binary cargo builds"
    );
    (program, w[1..].iter().map(|s| (*s).to_owned()).collect())
}

#[test]
fn build_command_builds_this_package_in_release_mode() {
    let bp = blueprint();
    let build = web(&bp).build_command.as_deref().expect("buildCommand");
    let w = words(build);
    assert_eq!(&w[..2], ["cargo", "build"], "{build}");
    assert!(w.contains(&"--release"), "{build}: release mode");
    assert!(
        w.windows(2)
            .any(|p| p == ["-p", env!("CARGO_PKG_NAME")]
                || p == ["--package", env!("CARGO_PKG_NAME")]),
        "{build}: must build package {}",
        env!("CARGO_PKG_NAME")
    );
    assert!(
        repo_root().join("Cargo.lock").is_file() || !w.contains(&"--locked"),
        "--locked needs the committed Cargo.lock"
    );
}

#[test]
fn shutdown_delay_covers_the_servers_drain() {
    let bp = blueprint();
    let delay = web(&bp)
        .max_shutdown_delay_seconds
        .expect("maxShutdownDelaySeconds");
    // Requests drain for up to DRAIN, then in-flight replies for up to DRAIN again.
    let needed = 2 * webhook_core::server::DRAIN.as_secs();
    assert!(
        delay > needed && delay <= 300,
        "maxShutdownDelaySeconds {delay} must exceed the server's drain of {needed} s (Render allows up to 300)"
    );
}

/// The Blueprint's production environment for running the binary here: PostgreSQL and Redis
/// are replaced by a SQLite file in `dir` and the in-process queue (their wiring is checked
/// above), and the server binds loopback only.
fn local_env(bp: &Blueprint, port: u16) -> BTreeMap<String, String> {
    let mut env = render_env(bp);
    env.insert("DATABASE_URL".into(), "sqlite://webhook.db?mode=rwc".into());
    env.remove("REDIS_URL");
    env.insert("HOST".into(), "127.0.0.1".into());
    env.insert("PORT".into(), port.to_string());
    env
}

fn spawn(dir: &Path, args: &[String], env: &BTreeMap<String, String>) -> Child {
    let log = |name: &str| {
        Stdio::from(std::fs::File::create(dir.join(name)).expect("log file in the temp dir"))
    };
    Command::new(env!("CARGO_BIN_EXE_webhook-server"))
        .args(args)
        .env_clear()
        .envs(env)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log("stdout.log"))
        .stderr(log("stderr.log"))
        .spawn()
        .expect("start webhook-server")
}

fn logs(dir: &Path) -> String {
    let read = |n: &str| std::fs::read_to_string(dir.join(n)).unwrap_or_default();
    format!(
        "--- stdout ---\n{}\n--- stderr ---\n{}",
        read("stdout.log"),
        read("stderr.log")
    )
}

#[test]
fn pre_deploy_command_migrates_with_the_production_environment() {
    let bp = blueprint();
    let cmd = web(&bp)
        .pre_deploy_command
        .as_deref()
        .expect("preDeployCommand");
    let (_, args) = release_command(cmd);
    assert_eq!(args, ["migrate"], "{cmd}");
    let dir = tempfile::tempdir().expect("temp dir");
    let status = spawn(dir.path(), &args, &local_env(&bp, 10000))
        .wait()
        .expect("wait for migrate");
    let out = logs(dir.path());
    assert!(status.success(), "`{cmd}` failed ({status}):\n{out}");
    assert!(
        out.contains("database migrations applied: m20251126_000001_create_tables"),
        "names what it applied:\n{out}"
    );
    let db = std::fs::metadata(dir.path().join("webhook.db")).expect("database file created");
    assert!(db.len() > 0);
    // The next deploy's pre-deploy run: nothing to do, and it says so.
    let again = spawn(dir.path(), &args, &local_env(&bp, 10000))
        .wait()
        .expect("wait for migrate");
    let out = logs(dir.path());
    assert!(again.success(), "{out}");
    assert!(
        out.contains("database migrations applied (none were pending)"),
        "{out}"
    );
}

#[test]
fn migrate_names_an_unreachable_database_address() {
    let bp = blueprint();
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let mut env = local_env(&bp, 10000);
    env.insert(
        "DATABASE_URL".into(),
        format!("postgres://postgres@127.0.0.1:{port}/x"),
    );
    let status = spawn(dir.path(), &["migrate".to_owned()], &env)
        .wait()
        .expect("wait for migrate");
    let out = logs(dir.path());
    assert!(!status.success(), "{out}");
    assert!(
        out.contains(&format!(
            "could not migrate the database (127.0.0.1:{port}: "
        )),
        "{out}"
    );
}

/// Frees a loopback port for the child to bind.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// `GET path` over HTTP/1.1; the status code and body, or `None` while nothing listens.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let code = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    Some((code, body))
}

/// Kills the child when the test ends, whatever happens.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn start_command_serves_the_health_check_path_with_the_production_environment() {
    let bp = blueprint();
    let web = web(&bp);
    let cmd = web.start_command.as_deref().expect("startCommand");
    let (_, args) = release_command(cmd);
    assert!(
        args.is_empty() || args == ["serve"],
        "{cmd}: the server is the default command"
    );
    let path = web.health_check_path.as_deref().expect("healthCheckPath");
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let mut child = Running(spawn(dir.path(), &args, &local_env(&bp, port)));

    // Wait (bounded) for the listener; the first answer decides.
    let mut answer = None;
    for _ in 0..600 {
        if let Some(status) = child.0.try_wait().expect("child status") {
            panic!("`{cmd}` exited with {status}:\n{}", logs(dir.path()));
        }
        answer = get(port, path);
        if answer.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, body) =
        answer.unwrap_or_else(|| panic!("nothing answered on port {port}:\n{}", logs(dir.path())));
    assert_eq!(
        code,
        200,
        "GET {path} → {code} {body}\n{}",
        logs(dir.path())
    );
    // It is the readiness check (database, queue, worker), not a bare liveness probe.
    let report: serde_json::Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("GET {path} body is not the readiness JSON ({e}): {body}"));
    assert_eq!(report["ready"], true, "{body}");
    assert_eq!(report["database"], "ok", "{body}");
    assert_eq!(report["queue"], "ok", "{body}");
    assert!(
        logs(dir.path()).contains(&format!("🚀 listening on http://127.0.0.1:{port}")),
        "{}",
        logs(dir.path())
    );
}
