#!/usr/bin/env bash
# The README's first command: install what is missing, build, and decode the demo building's
# wired M-Bus readout (real meter telegrams kept in seeds/).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift build -c release --product gatewayd
bin="$(swift build -c release --show-bin-path)/gatewayd"
echo
echo "== decoding seeds/demo-building/wired-mbus-readout.hex =="
"$bin" decode --file seeds/demo-building/wired-mbus-readout.hex
