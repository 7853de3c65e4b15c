#!/usr/bin/env bash
# Installs the Debian 12 packages gatewayd builds and tests against.
# Idempotent; safe to run again. Needs root (or sudo) and Debian's package mirrors.
set -euo pipefail

packages=(
  pkg-config
  libmodbus-dev      # Modbus RTU/TCP client
  libusb-1.0-0-dev   # USB dongle discovery
  libsqlite3-dev     # durable reading buffer
  libmosquitto-dev   # MQTT uplink
  mosquitto          # loopback broker for uplink tests
  socat              # pseudo-terminal pairs for bus simulators
  python3-venv
  openssl            # test CA and broker certificates for the MQTT TLS tests
  chromium           # headless rendering test of the commissioning report (gatewaydTests)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  # The lock timeout matters: another apt run (unattended-upgrades) may hold the lock briefly.
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 "${missing[@]}"
else
  echo "all packages present"
fi

if ! command -v swift >/dev/null; then
  echo "error: the Swift toolchain (6.1 or later) is not on PATH; install it from swift.org first" >&2
  exit 1
fi

# The independent Modbus peer for the tests (Tests/ModbusTests/peer): pymodbus from PyPI in a venv
# inside the checkout (.venv-ci, git-ignored); Debian's python3-pymodbus is the older 3.0 API.
venv="$(cd "$(dirname "$0")/.." && pwd)/.venv-ci"
if ! "$venv/bin/python" -c 'import pymodbus.simulator, serial' >/dev/null 2>&1; then
  echo "installing pymodbus into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'pymodbus[serial]>=3.16,<4'
else
  echo "pymodbus present in $venv"
fi
