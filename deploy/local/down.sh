#!/usr/bin/env bash
# Stops what deploy/local/up.sh started: the broker, both Ray heads and Redis.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
"$REPO/deploy/local/broker.sh" stop
"$REPO/deploy/local/clusters.sh" down
