#!/usr/bin/env bash
# Wired M-Bus decode beside libmbus, measured in one run on the same frames (issue 16 item 7;
# docs/benchmarks.md). Builds libmbus from its source in a scratch folder outside the repository (nothing
# of it is committed), builds a small C harness against it, and runs both for the same CPU time:
#   libmbus parse+XML  = mbus_parse + mbus_frame_data_parse + mbus_frame_data_xml (+ the frees)
#   libmbus parse      = mbus_parse + mbus_frame_data_parse
#   gatewayd decode+JSON and decode only = gateway-bench decode --phases json,decode
# on the 76 frames of the corpus that index.jsonl marks `test` (all decode in both).
#
# Usage: scripts/libmbus-compare.sh [--seconds N] [--scratch DIR]
#   LIBMBUS_SRC=path  a local libmbus checkout or git directory to clone from
#                     (default: https://github.com/rscada/libmbus)
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
seconds=3
scratch="${TMPDIR:-/tmp}/gatewayd-libmbus-compare"
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds="$2"; shift 2 ;;
        --scratch) scratch="$2"; shift 2 ;;
        *) echo "unknown argument: $1" >&2; exit 64 ;;
    esac
done
case "$scratch" in "$root"/*) echo "the scratch folder must be outside the repository" >&2; exit 64 ;; esac
src="${LIBMBUS_SRC:-https://github.com/rscada/libmbus}"
mkdir -p "$scratch"
if [ ! -d "$scratch/libmbus/mbus" ]; then
    rm -rf "$scratch/libmbus"
    git clone -q "$src" "$scratch/libmbus"
fi
rev="$(git -C "$scratch/libmbus" rev-parse --short HEAD)"

# The harness: frames are hex-decoded once, untimed; each phase runs for the given CPU time.
cat > "$scratch/harness.c" <<'C'
#include <mbus/mbus.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static double cpu(void) {
    struct rusage u; getrusage(RUSAGE_SELF, &u);
    return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

int main(int argc, char **argv) {
    double seconds = atof(argv[1]);
    int n = argc - 2;
    unsigned char (*frames)[4096] = calloc(n, 4096);
    size_t *lengths = calloc(n, sizeof(size_t));
    for (int i = 0; i < n; i++) {
        FILE *f = fopen(argv[i + 2], "r");
        unsigned char raw[8192] = {0};
        if (!f) { perror(argv[i + 2]); return 1; }
        fread(raw, 1, sizeof(raw) - 1, f);
        fclose(f);
        lengths[i] = mbus_hex2bin(frames[i], 4096, raw, sizeof(raw));
    }
    for (int xml = 1; xml >= 0; xml--) {
        long done = 0, bytes = 0;
        double start = cpu();
        while (cpu() - start < seconds) {
            for (int i = 0; i < n; i++) {
                mbus_frame reply; mbus_frame_data data;
                memset(&reply, 0, sizeof(reply)); memset(&data, 0, sizeof(data));
                if (mbus_parse(&reply, frames[i], lengths[i]) == 0 && mbus_frame_data_parse(&reply, &data) == 0) {
                    if (xml) {
                        char *x = mbus_frame_data_xml(&data);
                        if (x) { bytes += strlen(x); free(x); }
                    }
                    if (data.data_var.record) mbus_data_record_free(data.data_var.record);
                }
                done++;
            }
        }
        double used = cpu() - start;
        printf("%s %.0f %ld\n", xml ? "parse+xml" : "parse", done / used, bytes);
    }
    return 0;
}
C
cc -O2 -I"$scratch/libmbus" -o "$scratch/harness" "$scratch/harness.c" \
    "$scratch/libmbus/mbus/mbus-protocol.c" "$scratch/libmbus/mbus/mbus-protocol-aux.c" \
    "$scratch/libmbus/mbus/mbus-serial.c" "$scratch/libmbus/mbus/mbus-tcp.c" -lm

frames=()
while IFS= read -r name; do frames+=("$root/Tests/DriversTests/Fixtures/mbus/frames/$name.hex"); done < <(
    python3 -c 'import json,sys
for l in open(sys.argv[1]):
    d = json.loads(l)
    if d["category"] == "test": print(d["name"])' "$root/Tests/DriversTests/Fixtures/mbus/index.jsonl")

swift build -c release --product gateway-bench >/dev/null
bench="$(swift build -c release --show-bin-path)/gateway-bench"

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); libmbus $rev (cc -O2); ${#frames[@]} frames, $seconds CPU-s per phase"
lib="$("$scratch/harness" "$seconds" "${frames[@]}")"
ours="$("$bench" decode --category test --seconds "$seconds" --phases json,decode)"
echo "$lib" | sed 's/^/libmbus /'
python3 - "$lib" "$ours" <<'PY'
import re, sys
lib = {l.split()[0]: float(l.split()[1]) for l in sys.argv[1].splitlines()}
rates, phase = {}, None
for line in sys.argv[2].splitlines():
    if line.startswith("["): phase = line
    m = re.search(r"frames per CPU-second\s+([\d,]+)", line)
    if m and phase: rates["json" if "JSON" in phase else "decode"] = float(m.group(1).replace(",", ""))
print(f"libmbus  parse+XML  {lib['parse+xml']:>12,.0f} frames/CPU-s   parse        {lib['parse']:>12,.0f}")
print(f"gatewayd decode+JSON {rates['json']:>11,.0f} frames/CPU-s   decode only  {rates['decode']:>12,.0f}")
print(f"decode+JSON / parse+XML = {rates['json'] / lib['parse+xml']:.2f}x (target 2x); decode / parse = {rates['decode'] / lib['parse']:.2f}x (target 1x)")
PY
