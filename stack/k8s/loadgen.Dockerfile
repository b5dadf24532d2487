# loadgen image for the Kubernetes Job in this folder.
#
# Build from the repository root:
#   docker build -f stack/k8s/loadgen.Dockerfile -t loadgen-stack/loadgen:local .
#
# The runtime image keeps a POSIX shell: the Job wraps loadgen in a short script that prints the JSON
# report on the pod's log.

ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p loadgen --bin loadgen \
    && install -D -m 0755 target/release/loadgen /out/loadgen

FROM ${RUNTIME_IMAGE}
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin loadgen
COPY --from=build /out/loadgen /usr/local/bin/loadgen
USER 10001:10001
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/loadgen"]
CMD ["--help"]
