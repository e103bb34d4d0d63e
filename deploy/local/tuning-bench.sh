#!/usr/bin/env bash
# Sample efficiency of raybroker's TPE against Optuna's TPE (and random
# search in both) on one known noisy objective: trials until one is within
# 5 % of the optimum, per seed and the median, side by side.
#
#   deploy/local/tuning-bench.sh [SEEDS] [BUDGET]      default: 10 seeds, 200 trials
#
# Optuna (pinned below) is installed from PyPI into a throwaway venv that is
# removed on exit; nothing else uses it. The objective is defined in
# broker/tuning/tests/support/objective.rs and, identically, in
# broker/tuning/bench/optuna_bench.py. docs/benchmarks.md records results.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OPTUNA_VERSION=5.0.0
SEEDS=${1:-10}
BUDGET=${2:-200}
if ! is_uint "$SEEDS" || ! is_uint "$BUDGET"; then
  die "usage: tuning-bench.sh [SEEDS] [BUDGET] (whole numbers)"
fi

VENV=$(mktemp -d "${TMPDIR:-/tmp}/raybroker-optuna.XXXXXX")
trap 'rm -rf "$VENV"' EXIT
log "installing optuna==$OPTUNA_VERSION into $VENV"
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "optuna==$OPTUNA_VERSION"

cd "$ROOT"
cargo build --quiet --release -p raybroker-tuning --example tpe_bench
log "seeds $SEEDS, budget $BUDGET trials; 'runs' lists trials to target per seed ($((BUDGET + 1)) = not reached)"
"$ROOT/target/release/examples/tpe_bench" "$SEEDS" "$BUDGET"
"$VENV/bin/python" "$ROOT/broker/tuning/bench/optuna_bench.py" "$SEEDS" "$BUDGET"
