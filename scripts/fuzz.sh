#!/usr/bin/env bash
# Fuzzes a decoder with libFuzzer + AddressSanitizer: the wired M-Bus decoder (Fuzz/mbus-fuzz, the
# default), the wireless M-Bus stack (Fuzz/wmbus-fuzz) or the dongle stream codecs (Fuzz/dongle-fuzz:
# iM871A HCI, Amber CMD, rtl_wmbus lines) or the whole readout path (Fuzz/pipeline-fuzz: decode, registry,
# security check, meter profile, normaliser, dedup and alarms in PipelineCore, on wired frames, radio
# telegrams and Modbus register words).
#
#   scripts/fuzz.sh                 # mbus-fuzz, 600 s
#   scripts/fuzz.sh wmbus-fuzz      # the wireless stack
#   scripts/fuzz.sh dongle-fuzz     # the dongle protocols
#   scripts/fuzz.sh pipeline-fuzz   # decode -> profile -> normaliser -> PipelineCore
#   FUZZ_SECONDS=60 scripts/fuzz.sh # shorter run
#   scripts/fuzz.sh -runs=1000      # extra arguments go to libFuzzer
#
# The corpus grows in fuzz-corpus/ (mbus-fuzz) or fuzz-corpus-wmbus/ (git-ignored) and is reused by later
# runs. Crashing inputs land in the target's fuzz-regressions/ fixture folder (Tests/DriversTests or
# Tests/WirelessTests), where a test replays them on every `swift test`.
set -euo pipefail

cd "$(dirname "$0")/.."

TARGET=mbus-fuzz
case "${1:-}" in
    mbus-fuzz|wmbus-fuzz|dongle-fuzz|pipeline-fuzz) TARGET="$1"; shift ;;
esac

SECONDS_TO_RUN="${FUZZ_SECONDS:-600}"
MAX_LEN="${FUZZ_MAX_LEN:-1024}"
SCRATCH=.build-fuzz
if [ "$TARGET" = mbus-fuzz ]; then
    CORPUS=fuzz-corpus
    ARTIFACTS=Tests/DriversTests/Fixtures/fuzz-regressions
elif [ "$TARGET" = wmbus-fuzz ]; then
    CORPUS=fuzz-corpus-wmbus
    ARTIFACTS=Tests/WirelessTests/Fixtures/fuzz-regressions
elif [ "$TARGET" = pipeline-fuzz ]; then
    # Its kept inputs are replayed by GatewayTests (PipelineFuzzRegressionTests) on every swift test.
    CORPUS=fuzz-corpus-pipeline
    ARTIFACTS=Tests/GatewayTests/Fixtures/pipeline-fuzz
else
    # The dongle codecs take the same radio telegrams as seeds: the target frames them itself.
    CORPUS=fuzz-corpus-dongle
    ARTIFACTS=Tests/DongleTests/Fixtures/fuzz-regressions
fi
FRAMES=Tests/DriversTests/Fixtures/mbus/frames
TELEGRAMS=Tests/WirelessTests/Fixtures/wmbus/telegrams.jsonl
LOG="$SCRATCH/fuzz-$TARGET-$(date +%Y%m%d-%H%M%S).log"

# -parse-as-library: the target has no main.swift; libFuzzer's runtime supplies main().
echo "==> building $TARGET (release, -sanitize=fuzzer,address)"
GATEWAYD_FUZZ=1 swift build -c release --product "$TARGET" --scratch-path "$SCRATCH" \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library
BIN="$(GATEWAYD_FUZZ=1 swift build -c release --scratch-path "$SCRATCH" --show-bin-path)/$TARGET"

