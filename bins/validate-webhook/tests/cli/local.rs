//! Backend, database and Redis: the local things the server needs.

use crate::support::{Project, TinyServer, closed_port, dotenv, fake_redis};

#[test]
fn backend_not_listening_is_a_warning_offline_and_an_error_online() {
    let p = Project::new(&dotenv("")).env(
        "TWILIO_API_BASE_URL",
        format!("http://127.0.0.1:{}", closed_port()),
    );
    let port = p.port();
    let line = format!("  ⚠️ port: nothing is listening on 127.0.0.1:{port}");
    let fix = format!(
        "Start the server with `cargo run --release -p webhook-server` (it listens on PORT {port}), then check again."
    );
    p.run(&[]).lines_pair(&line, &format!("     Note: {fix}"));
    let online = p.run(&["--online"]);
    online.lines_pair(&line.replacen("⚠️", "❌", 1), &format!("     Fix: {fix}"));
}

#[test]
fn a_listening_server_with_healthz_is_ok() {
    let server = TinyServer::start(|req| match req.path.as_str() {
        "/healthz" => (200, vec![], "ok".to_owned()),
        _ => (404, vec![], String::new()),
    });
    let p = Project::new(&dotenv("")).env("PORT", server.port.to_string());
    let run = p.run(&[]);
    run.line(&format!(
        "  ✅ port: something is listening on 127.0.0.1:{}",
        server.port
    ));
    run.line(&format!(
        "  ✅ healthz: GET http://127.0.0.1:{}/healthz answered 200: webhook-server is up",
        server.port
    ));
}

#[test]
fn another_program_on_port_is_an_error() {
    // webhook-server could not bind the port: not a "not started yet" warning.
    let server = TinyServer::start(|_| (404, vec![], "nope".to_owned()));
    let port = server.port;
    let run = Project::new(&dotenv(
        "WEBHOOK_URL=https://abc.ngrok-free.app/api/v1/whatsapp/webhook\n",
    ))
    .env("PORT", port.to_string())
    .run(&[]);
    run.lines_pair(
        &format!("  ❌ healthz: GET http://127.0.0.1:{port}/healthz answered 404: the program on port {port} is not webhook-server"),
        "     Fix: Stop the other program or give webhook-server a free port (PORT) and `ngrok http` that port.",
    );
    // Checking a deployed WEBHOOK_URL from a laptop, the local port is beside the point.
    let deployed = Project::new(&dotenv(
        "WEBHOOK_URL=https://whatsapp-bot.onrender.com/api/v1/whatsapp/webhook\n",
    ))
    .env("PORT", port.to_string())
    .run(&[]);
    deployed.line_starting(&format!(
        "  ⚠️ healthz: GET http://127.0.0.1:{port}/healthz answered 404"
    ));
}

#[test]
fn a_server_still_waiting_for_its_database_is_a_warning() {
    // What webhook-server answers in its starting phase.
    let server = TinyServer::start(|r| {
        match r.path.as_str() {
        "/healthz" => (200, vec![], "ok\n".to_owned()),
        "/readyz" => (
            503,
            vec![],
            r#"{"ready":false,"database":"not ready: could not open the database","queue":"not started","worker":"not started"}"#.to_owned(),
        ),
        _ => (503, vec![], "service unavailable: starting\n".to_owned()),
    }
    });
    let port = server.port;
    let run = Project::new(&dotenv(""))
        .env("PORT", port.to_string())
        .run(&[]);
    run.lines_pair(
        "  ⚠️ healthz: webhook-server is up but still starting (not ready: could not open the database): webhooks get 503 until it is ready",
        "     Note: See the Database line: the server retries until the database answers.",
    );
}

#[test]
fn unreachable_postgres_is_an_error_without_the_password() {
    let port = closed_port();
    let p = Project::new(&dotenv(&format!(
        "DATABASE_URL=postgres://app:s3cr3tpw@127.0.0.1:{port}/app\n"
    )));
    let run = p.run(&[]);
    run.lines_pair(
        &format!("  ❌ connection: cannot connect to PostgreSQL at 127.0.0.1:{port}: connection refused (DATABASE_URL from .env line 3)"),
        "     Fix: Start PostgreSQL or correct DATABASE_URL (host, port, user, password, database).",
    );
    assert!(!run.stdout.contains("s3cr3tpw"), "{}", run.stdout);
    assert_eq!(run.code, 1);
}

