#!/usr/bin/env bash
# Import rate of about 256-byte CSV rows, without and with the transforms
# (docs/cli.md), against a fresh release chainlogd with sync durability.
#
#   tools/bench/import_rate.sh [ROWS] [ROUNDS]     (defaults 200000 and 3)
#
# Each round imports the same rows twice into one server, as two sources
# (their own --key-prefix): plain, then with --default, --action-rule,
# --wrap-metadata and --truncate. Prints one line per import: rows/s by
# the wall clock, and the CPU seconds of chainlog and of chainlogd.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROWS="${1:-200000}"
ROUNDS="${2:-3}"
BIN=target/release
[ -x "$BIN/chainlogd" ] && [ -x "$BIN/chainlog" ] || {
    echo "build first: cargo build --release -p chainlog-server -p chainlog-tools" >&2
    exit 2
}
WORK="$(mktemp -d)"
trap 'kill "$SERVER" 2>/dev/null || true; rm -rf "$WORK"' EXIT

# Rows of about 256 bytes: 20 tenants, 500 users, actions in the old
# system's style (USER_LOGIN), details as JSON text; every 50th row a
# system event with no user and a JSON array as details.
python3 - "$ROWS" >"$WORK/rows.csv" <<'EOF'
import sys
n = int(sys.argv[1])
print("id,organization_id,user_id,user_email,event_type,target_type,target_id,details,created_at")
actions = ["USER_LOGIN", "USER_LOGOUT", "DOCUMENT_VIEWED", "DOCUMENT_EXPORTED", "ROLE_GRANTED"]
for i in range(1, n + 1):
    system = i % 50 == 0
    user = "" if system else f"user-{i % 500:04d}"
    email = "" if system else f"person.{i % 500:04d}@customer-organisation.example.com"
    details = '"[""nightly"", ""sync""]"' if system else '"{""ip"": ""10.%d.%d.%d"", ""agent"": ""Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0""}"' % (i % 200, i % 100, i % 250)
    t = 1_700_000_000 + i
    print(f"{i},org-{i % 20:02d},{user},{email},{actions[i % 5]},document,doc-{i:08d},{details},{t}")
EOF
echo "rows: $ROWS, $(($(stat -c %s "$WORK/rows.csv") / ROWS)) bytes each on average"

MAP="organization_id=tenant_id,user_id=actor_id,user_email=actor_name,event_type=action,target_type=resource,target_id=resource_id,details=metadata,created_at=occurred_at"
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
for round in $(seq 1 "$ROUNDS"); do
    rm -rf "$WORK/data" && mkdir -p "$WORK/data"
    "$BIN/chainlogd" --data-dir "$WORK/data" --listen 127.0.0.1:0 --metrics-listen "" --http-listen "" \
        >"$WORK/out" 2>"$WORK/err" &
    SERVER=$!
    for _ in $(seq 100); do grep -q "listening on" "$WORK/out" 2>/dev/null && break; sleep 0.1; done
    ADDR="$(sed -n 's/^chainlogd listening on \([^,]*\).*/\1/p' "$WORK/out")"
    export CHAINLOG_ADDR="$ADDR"
    CHAINLOG_KEY="$(grep -A1 'development API key' "$WORK/out" | tail -1 | tr -d ' ')"
    export CHAINLOG_KEY
    for mode in plain transforms; do
        rm -f "$WORK/$mode.csv".*
        cp "$WORK/rows.csv" "$WORK/$mode.csv"
        extra=()
        if [ "$mode" = transforms ]; then
            extra=(--default actor_id=system --action-rule lowercase-dot --wrap-metadata details --truncate)
        else
            # Without the transforms the system rows are rejected: leave
            # them in, as a migration's first try would.
            :
        fi
        s0=$(cpu "$SERVER")
        start=$(date +%s.%N)
        /usr/bin/time -f "%U %S" -o "$WORK/time" "$BIN/chainlog" import "$WORK/$mode.csv" --no-progress \
            --id-column id --key-prefix "$mode:" --map "$MAP" "${extra[@]}" 2>"$WORK/import.err" || true
        end=$(date +%s.%N)
        s1=$(cpu "$SERVER")
        tool=$(tail -1 "$WORK/time" | awk '{print $1 + $2}')
        summary=$(grep "this run" "$WORK/import.err" | sed 's/.*; stored/stored/; s/ (this run).*//')
        python3 -c "
import sys
rows, wall, tool, server = $ROWS, $end - $start, $tool, ($s1 - $s0) / 100
print(f'round $round $mode: {rows / wall:,.0f} rows/s ({wall:.2f} s), chainlog CPU {tool:.2f} s, chainlogd CPU {server:.2f} s; $summary')
"
    done
    kill "$SERVER"; wait "$SERVER" 2>/dev/null || true
done
