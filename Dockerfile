# The place binary (every mode: serve, shard, edge, certs, ring) with the browser client embedded.
FROM rust:1.88-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release -p place

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/place /usr/local/bin/place
ENTRYPOINT ["place"]
CMD ["serve", "--listen", "0.0.0.0:3000", "--data-dir", "/data"]
