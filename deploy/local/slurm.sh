#!/usr/bin/env bash
# A local single-node Slurm (Debian's 22.05) with fake GPUs and slurmrestd
# behind JWT, for development and the end-to-end tests.
#
#   slurm.sh install                      the Debian packages (slurmctld, slurmd, ...)
#   slurm.sh start [--gpus N] [--gpu-model MODEL] [--cpus C] [--memory-mb M]
#                  [--port-base P] [--min-job-age S]
#   slurm.sh stop                         stops the daemons this run dir started
#   slurm.sh status                       exit 0 when slurmrestd answers, 3 when not
#   slurm.sh url                          slurmrestd's URL
#   slurm.sh env [--ray-version V]        `export` lines for clients and tests (with
#                                         V: the bin dir of ray.sh's venv for V)
#   slurm.sh token [--lifespan S]         a JWT for root from `scontrol token`
#
# Defaults: 4 x H100 (a model no test Ray head has), 8 CPUs (more than the
# machine's cores, through SlurmdParameters=config_overrides, so several
# small jobs overlap), 8000 MB, ports 21500 (slurmctld), 21501 (slurmd),
# 21502 (slurmrestd). Jobs' own Ray port blocks are chosen by the job script
# (21600-24999, see adapters/slurm/src/script).
# State: $RUN_DIR/slurm/{etc,state,spool,log,run,munge,dev,jobs}. Nothing here
# uses systemd, cgroups or /etc: every daemon gets SLURM_CONF and its own paths.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

PACKAGES=(slurmctld slurmd slurm-client slurmrestd munge slurm-wlm-jwt-plugin)
DIR=$RUN_DIR/slurm
ETC=$DIR/etc
export SLURM_CONF=$ETC/slurm.conf
MUNGE_SOCKET=$DIR/munge/munge.socket
SETTINGS=$DIR/settings.env
READY_TIMEOUT_S=${RAYBROKER_SLURM_READY_TIMEOUT_S:-60}

cmd_install() { ensure_apt_packages "${PACKAGES[@]}"; }

# --- processes ---------------------------------------------------------------

# our_pid NAME: the pid in NAME's pidfile when that process still runs NAME's
# binary (guards against a stale pidfile whose pid was reused).
our_pid() {
  local file=$DIR/run/$1.pid pid
  [[ -f $file ]] || return 1
  pid=$(<"$file")
  is_uint "$pid" && pid_alive "$pid" || return 1
  # Debian installs slurmctld and slurmd as alternatives of *-wlm binaries.
  local exe
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
  [[ $exe == */$1 || $exe == */$1-wlm ]] || return 1
  echo "$pid"
}

stop_one() {
  local name=$1 pid deadline
  pid=$(our_pid "$name") || { rm -f "$DIR/run/$name.pid"; return 0; }
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + 10))
  while pid_alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
  if pid_alive "$pid"; then
    log "$name ignored SIGTERM for 10 s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$DIR/run/$name.pid"
}

# --- config ------------------------------------------------------------------

load_settings() {
  [[ -f $SETTINGS ]] || return 1
  # shellcheck disable=SC1090
  source "$SETTINGS"
}

rest_url() { (load_settings && echo "http://127.0.0.1:$((PORT_BASE + 2))"); }

