#!/usr/bin/env bash
# Starts the platform on embedded defaults: a nats-server with JetStream and
# every service built so far, SQLite under $STATE_DIR, authentication off.
# Waits for health, prints the endpoints, and stops everything on Ctrl-C.
# Ports: the defaults below, or PSIRT_NATS_PORT, PSIRT_UP_<SERVICE>_{GRPC,ADMIN}_PORT and
# PSIRT_UP_PORTAL_{PORT,ADMIN_PORT}; 0 lets the kernel choose. The portal's security.txt
# names PSIRT_UP_CONTACT (default mailto:psirt@localhost). Each service writes the addresses it bound to
# $STATE_DIR/<service>.ports.json (--ports-file), nats-server to
# $STATE_DIR/nats/nats-server_<pid>.ports; the banner shows the bound ones.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
state="${STATE_DIR:-$root/.psirt}"
bin="${PSIRT_BIN_DIR:-$root/target/debug}"
mkdir -p "$state/nats" "$state/logs"

pids=()
stop() {
    trap - INT TERM EXIT
    echo
    echo "stopping..."
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    echo "stopped"
}
trap stop INT TERM EXIT

port_free() {
    python3 - "$1" <<'PY'
import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
PY
}

# wait_ports_file FILE PID NAME: waits until FILE exists (the process bound its ports).
wait_ports_file() {
    for _ in $(seq 1 600); do
        [ -s "$1" ] && return 0
        kill -0 "$2" 2>/dev/null || break
        sleep 0.1
    done
    echo "error: $3 did not bind its ports; see $state/logs/$3.log" >&2
    return 1
}
# json_port FILE KEY: the port of the first address under KEY of a ports file.
json_port() {
    python3 -c 'import json, sys
v = json.load(open(sys.argv[1]))[sys.argv[2]]
print((v[0] if isinstance(v, list) else v).rstrip("/").rsplit(":", 1)[1])' "$1" "$2"
}

wait_http() { # url name
    for _ in $(seq 1 300); do
        if python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" "$1" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "error: $2 did not become ready; see $state/logs/$2.log" >&2
    return 1
}

# NATS: our own server with JetStream on 4222, or the next free port (0: any).
nats_port="${PSIRT_NATS_PORT:-4222}"
nats_monitor=8222
if [ "$nats_port" = 0 ]; then
    nats_port=-1 nats_monitor=-1
else
    while ! port_free "$nats_port"; do nats_port=$((nats_port + 1)); done
    while ! port_free "$nats_monitor"; do nats_monitor=$((nats_monitor + 1)); done
fi
nats_bin="$("$root/scripts/nats-server-path.sh")"
# Every service connects as its own NATS identity with the shipped permissions
# (deploy/nats/psirt-auth.conf): dev keys made once per state dir, the stream
# created by the admin identity, as in production.
"$bin/psirtctl" admin nats-identities "$state/nats-ids" >/dev/null
cp "$root/deploy/nats/psirt-auth.conf" "$state/nats/psirt-auth.conf"
cat >"$state/nats/nats-server.conf" <<CONF
listen: 127.0.0.1:$nats_port
http: 127.0.0.1:$nats_monitor
ports_file_dir: "$state/nats"
jetstream { store_dir: "$state/nats/js" }
include ./psirt-auth.conf
CONF
(set -a; . "$state/nats-ids/nats-identities.env"; set +a
 exec "$nats_bin" -c "$state/nats/nats-server.conf" >"$state/logs/nats.log" 2>&1) &
pids+=($!)
nats_ports="$state/nats/nats-server_$!.ports"
wait_ports_file "$nats_ports" "$!" nats
nats_port="$(json_port "$nats_ports" nats)"
nats_monitor="$(json_port "$nats_ports" monitoring)"
wait_http "http://127.0.0.1:$nats_monitor/healthz?js-enabled-only=true" nats
"$bin/psirtctl" admin stream apply --nats-url "nats://127.0.0.1:$nats_port" \
    --nats-nkey-seed-file "$state/nats-ids/admin.nk" >"$state/logs/stream-apply.log" 2>&1 \
    || { cat "$state/logs/stream-apply.log" >&2; exit 1; }

export PSIRT_AUTH__MODE=none
export PSIRT_NATS__URL="nats://127.0.0.1:$nats_port"
export PSIRT_LOG__FORMAT="${PSIRT_LOG__FORMAT:-json}"

start_service() { # name grpc admin; sets bound_grpc and bound_admin
    local ports="$state/$1.ports.json"
    rm -f "$ports"
    PSIRT_DATABASE__URL="sqlite://$state/$1.db?mode=rwc" \
    PSIRT_NATS__NKEY_SEED_FILE="$state/nats-ids/$1.nk" \
    PSIRT_GRPC__LISTEN="127.0.0.1:$2" PSIRT_ADMIN__LISTEN="127.0.0.1:$3" \
    PSIRT_PORTS_FILE="$ports" \
        "$bin/psirt-$1" >"$state/logs/$1.log" 2>&1 &
    pids+=($!)
    wait_ports_file "$ports" "$!" "$1"
    bound_grpc="$(json_port "$ports" grpc)"
    bound_admin="$(json_port "$ports" admin)"
    wait_http "http://127.0.0.1:$bound_admin/readyz" "$1"
}

