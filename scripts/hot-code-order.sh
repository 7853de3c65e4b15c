#!/usr/bin/env bash
# Lists the functions the idle daemon runs in its steady state, as a linker symbol ordering file
# (scripts/hot-code.order), so the production link puts them together at the start of .text (issue 16
# item 6; docs/benchmarks.md, "Steady-state code packed together").
#
# Why: the kernel maps code in 64 KiB blocks around every page that faults (fault-around). The steady
# state's code was spread over most of the 30 MB .text, so a few MiB of functions kept ~25 MiB of the
# binary resident. Packed together, the same functions fill a few blocks.
#
# How: runs scripts/daemon-memory.sh (the demo building's simulators, the daemon with one dongle, one
# wired line and one Modbus line, uploads to a loopback portal sink) with the daemon under valgrind's
# callgrind; dumps what ran until --from seconds (start-up) and what ran from then until --to seconds
# (the steady state), and writes every function of the executable that ran in the steady state, most
# instructions first, then the functions that ran only at start-up. The steady state's code then fills
# the first few 64 KiB blocks of .text; start-up code (which StartupPages hands back to the kernel after
# a minute) follows it, so a path that ran at start-up and later again still lies close by.
#
# Usage: scripts/hot-code-order.sh --bin PATH [--from S] [--to S] [--out FILE]
#   --bin PATH   a release gatewayd built with -function-sections (scripts/build-deb.sh's flags); its
#                symbol table must be present (not stripped). gatewayd-sim must be beside it.
#   --from S     seconds after the daemon's start when recording begins (default 240; valgrind is slow)
#   --to S       seconds after the daemon's start when recording ends (default 720)
#   --out FILE   default scripts/hot-code.order
# Needs valgrind. The daemon runs as a copy without debug information: Debian 12's valgrind (3.19)
# cannot read the DWARF 5 that swiftc writes and gives up. Everything stays on 127.0.0.1.
# Afterwards: scripts/hot-code-faults.sh with the binary linked by the new list.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"

bin=""
from=240
to=720
out="$root/scripts/hot-code.order"
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) bin="$(readlink -f "$2")"; shift 2 ;;
        --from) from="$2"; shift 2 ;;
        --to) to="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 64 ;;
    esac
done
[ -x "$bin" ] || { echo "--bin: no gatewayd binary at '$bin'" >&2; exit 64; }
[ -x "$(dirname "$bin")/gatewayd-sim" ] || { echo "no gatewayd-sim beside $bin" >&2; exit 64; }
command -v valgrind >/dev/null && command -v callgrind_control >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }
[ "$from" -lt "$to" ] || { echo "--from must be before --to" >&2; exit 64; }

work="$(mktemp -d "${TMPDIR:-/tmp}/hot-code.XXXXXX")"
trap 'rm -rf "$work"' EXIT
# A stand-in gatewayd that runs the real one under callgrind; daemon-memory.sh starts it as the daemon.
mkdir -p "$work/bin"
ln -s "$(dirname "$bin")/gatewayd-sim" "$work/bin/gatewayd-sim"
objcopy --strip-debug "$bin" "$work/gatewayd-nodebug"
bin="$work/gatewayd-nodebug"
cat >"$work/bin/gatewayd" <<EOF
#!/bin/sh
exec valgrind --tool=callgrind --demangle=no --dump-instr=no --dump-line=no \
    --callgrind-out-file="$work/callgrind.out.%p" "$bin" "\$@"
EOF
chmod +x "$work/bin/gatewayd"

scripts/daemon-memory.sh --bin "$work/bin/gatewayd" --seconds "$((to + 30))" --interval 600 >"$work/memory.log" 2>&1 &
bench=$!
sleep "$from"
callgrind_control --dump=startup >/dev/null
echo "recording the steady state from ${from} s to ${to} s"
sleep "$((to - from))"
callgrind_control --dump=steady >/dev/null
wait "$bench" || { echo "the daemon run failed:" >&2; tail -20 "$work/memory.log" >&2; exit 1; }

startup="$(ls "$work"/callgrind.out.*.1)"
steady="$(ls "$work"/callgrind.out.*.2)"
# Callgrind names a function once, "fn=(id) name", and refers to it later by "(id)". Cost lines follow
# "fn=": the first number after the position is the instruction count. Keep the executable's functions.
python3 - "$steady" "$startup" "$bin" "$out" <<'PY'
import re, sys
steady, startup, binary, out = sys.argv[1:]


def executed(dump):
    """(instructions, name) of the executable's functions with own cost in a callgrind dump."""
    names, objects, cost, objOf = {}, {}, {}, {}
    ob = fn = None
    sub = False
    for line in open(dump, errors="replace"):
        m = re.match(r'^(c?)(ob|fn|fl|fi|fe)=\((\d+)\)(?: (.*))?$', line.rstrip("\n"))
        if m:
            called, kind, ident, name = m.groups()
            table = objects if kind == "ob" else names if kind == "fn" else None
            if table is not None and name is not None:
                table[ident] = name
            if kind == "ob" and not called:
                ob = ident
            if kind == "fn" and not called:
                fn = ident
                objOf.setdefault(fn, ob)
            sub = False
            continue
        if line.startswith("calls="):
            sub = True  # the next cost line is inclusive cost of a call, not this function's own
            continue
        if line[:1].isdigit() or line[:1] in "+-*":
            if sub:
                sub = False
                continue
            parts = line.split()
            if fn is not None and len(parts) >= 2:
                cost[fn] = cost.get(fn, 0) + int(parts[1])
    exe = [i for i, n in objects.items() if n == binary]
    ran = [(c, re.sub(r"'\d+$", "", names[f])) for f, c in cost.items() if c > 0 and objOf.get(f) in exe and f in names]
    # Callgrind appends "'2" to a recursive function's name; the symbol has none.
    ran.sort(key=lambda x: -x[0])
    return ran


hot = executed(steady)
seen = {n for _, n in hot}
once = [(c, n) for c, n in executed(startup) if n not in seen]
written = set()
with open(out, "w") as o:
    for _, n in hot + once:
        if n not in written:
            written.add(n)
            o.write(n + "\n")
print(f"{len(hot)} functions of {binary} ran in the steady state ({sum(c for c, _ in hot):,} instructions), "
      f"{len(once)} more only at start-up; written to {out}")
PY
