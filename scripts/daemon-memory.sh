#!/usr/bin/env bash
# Memory and CPU of the daemon alone on the demo building (issue 8; docs/benchmarks.md).
#
# Starts the demo building's simulators as separate processes (`gatewayd-sim mbus|dongle|modbus|
# portal`), then the daemon on a generated non-demo configuration pointing at them, and samples
# /proc/PID/status (VmRSS, VmHWM, RssAnon, RssFile, Threads) and /proc/PID/stat (utime + stime) of every
# process at a given time after the daemon started (default 600 s). The baseline is the M-Bus simulator
# (gatewayd-sim, a separate program since issue 16), serving one simulated line. Everything stays on 127.0.0.1; every process started here
# is stopped on exit, by its own PID.
#
# Usage: scripts/daemon-memory.sh [--seconds N] [--bin PATH] [--keep] [--daemon-env "VAR=value …"]
#   --seconds N       sample time after the daemon's start (default 600)
#   --bin PATH        the gatewayd binary (default: the release build, .build/release/gatewayd)
#   --keep            keep the work directory (configuration, logs, samples, smaps) instead of deleting it
#   --daemon-env ENV  extra environment for the daemon only, e.g. "MALLOC_ARENA_MAX=4" for experiments
#   --interval N      also record every process every N seconds in samples.tsv (default 60)
#   --on-sample CMD   run CMD (through sh) right after the final sample, with DAEMON_PID, BASELINE_PID and
#                     WORK in its environment: for a closer look (pagemap, gdb) while everything still runs
# Build first: swift build -c release --product gatewayd && swift build -c release --product gatewayd-sim
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"

seconds=600
bin="$root/.build/release/gatewayd"
keep=0
daemon_env=""
interval=60
on_sample=""
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds="$2"; shift 2 ;;
        --bin) bin="$2"; shift 2 ;;
        --keep) keep=1; shift ;;
        --daemon-env) daemon_env="$2"; shift 2 ;;
        --interval) interval="$2"; shift 2 ;;
        --on-sample) on_sample="$2"; shift 2 ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 64 ;;
    esac
done
# The simulators come from the gatewayd-sim beside the binary (after --bin, so a copied pair is used).
sim="$(dirname "$bin")/gatewayd-sim"
[ -x "$bin" ] || { echo "no gatewayd binary at $bin; build it: swift build -c release --product gatewayd" >&2; exit 1; }
[ -x "$sim" ] || { echo "no gatewayd-sim beside it ($sim); build it: swift build -c release --product gatewayd-sim" >&2; exit 1; }

work="$(mktemp -d "${TMPDIR:-/tmp}/daemon-memory.XXXXXX")"
# Children stopped in reverse order on exit; await_line.
source "$root/scripts/lib/processes.sh"


start() {  # start NAME ARGS...: runs gatewayd-sim with ARGS, output in $work/NAME.log, PID in $NAME_pid
    local name="$1"; shift
    "$sim" "$@" >"$work/$name.log" 2>&1 &
    pids+=("$!")
    printf -v "${name}_pid" '%s' "$!"
}

seeds="$root/seeds/demo-building"
umask 077
printf 'memory-bench-%s\n' "$RANDOM$RANDOM" >"$work/token"

start mbus mbus --slaves "$seeds/mbus-slaves.json"
start dongle dongle --type im871a --replay "$seeds/wmbus-replay.txt" --interval 2
start modbus modbus --profile "$root/profiles/modbus/kaisai-r290-monoblock.json"
start portal portal --token-file "$work/token"
mbus_pty="$(await_line "$work/mbus.log" '^simulated M-Bus line: ' | sed -E 's/^simulated M-Bus line: ([^ ]+) .*/\1/')"
dongle_pty="$(await_line "$work/dongle.log" '^simulated im871a: ' | sed -E 's/^simulated im871a: ([^,]+),.*/\1/')"
modbus_url="$(await_line "$work/modbus.log" '^simulated heat pump' | sed -E 's/.*: (tcp:[^ ]+)$/\1/')"
portal_url="$(await_line "$work/portal.log" '^portal sink: ' | sed -E 's/^portal sink: //')"
case "$modbus_url$portal_url" in
    *127.0.0.1*127.0.0.1*) ;;
    *) echo "a simulator is not on 127.0.0.1: $modbus_url $portal_url" >&2; exit 1 ;;
