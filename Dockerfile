# Skiff example image: the `worker` and `web` examples and the `skiff` admin CLI.
#
#   docker build -t skiff-example .
#   docker compose up            # redis + workers + web (see docker-compose.yml)
#
# Stage 1 builds release binaries with the Redis store enabled; stage 2 is a slim runtime
# image running as an unprivileged user.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p skiff --features redis --example worker --example web \
 && cargo build --release --locked -p queue-cli --bin skiff \
 && mkdir -p /out \
 && cp target/release/examples/worker /out/skiff-worker \
 && cp target/release/examples/web /out/skiff-web \
 && cp target/release/skiff /out/skiff

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --create-home --home-dir /var/lib/skiff skiff
COPY --from=build /out/ /usr/local/bin/
USER skiff
WORKDIR /var/lib/skiff
# SQLite by default; docker-compose.yml points every service at Redis instead.
ENV SKIFF_URL=sqlite:///var/lib/skiff/skiff.db
# The worker stops gracefully on SIGTERM (Docker's default stop signal).
STOPSIGNAL SIGTERM
CMD ["skiff-worker"]
