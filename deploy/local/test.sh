#!/usr/bin/env bash
# The project's test command (README, CI): starts what the tests need, runs
# `cargo test --workspace --all-targets` with any extra arguments, and stops
# on exit exactly what it started (something already running is reused and
# left running).
#
#   deploy/local/test.sh [cargo test args...]      e.g. test.sh -p raybroker-queue
#
# Environment:
#   RAYBROKER_TEST_REDIS_URL   use this Redis and start none
#   RAYBROKER_TEST_REDIS_PORT  port of the Redis it starts (default 6390)
#   RAYBROKER_TEST_RAY_A, _B   use these Ray heads (dashboard URLs) and start none;
#                              otherwise it installs Ray (pinned venvs) and starts
#                              rbtest-a (Ray 2.31.0, 4 x A100) and rbtest-b
#                              (Ray 2.60.0, 2 x L4), which the tests of the Ray
#                              adapter and the end-to-end tests need
#   RAYBROKER_TEST_RAY_TOKEN_HEAD, RAYBROKER_TEST_RAY_TOKEN_FILE
#                              use this token-auth head; otherwise it starts
#                              rbtest-token (Ray 2.60.0 with RAY_AUTH_MODE=token)
#   RAYBROKER_TEST_SLURM_URL   use this slurmrestd (then also set _JWT_KEY, _JOBS_DIR,
#                              _RAY_BIN); otherwise it starts deploy/local/slurm.sh's
#                              single-node Slurm (4 x H100, ports 21500-21502)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HERE=$REPO/deploy/local
CLEANUP=()  # commands to run on exit, last first

# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
  local rc=$? i
  trap - EXIT
  for ((i = ${#CLEANUP[@]} - 1; i >= 0; i--)); do
    log "cleanup: ${CLEANUP[i]}"
    eval "${CLEANUP[i]}" || log "warning: cleanup step failed: ${CLEANUP[i]}"
  done
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ -z ${RAYBROKER_TEST_REDIS_URL:-} ]]; then
  port=${RAYBROKER_TEST_REDIS_PORT:-6390}
  if "$HERE/redis.sh" status --port "$port" >/dev/null; then
    log "reusing the redis already running on port $port"
  else
    CLEANUP+=("$(printf '%q ' "$HERE/redis.sh" stop --port "$port")")
    "$HERE/redis.sh" start --port "$port"
  fi
  export RAYBROKER_TEST_REDIS_URL=redis://127.0.0.1:$port
fi
log "RAYBROKER_TEST_REDIS_URL=$RAYBROKER_TEST_REDIS_URL"

# start_head VAR NAME ARGS...: starts (or reuses) a head and exports its URL.
start_head() {
  local var=$1 name=$2 url
  shift 2
  if ! "$HERE/ray.sh" status "$name" >/dev/null; then
    CLEANUP+=("$(printf '%q ' "$HERE/ray.sh" stop "$name")")
  fi
  url=$("$HERE/ray.sh" start "$name" "$@")
  export "$var=$url"
  log "$var=$url"
}

if [[ -z ${RAYBROKER_TEST_RAY_A:-} || -z ${RAYBROKER_TEST_RAY_B:-} ]]; then
  "$HERE/ray.sh" install "$RAY_VERSION_PINNED" "$RAY_VERSION_CURRENT"
  start_head RAYBROKER_TEST_RAY_A rbtest-a --version "$RAY_VERSION_PINNED" --index 10 --gpus 4 --gpu-model A100
  start_head RAYBROKER_TEST_RAY_B rbtest-b --version "$RAY_VERSION_CURRENT" --index 11 --gpus 2 --gpu-model L4
fi
if [[ -z ${RAYBROKER_TEST_RAY_TOKEN_HEAD:-} || -z ${RAYBROKER_TEST_RAY_TOKEN_FILE:-} ]]; then
  "$HERE/ray.sh" install "$RAY_VERSION_CURRENT"
  export RAYBROKER_TEST_RAY_TOKEN_FILE=$RUN_DIR/rbtest-token.token
  if [[ ! -s $RAYBROKER_TEST_RAY_TOKEN_FILE ]]; then
    mkdir -p "$RUN_DIR"
    (umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$RAYBROKER_TEST_RAY_TOKEN_FILE")
  fi
  start_head RAYBROKER_TEST_RAY_TOKEN_HEAD rbtest-token --version "$RAY_VERSION_CURRENT" --index 14 --cpus 1 \
    --token-file "$RAYBROKER_TEST_RAY_TOKEN_FILE"
fi

# The single-node Slurm the Slurm adapter's and end-to-end tests need: 4 fake
# H100s (a model no Ray head has), slurmrestd with JWT, jobs running Ray from
# the pinned venv.
if [[ -z ${RAYBROKER_TEST_SLURM_URL:-} ]]; then
  "$HERE/ray.sh" install "$RAY_VERSION_PINNED"
  if ! "$HERE/slurm.sh" status >/dev/null 2>&1; then
    CLEANUP+=("$(printf '%q ' "$HERE/slurm.sh" stop)")
  fi
  "$HERE/slurm.sh" start --gpus 4 --gpu-model H100 >/dev/null
  eval "$("$HERE/slurm.sh" env --ray-version "$RAY_VERSION_PINNED")"
fi
log "RAYBROKER_TEST_SLURM_URL=${RAYBROKER_TEST_SLURM_URL} (ray: ${RAYBROKER_TEST_SLURM_RAY_BIN:-unset})"

cd "$REPO"
started=$(now)
rc=0
# With arguments (e.g. -p raybroker-queue) they choose what runs; without,
# the whole workspace.
if (($#)); then
  run cargo test --all-targets "$@" || rc=$?
else
  run cargo test --workspace --all-targets || rc=$?
fi
log "cargo test exited $rc after $(elapsed_since "$started") s"
exit "$rc"
