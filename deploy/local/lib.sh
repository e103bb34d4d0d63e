# shellcheck shell=bash disable=SC2034
# Shared helpers for the deploy/local scripts. Sourced, never executed.
#
# Contract for every script that sources this file:
# - all state lives under RUN_DIR ($RAYBROKER_RUN_DIR, default $REPO/.run);
# - a script stops only what it started, found through the pidfiles and state
#   files it wrote (never `ray stop`, never a kill by process name);
# - every command that changes the machine is printed before it runs.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
RUN_DIR=${RAYBROKER_RUN_DIR:-$REPO/.run}
SCRIPT_NAME=$(basename "$0")

# The two Ray versions the project supports: Isaac Lab's pin and the newest
# release verified on Python 3.11 (see docs/local-clusters.md).
RAY_VERSION_PINNED=2.31.0
RAY_VERSION_CURRENT=2.60.0

log() { printf '[%s] %s\n' "$SCRIPT_NAME" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Prints a command, then runs it.
run() {
  log "+ $*"
  "$@"
}

# Seconds since the epoch with millisecond precision, for timings.
now() { date +%s.%N; }
now_ms() { date +%s%3N; }
elapsed_since() { awk -v s="$1" -v e="$(now)" 'BEGIN { printf "%.2f", e - s }'; }

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

# True when something accepts TCP connections on 127.0.0.1:$1.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# True when pid $1 exists and is not a zombie.
pid_alive() {
  local state
  state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [[ -n $state && $state != Z* ]]
}

_apt_updated=
# Installs the Debian packages among "$@" that are not installed yet; runs
# `apt-get update` at most once per script run.
ensure_apt_packages() {
  local missing=() pkg sudo=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  ((${#missing[@]} == 0)) && return 0
  if ((EUID != 0)); then
    command -v sudo >/dev/null || die "need root (or sudo) to install: ${missing[*]}"
    sudo=(sudo)
  fi
  if [[ -z $_apt_updated ]]; then
    run "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    _apt_updated=1
  fi
  run "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}