#[test]
fn sqlite_default_path() {
    let p = Project::new(&dotenv(""));
    let run = p.run(&[]);
    run.line(&format!(
        "  ✅ sqlite: {} does not exist yet; the server creates it at start",
        p.path().join("data/webhook.db").display()
    ));
}

#[test]
fn rediss_to_a_redis_without_tls_suggests_redis() {
    let port = fake_redis(None);
    let run = Project::new(&dotenv(&format!("REDIS_URL=rediss://127.0.0.1:{port}\n")))
        .run(&["--timeout", "1"]);
    let line = run.line_starting(&format!(
        "  ❌ ping: Redis at 127.0.0.1:{port} did not answer PING over TLS: "
    ));
    assert!(line.ends_with("(REDIS_URL from .env line 3)"), "{line}");
    run.line("     Fix: rediss:// needs a Redis that speaks TLS on this port: if this one does not (a local or private Redis usually does not), use redis://; otherwise start Redis or correct REDIS_URL.");
    assert_eq!(run.code, 1);
}

#[test]
fn redis_ping_ok_unreachable_and_wrong_password() {
    let port = fake_redis(None);
    let run = Project::new(&dotenv(&format!("REDIS_URL=redis://127.0.0.1:{port}\n"))).run(&[]);
    run.line(&format!(
        "  ✅ ping: Redis at 127.0.0.1:{port} answered PONG"
    ));

    let closed = closed_port();
    let run = Project::new(&dotenv(&format!("REDIS_URL=redis://127.0.0.1:{closed}\n"))).run(&[]);
    run.lines_pair(
        &format!("  ❌ ping: cannot connect to Redis at 127.0.0.1:{closed}: connection refused (REDIS_URL from .env line 3)"),
        "     Fix: Start Redis or correct REDIS_URL; or unset REDIS_URL to use the in-process queue.",
    );
    assert_eq!(run.code, 1);

    let port = fake_redis(Some("right"));
    let run = Project::new(&dotenv(&format!(
        "REDIS_URL=redis://:wrong@127.0.0.1:{port}\n"
    )))
    .run(&[]);
    run.lines_pair(
        &format!("  ❌ ping: Redis at 127.0.0.1:{port} refused: WRONGPASS invalid username-password pair or user is disabled. (REDIS_URL from .env line 3)"),
        "     Fix: Put the right password in REDIS_URL: redis://:PASSWORD@host:6379 (or redis://USER:PASSWORD@…).",
    );
    assert!(!run.stdout.contains(":wrong@"), "{}", run.stdout);
    let run = Project::new(&dotenv(&format!(
        "REDIS_URL=redis://:right@127.0.0.1:{port}\n"
    )))
    .run(&[]);
    run.line(&format!(
        "  ✅ ping: Redis at 127.0.0.1:{port} answered PONG"
    ));
}

/// PostgreSQL at 127.0.0.1:5432 (user postgres, trust auth, db `test`): required when CI=true,
/// skipped with a message otherwise.
fn postgres_available() -> bool {
    if std::net::TcpStream::connect("127.0.0.1:5432").is_ok() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but PostgreSQL is not running on 127.0.0.1:5432"
    );
    eprintln!("skipping: PostgreSQL is not running on 127.0.0.1:5432");
    false
}

