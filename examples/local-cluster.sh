#!/usr/bin/env bash
# A local Weir cluster on 127.0.0.1: one controller and N brokers (default 3), each its own
# process with its own data directory under $LOCAL_CLUSTER_DIR (default ./weir-cluster).
#
#   examples/local-cluster.sh            # 3 brokers; Ctrl-C stops them all cleanly
#   examples/local-cluster.sh 5          # 5 brokers
#
# Ports: the controller's gRPC on 9093 (HTTP 9094); broker i (1..5) serves Kafka on
# i9092 and HTTP on i9094 (19092, 29092, …). Clients bootstrap from the printed list, e.g.
#   kcat -b 127.0.0.1:19092 -L
set -euo pipefail

brokers="${1:-3}"
dir="${LOCAL_CLUSTER_DIR:-./weir-cluster}"
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${LOCAL_CLUSTER_BIN:-$root/target/release/weir-broker}"

if [[ ! -x "$bin" ]]; then
  echo "building weir-broker (release)…" >&2
  cargo build --release --locked -p weir-broker --manifest-path "$root/Cargo.toml" >&2
fi
if ! [[ "$brokers" =~ ^[1-5]$ ]]; then
  echo "usage: $0 [brokers: 1..5]" >&2
  exit 2
fi
mkdir -p "$dir"

pids=()
stop_all() {
  trap - INT TERM EXIT
  echo "stopping: brokers first (controlled shutdown), then the controller" >&2
  for ((i = ${#pids[@]} - 1; i >= 1; i--)); do kill -TERM "${pids[i]}" 2>/dev/null || true; done
  for ((i = ${#pids[@]} - 1; i >= 1; i--)); do wait "${pids[i]}" 2>/dev/null || true; done
  kill -TERM "${pids[0]}" 2>/dev/null || true
  wait "${pids[0]}" 2>/dev/null || true
}
trap stop_all INT TERM EXIT

wait_ready() { # name http-port
  for _ in $(seq 1 300); do
    if curl -sf "http://127.0.0.1:$2/readyz" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "$1 did not become ready; see $dir/$1.log" >&2
  exit 1
}

"$bin" --data-dir "$dir/controller" --node-id 0 \
  --override process.roles=controller \
  --override controller.listener=127.0.0.1:9093 \
  --override http.listener=127.0.0.1:9094 \
  2>"$dir/controller.log" &
pids+=($!)
wait_ready controller 9094

bootstrap=()
for i in $(seq 1 "$brokers"); do
  kafka=$((10000 * i + 9092))
  http=$((10000 * i + 9094))
  "$bin" --data-dir "$dir/broker-$i" --node-id "$i" \
    --override process.roles=broker \
    --override controller.quorum.bootstrap.servers=127.0.0.1:9093 \
    --override "listeners=PLAINTEXT://127.0.0.1:$kafka" \
    --override "http.listener=127.0.0.1:$http" \
    --override default.replication.factor="$((brokers < 3 ? brokers : 3))" \
    --override min.insync.replicas="$((brokers < 3 ? 1 : 2))" \
    2>"$dir/broker-$i.log" &
  pids+=($!)
  bootstrap+=("127.0.0.1:$kafka")
done
for i in $(seq 1 "$brokers"); do wait_ready "broker-$i" $((10000 * i + 9094)); done

echo "controller: 127.0.0.1:9093 (gRPC), http://127.0.0.1:9094/metrics"
for i in $(seq 1 "$brokers"); do
  echo "broker $i: 127.0.0.1:$((10000 * i + 9092)) (Kafka), http://127.0.0.1:$((10000 * i + 9094))/metrics"
done
(IFS=,; echo "bootstrap.servers=${bootstrap[*]}")
echo "logs in $dir/*.log; Ctrl-C stops the cluster"
wait
