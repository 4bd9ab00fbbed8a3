# syntax=docker/dockerfile:1
#
# voice-agent: one static-ish binary on Debian slim, run as a non-root user.
#
#   docker build -t voice-agent .
#   docker run -p 8000:8000 -v va-data:/app/data voice-agent            # serve, SQLite in the volume
#   docker run --rm voice-agent demo                                     # the offline demo (prints its report)
#
# Migrations, the dashboard, the API docs page and the demo's example leads are compiled into the
# binary: nothing but the binary is copied into the runtime image.

# --- Build stage: compile the release binary. ---------------------------------------------
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
# The demo's example leads (include_str!).
COPY examples ./examples
# Read by a unit test only (every setting is listed), but part of the crate's sources.
COPY .env.example ./
# The registry and target caches survive between builds (BuildKit); the binary is copied out
# of the cache mount so the next stage can see it.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
    && cp target/release/voice-agent /usr/local/bin/voice-agent

# --- Runtime stage. -----------------------------------------------------------------------
FROM debian:bookworm-slim
# CA certificates: every HTTP and WebSocket client verifies TLS against the system's roots (add a
# corporate CA here with update-ca-certificates).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --create-home --home-dir /app voice
COPY --from=build /usr/local/bin/voice-agent /usr/local/bin/voice-agent
WORKDIR /app
USER voice
RUN mkdir -p /app/data
# Listen on every interface inside the container; SQLite in the volume unless DATABASE_URL
# names PostgreSQL (docker-compose.yml does).
ENV BIND_ADDR=0.0.0.0:8000 \
    DATABASE_URL=sqlite:///app/data/voice-agent.db \
    LOG_FORMAT=json
VOLUME ["/app/data"]
EXPOSE 8000
# No curl in the slim image: bash's /dev/tcp asks GET /health and wants a 200 (503 while the
# database or Redis is down). Port 8000 as in BIND_ADDR above.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8000 && printf 'GET /health HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["voice-agent"]
CMD ["serve"]
