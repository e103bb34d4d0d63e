#!/usr/bin/env bash
# Runs raybroker's benchmark against a dedicated, durable Redis (AOF with
# appendfsync always, as in production) and prints the figures.
#
#   deploy/local/bench.sh [bench options...]     e.g. --skip http --cycle-jobs 50000
#
# Dispatch overhead (submit -> running through the broker against submit ->
# RUNNING on the Ray head directly; needs a running head, e.g. clusters.sh up):
#
#   deploy/local/bench.sh --ray-head http://127.0.0.1:21001 --skip baseline,cycle,memory,http
#
# (add --dispatch-jobs N, --dispatch-every/--reconcile-every DURATION to vary it).
# The Redis on port 6391 is started and stopped here; figures also go to
# $RUN_DIR/bench.json. docs/benchmarks.md records results and how to read them.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PORT=${RAYBROKER_BENCH_REDIS_PORT:-6391}

"$ROOT/deploy/local/redis.sh" start --port "$PORT" --durable
trap '"$ROOT/deploy/local/redis.sh" stop --port "$PORT"' EXIT

cd "$ROOT"
cargo build --release -p raybroker-bench
mkdir -p "$RUN_DIR"
"$ROOT/target/release/raybroker-bench" --redis-url "redis://127.0.0.1:$PORT" --json "$RUN_DIR/bench.json" "$@"