mkdir -p "$CORPUS" "$ARTIFACTS"
seeded=0
if [ "$TARGET" = pipeline-fuzz ]; then
    # The first byte picks the path (see Fuzz/PipelineFuzzing): 0 wired frame, 1 radio telegram as heard,
    # 2 radio telegram with the L-field fitted, 3 + 4k Modbus words for the k-th profile.
    echo "==> seeding $CORPUS/ from $FRAMES/*.hex, $TELEGRAMS and the Modbus profiles' dumps"
    for f in "$FRAMES"/*.hex; do
        { printf '\x00'; xxd -r -p "$f"; } > "$CORPUS/wired-$(basename "$f" .hex).bin"
        seeded=$((seeded + 1))
    done
    for hex in $(grep -o '"telegram_hex": "[0-9A-Fa-f]*"' "$TELEGRAMS" | sed 's/.*: "//; s/"$//'); do
        { printf '\x01'; printf '%s' "$hex" | xxd -r -p; } > "$CORPUS/radio-$seeded.bin"
        seeded=$((seeded + 1))
    done
    # Every wireless profile's test telegrams (radio or wired), so each profile's layouts and codecs are reached.
    python3 - "$CORPUS" <<'PY'
import glob, json, os, sys
n = 0
for path in sorted(glob.glob("profiles/wmbus/*.json")):
    for i, t in enumerate(json.load(open(path)).get("tests", [])):
        b = bytes.fromhex("".join(t["hex"].split()))
        wired = len(b) > 4 and b[0] == 0x68 and b[3] == 0x68
        name = os.path.join(sys.argv[1], "profile-%s-%d.bin" % (os.path.basename(path)[:-5], i))
        open(name, "wb").write(bytes([0 if wired else 1]) + b)
        n += 1
print("    %d profile test telegrams" % n)
PY
    k=0
    for p in profiles/modbus/*.json; do
        python3 - "$p" "$k" "$CORPUS/modbus-$(basename "$p" .json).bin" <<'PY'
import json, sys
profile = json.load(open(sys.argv[1]))
words = [w for block in (profile.get("test") or {}).get("dump", {}).get("holding", []) for w in block["values"]]
words += [w for block in (profile.get("test") or {}).get("dump", {}).get("input", []) for w in block["values"]]
out = bytes([3 + 4 * int(sys.argv[2])]) + b"".join(int(w & 0xFFFF).to_bytes(2, "big") for w in words)
open(sys.argv[3], "wb").write(out)
PY
        k=$((k + 1)); seeded=$((seeded + 1))
    done
elif [ "$TARGET" = mbus-fuzz ]; then
    echo "==> seeding $CORPUS/ from $FRAMES/*.hex"
    for f in "$FRAMES"/*.hex; do
        xxd -r -p "$f" > "$CORPUS/frame-$(basename "$f" .hex).bin"
        seeded=$((seeded + 1))
    done
else
    echo "==> seeding $CORPUS/ from $TELEGRAMS"
    for hex in $(grep -o '"telegram_hex": "[0-9A-Fa-f]*"' "$TELEGRAMS" | sed 's/.*: "//; s/"$//'); do
        printf '%s' "$hex" | xxd -r -p > "$CORPUS/telegram-$seeded.bin"
        seeded=$((seeded + 1))
    done
fi
# Earlier findings and kept seeds go back into the corpus, so a fixed bug stays covered.
for f in "$ARTIFACTS"/*; do
    case "$(basename "$f")" in README.md) continue ;; esac
    [ -f "$f" ] && cp "$f" "$CORPUS/regression-$(basename "$f")"
done
echo "    $seeded frames, $(find "$CORPUS" -type f | wc -l | tr -d ' ') corpus files in total"

mkdir -p "$SCRATCH"
echo "==> fuzzing for ${SECONDS_TO_RUN}s (log: $LOG)"
status=0
"$BIN" "$CORPUS" \
    -max_total_time="$SECONDS_TO_RUN" \
    -max_len="$MAX_LEN" \
    -print_final_stats=1 \
    -artifact_prefix="$ARTIFACTS/" \
    "$@" 2>&1 | tee "$LOG" || status=$?

echo "==> final stats"
executions="$(sed -n 's/^stat::number_of_executed_units: *//p' "$LOG" | tail -1)"
rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$LOG" | tail -1)"
new_units="$(sed -n 's/^stat::new_units_added: *//p' "$LOG" | tail -1)"
echo "total executions: ${executions:-unknown}"
echo "executions/s:     ${rate:-unknown}"
echo "new corpus units: ${new_units:-unknown}"
echo "corpus files:     $(find "$CORPUS" -type f | wc -l | tr -d ' ')"
# .gitignore ignores crash-*/leak-*/timeout-*/oom-*: rename a reproducer before committing it.
# (grep finds nothing on a clean run: that must not fail the script under pipefail.)
{ grep -o 'Test unit written to .*' "$LOG" || true; } | sed 's/Test unit written to //' | while read -r artifact; do
    echo "CRASH: $artifact"
    echo "  hex: $(xxd -p "$artifact" | tr -d '\n')"
done
exit "$status"
