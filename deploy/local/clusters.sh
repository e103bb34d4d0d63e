#!/usr/bin/env bash
# A local federation to develop against: one Redis and two Ray heads of
# different versions and GPU models.
#
#   clusters.sh up       start Redis, install Ray if needed, start both heads
#   clusters.sh down     stop what `up` started
#   clusters.sh status
#
#   redis   127.0.0.1:$RAYBROKER_REDIS_PORT (default 6390), in-memory
#   ray-a   Ray 2.31.0 (Isaac Lab's pin), 4 fake A100, port block index 1
#   ray-b   Ray 2.60.0 (current),         2 fake L4,   port block index 2
#
# The broker is started separately. Indices 10 and up are left to tests.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HERE=$REPO/deploy/local
REDIS_PORT=${RAYBROKER_REDIS_PORT:-6390}

up() {
  local started url_a url_b
  started=$(now)
  "$HERE/redis.sh" start --port "$REDIS_PORT"
  "$HERE/ray.sh" install "$RAY_VERSION_PINNED" "$RAY_VERSION_CURRENT"
  url_a=$("$HERE/ray.sh" start ray-a --version "$RAY_VERSION_PINNED" --index 1 --gpus 4 --gpu-model A100)
  url_b=$("$HERE/ray.sh" start ray-b --version "$RAY_VERSION_CURRENT" --index 2 --gpus 2 --gpu-model L4)
  log "up in $(elapsed_since "$started") s"
  cat <<SUMMARY
redis  redis://127.0.0.1:$REDIS_PORT
ray-a  $url_a  (Ray $RAY_VERSION_PINNED, 4 x A100: accelerator_type:A100, gpu_a100)
ray-b  $url_b  (Ray $RAY_VERSION_CURRENT, 2 x L4: accelerator_type:L4, gpu_l4)
stop with: $0 down
SUMMARY
}

down() {
  local rc=0
  "$HERE/ray.sh" stop ray-a || rc=1
  "$HERE/ray.sh" stop ray-b || rc=1
  "$HERE/redis.sh" stop --port "$REDIS_PORT" || rc=1
  return "$rc"
}

status() {
  "$HERE/redis.sh" status --port "$REDIS_PORT" || true
  "$HERE/ray.sh" status
}

case ${1:-} in
  up) up ;;
  down) down ;;
  status) status ;;
  *) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
