#!/usr/bin/env bash
# The broker itself, for the local federation.
#
#   broker.sh start [--config FILE]   build (release) and start `raybroker serve`
#   broker.sh stop                    stop the broker this run dir started
#   broker.sh status
#
# Default config: deploy/config/local.yaml. Log: $RUN_DIR/broker.log. The
# tenant token lives in $RUN_DIR/local-token (created here if missing).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PIDFILE=$RUN_DIR/broker.pid
LOGFILE=$RUN_DIR/broker.log
BIN=$REPO/target/release/raybroker
LISTEN=${RAYBROKER_LISTEN:-127.0.0.1:8080}

our_pid() {
  local pid
  [[ -f $PIDFILE ]] || return 1
  pid=$(<"$PIDFILE")
  is_uint "$pid" && pid_alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "raybroker serve" || return 1
  echo "$pid"
}

start() {
  local config=$REPO/deploy/config/local.yaml
  while (($#)); do
    case $1 in
      --config) config=${2:-}; shift 2 ;;
      *) die "usage: broker.sh start [--config FILE]" ;;
    esac
  done
  mkdir -p "$RUN_DIR"
  if [[ ! -s $RUN_DIR/local-token ]]; then
    (umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$RUN_DIR/local-token")
    log "wrote a new tenant token to $RUN_DIR/local-token"
  fi
  if pid=$(our_pid); then
    log "broker already running (pid $pid) on $LISTEN"
    return 0
  fi
  log "building raybroker (release)"
  (cd "$REPO" && cargo build --release -q -p raybroker)
  log "starting raybroker serve --config $config (log $LOGFILE)"
  RAYBROKER_RUN_DIR=$RUN_DIR RAYBROKER_LISTEN=$LISTEN setsid "$BIN" serve --config "$config" >>"$LOGFILE" 2>&1 &
  echo $! >"$PIDFILE"
  local deadline=$((SECONDS + 30))
  until curl -fsS "http://$LISTEN/readyz" >/dev/null 2>&1; do
    if ! our_pid >/dev/null; then
      tail -n 20 "$LOGFILE" >&2
      die "the broker exited; see $LOGFILE"
    fi
    ((SECONDS < deadline)) || die "the broker did not become ready in 30 s; see $LOGFILE"
    sleep 0.2
  done
  log "broker ready on http://$LISTEN"
}

stop() {
  local pid
  if ! pid=$(our_pid); then
    log "broker not running"
    rm -f "$PIDFILE"
    return 0
  fi
  kill -TERM "$pid"
  local deadline=$((SECONDS + 15))
  while pid_alive "$pid"; do
    if ((SECONDS >= deadline)); then kill -KILL "$pid"; break; fi
    sleep 0.1
  done
  rm -f "$PIDFILE"
  log "broker stopped"
}

case ${1:-} in
  start) shift; start "$@" ;;
  stop) stop ;;
  status) if pid=$(our_pid); then echo "broker running (pid $pid) on http://$LISTEN"; else echo "broker not running"; exit 3; fi ;;
  *) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
