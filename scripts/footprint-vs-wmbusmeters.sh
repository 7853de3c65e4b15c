#!/usr/bin/env bash
# Idle footprint of the daemon beside wmbusmeters on the same radio stream (issue 16 item 6;
# docs/benchmarks.md). Builds wmbusmeters from its source in a scratch folder outside the repository
# (nothing of it is committed), then runs, side by side for the same time:
#   - gatewayd run: one rtl_wmbus receiver, the demo building's registry and keys, the SQLite buffer and
#     an uplink to a local portal sink (gatewayd-sim portal, on 127.0.0.1);
#   - wmbusmeters stdin:rtlwmbus, listening to every meter (`all auto * NOKEY`), output to /dev/null;
# both fed the same rtl_wmbus lines: the demo building's radio replay, 12 telegrams every 2 s, in a loop.
# Then again with the receiver absent (gatewayd: a dongle path that does not exist; wmbusmeters: the
# same path), which is each program's floor. RSS, anonymous and file-backed parts, threads and CPU
# come from /proc at the sample time; binary sizes are printed too.
#
# Usage: scripts/footprint-vs-wmbusmeters.sh [--seconds N] [--bin PATH] [--scratch DIR]
#   --seconds N   sample time after the start (default 60)
#   --bin PATH    the gatewayd binary (default .build/release/gatewayd; gatewayd-sim beside it)
#   --sim PATH    gatewayd-sim, when it is not beside the binary (a size-optimised build of gatewayd alone)
#   WMBUSMETERS_SRC=path  a local wmbusmeters checkout or git directory to clone from
#                         (default: https://github.com/wmbusmeters/wmbusmeters)
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
seconds=60
bin="$root/.build/release/gatewayd"
sim=""
scratch="${TMPDIR:-/tmp}/gatewayd-wmbusmeters-compare"
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds="$2"; shift 2 ;;
        --bin) bin="$2"; shift 2 ;;
        --sim) sim="$2"; shift 2 ;;
        --scratch) scratch="$2"; shift 2 ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 64 ;;
    esac
