#!/usr/bin/env bash
# Appends over HTTP/JSON beside the binary protocol, against one chainlogd
# (issue 16): per round, a fresh server with the default config (sync
# durability, pre-written segments), then `chainlog bench` at 16 x 1 and
# 16 x 100 over each, alternating, with the disk's ceilings beside each run.
#
#   tools/bench/http_ab.sh [ROUNDS] [SECONDS] > http.jsonl
#   python3 tools/bench/summarize.py http.jsonl
#
# Labels: "binary" and "http". The server and the load tool are
# target/release/{chainlogd,chainlog} of this checkout.
set -euo pipefail
rounds="${1:-3}"; secs="${2:-4}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
server_bin="$root/target/release/chainlogd"
tool="$root/target/release/chainlog"
dir="${CHAINLOG_BENCH_DIR:-$(mktemp -d -p "$PWD" chainlog-http.XXXXXX)}"
key="clk_$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
hash="$("$server_bin" hash-key "$key" | grep -o 'sha256:[0-9a-f]*')"
port=7490

start() {
  rm -rf "$dir/data"; mkdir -p "$dir/data"
  cat > "$dir/data/chainlogd.toml" <<T
listen = "127.0.0.1:$port"
metrics_listen = "127.0.0.1:$((port + 1))"
http_listen = "127.0.0.1:$((port + 2))"
data_dir = "."
[[logs]]
name = "default"
[[keys]]
id = "bench"
hash = "$hash"
log = "default"
rights = ["append", "read", "admin"]
T
  "$server_bin" --config "$dir/data/chainlogd.toml" --log-level warn > "$dir/out.txt" 2> "$dir/err.txt" &
  server=$!
  for _ in $(seq 100); do grep -q "http on" "$dir/out.txt" 2>/dev/null && return; sleep 0.1; done
  echo "chainlogd did not start: $(cat "$dir/err.txt")" >&2; exit 1
}
stop() {
  kill "$server"; wait "$server" || true
  while ss -ltn 2>/dev/null | grep -q ":$port "; do sleep 0.1; done
}
run() { # label clients batch [--http ADDR]
  local label="$1" clients="$2" batch="$3"; shift 3
  CHAINLOG_KEY="$key" "$tool" bench --addr "127.0.0.1:$port" --metrics "127.0.0.1:$((port + 1))" \
    --clients "$clients" --batch "$batch" --duration "$secs" --ceiling "$dir/data" --ceiling-seconds 1 --json "$@" |
    python3 -c "import json,sys; v=json.load(sys.stdin); v['round']=$round; v['label']='$label'; print(json.dumps(v))"
}

for round in $(seq "$rounds"); do
  start
  for shape in "16 1" "16 100"; do
    # shellcheck disable=SC2086
    run binary $shape
    # shellcheck disable=SC2086
    run http $shape --http "127.0.0.1:$((port + 2))"
  done
  stop
done
[ -z "${CHAINLOG_BENCH_DIR:-}" ] && rm -rf "$dir"
