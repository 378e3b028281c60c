#!/usr/bin/env bash
# Append throughput with the Merkle tree maintained, beside the same run
# without it (issue 15): two chainlogd binaries, A built from a commit before
# the tree and B from one with it, each started fresh with the default config
# (sync durability, pre-written segments) and driven by the same
# `chainlog bench`, alternating A and B every round so that the disk's drift
# spreads over both.
#
#   tools/bench/tree_ab.sh CHAINLOGD_A CHAINLOGD_B [ROUNDS] [SECONDS] > ab.jsonl
#   python3 tools/bench/summarize.py ab.jsonl
#
# B_LOG_CONFIG adds log settings to B's runs (for example
# 'checkpoint_every_records = 0' to see the tree without checkpoint signing).
# Labels: "A" and "B" (sync), "A-nosync" and "B-nosync" (unsafe-no-sync: the
# front end and engine CPU without the disk, where the tree's cost shows
# most). The load tool is target/release/chainlog of this checkout.
set -euo pipefail
a="$1"; b="$2"; rounds="${3:-3}"; secs="${4:-4}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
tool="$root/target/release/chainlog"
dir="${CHAINLOG_BENCH_DIR:-$(mktemp -d -p "$PWD" chainlog-ab.XXXXXX)}"
key="clk_$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
hash="$("$b" hash-key "$key" | grep -o 'sha256:[0-9a-f]*')"
port=7470

start() { # $1: binary, $2: extra log config
  rm -rf "$dir/data"; mkdir -p "$dir/data"
  cat > "$dir/data/chainlogd.toml" <<T
listen = "127.0.0.1:$port"
metrics_listen = "127.0.0.1:$((port + 1))"
data_dir = "."
[[logs]]
name = "default"
$2
[[keys]]
id = "bench"
hash = "$hash"
log = "default"
rights = ["append", "read", "admin"]
T
  "$1" --config "$dir/data/chainlogd.toml" --log-level warn > "$dir/out.txt" 2> "$dir/err.txt" &
  server=$!
  for _ in $(seq 100); do grep -q listening "$dir/out.txt" 2>/dev/null && return; sleep 0.1; done
  echo "chainlogd did not start: $(cat "$dir/err.txt")" >&2; exit 1
}
stop() {
  kill "$server"; wait "$server" || true
  while ss -ltn 2>/dev/null | grep -q ":$port "; do sleep 0.1; done
}
run() { # label clients batch
  CHAINLOG_KEY="$key" "$tool" bench --addr "127.0.0.1:$port" --metrics "127.0.0.1:$((port + 1))" \
    --clients "$2" --batch "$3" --duration "$secs" --ceiling "$dir/data" --ceiling-seconds 1 --json |
    python3 -c "import json,sys; v=json.load(sys.stdin); v['round']=$round; v['label']='$1'; print(json.dumps(v))"
}

for round in $(seq "$rounds"); do
  for side in A B; do
    bin=$a; extra=""
    if [ "$side" = B ]; then bin=$b; extra="${B_LOG_CONFIG:-}"; fi
    start "$bin" "$extra"
    run "$side" 1 1
    run "$side" 16 1
    run "$side" 16 100
    stop
    start "$bin" "$extra
durability = \"unsafe-no-sync\""
    run "$side-nosync" 16 1
    run "$side-nosync" 16 100
    stop
  done
done
[ -z "${CHAINLOG_BENCH_DIR:-}" ] && rm -rf "$dir"