write_config() {
  mkdir -p "$ETC" "$DIR"/{state,spool,log,run,dev,jobs}
  chmod 0755 "$DIR" "$ETC" "$DIR/run" "$DIR/log"
  # Fake GPUs: gres.conf needs character devices; /dev/null's numbers are enough.
  local i files=()
  for ((i = 0; i < GPUS; i++)); do
    [[ -c $DIR/dev/nvidia$i ]] || mknod -m 0666 "$DIR/dev/nvidia$i" c 1 3
    files+=("$DIR/dev/nvidia$i")
  done
  if [[ ! -s $ETC/jwt.key ]]; then
    (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$ETC/jwt.key")
  fi
  chmod 0600 "$ETC/jwt.key"
  local gres_line='' gres_conf='AutoDetect=off'
  if ((GPUS > 0)); then
    gres_line="Gres=gpu:$GPU_TYPE:$GPUS"
    gres_conf+=$'\n'"NodeName=localhost Name=gpu Type=$GPU_TYPE File=$DIR/dev/nvidia[0-$((GPUS - 1))]"
  fi
  printf '%s\n' "$gres_conf" >"$ETC/gres.conf"
  cat >"$ETC/slurm.conf" <<EOF
# Written by deploy/local/slurm.sh; rewritten on every start.
ClusterName=raybroker
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$PORT_BASE
SlurmdPort=$((PORT_BASE + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=$ETC/jwt.key
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=100
GresTypes=gpu
MailProg=/bin/true
MinJobAge=$MIN_JOB_AGE
KillWait=5
SlurmdParameters=config_overrides
ReturnToService=2
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEMORY_MB $gres_line State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
  chmod 0644 "$ETC/slurm.conf" "$ETC/gres.conf"
}

start_munge() {
  our_pid munged >/dev/null && return 0
  mkdir -p "$DIR/munge"
  chmod 0700 "$DIR/munge"
  if [[ ! -s $DIR/munge/munge.key ]]; then
    (umask 077; head -c 1024 /dev/urandom >"$DIR/munge/munge.key")
  fi
  chmod 0600 "$DIR/munge/munge.key"
  run munged --force --key-file "$DIR/munge/munge.key" --socket "$MUNGE_SOCKET" \
    --pid-file "$DIR/run/munged.pid" --log-file "$DIR/log/munged.log" \
    --seed-file "$DIR/munge/munge.seed"
  # munged runs as root here and its socket must let clients (slurmrestd runs
  # as nobody) connect.
  chmod 0755 "$DIR/munge"
}

start_daemons() {
  our_pid slurmctld >/dev/null || run slurmctld -i
  our_pid slurmd >/dev/null || run slurmd -N localhost
  if ! our_pid slurmrestd >/dev/null; then
    log "+ slurmrestd -u nobody -a rest_auth/jwt 127.0.0.1:$((PORT_BASE + 2))"
    # Without slurmdbd only the non-db plugins load; SLURM_JWT=daemon makes
    # slurmrestd pass each client's token on to slurmctld.
    SLURM_JWT=daemon setsid slurmrestd -u nobody -g nogroup \
      -s openapi/v0.0.36,openapi/v0.0.37,openapi/v0.0.38 -a rest_auth/jwt \
      "127.0.0.1:$((PORT_BASE + 2))" >>"$DIR/log/slurmrestd.log" 2>&1 </dev/null &
    echo $! >"$DIR/run/slurmrestd.pid"
  fi
}

# Answers once slurmrestd accepts a token and the node is idle or mixed.
wait_ready() {
  local deadline=$((SECONDS + READY_TIMEOUT_S)) token url state
  url=$(rest_url)
  while ((SECONDS < deadline)); do
    if token=$(mint_token 60 2>/dev/null) &&
      state=$(curl -sf -m 2 -H "X-SLURM-USER-NAME: root" -H "X-SLURM-USER-TOKEN: $token" \
        "$url/slurm/v0.0.38/nodes" 2>/dev/null | grep -o '"state": *"[a-z]*"' | head -n1) &&
      [[ $state =~ idle|mixed|allocated ]]; then
      return 0
    fi
    sleep 0.5
  done
  return 1
}

mint_token() { scontrol token username=root "lifespan=${1:-3600}" | sed -n 's/^SLURM_JWT=//p'; }

cmd_start() {
  local GPUS=4 GPU_MODEL=H100 CPUS=8 MEMORY_MB=8000 PORT_BASE=21500 MIN_JOB_AGE=300
  while (($#)); do
    case $1 in
      --gpus) GPUS=${2:-}; shift 2 ;;
      --gpu-model) GPU_MODEL=${2:-}; shift 2 ;;
      --cpus) CPUS=${2:-}; shift 2 ;;
      --memory-mb) MEMORY_MB=${2:-}; shift 2 ;;
      --port-base) PORT_BASE=${2:-}; shift 2 ;;
      --min-job-age) MIN_JOB_AGE=${2:-}; shift 2 ;;
      *) usage ;;
    esac
  done
  local v
  for v in GPUS CPUS MEMORY_MB PORT_BASE MIN_JOB_AGE; do is_uint "${!v}" || die "--${v,,} must be a whole number"; done
  [[ $GPU_MODEL =~ ^[A-Za-z0-9_-]{1,64}$ ]] || die "bad --gpu-model '$GPU_MODEL'"
  ((CPUS > 0)) || die "--cpus must be at least 1"
  local GPU_TYPE=${GPU_MODEL,,}
  cmd_install
  local wanted="$GPUS $GPU_TYPE $CPUS $MEMORY_MB $PORT_BASE $MIN_JOB_AGE"
  if our_pid slurmctld >/dev/null && [[ -f $SETTINGS ]]; then
    local recorded
    recorded=$(load_settings && echo "$GPUS $GPU_TYPE $CPUS $MEMORY_MB $PORT_BASE $MIN_JOB_AGE")
    [[ $recorded == "$wanted" ]] || die "slurm is running with other settings ($recorded): run slurm.sh stop first"
  fi
  mkdir -p "$DIR"
  printf 'GPUS=%q\nGPU_TYPE=%q\nCPUS=%q\nMEMORY_MB=%q\nPORT_BASE=%q\nMIN_JOB_AGE=%q\n' \
    "$GPUS" "$GPU_TYPE" "$CPUS" "$MEMORY_MB" "$PORT_BASE" "$MIN_JOB_AGE" >"$SETTINGS"
  local started
  started=$(now)
  write_config
  start_munge
  start_daemons
  if ! wait_ready; then
    tail -n 20 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" "$DIR/log/slurmrestd.log" >&2 || true
    die "slurm did not become ready in $READY_TIMEOUT_S s; logs in $DIR/log"
  fi
  log "slurm ready in $(elapsed_since "$started") s: $GPUS x ${GPU_TYPE} GPUs, $CPUS CPUs, slurmrestd $(rest_url)"
  rest_url
}

