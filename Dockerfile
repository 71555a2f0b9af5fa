# syntax=docker/dockerfile:1
# The same webhook-server that render.yaml runs, for any host that runs containers.
#
#   docker build -t whatsapp-webhook .
#   docker run --rm -p 5000:5000 --env-file .env whatsapp-webhook
#
# The image holds two binaries: webhook-server (the default command; `webhook-server migrate`
# applies migrations and exits) and validate-webhook (`docker run … validate-webhook --online`).

# --- build ---------------------------------------------------------------------------------
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# The slim image already has gcc and libc6-dev, which the bundled SQLite and ring need.
COPY . .
# Cache mounts keep the crates.io download and the target directory between builds
# (BuildKit, the default builder of current Docker); the binaries are copied out of the mount.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p webhook-server -p validate-webhook \
    && mkdir -p /out \
    && cp target/release/webhook-server target/release/validate-webhook /out/

# --- run -----------------------------------------------------------------------------------
FROM debian:bookworm-slim
# ca-certificates: TLS to api.twilio.com and to managed PostgreSQL/Redis. Not pinned on
# purpose: certificate updates should arrive with every rebuild.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# An unprivileged user that owns only the working directory (the embedded SQLite default,
# sqlite://data/webhook.db, lives in /app/data; mount a volume there to keep it).
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app \
    && mkdir -p /app/data \
    && chown -R app:app /app
COPY --from=build /out/webhook-server /out/validate-webhook /usr/local/bin/
WORKDIR /app
# Numeric, so orchestrators can verify runAsNonRoot without reading /etc/passwd.
USER 10001:10001
ENV HOST=0.0.0.0 \
    PORT=5000
EXPOSE 5000
# Health: GET /healthz (alive), GET /readyz (database, queue and worker healthy) and
# GET /readyz/webhooks (the same without the queue: webhooks are taken while Redis is down); the
# image has no HTTP client, so let the orchestrator probe them.
CMD ["webhook-server"]
