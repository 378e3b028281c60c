#!/usr/bin/env bash
# Offline verification with a signed checkpoint, at about 1 GiB: a fresh
# chainlogd (release build, unsafe-no-sync so that the log fills fast) is
# loaded with `chainlog bench` 16 x 100 until its log passes 1 GiB, a
# checkpoint is fetched, the server stopped, and segment-verify --stats runs
# cold (as root: the page cache dropped) and warm, with and without the
# checkpoint, on 2 threads and on 1 (issue 15's figure; docs/benchmarks.md).
#
#   tools/bench/verify_checkpoint.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="$root/target/release"
dir=$(mktemp -d -p "$PWD" chainlog-vfig.XXXXXX)
key="clk_$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
hash="$("$bin/chainlogd" hash-key "$key" | grep -o 'sha256:[0-9a-f]*')"
mkdir -p "$dir/data"
cat > "$dir/data/chainlogd.toml" <<T
listen = "127.0.0.1:7480"
data_dir = "."
[[logs]]
name = "default"
durability = "unsafe-no-sync"
[[keys]]
id = "bench"
hash = "$hash"
log = "default"
rights = ["append", "read", "admin"]
T
"$bin/chainlogd" --config "$dir/data/chainlogd.toml" --log-level warn > "$dir/out.txt" 2> "$dir/err.txt" &
server=$!
for _ in $(seq 100); do grep -q listening "$dir/out.txt" 2>/dev/null && break; sleep 0.1; done
vkey=$(grep -o 'verify with .*' "$dir/out.txt" | sed 's/verify with //')
CHAINLOG_KEY="$key" "$bin/chainlog" bench --addr 127.0.0.1:7480 --clients 16 --batch 100 --duration 5 --json > "$dir/bench.json"
while [ "$(du -sb "$dir/data/default" | cut -f1)" -lt 1073741824 ]; do
  CHAINLOG_KEY="$key" "$bin/chainlog" bench --addr 127.0.0.1:7480 --clients 16 --batch 100 --duration 2 --json > /dev/null
done
CHAINLOG_KEY="$key" "$bin/chainlog" --addr 127.0.0.1:7480 checkpoint > "$dir/cp.txt"
kill $server; wait $server || true
echo "log bytes: $(du -sb "$dir/data/default" | cut -f1)"
head -2 "$dir/cp.txt"
sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
echo "== cold, with checkpoint"
"$bin/segment-verify" "$dir/data/default" --checkpoint "$dir/cp.txt" --key "$vkey" --stats | tail -4
echo "== warm, with checkpoint"
"$bin/segment-verify" "$dir/data/default" --checkpoint "$dir/cp.txt" --key "$vkey" --stats | tail -4
echo "== warm, no checkpoint"
"$bin/segment-verify" "$dir/data/default" --stats | tail -3
echo "== warm, with checkpoint, 1 thread"
"$bin/segment-verify" "$dir/data/default" --checkpoint "$dir/cp.txt" --key "$vkey" --stats --threads 1 | tail -4
rm -rf "$dir"
