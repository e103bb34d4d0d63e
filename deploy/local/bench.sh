#!/usr/bin/env bash
# Runs raybroker's benchmark against a dedicated, durable Redis (AOF with
# appendfsync always, as in production) and prints the figures.
#
#   deploy/local/bench.sh [bench options...]     e.g. --skip http --cycle-jobs 50000
#
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
