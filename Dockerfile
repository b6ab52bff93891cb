# Holdfast's image: both binaries (holdfast-controller, holdfast-dataplane) in one small non-root image; the Helm
# chart picks one per container with `command`.
#
#   docker build -t holdfast/holdfast:0.1.0 .
#
# The builder is pinned to the toolchain of rust-toolchain.toml, and the runtime to the same Debian release, so the
# binaries find the glibc they were linked against.

FROM rust:1.95.0-bookworm AS build
WORKDIR /src
# The image's toolchain is the pinned one; this stops rustup from acting on rust-toolchain.toml (not copied anyway).
ENV RUSTUP_TOOLCHAIN=1.95.0 CARGO_TERM_COLOR=never
# The dataplane is built with PGO (scripts/build-dist): llvm-profdata of the toolchain's own LLVM, and wrk, curl,
# h2load (gRPC calls) and python3 for the training run on the builder's loopback.
RUN rustup component add llvm-tools \
    && apt-get update \
    && apt-get install -y --no-install-recommends wrk curl nghttp2-client python3 \
    && rm -rf /var/lib/apt/lists/*

# Dependencies first, against stub sources: this layer is rebuilt only when a manifest or Cargo.lock changes. (The
# dataplane's are compiled again in the PGO build, which instruments and then optimises every crate; they are only
# fetched here.)
COPY Cargo.toml Cargo.lock ./
COPY snapshot/Cargo.toml snapshot/
COPY crds/Cargo.toml crds/
COPY dataplane/Cargo.toml dataplane/
COPY controller/Cargo.toml controller/
# The end-to-end suite is a workspace member too: cargo needs its manifest to load the workspace, never its code.
COPY e2e/Cargo.toml e2e/
RUN mkdir -p e2e/src && : > e2e/src/lib.rs \
    && for crate in snapshot crds dataplane controller; do \
        mkdir -p "$crate/src/bin" && echo 'fn main() {}' > "$crate/src/main.rs" && : > "$crate/src/lib.rs"; \
    done \
    && echo 'fn main() {}' > dataplane/src/bin/hash_upstream.rs \
    && echo 'fn main() {}' > dataplane/src/bin/ws_peer.rs \
    && echo 'fn main() {}' > dataplane/src/bin/grpc_peer.rs \
    && echo 'fn main() {}' > crds/src/bin/crdgen.rs \
    && cargo build --release --locked -p holdfast-controller \
    && cargo fetch --locked \
    && rm -rf snapshot/src crds/src dataplane/src controller/src

# The real sources. Their mtimes may be older than the stub builds', so touch them for cargo to rebuild our crates.
COPY snapshot/src snapshot/src
COPY crds/src crds/src
COPY dataplane/src dataplane/src
COPY controller/src controller/src
COPY scripts/build-dist scripts/pgo-train scripts/
RUN find snapshot crds dataplane controller -name '*.rs' -exec touch {} + \
    && cargo build --release --locked -p holdfast-controller \
    && bash scripts/build-dist \
    && install -D -m 0755 target/release/holdfast-controller target/dist/holdfast-dataplane -t /out

# bash is used by the chart's exec probes and preStop hook (the admin listener is on the pod's loopback, out of reach
# of kubelet HTTP probes); ca-certificates for TLS to the Kubernetes API outside the cluster's own CA.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /var/spool/holdfast && chown 65532:65532 /var/spool/holdfast
COPY --from=build /out/ /usr/local/bin/
# Numeric, so that Kubernetes' runAsNonRoot can check it.
USER 65532:65532
EXPOSE 8080
# The dataplane by default; the chart sets `command` for each container.
ENTRYPOINT ["/usr/local/bin/holdfast-dataplane"]
