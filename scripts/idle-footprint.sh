#!/usr/bin/env bash
# The idle daemon with a large building behind it (issue 16 item 6; docs/benchmarks.md):
# RSS with 3,500 registered devices and 2 million buffered readings, and wake-ups per second.
#
# Sets up, in a scratch folder:
#   - a reading buffer holding 2 million readings of 3,500 devices (`gateway-bench buffer`, the same
#     buffer code the daemon uses), all waiting for upload;
#   - a registry of those 3,500 wireless meters (wmbus:QDS:10000000 …);
#   - one simulated iM871A dongle (`gatewayd-sim dongle`) that sends one telegram an hour: the receiver
#     is open and listening, nothing arrives;
#   - the portal unreachable (a closed loopback port): the 2 million readings stay buffered, the uploader
#     backs off.
# Then runs the daemon for --seconds and samples, after --settle seconds:
#   - VmRSS / RssAnon / RssFile of the daemon at the end;
#   - wake-ups: voluntary + involuntary context switches of every daemon thread between --settle and the
#     end (/proc/PID/task/*/status), per second, and per thread name, so the source of each is named.
# Every process started here is stopped on exit; everything stays on 127.0.0.1.
#
# Usage: scripts/idle-footprint.sh [--seconds N] [--settle N] [--bin PATH] [--readings N] [--devices N] [--keep]
#   --bin PATH   gatewayd; gatewayd-sim and gateway-bench are taken from the same folder
#                (default .build/release/). Build: swift build -c release --product gatewayd (and the others)
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"

seconds=120
settle=30
bin="$root/.build/release/gatewayd"
readings=2000000
devices=3500
keep=0
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds="$2"; shift 2 ;;
        --settle) settle="$2"; shift 2 ;;
        --bin) bin="$2"; shift 2 ;;
        --readings) readings="$2"; shift 2 ;;
        --devices) devices="$2"; shift 2 ;;
        --keep) keep=1; shift ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 64 ;;
    esac
done
dir="$(dirname "$bin")"
for b in "$bin" "$dir/gatewayd-sim" "$dir/gateway-bench"; do
    [ -x "$b" ] || { echo "missing $b; build: swift build -c release --product $(basename "$b")" >&2; exit 1; }
done
[ "$settle" -lt "$seconds" ] || { echo "--settle must be below --seconds" >&2; exit 64; }

work="$(mktemp -d "${TMPDIR:-/tmp}/idle-footprint.XXXXXX")"
# Children stopped in reverse order on exit; await_line.
source "$root/scripts/lib/processes.sh"
umask 077
mkdir -p "$work/state"

echo "filling the buffer: $readings readings of $devices devices …"
"$dir/gateway-bench" buffer --readings "$readings" --devices "$devices" --path "$work/state/buffer.sqlite" \
    >"$work/fill.log" 2>&1 || { cat "$work/fill.log" >&2; exit 1; }
grep -E 'readings|RSS' "$work/fill.log" | sed 's/^/  /' | head -4

python3 - "$work/registry.json" "$devices" <<'EOF'
import json, sys
path, n = sys.argv[1], int(sys.argv[2])
devices = [{"key": "wmbus:QDS:%08d" % (10000000 + i), "bus": "wmbus", "identification": "%08d" % (10000000 + i),
            "manufacturer": "QDS", "unit": "%d.%02d" % (i // 40 + 1, i % 40 + 1), "medium": "heat-cost allocator"}
           for i in range(n)]
json.dump({"gateway": "gw-idle", "building": "idle", "devices": devices}, open(path, "w"), indent=1)
EOF

"$dir/gatewayd-sim" dongle --type im871a --replay "$root/seeds/demo-building/wmbus-replay.txt" --interval 3600s \
    >"$work/dongle.log" 2>&1 &
pids+=("$!")
dongle_pty="$(await_line "$work/dongle.log" '^simulated im871a: ' | sed -E 's/^simulated im871a: ([^,]+),.*/\1/')"
# A loopback port nobody listens on: bound, then closed.
closed_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
printf 'idle-footprint-%s\n' "$RANDOM$RANDOM" >"$work/token"

cat >"$work/gatewayd.toml" <<EOF
gateway_id = "gw-idle"
building = "idle"

[[buses.wmbus]]
name = "wmbus-1"
type = "im871a"
link_mode = "c1t1"
device = "$dongle_pty"

[buffer]
path = "$work/state/buffer.sqlite"
max_readings = $((readings + 100000))

[uplink]
transport = "https"
endpoint = "https://127.0.0.1:$closed_port/api"
insecure = true

[uplink.auth]
bearer_token_file = "$work/token"

[registry]
source = "file"
file = "$work/registry.json"

[status]
socket = "$work/state/status.sock"
EOF

# switches PID: "tid comm voluntary+involuntary" per thread
switches() {
    local pid="$1" t
    for t in /proc/"$pid"/task/*; do
        awk -v tid="${t##*/}" '
            /^Name:/ {name=$0; sub(/^Name:[ \t]*/, "", name); gsub(/ /, "_", name)} /^voluntary_ctxt_switches:/ {v=$2} /^nonvoluntary_ctxt_switches:/ {n=$2}
            END {if (name != "") printf "%s %s %d\n", tid, name, v+n}' "$t/status" 2>/dev/null || true
    done
}

echo "machine: $(nproc) cores; binary: $bin; sampling wake-ups from ${settle} s to ${seconds} s"
t0="$(date +%s.%N)"
"$bin" run --config "$work/gatewayd.toml" >"$work/daemon.log" 2>&1 &
daemon_pid="$!"
pids+=("$daemon_pid")
elapsed() { awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN {printf "%.2f", a-b}'; }
wait_until() {
    while awk -v e="$(elapsed)" -v s="$1" 'BEGIN {exit !(e < s)}'; do
        kill -0 "$daemon_pid" 2>/dev/null || { echo "the daemon exited early:" >&2; tail -20 "$work/daemon.log" >&2; exit 1; }
        sleep 0.5
    done
}
wait_until "$settle"
ta="$(elapsed)"; switches "$daemon_pid" >"$work/switches.a"
wait_until "$seconds"
tb="$(elapsed)"; switches "$daemon_pid" >"$work/switches.b"
status="$(cat "/proc/$daemon_pid/status")"
cp "/proc/$daemon_pid/smaps_rollup" "$work/daemon.smaps_rollup" 2>/dev/null || true

echo
awk '/^VmRSS:|^VmHWM:|^RssAnon:|^RssFile:|^Threads:/ {
        if ($1 == "Threads:") printf "  %-9s %d\n", $1, $2; else printf "  %-9s %7.1f MiB\n", $1, $2/1024 }' <<<"$status"
# Threads that appeared after the first sample count from 0; threads that ended are gone from both.
awk -v span="$(awk -v a="$tb" -v b="$ta" 'BEGIN {print a-b}')" '
    FNR == NR {a[$1] = $3; next}
    {d = $3 - ($1 in a ? a[$1] : 0); total += d; byname[$2] += d; count[$2]++}
    END {
        printf "  wake-ups: %d context switches in %.1f s = %.2f per second (target: at most 2)\n", total, span, total/span
        for (n in byname) printf "    %-20s %3d threads %8.2f /s\n", n, count[n], byname[n]/span
    }' "$work/switches.a" "$work/switches.b"
echo "  daemon log: $(wc -l <"$work/daemon.log") lines; last lines:"
tail -3 "$work/daemon.log" | cut -c1-200 | sed 's/^/    /'
