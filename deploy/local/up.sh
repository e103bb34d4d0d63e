#!/usr/bin/env bash
# README's first command: brings up the local federation (Redis, two Ray
# heads of different versions and GPU models), starts the broker, submits the
# sample job and shows where it ran and what it printed.
#
#   deploy/local/up.sh          (stop everything with deploy/local/down.sh)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
HERE=$REPO/deploy/local

"$HERE/clusters.sh" up
"$HERE/broker.sh" start

export RAYBROKER_SERVER=http://${RAYBROKER_LISTEN:-127.0.0.1:8080}
export RAYBROKER_TOKEN_FILE=$RUN_DIR/local-token
CLI=$REPO/target/release/raybroker

log "clusters as the broker sees them"
# The first capacity snapshots arrive within a few seconds of start.
sleep 3
"$CLI" clusters

log "submitting deploy/examples/hello-gpu.yaml (1 x A100: only ray-a has them)"
job=$("$CLI" --output json submit -f "$REPO/deploy/examples/hello-gpu.yaml" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
"$CLI" watch "$job"
"$CLI" status "$job"
log "logs of $job"
"$CLI" logs "$job"
cat <<NEXT

The broker is still running. Try:
  export RAYBROKER_SERVER=$RAYBROKER_SERVER RAYBROKER_TOKEN_FILE=$RAYBROKER_TOKEN_FILE
  $CLI submit --gpus 1 --gpu-type L4 -- python -c "print('hello from an L4')"
  $CLI list
Stop everything with: deploy/local/down.sh
NEXT
