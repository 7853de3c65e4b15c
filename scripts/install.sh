#!/usr/bin/env bash
# Installs gatewayd to its FHS places:
#   $PREFIX/bin/gatewayd                            the binary (PREFIX defaults to /usr)
#   /lib/systemd/system/gatewayd.service            the hardened unit (ExecStart follows PREFIX)
#   /lib/udev/rules.d/99-gatewayd.rules             stable names under /dev/gatewayd/
#   /etc/gatewayd/gatewayd.toml                     from docs/gatewayd.example.toml; never overwritten
#   $PREFIX/share/gatewayd/profiles/{modbus,wmbus}  device profiles
#   $PREFIX/share/doc/gatewayd                      README and docs
# and, when installing into the running system as root, the `gatewayd` system user (in dialout),
# a udev reload and a systemd daemon-reload. It does not enable or start the service.
#
#   scripts/install.sh                                   # the release build (.build/release/gatewayd)
#   BINARY=path/to/gatewayd scripts/install.sh           # another binary
#   DESTDIR=/tmp/stage scripts/install.sh                # into a staging tree (no user, no reloads)
#   scripts/install.sh --prefix /usr/local --destdir /tmp/stage
#
# Environment: BINARY, DESTDIR, PREFIX, UNITDIR, UDEVRULESDIR, SYSCONFDIR (options win over these).
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
PREFIX="${PREFIX:-/usr}"
DESTDIR="${DESTDIR:-}"
BINARY="${BINARY:-}"
UNITDIR="${UNITDIR:-/lib/systemd/system}"
UDEVRULESDIR="${UDEVRULESDIR:-/lib/udev/rules.d}"
SYSCONFDIR="${SYSCONFDIR:-/etc}"

usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; }

while (($#)); do
    case "$1" in
        --prefix) PREFIX="$2"; shift 2 ;;
        --prefix=*) PREFIX="${1#*=}"; shift ;;
        --destdir) DESTDIR="$2"; shift 2 ;;
        --destdir=*) DESTDIR="${1#*=}"; shift ;;
        --binary) BINARY="$2"; shift 2 ;;
        --binary=*) BINARY="${1#*=}"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install.sh: unknown argument '$1' (see --help)" >&2; exit 64 ;;
    esac
done

