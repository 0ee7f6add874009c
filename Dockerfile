# izzi's container image: the static (musl) binary on an empty base, run as a non-root user.
#
#   docker build -t izzi .
#   docker run --rm -p 8745:8745 -v "$PWD/config.toml:/etc/izzi/config.toml:ro" izzi
#
# The gateway refuses to listen beyond loopback until client keys exist, so the config must
# hold `[[keys]]` (or point `[state]` at a PostgreSQL that holds keys). `docker-compose.yml`
# runs it with Redis and PostgreSQL for a team. The image holds no shell: `izzi` is the
# entrypoint, so `docker run izzi config check --config /etc/izzi/config.toml` checks a config.

FROM rust:1-alpine AS build
# A C toolchain for the bundled SQLite and mimalloc.
RUN apk add --no-cache build-base ca-certificates
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin izzi \
    && cp target/release/izzi /izzi \
    && mkdir -p /data /etc/izzi

FROM scratch
# The system roots: upstream providers, and PostgreSQL and Redis with TLS, are checked against them.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /izzi /usr/local/bin/izzi
# IZZI_HOME: izzi.db, the ledger spill file and the 0600 credential file, owned by the user.
COPY --from=build --chown=65532:65532 /data /data
COPY --from=build /etc/izzi /etc/izzi
ENV IZZI_HOME=/data \
    IZZI_KEYRING=file \
    IZZI_LOG_FORMAT=json
VOLUME /data
USER 65532:65532
EXPOSE 8745
ENTRYPOINT ["/usr/local/bin/izzi"]
CMD ["serve", "--config", "/etc/izzi/config.toml", "--host", "0.0.0.0"]