done
sim="${sim:-$(dirname "$bin")/gatewayd-sim}"
[ -x "$bin" ] || { echo "no gatewayd at $bin: swift build -c release --product gatewayd" >&2; exit 1; }
[ -x "$sim" ] || { echo "no gatewayd-sim beside it: swift build -c release --product gatewayd-sim" >&2; exit 1; }
case "$scratch" in "$root"/*) echo "the scratch folder must be outside the repository" >&2; exit 64 ;; esac
mkdir -p "$scratch"
if [ ! -x "$scratch/wmbusmeters/build/wmbusmeters" ]; then
    rm -rf "$scratch/wmbusmeters"
    git clone -q "${WMBUSMETERS_SRC:-https://github.com/wmbusmeters/wmbusmeters}" "$scratch/wmbusmeters"
    (cd "$scratch/wmbusmeters" && ./configure >/dev/null && make -j"$(nproc)" >/dev/null 2>&1) || { echo "wmbusmeters did not build in $scratch/wmbusmeters (it needs g++, libxml2-dev, librtlsdr-dev, libusb-1.0-0-dev)" >&2; exit 1; }
fi
wmb="$scratch/wmbusmeters/build/wmbusmeters"
rev="$(git -C "$scratch/wmbusmeters" rev-parse --short HEAD)"

work="$(mktemp -d "${TMPDIR:-/tmp}/footprint.XXXXXX")"
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
umask 077

# The radio stream as rtl_wmbus lines (mode;crc ok;3of6 ok;time;rssi;link quality;id;0xHEX).
grep -v '^#' "$root/seeds/demo-building/wmbus-replay.txt" | awk 'NF >= 4 {
    printf "%s;1;1;2026-12-06 10:00:00.000;%d;100;0;0x%s\n", toupper($2), -$3, $4 }' >"$work/lines"
cat >"$work/feed.sh" <<FEED
#!/bin/sh
while :; do cat '$work/lines'; sleep 2; done
FEED
chmod +x "$work/feed.sh"

printf 'footprint-%s\n' "$RANDOM$RANDOM" >"$work/token"
setsid "$sim" portal --token-file "$work/token" >"$work/portal.log" 2>&1 &
pids+=("$!")
for _ in $(seq 100); do grep -q '^portal sink: ' "$work/portal.log" 2>/dev/null && break; sleep 0.1; done
portal_url="$(sed -nE 's/^portal sink: //p' "$work/portal.log" | head -1)"
case "$portal_url" in *127.0.0.1*) ;; *) echo "the portal sink is not on 127.0.0.1: $portal_url" >&2; exit 1 ;; esac

config() {  # config NAME RECEIVER-LINES: a daemon configuration with one radio receiver
    cat >"$work/$1.toml" <<EOF2
gateway_id = "gw-demo-0007"
building = "7"
profiles_dir = "$root/profiles/modbus"
keys_file = "$work/keys"

[[buses.wmbus]]
name = "wmbus-1"
$2

[buffer]
path = "$work/$1/buffer.sqlite"
# A test machine's clock may never report NTP sync; a building's gateway uploads, so this one does too.
clock_sync = "off"

[uplink]
transport = "https"
endpoint = "$portal_url"
insecure = true

[uplink.auth]
bearer_token_file = "$work/token"

[registry]
source = "file"
file = "$root/seeds/demo-building/registry.json"

[metrics]
listen = "127.0.0.1:$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"

[status]
socket = "$work/$1/status.sock"
EOF2
}
cp "$root/seeds/demo-building/keys" "$work/keys"
chmod 600 "$work/keys"
config present "type = \"rtlwmbus\"
command = \"$work/feed.sh\""
config absent "type = \"im871a\"
device = \"/dev/ttyGATEWAYD-ABSENT\""

tick="$(getconf CLK_TCK)"
sample() {  # sample PID -> "rss anon file threads cpu_s"
    local pid="$1" stat
    [ -r "/proc/$pid/status" ] || { echo "- - - - -"; return; }
    stat="$(cat "/proc/$pid/stat")"; stat="${stat##*) }"
    read -r -a f <<<"$stat"
    awk -v ut="${f[11]}" -v st="${f[12]}" -v tick="$tick" '
        /^VmRSS:/ {rss=$2} /^RssAnon:/ {anon=$2} /^RssFile:/ {file=$2} /^Threads:/ {thr=$2}
        END {printf "%.1f %.1f %.1f %d %.2f\n", rss/1024, anon/1024, file/1024, thr, (ut+st)/tick}' "/proc/$pid/status"
}

measure() {  # measure CASE: starts both, samples at $seconds, stops both
    local case="$1" g w
    mkdir -p "$work/$case"
    GATEWAYD_PROFILES="$root/profiles" setsid "$bin" run --config "$work/$case.toml" >"$work/$case/gatewayd.log" 2>&1 &
    g="$!"; pids+=("$g")
    if [ "$case" = present ]; then
        setsid sh -c "'$work/feed.sh' | '$wmb' --silent stdin:rtlwmbus all auto '*' NOKEY >/dev/null 2>'$work/$case/wmbusmeters.log'" &
        w="$!"; pids+=("$w")
        sleep 1
        w="$(pgrep -f -n "^$wmb --silent stdin:rtlwmbus" || echo "$w")"
    else
        setsid "$wmb" --silent /dev/ttyGATEWAYD-ABSENT:im871a all auto '*' NOKEY >/dev/null 2>"$work/$case/wmbusmeters.log" &
        w="$!"; pids+=("$w")
    fi
    sleep "$seconds"
    kill -0 "$g" 2>/dev/null || { echo "gatewayd exited early ($case):" >&2; tail -20 "$work/$case/gatewayd.log" >&2; exit 1; }
    kill -0 "$w" 2>/dev/null || { echo "wmbusmeters exited early ($case):" >&2; tail -20 "$work/$case/wmbusmeters.log" >&2; exit 1; }
    read -r gr ga gf gt gc <<<"$(sample "$g")"
    read -r wr wa wf wt wc <<<"$(sample "$w")"
    printf '%-8s %-12s %8s %8s %8s %8s %8s\n' "$case" gatewayd "$gr" "$ga" "$gf" "$gt" "$gc"
    printf '%-8s %-12s %8s %8s %8s %8s %8s\n' "$case" wmbusmeters "$wr" "$wa" "$wf" "$wt" "$wc"
    awk -v a="$gr" -v b="$wr" -v c="$case" 'BEGIN {printf "%-8s gatewayd RSS / wmbusmeters RSS: %.1fx (target: gatewayd at most 16 MiB)\n", c, a/b}'
    kill -TERM -- "-$g" 2>/dev/null || true
    kill -TERM -- "-$w" 2>/dev/null || true
    sleep 2
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "gatewayd: $bin ($(stat -c %s "$bin") bytes); wmbusmeters $rev: $wmb ($(stat -c %s "$wmb") bytes)"
echo "sampled ${seconds} s after the start"
printf '%-8s %-12s %8s %8s %8s %8s %8s\n' case process "RSS MiB" "anon" "file" threads "CPU s"
measure present
measure absent
grep -E '^stored ' "$work/portal.log" | sed 's/^/portal sink: /' || true
