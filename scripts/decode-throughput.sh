#!/usr/bin/env bash
# `gatewayd decode` from a file: telegrams per CPU-second and peak memory (issue 16 item 8;
# docs/benchmarks.md). The input is every radio test telegram of the shipped profiles (each family's
# compact frames after their full frame, encrypted ones with their keys), repeated to the size asked for;
# the output (one JSON object per telegram) goes to /dev/null. A second, ten times smaller run shows
# whether memory grows with the input: `decode` streams, so both peaks should be alike. The profiles are
# named (--profiles), so a binary built outside the checkout (a static build's scratch folder) does the
# same work as one inside it, which finds them by itself.
#
# Usage: scripts/decode-throughput.sh [--telegrams N] [--bin PATH]
#   --telegrams N  telegrams in the big run (default 200000)
#   --bin PATH     the gatewayd binary (default: the release build, .build/release/gatewayd)
# Build first: swift build -c release --product gatewayd
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
telegrams=200000
bin="$root/.build/release/gatewayd"
while [ $# -gt 0 ]; do
    case "$1" in
        --telegrams) telegrams="$2"; shift 2 ;;
        --bin) bin="$2"; shift 2 ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 64 ;;
    esac
done
[ -x "$bin" ] || { echo "no gatewayd binary at $bin; build it: swift build -c release --product gatewayd" >&2; exit 1; }
work="$(mktemp -d "${TMPDIR:-/tmp}/decode-throughput.XXXXXX")"
trap '[ -n "${KEEP:-}" ] && echo "work directory kept: $work" || rm -rf "$work"' EXIT

python3 - "$root/profiles/wmbus" "$work" "$telegrams" <<'PY'
import glob, json, os, sys
folder, work, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
lines, keys = [], {}
for path in sorted(glob.glob(os.path.join(folder, "*.json"))):
    for test in json.load(open(path))["tests"]:
        if test["hex"].lower().startswith("68") or test.get("framing"):
            continue  # wired frames and telegrams with CRCs are other paths
        group = list(test.get("preceding", [])) + [test["hex"]]
        lines.extend(h.replace(" ", "") for h in group)
        if test.get("key"):
            b = bytes.fromhex(test["hex"].replace(" ", ""))
            ident = "".join(f"{x:02x}" for x in reversed(b[4:8]))
            if ident.isdigit():  # the keys file takes 8-digit identifications only
                keys[ident] = test["key"]
with open(os.path.join(work, "keys"), "w") as f:
    for ident, key in sorted(keys.items()):
        f.write(f"{ident} {key}\n")
for name, n in (("big", total), ("small", max(1, total // 10))):
    with open(os.path.join(work, name + ".txt"), "w") as f:
        for i in range(n):
            f.write(lines[i % len(lines)] + "\n")
print(f"{len(lines)} distinct telegrams from the profiles' tests, {len(keys)} keys")
PY
chmod 600 "$work/keys"
export GATEWAYD_PROFILES="$root/profiles"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); binary: $bin"
run() {  # run NAME: "user_s sys_s maxrss_kib" of one decode run
    /usr/bin/time -f "%U %S %M" -o "$work/$1.time" "$bin" decode --json --keys "$work/keys" --profiles "$root/profiles/wmbus" --file "$work/$1.txt" >"$work/$1.out" 2>"$work/$1.err" || true
    cat "$work/$1.time"
}
read -r su ss sm <<<"$(run small)"
read -r bu bs bm <<<"$(run big)"
lines_out="$(wc -l <"$work/big.out")"
failed="$(grep -c '"error"' "$work/big.out" || true)"
awk -v n="$telegrams" -v u="$bu" -v s="$bs" -v m="$bm" -v sm="$sm" -v out="$lines_out" -v f="$failed" 'BEGIN {
    cpu = u + s
    printf "telegrams %d, JSON lines %d (of them errors %d)\n", n, out, f
    printf "CPU %.2f s (user %.2f, sys %.2f): %.0f telegrams per CPU-second, %.1f us each\n", cpu, u, s, n / cpu, cpu / n * 1e6
    printf "ratio to the target of 50,000 per CPU-second: %.2fx\n", n / cpu / 50000
    printf "peak RSS %.1f MiB for %d telegrams, %.1f MiB for %d\n", m / 1024, n, sm / 1024, n / 10 }'
