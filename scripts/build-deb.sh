#!/usr/bin/env bash
# Builds a Debian package of gatewayd with dpkg-deb, from the same layout scripts/install.sh makes.
#
#   scripts/build-deb.sh                          # release build (--static-swift-stdlib), then package
#   BINARY=path/to/gatewayd scripts/build-deb.sh  # package an existing binary
#   OUTDIR=/tmp scripts/build-deb.sh              # where the .deb goes (default: .build/deb)
#
# The package runs on a Debian 12 machine without a Swift toolchain, so the binary must carry the
# Swift runtime (--static-swift-stdlib). A binary linked to libswiftCore.so is refused unless
# ALLOW_DYNAMIC_SWIFT=1 (only for looking at the package's contents).
#
# Check the result: dpkg-deb -I <deb> (control), dpkg-deb -c <deb> (files).
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
OUTDIR="${OUTDIR:-$repo/.build/deb}"
BINARY="${BINARY:-}"

if [ -z "$BINARY" ]; then
    echo "==> release build (static Swift runtime, linked by lld with packed relocations)"
    # The production link (docs/benchmarks.md, "What the link buys"): lld packs the ~140,000 relative
    # relocations of the position-independent binary into a few KiB (DT_RELR, glibc 2.36 as in Debian 12)
    # instead of a 3.3 MB table read at every start, and --no-export-dynamic leaves out a dynamic symbol
    # table of every Swift symbol (1.2 MB, plus its strings and hash) that nothing looks up: nothing is
    # loaded with dlopen, and the package keeps .symtab, which crash backtraces read. Together about 7 MiB
    # less resident memory. Own scratch folder: a toolset change rebuilds everything it touches.
    lld="$(dirname "$(readlink -f "$(command -v swift)")")/ld.lld"
    [ -x "$lld" ] || { echo "build-deb.sh: no ld.lld beside the Swift toolchain ($lld)" >&2; exit 1; }
    toolset="$(mktemp "${TMPDIR:-/tmp}/gatewayd-toolset.XXXXXX.json")"
    trap 'rm -f "$toolset"' EXIT
    printf '{ "schemaVersion": "1.0", "linker": { "path": "%s" } }\n' "$lld" >"$toolset"
    # Steady-state code packed together (docs/benchmarks.md, "Steady-state code packed together"): every
    # function in its own section, and lld puts the functions that scripts/hot-code.order lists (those the
    # idle daemon runs, then those it ran at start-up; scripts/hot-code-order.sh writes it) first in .text,
    # so the code the daemon keeps running fills a few 64 KiB blocks instead of touching most of the 30 MB.
    # A name the file lists that the code no longer has is skipped: a stale list costs memory, not function.
    # scripts/hot-code.ld gathers LLVM's unnamed private functions, which no list can name, before .text.
    flags=(-c release --product gatewayd --static-swift-stdlib --scratch-path "$repo/.build/production"
           --toolset "$toolset" -Xlinker -z -Xlinker pack-relative-relocs -Xlinker --no-export-dynamic
           -Xswiftc -Xfrontend -Xswiftc -function-sections -Xcc -ffunction-sections
           -Xlinker "--symbol-ordering-file=$repo/scripts/hot-code.order" -Xlinker --no-warn-symbol-ordering
           -Xlinker -T -Xlinker "$repo/scripts/hot-code.ld")
    # SwiftPM kept objects compiled with other flags in this folder (seen: a package linked from objects
    # without function sections, so the order below had little effect): when the flags differ from the
    # last build's, the folder's build products go. It also does not see the two files below as inputs:
    # without the old binary it links again.
    bindir="$(swift build "${flags[@]}" --show-bin-path)"
    stamp="$repo/.build/production/gatewayd-build-flags"
    if [ "$(cat "$stamp" 2>/dev/null)" != "${flags[*]}" ]; then rm -rf "$bindir"; fi
    rm -f "$bindir/gatewayd"
    swift build "${flags[@]}"
    printf '%s' "${flags[*]}" >"$stamp"
    BINARY="$(swift build "${flags[@]}" --show-bin-path)/gatewayd"
fi
if [ ! -x "$BINARY" ]; then
    echo "build-deb.sh: no gatewayd binary at $BINARY (build it, or set BINARY=path)" >&2
    exit 1
fi
if ldd "$BINARY" 2>/dev/null | grep -qE 'libswiftCore|libFoundation'; then
    if [ "${ALLOW_DYNAMIC_SWIFT:-0}" != 1 ]; then
        echo "build-deb.sh: $BINARY links the Swift runtime dynamically; the package would not run" >&2
        echo "  without a toolchain. Rebuild: swift build -c release --product gatewayd --static-swift-stdlib" >&2
        echo "  (or ALLOW_DYNAMIC_SWIFT=1 to build a package for inspection only)" >&2
        exit 1
    fi
    echo "warning: packaging a binary with a dynamic Swift runtime (ALLOW_DYNAMIC_SWIFT=1): for inspection only" >&2
fi

