#!/usr/bin/env bash
# Issue 8's memory figure as the issue states it: the RSS of the demo (`gatewayd run --demo`: the daemon
# and the demo building's simulators in one process) after N seconds, against the RSS of the same
# simulators on their own (`gatewayd-sim demo`: the same configuration, no daemon).
# Both run side by side on 127.0.0.1 and are sampled at the same moment; both are stopped on exit.
#
# Usage: scripts/demo-memory.sh [--seconds N] [--bin PATH]     (default 600 s, .build/release/gatewayd)
# Build first: swift build -c release --product gatewayd && swift build -c release --product gatewayd-sim
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=600
bin="$(pwd)/.build/release/gatewayd"
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds="$2"; shift 2 ;;
        --bin) bin="$2"; shift 2 ;;
        -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 64 ;;
    esac
done
[ -x "$bin" ] || { echo "no gatewayd binary at $bin; build it: swift build -c release --product gatewayd" >&2; exit 1; }
work="$(mktemp -d "${TMPDIR:-/tmp}/demo-memory.XXXXXX")"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$bin" run --demo >"$work/demo.log" 2>&1 &
demo_pid=$!; pids+=("$demo_pid")
"$(dirname "$bin")/gatewayd-sim" demo >"$work/simulators.log" 2>&1 &
sims_pid=$!; pids+=("$sims_pid")

tick="$(getconf CLK_TCK)"
sample() {  # PID -> "rss_kib hwm_kib anon_kib file_kib cpu_s"
    local stat f
    stat="$(cat "/proc/$1/stat")"; stat="${stat##*) }"
    read -r -a f <<<"$stat"
    awk -v ut="${f[11]}" -v st="${f[12]}" -v tick="$tick" '
        /^VmRSS:/ {rss=$2} /^VmHWM:/ {hwm=$2} /^RssAnon:/ {anon=$2} /^RssFile:/ {file=$2}
        END {printf "%s %s %s %s %.2f\n", rss, hwm, anon, file, (ut+st)/tick}' "/proc/$1/status"
}
sleep "$seconds"
read -r d_rss d_hwm d_anon d_file d_cpu <<<"$(sample "$demo_pid")"
read -r s_rss s_hwm s_anon s_file s_cpu <<<"$(sample "$sims_pid")"
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k/1024}'; }
echo "machine: $(nproc) cores; binary: $bin; sampled at ${seconds} s"
printf '%-34s %10s %10s %10s %10s %8s\n' process "RSS MiB" "peak MiB" "anon MiB" "file MiB" "CPU s"
printf '%-34s %10s %10s %10s %10s %8s\n' "gatewayd run --demo" "$(mib "$d_rss")" "$(mib "$d_hwm")" "$(mib "$d_anon")" "$(mib "$d_file")" "$d_cpu"
printf '%-34s %10s %10s %10s %10s %8s\n' "gatewayd-sim demo" "$(mib "$s_rss")" "$(mib "$s_hwm")" "$(mib "$s_anon")" "$(mib "$s_file")" "$s_cpu"
printf 'demo above the simulators: RSS %s MiB (%s MB), peak %s MiB; the daemon'"'"'s CPU about %s s per hour\n' \
    "$(mib $((d_rss - s_rss)))" "$(awk -v k=$((d_rss - s_rss)) 'BEGIN {printf "%.1f", k*1024/1e6}')" "$(mib $((d_hwm - s_hwm)))" \
    "$(awk -v d="$d_cpu" -v s="$s_cpu" -v t="$seconds" 'BEGIN {printf "%.1f", (d-s)*3600/t}')"
grep -m1 -E "demo portal sink|readings" "$work/demo.log" >/dev/null || true
