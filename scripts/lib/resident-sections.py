#!/usr/bin/env python3
"""Resident pages of a process's executable, per ELF section (docs/benchmarks.md, issue 16 item 6).

Usage: resident-sections.py PID [BINARY] [--pages FILE]
Reads /proc/PID/maps and /proc/PID/pagemap (root: the present bit), maps each resident page of the
executable's file mappings to the section whose file range holds it (`readelf -SW`), and prints KiB
resident of each section's size. Also counts how many 64 KiB windows of .text hold any resident page,
which is what the kernel's fault-around maps in. BINARY defaults to /proc/PID/exe. --pages FILE also
writes the file offset of every resident page, one hex number a line (for a closer look with nm).
"""
import os
import re
import struct
import subprocess
import sys

PAGE = os.sysconf("SC_PAGE_SIZE")


def sections(binary):
    out = subprocess.run(["readelf", "-SW", binary], capture_output=True, text=True, check=True).stdout
    result = []
    for line in out.splitlines():
        m = re.match(r"\s*\[\s*\d+\]\s+(\S+)\s+(\S+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)", line)
        if m and m.group(2) != "NOBITS":
            name, _, _, off, size = m.groups()
            if int(size, 16) > 0:
                result.append((name, int(off, 16), int(size, 16)))
    return result


def main():
    args = sys.argv[1:]
    pages_file = None
    if "--pages" in args:
        i = args.index("--pages")
        pages_file = args[i + 1]
        del args[i:i + 2]
    pid = int(args[0])
    exe = os.readlink(f"/proc/{pid}/exe")
    binary = args[1] if len(args) > 1 else exe
    secs = sections(binary)
    resident = {}  # file page offset -> True
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/pagemap", "rb") as pm:
        for line in maps:
            parts = line.split()
            if len(parts) < 6 or parts[5] != exe:
                continue
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            offset = int(parts[2], 16)
            pm.seek(lo // PAGE * 8)
            data = pm.read((hi - lo) // PAGE * 8)
            for i in range(len(data) // 8):
                (entry,) = struct.unpack_from("<Q", data, i * 8)
                if entry >> 63:
                    resident[offset + i * PAGE] = True
    if pages_file:
        with open(pages_file, "w") as f:
            for offset in sorted(resident):
                f.write(f"{offset:x}\n")
    total = len(resident) * PAGE
    print(f"resident pages of {exe}: {total / 1024:.0f} KiB")
    for name, off, size in secs:
        first, last = off // PAGE, (off + size - 1) // PAGE
        n = sum(1 for p in range(first, last + 1) if p * PAGE in resident)
        if n:
            line = f"  {name:28s} {n * PAGE / 1024:9.0f} KiB of {size / 1024:9.0f} KiB"
            if name == ".text":
                windows = {p * PAGE // 65536 for p in range(first, last + 1) if p * PAGE in resident}
                line += f"  ({len(windows)} of {size // 65536 + 1} 64-KiB windows touched)"
            print(line)


if __name__ == "__main__":
    main()
