# syntax=docker/dockerfile:1
# Build: docker build -t switchboard .
# Run:   docker run -p 8080:8080 -v switchboard-data:/data switchboard   (one instance, SQLite)
#        docker run -p 8080:8080 -e DATABASE_URL=postgres://… -e REDIS_URL=redis://… switchboard

FROM rust:1.95-bookworm AS build
WORKDIR /src
# The image carries no debuginfo (symbols stay, so a panic's backtrace names
# functions); profile with a local build instead.
ENV CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=debuginfo
# Dependencies first, so source edits do not rebuild them.
COPY Cargo.toml Cargo.lock ./
# Build settings for the bundled SQLite (.cargo/config.toml).
COPY .cargo ./.cargo
RUN mkdir -p src benches && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && echo 'fn main() {}' > benches/load.rs \
    && cargo build --release --locked --bin switchboard \
    && rm -rf src
COPY src ./src
COPY migrations ./migrations
COPY static ./static
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin switchboard

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates=20230311+deb12u1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home switchboard \
    && mkdir /data && chown 10001 /data
COPY --from=build /src/target/release/switchboard /usr/local/bin/switchboard
USER 10001
# Without DATABASE_URL the embedded database lives in /data (mount a volume).
ENV BIND_ADDR=0.0.0.0:8080 RUST_LOG=info DATA_DIR=/data
VOLUME ["/data"]
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/switchboard", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/switchboard"]