version_file=Sources/Agent/Daemon/ProcessOutput.swift  # GatewaydVersion, since the daemon became the Agent library
version="$(sed -n 's/.*static let string = "\(.*\)".*/\1/p' "$version_file" | head -1)"
if [ -z "$version" ]; then
    echo "build-deb.sh: cannot find GatewaydVersion.string in $version_file" >&2
    exit 1
fi
arch="$(dpkg --print-architecture)"
package="gatewayd_${version}_${arch}"

stage="$(mktemp -d)"
trap 'rm -rf "$stage" ${toolset:+"$toolset"}' EXIT
chmod 0755 "$stage"

echo "==> staging $package"
BINARY="$BINARY" DESTDIR="$stage" PREFIX=/usr "$repo/scripts/install.sh" >/dev/null

install -d -m 0755 "$stage/DEBIAN"
installed_kb="$(du -sk --exclude=DEBIAN "$stage" | cut -f1)"

cat > "$stage/DEBIAN/control" <<EOF
Package: gatewayd
Version: $version
Architecture: $arch
Maintainer: ${MAINTAINER:-gatewayd maintainers <gatewayd@localhost>}
Installed-Size: $installed_kb
Depends: libc6, libmodbus5, libusb-1.0-0, libsqlite3-0, libmosquitto1, adduser
Recommends: udev, systemd
Section: net
Priority: optional
Description: edge agent for wired and wireless M-Bus and Modbus meters
 gatewayd reads heat-cost allocators, water and heat meters and heat-pump
 controllers over wired M-Bus (EN 13757-2/3), wireless M-Bus (EN 13757-4)
 and Modbus, checks every device against the building's registry, buffers
 readings durably and uploads them to the portal.
 .
 The package installs a hardened systemd unit (not enabled) and udev rules
 that give USB adapters stable names under /dev/gatewayd/.
EOF

# dpkg keeps an admin's edits to these across upgrades and asks before replacing them.
: > "$stage/DEBIAN/conffiles"
if [ -f "$stage/etc/gatewayd/gatewayd.toml" ]; then
    echo "/etc/gatewayd/gatewayd.toml" >> "$stage/DEBIAN/conffiles"
fi
[ -s "$stage/DEBIAN/conffiles" ] || rm "$stage/DEBIAN/conffiles"

cat > "$stage/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = "configure" ]; then
    if ! getent group gatewayd >/dev/null; then
        addgroup --system --quiet gatewayd
    fi
    if ! getent passwd gatewayd >/dev/null; then
        adduser --system --quiet --ingroup gatewayd --home /var/lib/gatewayd --no-create-home \
            --shell /usr/sbin/nologin --gecos "gatewayd meter-reading agent" gatewayd
    fi
    if getent group dialout >/dev/null; then
        adduser --quiet gatewayd dialout
    fi
    chgrp gatewayd /etc/gatewayd
    chmod 0750 /etc/gatewayd
    if [ -f /etc/gatewayd/gatewayd.toml ]; then
        chgrp gatewayd /etc/gatewayd/gatewayd.toml
        chmod 0640 /etc/gatewayd/gatewayd.toml
    fi
    if [ -d /run/udev ] && command -v udevadm >/dev/null; then
        udevadm control --reload || true
        udevadm trigger --action=add --subsystem-match=tty --subsystem-match=usb || true
    fi
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload || true
        # An upgrade restarts a running daemon on the new binary; a first install starts nothing.
        if [ -n "$2" ]; then
            systemctl try-restart gatewayd.service || true
        else
            echo "gatewayd: edit /etc/gatewayd/gatewayd.toml, then: systemctl enable --now gatewayd"
        fi
    fi
fi
exit 0
EOF

cat > "$stage/DEBIAN/prerm" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = "remove" ] && [ -d /run/systemd/system ]; then
    systemctl stop gatewayd.service || true
    systemctl disable gatewayd.service || true
fi
exit 0
EOF

cat > "$stage/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
fi
if [ -d /run/udev ] && command -v udevadm >/dev/null; then
    udevadm control --reload || true
fi
if [ "$1" = "purge" ]; then
    # The buffer may hold readings not yet uploaded: kept unless removed by hand.
    if [ -d /var/lib/gatewayd ]; then
        echo "gatewayd: /var/lib/gatewayd (reading buffer, registry) kept; remove it by hand if it is not needed"
    fi
    # The user stays, as Debian does for system users: files it owned may remain.
fi
exit 0
EOF
chmod 0755 "$stage/DEBIAN/postinst" "$stage/DEBIAN/prerm" "$stage/DEBIAN/postrm"

mkdir -p "$OUTDIR"
deb="$OUTDIR/$package.deb"
dpkg-deb --root-owner-group --build "$stage" "$deb" >/dev/null
echo "==> $deb"
dpkg-deb -I "$deb" | sed -n '/Package:/,/Description:/p'
echo "    $(dpkg-deb -c "$deb" | wc -l | tr -d ' ') entries; list them with: dpkg-deb -c $deb"
