# The image the Helm chart runs: `quartermaster serve --no-workers`, `quartermaster worker` and
# `quartermaster migrate` from one binary.
#   docker build -t quartermaster:dev .
# Build with HiGHS for exact large replenishment plans: --build-arg FEATURES=highs

FROM rust:1.95-bookworm AS build
ARG FEATURES=""
RUN if [ -n "$FEATURES" ]; then apt-get update && apt-get install -y --no-install-recommends cmake libclang-dev \
      && rm -rf /var/lib/apt/lists/*; fi
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p qm-api --bin quartermaster ${FEATURES:+--features "$FEATURES"} \
    && install -m 0755 target/release/quartermaster /usr/local/bin/quartermaster

FROM debian:bookworm-slim
# TLS roots are compiled in (rustls with webpki roots); ca-certificates serves anything the
# operator mounts. tini reaps and forwards SIGTERM so workers hand back their jobs on shutdown.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates tini \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 quartermaster \
    && useradd --system --uid 10001 --gid quartermaster --home-dir /var/lib/quartermaster --no-create-home quartermaster \
    && install -d -o quartermaster -g quartermaster -m 0700 /var/lib/quartermaster
COPY --from=build /usr/local/bin/quartermaster /usr/local/bin/quartermaster
USER 10001:10001
WORKDIR /var/lib/quartermaster
ENV QM_DATA_DIR=/var/lib/quartermaster \
    QM_LISTEN=0.0.0.0:8080 \
    QM_LOG_FORMAT=json
EXPOSE 8080 9090
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/quartermaster"]
CMD ["serve"]
