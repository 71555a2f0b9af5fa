//! Backend, database and Redis: the local things the server needs.

use crate::support::{Project, TinyServer, closed_port, dotenv, fake_redis};

#[test]
fn backend_not_listening_is_a_warning_offline_and_an_error_online() {
    let p = Project::new(&dotenv(""));
    let port = p.port();
    let line = format!("  ⚠️ port: nothing is listening on 127.0.0.1:{port}");
    let fix = format!(
        "Start the server with `cargo run -p webhook-server` (it listens on PORT {port}), then check again."
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
fn another_program_on_port_is_a_warning() {
    let server = TinyServer::start(|_| (404, vec![], "nope".to_owned()));
    let port = server.port;
    let run = Project::new(&dotenv(""))
        .env("PORT", port.to_string())
        .run(&[]);
    run.lines_pair(
        &format!("  ⚠️ healthz: GET http://127.0.0.1:{port}/healthz answered 404: the program on port {port} is not webhook-server"),
        "     Note: Stop the other program or give webhook-server a free port (PORT) and `ngrok http` that port.",
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
        &format!("  ❌ connection: cannot connect to PostgreSQL at 127.0.0.1:{port}: connection refused"),
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
fn redis_ping_ok_unreachable_and_wrong_password() {
    let port = fake_redis(None);
    let run = Project::new(&dotenv(&format!("REDIS_URL=redis://127.0.0.1:{port}\n"))).run(&[]);
    run.line(&format!(
        "  ✅ ping: Redis at 127.0.0.1:{port} answered PONG"
    ));

    let closed = closed_port();
    let run = Project::new(&dotenv(&format!("REDIS_URL=redis://127.0.0.1:{closed}\n"))).run(&[]);
    run.lines_pair(
        &format!("  ❌ ping: cannot connect to Redis at 127.0.0.1:{closed}: connection refused"),
        "     Fix: Start Redis or correct REDIS_URL; or unset REDIS_URL to use the in-process queue.",
    );
    assert_eq!(run.code, 1);

    let port = fake_redis(Some("right"));
    let run = Project::new(&dotenv(&format!(
        "REDIS_URL=redis://:wrong@127.0.0.1:{port}\n"
    )))
    .run(&[]);
    run.lines_pair(
        &format!("  ❌ ping: Redis at 127.0.0.1:{port} refused: WRONGPASS invalid username-password pair or user is disabled."),
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
