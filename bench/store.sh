#!/bin/sh
# Store throughput table: checkout reads, CAS updates, idempotency inserts and
# reads beside a writer, for AGENTD_DB_SYNC normal and full, with the reader
# pool (readers=4) and with one shared connection (readers=-1).
#   bench/store.sh [seconds-per-row]    (BUILD_DIR=build-bench by default)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build-bench}
secs=${1:-2}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
make -C "$build" -j2 bench_store >/dev/null
# On the build's own disk, not a tmpfs: sync=full must pay for real fsyncs.
dir="$build/bench-tmp"
mkdir -p "$dir"
echo "sqlite $(sqlite3 --version 2>/dev/null | cut -d' ' -f1), $(nproc) cores, $secs s per row, fs $(df -T "$dir" | awk 'NR==2{print $2}')"
printf '%-7s %-8s %-24s %-8s %10s\n' sync readers op threads ops/s
for sync in normal full; do
  for readers in 4 -1; do
    "$build/bench_store" --sync "$sync" --readers "$readers" --threads 2 --seconds "$secs" --dir "$dir"
  done
done
rmdir "$dir" 2>/dev/null || true