esac
# A free loopback port for the metrics endpoint (the default 9464 may be taken by a demo running beside).
metrics_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"

# The demo building's configuration (seeds/demo-building/gatewayd.toml) without demo mode: the same
# buses, schedules and registry, pointing at the simulators above.
cat >"$work/gatewayd.toml" <<EOF
gateway_id = "gw-demo-0007"
building = "7"
profiles_dir = "$root/profiles/modbus"

[[buses.mbus]]
name = "mbus-line-1"
port = "$mbus_pty"
baud = 2400
addressing = "secondary"

[[buses.wmbus]]
name = "wmbus-1"
type = "im871a"
link_mode = "c1t1"
device = "$dongle_pty"

[[buses.modbus]]
name = "rs485-1"
port = "$modbus_url"
response_timeout = "1s"

[[buses.modbus.devices]]
name = "heat-pump"
unit = 1
profile = "kaisai-r290-monoblock"
serial = "KHP-R290-0007-001"

[schedules]
interval = "1m"
jitter = "5s"

[schedules.bus.mbus-line-1]
interval = "2m"
set_day = "12-31"
set_day_time = "00:30"

[buffer]
path = "$work/state/buffer.sqlite"
max_readings = 100000
# A test machine's clock may never report NTP sync; a building's gateway uploads, so this one does too.
clock_sync = "off"

[uplink]
transport = "https"
endpoint = "$portal_url"
insecure = true
batch_readings = 100
health_interval = "30s"

[uplink.auth]
bearer_token_file = "$work/token"

[registry]
source = "file"
file = "$seeds/registry.json"

[metrics]
listen = "127.0.0.1:$metrics_port"

[status]
socket = "$work/state/status.sock"
EOF

tick="$(getconf CLK_TCK)"
# sample PID: "rss_kib hwm_kib anon_kib file_kib threads cpu_s"
sample() {
    local pid="$1"
    [ -r "/proc/$pid/status" ] || { echo "- - - - - -"; return; }
    local status stat
    status="$(cat "/proc/$pid/status")"
    stat="$(cat "/proc/$pid/stat")"
    stat="${stat##*) }"  # after the command name, which may hold spaces
    # Fields after the name start at field 3 (state): utime is field 14, stime field 15.
    read -r -a f <<<"$stat"
    awk -v ut="${f[11]}" -v st="${f[12]}" -v tick="$tick" '
        /^VmRSS:/ {rss=$2} /^VmHWM:/ {hwm=$2} /^RssAnon:/ {anon=$2} /^RssFile:/ {file=$2} /^Threads:/ {thr=$2}
        END {printf "%s %s %s %s %s %.2f\n", rss, hwm, anon, file, thr, (ut+st)/tick}' <<<"$status"
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); binary: $bin"
echo "simulators: mbus $mbus_pty, dongle $dongle_pty, modbus $modbus_url, portal $portal_url"
echo "daemon environment: ${daemon_env:-(none)}; sampling at ${seconds} s, work directory $work"
t0="$(date +%s.%N)"
# The shipped profiles, as an installed daemon has them (a binary copied elsewhere would not find them).
export GATEWAYD_PROFILES="$root/profiles"
if [ -n "$daemon_env" ]; then
    # shellcheck disable=SC2086
    env $daemon_env "$bin" run --config "$work/gatewayd.toml" >"$work/daemon.log" 2>&1 &
else
    "$bin" run --config "$work/gatewayd.toml" >"$work/daemon.log" 2>&1 &
fi
daemon_pid="$!"
pids+=("$daemon_pid")

