# The tfstate-operator container image.
#
#   docker build -t ghcr.io/tfstate-dev/tfstate-operator:0.1.0 \
#     --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse HEAD) .
#
# Two stages: the release binary is built on the official Rust image (Debian bookworm), then
# copied alone into distroless/cc (glibc, libgcc and CA certificates, which the binary and its
# aws-lc-rs TLS stack need; no shell, no package manager), running as the non-root user 65532.
# Dependencies are compiled in a layer of their own, from Cargo.toml and Cargo.lock only, so a
# change to src/ recompiles only the operator's own crate. See docs/install.md.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /build

# 1. Dependencies only. Cargo needs every target named in Cargo.toml to exist, so stub the
#    library, the binary and each [[test]], [[example]] and [[bench]] (at its default path;
#    none is built, and the stubs stay so that tests/ and examples/ need not be in the build
#    context), then build; then forget the stubbed crate itself so that the real sources are
#    always recompiled (COPY keeps the context's mtimes, which may be older than the stub's).
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src tests examples benches \
    && echo 'fn main() {}' > src/main.rs \
    && : > src/lib.rs \
    && awk '/^\[\[(test|example|bench)\]\]/ { kind = $0; gsub(/[][]/, "", kind); next } /^\[/ { kind = "" } \
            kind != "" && /^name *=/ { name = $0; gsub(/^name *= *"|".*$/, "", name); print kind, name }' Cargo.toml \
       | while read -r kind name; do \
           case "$kind" in test) dir=tests ;; example) dir=examples ;; *) dir=benches ;; esac; \
           echo 'fn main() {}' > "$dir/$name.rs"; \
         done \
    && cargo build --release --locked --bin tfstate-operator \
    && rm -rf src \
       target/release/tfstate-operator target/release/tfstate-operator.d \
       target/release/deps/tfstate_operator-* target/release/deps/libtfstate_operator-* \
       target/release/.fingerprint/tfstate-operator-*

# 2. The operator.
COPY src ./src
RUN cargo build --release --locked --bin tfstate-operator \
    && install -D -m 0755 target/release/tfstate-operator /out/tfstate-operator

FROM gcr.io/distroless/cc-debian12:nonroot

ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="tfstate-operator" \
      org.opencontainers.image.description="Kubernetes operator that turns one TerraformStateBackend object into a hardened, continuously converged Terraform/OpenTofu S3 state backend in AWS" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/tfstate-dev/tfstate-operator" \
      org.opencontainers.image.documentation="https://github.com/tfstate-dev/tfstate-operator/blob/main/docs/install.md" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot"

COPY --from=builder /out/tfstate-operator /usr/local/bin/tfstate-operator

# Numeric, so that Kubernetes' runAsNonRoot can verify it without a passwd lookup.
USER 65532:65532
# /metrics (--metrics-addr) and /healthz, /readyz (--health-addr).
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/tfstate-operator"]
CMD ["run"]