intake_grpc="${PSIRT_UP_INTAKE_GRPC_PORT:-50051}"
intake_admin="${PSIRT_UP_INTAKE_ADMIN_PORT:-9101}"
start_service intake "$intake_grpc" "$intake_admin"
intake_grpc="$bound_grpc" intake_admin="$bound_admin"
triage_grpc="${PSIRT_UP_TRIAGE_GRPC_PORT:-50052}"
triage_admin="${PSIRT_UP_TRIAGE_ADMIN_PORT:-9102}"
start_service triage "$triage_grpc" "$triage_admin"
triage_grpc="$bound_grpc" triage_admin="$bound_admin"
remediation_grpc="${PSIRT_UP_REMEDIATION_GRPC_PORT:-50053}"
remediation_admin="${PSIRT_UP_REMEDIATION_ADMIN_PORT:-9103}"
PSIRT_ADVISORY__CSAF_DIRECTORY="${PSIRT_ADVISORY__CSAF_DIRECTORY:-$state/csaf}" \
    start_service remediation "$remediation_grpc" "$remediation_admin"
remediation_grpc="$bound_grpc" remediation_admin="$bound_admin"
notification_grpc="${PSIRT_UP_NOTIFICATION_GRPC_PORT:-50054}"
notification_admin="${PSIRT_UP_NOTIFICATION_ADMIN_PORT:-9104}"
# A signing key for webhook subscriptions (secret_ref "dev_webhook"), made once per state dir.
webhook_key="$state/dev-webhook.key"
if [ ! -s "$webhook_key" ]; then
    (umask 077 && python3 -c "import secrets; print(secrets.token_hex(32))" >"$webhook_key")
fi
PSIRT_SECRETS__DEV_WEBHOOK__FILE="$webhook_key" \
    start_service notification "$notification_grpc" "$notification_admin"
notification_grpc="$bound_grpc" notification_admin="$bound_admin"

# The portal: public HTTP (security.txt), its public URL built from the port it gets.
portal_port="${PSIRT_UP_PORTAL_PORT:-8080}"
portal_admin="${PSIRT_UP_PORTAL_ADMIN_PORT:-9105}"
if [ "$portal_port" = 0 ]; then
    portal_port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
else
    while ! port_free "$portal_port"; do portal_port=$((portal_port + 1)); done
fi
cat >"$state/portal.toml" <<CONF
[portal]
listen = "127.0.0.1:$portal_port"
public_url = "http://127.0.0.1:$portal_port/"

[portal.security_txt]
contacts = ["${PSIRT_UP_CONTACT:-mailto:psirt@localhost}"]

[admin]
listen = "127.0.0.1:$portal_admin"
CONF
rm -f "$state/portal.ports.json"
"$bin/psirt-portal" serve --config "$state/portal.toml" --ports-file "$state/portal.ports.json" \
    >"$state/logs/portal.log" 2>&1 &
pids+=($!)
wait_ports_file "$state/portal.ports.json" "$!" portal
portal_port="$(json_port "$state/portal.ports.json" http)"
portal_admin="$(json_port "$state/portal.ports.json" admin)"
wait_http "http://127.0.0.1:$portal_admin/readyz" portal

cat <<MSG

PSIRT platform is up (embedded defaults, state in $state)

  WARNING: authentication is disabled (auth.mode = "none"). Never expose these ports.

  NATS JetStream   nats://127.0.0.1:$nats_port   (monitoring http://127.0.0.1:$nats_monitor)
                   one identity per service, seeds in $state/nats-ids (admin.nk for psirtctl admin stream)
  intake  gRPC     127.0.0.1:$intake_grpc   admin http://127.0.0.1:$intake_admin/metrics /healthz /readyz
  triage  gRPC     127.0.0.1:$triage_grpc   admin http://127.0.0.1:$triage_admin/metrics /healthz /readyz
  remediation gRPC 127.0.0.1:$remediation_grpc   admin http://127.0.0.1:$remediation_admin/metrics /healthz /readyz
                   CSAF provider directory http://127.0.0.1:$remediation_admin/.well-known/csaf/provider-metadata.json
  notification gRPC 127.0.0.1:$notification_grpc  admin http://127.0.0.1:$notification_admin/metrics /healthz /readyz
                   webhook signing key (secret_ref "dev_webhook"): $webhook_key
  portal  HTTP     http://127.0.0.1:$portal_port/.well-known/security.txt   admin http://127.0.0.1:$portal_admin/metrics /healthz /readyz

  Try, from another shell:
    target/debug/psirtctl report submit --title "SQL injection in login" --description "details" --product Portal
    target/debug/psirtctl report list
    target/debug/psirtctl case list
    grpcurl -plaintext 127.0.0.1:$intake_grpc list

  Logs: $state/logs/   Press Ctrl-C to stop.
MSG

# Stay up until Ctrl-C, or until a process dies.
wait -n "${pids[@]}" || true
echo "a process exited; see $state/logs" >&2
