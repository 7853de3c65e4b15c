#!/usr/bin/env bash
# Release benchmark of the wired M-Bus decoder: decode + JSON, then decode only (docs/benchmarks.md).
# Extra arguments go to `gateway-bench decode`, e.g. scripts/bench.sh --seconds 10 --category test
# The build uses its own scratch folder (.build-bench, git-ignored) so it does not disturb debug builds.
# The binary is run directly, not through `swift run`: swift run execs it, and ru_maxrss would then
# report SwiftPM's own ~110 MiB peak instead of the benchmark's.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
swift build -c release --scratch-path .build-bench --product gateway-bench 2>&1 \
    | grep -v "^warning: 'main': Source files for target" >&2
exec "$(swift build -c release --scratch-path .build-bench --show-bin-path)/gateway-bench" decode "$@"
