# Build stage: compile the release binary.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
COPY .env.example ./
RUN cargo build --release --locked

# Runtime stage: a small image with the binary, run as a non-root user.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --create-home --home-dir /app voice
COPY --from=build /src/target/release/voice-agent /usr/local/bin/voice-agent
WORKDIR /app
USER voice
ENV BIND_ADDR=0.0.0.0:8000 \
    DATABASE_URL=sqlite:///app/data/voice-agent.db
RUN mkdir -p /app/data
EXPOSE 8000
CMD ["voice-agent", "serve"]
