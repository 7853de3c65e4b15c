#!/usr/bin/env bash
# Second pass over scripts/hot-code.order (issue 16 item 6; docs/benchmarks.md): the functions a real,
# unslowed daemon faults in after StartupPages handed its start-up code back, which the callgrind pass of
# scripts/hot-code-order.sh did not see (timers and timeouts run differently under valgrind: the HTTP
# client's idle-connection timer, for one). Each fault names one function that ran; the function is put
# at the front of the list, with the steady-state code.
#
# How: runs scripts/daemon-memory.sh with the given production binary (built by scripts/build-deb.sh's
# flags, symbol table present), waits for the journal's "start-up code handed back" line, records every
# page fault of the daemon for --seconds with `perf record -e page-faults -c 1`, and maps each faulting
# instruction in the executable to its symbol (nm, with the load address from /proc/PID/maps).
# A fault in one of LLVM's unnamed private functions names nothing (scripts/hot-code.ld places those).
#
# Usage: scripts/hot-code-faults.sh --bin PATH [--seconds N] [--order FILE]
#   --bin PATH     production gatewayd (gatewayd-sim beside it)
#   --seconds N    how long to record after the hand-back (default 300)
#   --order FILE   the list to extend in place (default scripts/hot-code.order)
# Needs perf (Debian: linux-perf) and root. Everything stays on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"

bin=""
seconds=300
order="$root/scripts/hot-code.order"
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) bin="$(readlink -f "$2")"; shift 2 ;;
        --seconds) seconds="$2"; shift 2 ;;
        --order) order="$2"; shift 2 ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 64 ;;
    esac
done
[ -x "$bin" ] || { echo "--bin: no gatewayd binary at '$bin'" >&2; exit 64; }
command -v perf >/dev/null || { echo "needs perf (apt-get install linux-perf)" >&2; exit 1; }

work="$(mktemp -d "${TMPDIR:-/tmp}/hot-faults.XXXXXX")"
trap 'rm -rf "$work"' EXIT
scripts/daemon-memory.sh --bin "$bin" --seconds "$((seconds + 150))" --interval 600 --keep >"$work/memory.log" 2>&1 &
bench=$!
daemon=""
for _ in $(seq 1 60); do
    daemon="$(pgrep -f "^$bin run --config" | head -1 || true)"
    [ -n "$daemon" ] && break
    sleep 1
done
[ -n "$daemon" ] || { echo "the daemon did not start:" >&2; cat "$work/memory.log" >&2; exit 1; }
log="$(awk '/work directory/ {print $NF}' "$work/memory.log")/daemon.log"
for _ in $(seq 1 60); do
    grep -q "start-up code handed back" "$log" 2>/dev/null && break
    sleep 2
done
grep -q "start-up code handed back" "$log" || { echo "no hand-back line in $log within 120 s" >&2; exit 1; }
awk -v b="$bin" '$6 == b && $3 == "00000000" {print $1; exit}' "/proc/$daemon/maps" | cut -d- -f1 >"$work/base"
timeout "$seconds" perf record -q -e page-faults -c 1 -p "$daemon" -o "$work/faults.data" >/dev/null 2>&1 || true
perf script -i "$work/faults.data" -F ip,dso 2>/dev/null | awk -v b="($bin)" '$2 == b {print $1}' >"$work/ips"
wait "$bench" || true
nm -S --defined-only "$bin" >"$work/symbols"

python3 - "$work/ips" "$(cat "$work/base")" "$work/symbols" "$order" <<'PY'
import bisect, sys
ips, base, symbols, order = sys.argv[1], int(sys.argv[2], 16), sys.argv[3], sys.argv[4]
syms = []
for line in open(symbols):
    p = line.split()
    if len(p) == 4 and p[2] in "tTwW":
        syms.append((int(p[0], 16), int(p[1], 16), p[3]))
syms.sort()
starts = [s[0] for s in syms]
faults, named = 0, []
for line in open(ips):
    faults += 1
    ip = int(line, 16) - base
    i = bisect.bisect_right(starts, ip) - 1
    if i >= 0 and syms[i][0] <= ip < syms[i][0] + max(syms[i][1], 1):
        named.append(syms[i][2])
old = [l.strip() for l in open(order) if l.strip()]
front = [n for n in dict.fromkeys(named)]
rest = [n for n in old if n not in set(front)]
with open(order, "w") as o:
    o.write("\n".join(front + rest) + "\n")
print(f"{faults} page faults in the executable's code, {len(front)} functions named; {order} now {len(front + rest)} names")
PY
