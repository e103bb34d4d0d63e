#!/usr/bin/env bash
# Smoke test of running heads through the Jobs REST API, as the broker uses it:
# submits `echo $CUDA_VISIBLE_DEVICES` asking for one GPU with a known
# submission id, waits for SUCCEEDED, checks the log shows a device id, then
# deletes the job.
#
#   smoke.sh [NAME...]        default: every head recorded in the run dir
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HERE=$REPO/deploy/local
TIMEOUT_S=${RAYBROKER_SMOKE_TIMEOUT_S:-120}

json_field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

smoke() {
  local name=$1 url id started body status='' logs deadline
  url=$("$HERE/ray.sh" url "$name")
  id=rb-smoke-$name-$(date +%s%N)
  started=$(now)
  # The first submit after a 2.31 head starts can take seconds: generous timeout.
  body=$(curl -sS -m 60 -f -X POST "$url/api/jobs/" -H 'Content-Type: application/json' \
    -d "{\"entrypoint\": \"echo \$CUDA_VISIBLE_DEVICES\", \"entrypoint_num_gpus\": 1, \"submission_id\": \"$id\"}") ||
    die "$name: submit failed"
  [[ $(json_field submission_id <<<"$body") == "$id" ]] || die "$name: unexpected answer $body"
  log "$name: submitted $id in $(elapsed_since "$started") s"
  deadline=$((SECONDS + TIMEOUT_S))
  while ((SECONDS < deadline)); do
    status=$(curl -sS -m 10 -f "$url/api/jobs/$id" | json_field status) || status=unknown
    [[ $status == SUCCEEDED || $status == FAILED || $status == STOPPED ]] && break
    sleep 0.2
  done
  logs=$(curl -sS -m 10 -f "$url/api/jobs/$id/logs" | json_field logs)
  [[ $status == SUCCEEDED ]] || die "$name: job $id ended $status; logs: $logs"
  grep -qxE '[0-9]+(,[0-9]+)*' <<<"$logs" || die "$name: no device id in the logs: $logs"
  log "$name: $id SUCCEEDED in $(elapsed_since "$started") s, CUDA_VISIBLE_DEVICES=$(grep -xE '[0-9]+(,[0-9]+)*' <<<"$logs")"
  curl -sS -m 10 -f -X DELETE "$url/api/jobs/$id" >/dev/null || log "warning: $name: could not delete $id"
}

names=("$@")
if ((${#names[@]} == 0)); then
  for file in "$RUN_DIR"/ray/*.env; do
    [[ -f $file ]] && names+=("$(basename "$file" .env)")
  done
fi
((${#names[@]})) || die "no heads to test: start some with ray.sh start or clusters.sh up"
for name in "${names[@]}"; do smoke "$name"; done