names=(daemon mbus dongle modbus portal)
procs=("$daemon_pid" "$mbus_pid" "$dongle_pid" "$modbus_pid" "$portal_pid")
printf 't_s\tprocess\trss_kib\thwm_kib\tanon_kib\tfile_kib\tthreads\tcpu_s\n' >"$work/samples.tsv"
next=0
while :; do
    now="$(date +%s.%N)"
    elapsed="$(awk -v a="$now" -v b="$t0" 'BEGIN {printf "%.1f", a-b}')"
    if ! kill -0 "$daemon_pid" 2>/dev/null; then
        echo "the daemon exited early:" >&2; tail -20 "$work/daemon.log" >&2; exit 1
    fi
    if awk -v e="$elapsed" -v s="$seconds" 'BEGIN {exit !(e >= s)}'; then break; fi
    if awk -v e="$elapsed" -v n="$next" 'BEGIN {exit !(e >= n)}'; then
        for i in "${!names[@]}"; do
            printf '%s\t%s\t%s\n' "$elapsed" "${names[$i]}" "$(sample "${procs[$i]}" | tr ' ' '\t')" >>"$work/samples.tsv"
        done
        next=$((next + interval))
    fi
    sleep 0.5
done

# The final sample, all processes within the same second.
declare -A final
for i in "${!names[@]}"; do final[${names[$i]}]="$(sample "${procs[$i]}")"; done
final_elapsed="$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN {printf "%.1f", a-b}')"
for i in "${!names[@]}"; do
    printf '%s\t%s\t%s\n' "$final_elapsed" "${names[$i]}" "$(tr ' ' '\t' <<<"${final[${names[$i]}]}")" >>"$work/samples.tsv"
done
cp "/proc/$daemon_pid/smaps_rollup" "$work/daemon.smaps_rollup" 2>/dev/null || true
cp "/proc/$daemon_pid/smaps" "$work/daemon.smaps" 2>/dev/null || true
cp "/proc/$mbus_pid/smaps_rollup" "$work/mbus.smaps_rollup" 2>/dev/null || true
cp "/proc/$mbus_pid/smaps" "$work/mbus.smaps" 2>/dev/null || true
if [ -n "$on_sample" ]; then
    DAEMON_PID="$daemon_pid" BASELINE_PID="$mbus_pid" WORK="$work" sh -c "$on_sample" >"$work/on-sample.out" 2>&1 || true
fi
ls "/proc/$daemon_pid/task" | while read -r t; do cat "/proc/$daemon_pid/task/$t/comm"; done | sort | uniq -c | sort -rn >"$work/daemon.threads"

echo
printf '%-8s %10s %10s %10s %10s %8s %8s %10s\n' process "RSS MiB" "peak MiB" "anon MiB" "file MiB" threads "CPU s" "CPU s/h"
for name in "${names[@]}"; do
    read -r rss hwm anon file thr cpu <<<"${final[$name]}"
    awk -v n="$name" -v r="$rss" -v h="$hwm" -v a="$anon" -v f="$file" -v t="$thr" -v c="$cpu" -v e="$final_elapsed" 'BEGIN {
        printf "%-8s %10.1f %10.1f %10.1f %10.1f %8d %8.2f %10.1f\n", n, r/1024, h/1024, a/1024, f/1024, t, c, c/e*3600 }'
done
read -r d_rss d_hwm _ <<<"${final[daemon]}"
read -r b_rss b_hwm _ <<<"${final[mbus]}"
awk -v dr="$d_rss" -v dh="$d_hwm" -v br="$b_rss" -v bh="$b_hwm" -v e="$final_elapsed" 'BEGIN {
    printf "\nat %.0f s, daemon above the baseline (gatewayd-sim mbus): RSS %+.1f MiB, peak %+.1f MiB (target: at most 16 MB = 15.26 MiB)\n",
        e, (dr-br)/1024, (dh-bh)/1024 }'
echo "daemon threads by name:"; sed 's/^/  /' "$work/daemon.threads"
grep -E '^(Rss|Pss_Anon|Pss_File|Anonymous):' "$work/daemon.smaps_rollup" 2>/dev/null | sed 's/^/  daemon smaps_rollup /' || true

# What reached the portal: the sink prints its store when it stops.
kill -INT "$daemon_pid" 2>/dev/null || true
for _ in $(seq 100); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
kill -INT "$portal_pid" 2>/dev/null || true
for _ in $(seq 50); do kill -0 "$portal_pid" 2>/dev/null || break; sleep 0.1; done
grep -E '^stored ' "$work/portal.log" | sed 's/^/portal sink: /' || true
grep -cE '^[^ ]+ (ERROR|CRITICAL) ' "$work/daemon.log" | sed 's/^/daemon log lines at level error or critical: /' || true