cmd_stop() {
  # Jobs first, so their Ray processes end while slurmd still tracks them.
  if our_pid slurmctld >/dev/null; then
    scancel --full --quiet --user=root 2>/dev/null || true
    local deadline=$((SECONDS + 15))
    while ((SECONDS < deadline)) && [[ -n $(squeue -h -o %i 2>/dev/null) ]]; do sleep 0.5; done
  fi
  stop_one slurmrestd
  stop_one slurmd
  stop_one slurmctld
  stop_one munged
}

cmd_status() {
  local name pid down=0
  for name in munged slurmctld slurmd slurmrestd; do
    if pid=$(our_pid "$name"); then log "$name running (pid $pid)"; else log "$name not running"; down=1; fi
  done
  ((down == 0)) || exit 3
  load_settings || exit 3
  READY_TIMEOUT_S=2 wait_ready || { log "slurmrestd does not answer"; exit 3; }
  rest_url
}

cmd_env() {
  load_settings || die "slurm has not been started from $RUN_DIR"
  printf 'export SLURM_CONF=%q\n' "$SLURM_CONF"
  printf 'export RAYBROKER_TEST_SLURM_URL=%q\n' "$(rest_url)"
  printf 'export RAYBROKER_TEST_SLURM_JWT_KEY=%q\n' "$ETC/jwt.key"
  printf 'export RAYBROKER_TEST_SLURM_JOBS_DIR=%q\n' "$DIR/jobs"
  printf 'export RAYBROKER_TEST_SLURM_GPU_MODEL=%q\n' "${GPU_TYPE^^}"
  if [[ ${1:-} == --ray-version ]]; then
    # The venv ray.sh installs for that version (same path rule as ray.sh).
    local venvs=${RAYBROKER_RAY_VENV_DIR:-$HOME/.cache/raybroker/venvs} tag
    tag=$(python3 -c 'import sys; print(f"py{sys.version_info[0]}{sys.version_info[1]}")')
    [[ -x $venvs/ray-${2:-}-$tag/bin/ray ]] || die "no ray ${2:-} venv in $venvs: run deploy/local/ray.sh install ${2:-}"
    printf 'export RAYBROKER_TEST_SLURM_RAY_BIN=%q\n' "$venvs/ray-${2:-}-$tag/bin"
  fi
}

cmd_token() {
  local lifespan=3600
  [[ ${1:-} == --lifespan ]] && lifespan=${2:-}
  is_uint "$lifespan" || die "--lifespan must be seconds"
  mint_token "$lifespan"
}

COMMAND=${1:-}
shift || true
case $COMMAND in
  install) cmd_install ;;
  start) cmd_start "$@" ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  url) rest_url || die "slurm has not been started from $RUN_DIR" ;;
  env) cmd_env "$@" ;;
  token) cmd_token "$@" ;;
  *) usage ;;
esac
