#!/bin/bash
# raybroker job @@SUBMISSION_ID@@: a Ray cluster inside this Slurm allocation
# runs the job's entrypoint. Written by raybroker's Slurm adapter.
#
# Every Ray process is a descendant of this script (`ray start --block`
# runs in the background, workers run as srun steps), so Slurm reaps them
# all when the job ends, is cancelled or times out. `ray stop` is never
# called: it would stop every Ray on the node, other jobs' included.
set -u

RB_JOB_DIR=@@JOB_DIR@@
RB_RAY_BIN=@@RAY_BIN@@
RB_ENTRYPOINT=@@ENTRYPOINT@@
RB_TIME_LIMIT_S=@@TIME_LIMIT_S@@
RB_START_TIMEOUT_S=@@START_TIMEOUT_S@@
RB_OBJECT_STORE_BYTES=@@OBJECT_STORE_BYTES@@
RB_GPU_MODEL=@@GPU_MODEL@@
RB_PORT_RANGE_START=@@PORT_RANGE_START@@
RB_PORT_BLOCKS=@@PORT_BLOCKS@@
RB_PORT_BLOCK_SIZE=@@PORT_BLOCK_SIZE@@
RB_TMP=@@TMP_ROOT@@/rb-slurm-${SLURM_JOB_ID}

export PATH="$RB_RAY_BIN:$PATH"
export RAY_USAGE_STATS_ENABLED=0
unset RAY_ADDRESS

rb_log() { printf '[raybroker] %s\n' "$*" >&2; }

# This job's port block: jobs running together on a node get different
# blocks as long as fewer than RB_PORT_BLOCKS of them share it.
rb_port=$((RB_PORT_RANGE_START + (SLURM_JOB_ID % RB_PORT_BLOCKS) * RB_PORT_BLOCK_SIZE))
rb_ports=(
  --port "$rb_port"
  --ray-client-server-port $((rb_port + 2))
  --node-manager-port $((rb_port + 3))
  --object-manager-port $((rb_port + 4))
  --dashboard-agent-listen-port $((rb_port + 5))
  --dashboard-agent-grpc-port $((rb_port + 6))
  --runtime-env-agent-port $((rb_port + 7))
  --metrics-export-port $((rb_port + 8))
  --min-worker-port $((rb_port + 20))
  --max-worker-port $((rb_port + RB_PORT_BLOCK_SIZE - 1))
)
export DASHBOARD_METRIC_PORT=$((rb_port + 9)) AUTOSCALER_METRIC_PORT=$((rb_port + 11))

rb_gpus=0
if [[ -n ${CUDA_VISIBLE_DEVICES:-} && ${CUDA_VISIBLE_DEVICES} != NoDevFiles ]]; then
  IFS=, read -r -a rb_devices <<<"$CUDA_VISIBLE_DEVICES"
  rb_gpus=${#rb_devices[@]}
fi
rb_resources='{}'
[[ -n $RB_GPU_MODEL ]] && rb_resources="{\"accelerator_type:$RB_GPU_MODEL\": 1}"
rb_node_args=(
  --disable-usage-stats
  --num-cpus "${SLURM_CPUS_ON_NODE:-1}" --num-gpus "$rb_gpus"
  --resources "$rb_resources"
  --object-store-memory "$RB_OBJECT_STORE_BYTES"
)

rb_reason=terminated
rb_code=1
rb_head_pid=
rb_workers_pid=
rb_entry_pid=
rb_watchdog_pid=

# Ends a process group: SIGTERM, then SIGKILL after a short grace.
rb_end_group() {
  local pgid=$1 i
  [[ -n $pgid ]] || return 0
  kill -TERM -- "-$pgid" 2>/dev/null || return 0
  for ((i = 0; i < 30; i++)); do
    kill -0 -- "-$pgid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL -- "-$pgid" 2>/dev/null || true
}

# Every exit path: stop the entrypoint and Ray, record the outcome.
rb_finish() {
  trap - EXIT TERM INT
  [[ -n $rb_watchdog_pid ]] && kill "$rb_watchdog_pid" 2>/dev/null
  rb_end_group "$rb_entry_pid"
  [[ -n $rb_workers_pid ]] && kill -TERM "$rb_workers_pid" 2>/dev/null
  rb_end_group "$rb_head_pid"
  wait 2>/dev/null
  rm -rf "$RB_TMP"
  printf 'exit_code=%d\nreason=%s\nended_ms=%s\n' "$rb_code" "$rb_reason" "$(date +%s%3N)" \
    >"$RB_JOB_DIR/outcome.tmp" && mv "$RB_JOB_DIR/outcome.tmp" "$RB_JOB_DIR/outcome"
  exit "$rb_code"
}
trap rb_finish EXIT
trap 'rb_code=143; rb_reason=terminated; exit 143' TERM
trap 'rb_code=130; rb_reason=terminated; exit 130' INT

rm -rf "$RB_TMP"
mkdir -p "$RB_TMP"
# Own process groups (setsid), so each can be ended as a whole; still
# children of this script, so Slurm tracks them.
setsid "$RB_RAY_BIN/ray" start --head --block --include-dashboard false --temp-dir "$RB_TMP" \
  "${rb_ports[@]}" "${rb_node_args[@]}" >"$RB_JOB_DIR/ray-head.log" 2>&1 </dev/null &
rb_head_pid=$!

rb_deadline=$((SECONDS + RB_START_TIMEOUT_S))
until [[ -s $RB_TMP/ray_current_cluster ]]; do
  if ! kill -0 "$rb_head_pid" 2>/dev/null || ((SECONDS >= rb_deadline)); then
    rb_log "the Ray head did not start within ${RB_START_TIMEOUT_S} s; its log:"
    tail -n 20 "$RB_JOB_DIR/ray-head.log" >&2
    rb_reason=ray_start_failed
    exit 1
  fi
  sleep 0.2
done
RAY_ADDRESS=$(<"$RB_TMP/ray_current_cluster")
export RAY_ADDRESS

if ((${SLURM_JOB_NUM_NODES:-1} > 1)); then
  # One worker per other node, as one job step; the head's node is excluded.
  srun --overlap --nodes=$((SLURM_JOB_NUM_NODES - 1)) --ntasks=$((SLURM_JOB_NUM_NODES - 1)) \
    --ntasks-per-node=1 --exclude="${SLURMD_NODENAME:-$(hostname -s)}" \
    bash -c 'exec "$0" start --block --address "$1" --temp-dir "$2" "${@:3}"' \
    "$RB_RAY_BIN/ray" "$RAY_ADDRESS" "$RB_TMP" "${rb_ports[@]:2}" "${rb_node_args[@]}" \
    >>"$RB_JOB_DIR/ray-workers.log" 2>&1 </dev/null &
  rb_workers_pid=$!
fi

setsid bash -c "$RB_ENTRYPOINT" </dev/null &
rb_entry_pid=$!
if ((RB_TIME_LIMIT_S > 0)); then
  (
    sleep "$RB_TIME_LIMIT_S"
    : >"$RB_JOB_DIR/time_limit_reached"
    kill -TERM -- "-$rb_entry_pid" 2>/dev/null
    sleep 10
    kill -KILL -- "-$rb_entry_pid" 2>/dev/null
  ) &
  rb_watchdog_pid=$!
fi
wait "$rb_entry_pid"
rb_code=$?
rb_entry_pid=
if [[ -e $RB_JOB_DIR/time_limit_reached ]]; then
  rb_log "the entrypoint ran past the job's time limit of ${RB_TIME_LIMIT_S} s"
  rb_reason=time_limit
else
  rb_reason=exited
fi
exit "$rb_code"