#[test]
fn postgres_connection_and_migrations_are_reported() {
    if !postgres_available() {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt
        .block_on(test_support::TestDb::postgres())
        .expect("PostgreSQL is running");
    let url = db.url();
    let name = url.rsplit('/').next().unwrap().to_owned();
    let project = Project::new(&dotenv(&format!("DATABASE_URL={url}\n")));

    // A fresh database: both migrations pending, named.
    let run = project.run(&[]);
    let next = run.line(&format!(
        "  ✅ connection: connected to PostgreSQL at 127.0.0.1:5432/{name}"
    ));
    assert!(
        next.starts_with("  ⚠️ migrations: 2 pending (m20251126_000001_create_tables, "),
        "{}",
        run.stdout
    );

    // Migrated as the server does at start: up to date.
    let opts = store::StoreOptions {
        migrate: true,
        ..store::StoreOptions::default()
    };
    rt.block_on(async {
        store::Store::connect(&url, opts)
            .await
            .unwrap()
            .close()
            .await
    });
    let run = project.run(&[]);
    run.lines_pair(
        &format!("  ✅ connection: connected to PostgreSQL at 127.0.0.1:5432/{name}"),
        "  ✅ migrations: up to date",
    );
}

#[test]
fn postgres_without_the_database_is_an_error() {
    if !postgres_available() {
        return;
    }
    let run = Project::new(&dotenv(
        "DATABASE_URL=postgres://postgres@127.0.0.1:5432/validate_webhook_no_such_db\n",
    ))
    .run(&[]);
    run.lines_pair(
        "  ❌ connection: PostgreSQL at 127.0.0.1:5432 refused the connection: database \"validate_webhook_no_such_db\" does not exist (code 3D000) (DATABASE_URL from .env line 3)",
        "     Fix: Correct the user, password and database name in DATABASE_URL; the database must exist (createdb).",
    );
}

#[test]
fn sqlite_migrations_pending_then_up_to_date() {
    let p = Project::new(&dotenv(""));
    let db = p.path().join("data/webhook.db");
    std::fs::write(&db, "").expect("empty database");
    let run = p.run(&[]);
    run.line(&format!("  ✅ sqlite: {} exists", db.display()));
    let pending = run.line_starting("  ⚠️ migrations: ");
    assert!(
        pending.contains(" pending (m") && pending.ends_with("): the server applies them at start"),
        "{pending}"
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let url = format!("sqlite://{}?mode=rwc", db.display());
        let opts = store::StoreOptions {
            migrate: true,
            ..Default::default()
        };
        store::Store::connect(&url, opts)
            .await
            .expect("migrate")
            .close()
            .await;
    });
    p.run(&[]).line("  ✅ migrations: up to date");

    // Migrated by a newer webhook-server: this build would refuse to start on it.
    rt.block_on(test_support::services::execute_sql(
        &format!("sqlite://{}?mode=rw", db.display()),
        "INSERT INTO seaql_migrations (version, applied_at) VALUES ('m20991231_000009_future', 0)",
    ));
    let run = p.run(&[]);
    let line = run
        .line_starting("  ❌ migrations: the database has migrations this build does not know: ");
    assert!(line.contains("m20991231_000009_future"), "{line}");
    assert_eq!(run.code, 1);
}

#[test]
fn sqlite_check_creates_nothing() {
    let p = Project::new(&dotenv(""));
    let _ = p.run(&[]);
    let entries: Vec<_> = std::fs::read_dir(p.path().join("data"))
        .expect("data")
        .collect();
    assert!(entries.is_empty(), "the check created {entries:?}");
}

