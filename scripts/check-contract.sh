#!/usr/bin/env bash
# buf breaking of the protobuf contract (proto/) against the newest released one, run by
# `just lint`. The baseline:
#   - the newest `v*` git tag when the clone has tags (`buf breaking --against .git#tag=...`);
#     its committed image proto/releases/<tag>.binpb must exist too (a clone without tags
#     checks against that);
#   - otherwise the newest committed image proto/releases/v*.binpb (CI clones may carry no
#     tags).
# No baseline at all is a failure, never a skip. Then a self-test: copies of the contract
# with a field renumbered and with a field removed must be refused against the same
# baseline. Release procedure: docs/operations.md, "Releasing the contract".
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "check-contract: $*"; }

newest_tag="$(git tag --list 'v*' --sort=-v:refname 2>/dev/null | head -n1 || true)"
newest_image="$(ls proto/releases/v*.binpb 2>/dev/null | sort -V | tail -n1 || true)"

if [[ -n "$newest_tag" ]]; then
    against=".git#tag=$newest_tag"
    if [[ ! -f "proto/releases/$newest_tag.binpb" ]]; then
        log "tag $newest_tag has no committed image proto/releases/$newest_tag.binpb"
        log "(a clone without tags could not check against it; see docs/operations.md)"
        exit 1
    fi
    # The committed image must be the tagged contract, or tagless clones check against
    # something else.
    tagged="$(mktemp)"
    buf build "$against" --exclude-source-info -o "$tagged"
    if ! cmp -s "$tagged" "proto/releases/$newest_tag.binpb"; then
        rm -f "$tagged"
        log "proto/releases/$newest_tag.binpb is not the contract of tag $newest_tag"
        log "(rebuild it: buf build .git#tag=$newest_tag --exclude-source-info -o proto/releases/$newest_tag.binpb)"
        exit 1
    fi
    rm -f "$tagged"
    baseline="tag $newest_tag"
elif [[ -n "$newest_image" ]]; then
    against="$newest_image"
    baseline="image $newest_image (no v* tags in this clone)"
else
    log "no released contract to check against: no v* tag and no proto/releases/v*.binpb"
    exit 1
fi

log "buf breaking against $baseline"
buf breaking --against "$against"

# --- self-test: a breaking change must be refused ------------------------------------------
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# The image of the baseline, so the copies are compared with exactly what was checked above.
buf build "$against" --exclude-source-info -o "$work/baseline.binpb"

# mutate NAME SED-EXPRESSION: a copy of the contract with one message field changed; buf
# breaking must fail on it, naming the field.
target="proto/psirt/intake/v1/intake.proto"
mutate() {
    local name="$1" expr="$2" copy="$work/$1"
    mkdir -p "$copy"
    cp buf.yaml "$copy/"
    cp -r proto "$copy/proto"
    rm -rf "$copy/proto/releases"
    sed -i -E "$expr" "$copy/$target"
    if cmp -s "$target" "$copy/$target"; then
        log "self-test: $name: the mutation changed nothing in $target"
        return 1
    fi
    local out
    if out="$(cd "$copy" && buf breaking --against "$work/baseline.binpb" 2>&1)"; then
        log "self-test: $name: NOT refused"
        return 1
    fi
    if ! grep -q 'title' <<<"$out"; then
        log "self-test: $name: refused, but the output does not name the field: $out"
        return 1
    fi
    log "self-test: $name: refused ($(head -n1 <<<"$out" | sed 's/^[^ ]* //'))"
}
# SubmitReportRequest.title: `string title = 2;` renumbered, then removed.
grep -Eq '^\s*string title = [0-9]+;' "$target" || { log "self-test: no 'string title = N;' in $target"; exit 1; }
mutate "field renumbered" '0,/^(\s*string title = )([0-9]+);/s//\1999;/'
mutate "field removed" '0,/^\s*string title = [0-9]+;.*$/s///'
log "ok"