case "$PREFIX" in
    /*) ;;
    *) echo "install.sh: --prefix must be an absolute path, got '$PREFIX'" >&2; exit 64 ;;
esac
PREFIX="${PREFIX%/}"
DESTDIR="${DESTDIR%/}"

if [ -z "$BINARY" ]; then
    BINARY="$repo/.build/release/gatewayd"
fi
if [ ! -x "$BINARY" ]; then
    echo "install.sh: no gatewayd binary at $BINARY" >&2
    echo "  build it: swift build -c release --product gatewayd --static-swift-stdlib" >&2
    echo "  or name one: BINARY=path/to/gatewayd scripts/install.sh" >&2
    exit 1
fi

live=0
if [ -z "$DESTDIR" ]; then
    live=1
    if [ "$(id -u)" -ne 0 ]; then
        echo "install.sh: installing into the system needs root (sudo scripts/install.sh), or set DESTDIR to stage" >&2
        exit 1
    fi
fi

bindir="$PREFIX/bin"
datadir="$PREFIX/share/gatewayd"
docdir="$PREFIX/share/doc/gatewayd"
confdir="$SYSCONFDIR/gatewayd"

say() { printf '  %s\n' "$*"; }

echo "installing gatewayd into ${DESTDIR:-/} (prefix $PREFIX)"

install -d -m 0755 "$DESTDIR$bindir" "$DESTDIR$UNITDIR" "$DESTDIR$UDEVRULESDIR" \
    "$DESTDIR$datadir/profiles" "$DESTDIR$docdir"
install -m 0755 "$BINARY" "$DESTDIR$bindir/gatewayd"
say "$bindir/gatewayd"

# The unit names /usr/bin/gatewayd; follow the prefix.
sed "s|^ExecStart=/usr/bin/gatewayd|ExecStart=$bindir/gatewayd|" "$repo/systemd/gatewayd.service" \
    > "$DESTDIR$UNITDIR/gatewayd.service.tmp"
chmod 0644 "$DESTDIR$UNITDIR/gatewayd.service.tmp"
mv "$DESTDIR$UNITDIR/gatewayd.service.tmp" "$DESTDIR$UNITDIR/gatewayd.service"
say "$UNITDIR/gatewayd.service"

install -m 0644 "$repo/udev/99-gatewayd.rules" "$DESTDIR$UDEVRULESDIR/99-gatewayd.rules"
say "$UDEVRULESDIR/99-gatewayd.rules"

for kind in modbus wmbus; do
    install -d -m 0755 "$DESTDIR$datadir/profiles/$kind"
    if [ -d "$repo/profiles/$kind" ]; then
        find "$repo/profiles/$kind" -maxdepth 1 -type f -name '*.json' -exec install -m 0644 {} "$DESTDIR$datadir/profiles/$kind/" \;
    fi
    say "$datadir/profiles/$kind/ ($(find "$DESTDIR$datadir/profiles/$kind" -type f | wc -l | tr -d ' ') files)"
done

install -m 0644 "$repo/README.md" "$DESTDIR$docdir/README.md"
find "$repo/docs" -maxdepth 1 -type f \( -name '*.md' -o -name '*.toml' \) -exec install -m 0644 {} "$DESTDIR$docdir/" \;
say "$docdir/ ($(find "$DESTDIR$docdir" -type f | wc -l | tr -d ' ') files)"

# Configuration: 0750 directory, 0640 file, group gatewayd (set below when the group exists).
install -d -m 0750 "$DESTDIR$confdir"
example="$repo/docs/gatewayd.example.toml"
if [ -e "$DESTDIR$confdir/gatewayd.toml" ]; then
    say "$confdir/gatewayd.toml exists: kept (the example is in $docdir/)"
elif [ -f "$example" ]; then
    install -m 0640 "$example" "$DESTDIR$confdir/gatewayd.toml"
    say "$confdir/gatewayd.toml (from docs/gatewayd.example.toml: edit it before starting)"
else
    say "no docs/gatewayd.example.toml in this checkout: $confdir/gatewayd.toml not created"
fi

if [ "$live" -eq 0 ]; then
    echo "staged; not done in a staging tree: creating the gatewayd user, reloading udev and systemd"
    exit 0
fi

# The service user: a system account with no login and no home of its own (state lives in
# /var/lib/gatewayd, made by systemd's StateDirectory=), in dialout for the serial adapters.
if ! getent group gatewayd >/dev/null; then
    groupadd --system gatewayd
    say "group gatewayd"
fi
if ! getent passwd gatewayd >/dev/null; then
    useradd --system --gid gatewayd --home-dir /var/lib/gatewayd --no-create-home \
        --shell /usr/sbin/nologin --comment "gatewayd meter-reading agent" gatewayd
    say "user gatewayd"
fi
if getent group dialout >/dev/null; then
    usermod -a -G dialout gatewayd
    say "gatewayd is in dialout"
else
    echo "  warning: no dialout group on this system; the udev rules give adapters to dialout, so create it (groupadd --system dialout) and run this again" >&2
fi
chgrp gatewayd "$confdir"
[ -f "$confdir/gatewayd.toml" ] && chgrp gatewayd "$confdir/gatewayd.toml"

if command -v udevadm >/dev/null && [ -d /run/udev ]; then
    udevadm control --reload
    udevadm trigger --action=add --subsystem-match=tty --subsystem-match=usb
    say "udev rules reloaded and applied"
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    say "systemd reloaded"
fi
echo "done. Next: edit $confdir/gatewayd.toml, check it with 'gatewayd config check', then 'systemctl enable --now gatewayd'"