#[test]
fn rediss_is_pinged_over_tls_and_an_untrusted_certificate_is_an_error() {
    let Some(redis) = test_support::TlsRedis::start() else {
        return;
    };
    let port = redis.port();
    // The test server's certificate is self-signed: refused, with what to do about it.
    let run = Project::new(&dotenv(&format!("REDIS_URL={}\n", redis.url("")))).run(&[]);
    assert!(
        run.stdout.contains(&format!(
            "  ❌ ping: Redis at localhost:{port}: its TLS certificate is not trusted: "
        )),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("     Fix: Use the provider's rediss:// URL with a publicly trusted certificate; if it only has a self-signed one, append #insecure to REDIS_URL (encrypted, not authenticated)."),
        "{}",
        run.stdout
    );
    assert_eq!(run.code, 1);

    let run = Project::new(&dotenv(&format!("REDIS_URL={}\n", redis.url("/#insecure")))).run(&[]);
    run.line(&format!(
        "  ✅ ping: Redis at localhost:{port} answered PONG over TLS"
    ));

    // A password this Redis does not have: the password fix, and the password is not shown.
    let run = Project::new(&dotenv(&format!(
        "REDIS_URL={}\n",
        redis
            .url("/#insecure")
            .replacen("rediss://", "rediss://:hunter2@", 1)
    )))
    .run(&[]);
    assert!(
        run.stdout
            .contains(&format!("  ❌ ping: Redis at localhost:{port} refused: ")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("     Fix: Put the right password in REDIS_URL")
    );
    assert!(!run.stdout.contains("hunter2"), "{}", run.stdout);
}

#[test]
fn a_file_that_is_not_a_sqlite_database_says_so_even_when_short() {
    for content in [
        "these are notes, not a database\n".repeat(200),
        "hello\n".to_owned(),
    ] {
        let p = Project::new(&dotenv(""));
        let db = p.path().join("data/webhook.db");
        std::fs::write(&db, &content).unwrap();
        let run = p.run(&[]);
        assert_eq!(run.code, 1, "{}", run.stdout);
        run.lines_pair(
            &format!(
                "  ❌ sqlite: {} is not a SQLite database (DATABASE_URL not set: the default)",
                db.display()
            ),
            "     Fix: Point DATABASE_URL at the server's database file, or move this file away.",
        );
        assert!(!run.stdout.contains("exists"), "{}", run.stdout);
    }
}

#[test]
fn a_port_where_no_postgresql_answers_is_not_called_a_credentials_problem() {
    // Accepts TCP connections (the kernel's backlog) and never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let run = Project::new(&dotenv(&format!(
        "DATABASE_URL=postgres://postgres@127.0.0.1:{port}/app\n"
    )))
    .run(&["--timeout", "1"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    run.lines_pair(
        &format!("  ❌ connection: 127.0.0.1:{port} accepts connections but no PostgreSQL answered within 1 s (DATABASE_URL from .env line 3)"),
        "     Fix: Check the port in DATABASE_URL (PostgreSQL listens on 5432 unless configured otherwise) and that the server is PostgreSQL and not overloaded.",
    );
    drop(silent);
}

#[test]
fn a_database_url_from_the_environment_that_shadows_env_file_says_so() {
    // The classic puzzle: .env looks right, but an exported DATABASE_URL wins.
    let port = closed_port();
    let run = Project::new(&dotenv("DATABASE_URL=sqlite://data/bot.db?mode=rwc\n"))
        .env(
            "DATABASE_URL",
            format!("postgres://app@127.0.0.1:{port}/app"),
        )
        .run(&[]);
    run.line(&format!(
        "  ❌ connection: cannot connect to PostgreSQL at 127.0.0.1:{port}: connection refused (DATABASE_URL from environment, which overrides .env line 3)"
    ));
}

#[test]
fn a_password_for_a_redis_without_one_and_a_port_that_is_not_redis() {
    // The real Redis of this machine kind has no password.
    if std::net::TcpStream::connect("127.0.0.1:6379").is_err() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but Redis is not running on 127.0.0.1:6379"
        );
        eprintln!("skipping: Redis is not running on 127.0.0.1:6379");
        return;
    }
    let run = Project::new(&dotenv("REDIS_URL=redis://:hunter2pw@127.0.0.1:6379\n")).run(&[]);
    let line = run.line_starting("  ❌ ping: Redis at 127.0.0.1:6379 refused: ");
    assert!(line.contains("without any password configured"), "{line}");
    assert_eq!(
        run.line(&line),
        "     Fix: This Redis has no password: remove it from REDIS_URL (redis://host:6379), or set requirepass on the server."
    );
    assert!(!run.stdout.contains("hunter2pw"), "{}", run.stdout);

    // A port where something accepts connections and says nothing.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let run = Project::new(&dotenv(&format!("REDIS_URL=redis://127.0.0.1:{port}\n")))
        .run(&["--timeout", "1"]);
    run.line_starting(&format!(
        "  ❌ ping: 127.0.0.1:{port} accepts connections but gave no Redis answer to PING"
    ));
    drop(silent);
}
