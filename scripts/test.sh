#!/usr/bin/env bash
# The whole test suite, as the README and CI run it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# Serial run: XCTest's and Swift Testing's closing lines both stay visible for CI (BUILD-NOTES).
swift test
