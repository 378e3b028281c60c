#!/usr/bin/env bash
# The issue-12 target matrix, end to end: a fresh chainlogd (release build,
# default config: sync durability, pre-written 64 MiB segments, a new log's
# first segment included) on loopback,
# and `chainlog bench` against it for each configuration, with both disk
# ceilings measured right before each run (same records per sync). Rounds
# alternate the configurations so that the disk's drift spreads over all.
#
#   tools/bench/targets.sh [ROUNDS] [SECONDS] > results.jsonl
#   python3 tools/bench/summarize.py results.jsonl
#
# Each output line is `chainlog bench --json` plus "round" and "label".
# CHAINLOG_BENCH_DIR sets the data directory (default: a temporary one on
# the disk of the working directory, so the ceilings measure that disk).
set -euo pipefail
rounds="${1:-3}"
secs="${2:-5}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="$root/target/release"
dir="${CHAINLOG_BENCH_DIR:-$(mktemp -d -p "$PWD" chainlog-bench.XXXXXX)}"
key="clk_$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
hash="$("$bin/chainlogd" hash-key "$key" | grep -o 'sha256:[0-9a-f]*')"
port=7460

start() { # $1: extra top-level config, $2: extra log config
  rm -rf "$dir/data"; mkdir -p "$dir/data"
  cat > "$dir/data/chainlogd.toml" <<T
listen = "127.0.0.1:$port"
metrics_listen = "127.0.0.1:$((port + 1))"
data_dir = "."
max_connections = 4096
$1
[[logs]]
name = "default"
$2
[[keys]]
id = "bench"
hash = "$hash"
log = "default"
rights = ["append", "read", "admin"]
T
  "$bin/chainlogd" --config "$dir/data/chainlogd.toml" --log-level warn > "$dir/out.txt" 2> "$dir/err.txt" &
  server=$!
  for _ in $(seq 100); do grep -q listening "$dir/out.txt" 2>/dev/null && return; sleep 0.1; done
  echo "chainlogd did not start: $(cat "$dir/err.txt")" >&2; exit 1
}
stop() {
  kill "$server"; wait "$server" || true
  # The port must be free before the next start.
  while ss -ltn 2>/dev/null | grep -q ":$port "; do sleep 0.1; done
}
run() { # label clients batch [more bench args]
  local label=$1 c=$2 b=$3; shift 3
  CHAINLOG_KEY="$key" "$bin/chainlog" bench --addr "127.0.0.1:$port" --metrics "127.0.0.1:$((port + 1))" \
    --clients "$c" --batch "$b" --duration "$secs" --ceiling "$dir/data" --ceiling-seconds 2 --json "$@" |
    python3 -c "import json,sys; v=json.load(sys.stdin); v['round']=$round; v['label']='$label'; print(json.dumps(v))"
}

ulimit -n 8192
for round in $(seq "$rounds"); do
  start "" ""
  run sync 1 1
  run sync 16 1
  run sync 1 100
  run sync 16 100
  run idle0 16 1
  run idle1000 16 1 --idle 1000
  stop
  # The front end's own limit: everything but the disk.
  start "" 'durability = "unsafe-no-sync"'
  run nosync 1 1
  run nosync 16 1
  run nosync 16 100
  stop
  # 16 x 100 without pre-writing (half the bytes written to the disk).
  start "" "prewrite_segments = false"
  run noprewrite 16 100
  stop
done
[ -z "${CHAINLOG_BENCH_DIR:-}" ] && rm -rf "$dir"
