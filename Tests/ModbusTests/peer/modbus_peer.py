#!/usr/bin/env python3
"""A Modbus server (pymodbus) that serves a profile's recorded register dump, for gatewayd's tests.

    modbus_peer.py --profile FILE (--tcp-port N | --serial PATH [--baud B --parity E])
                   [--busy KIND:ADDR] [--slow KIND:ADDR --delay S]

Only addresses in the dump exist: any other address answers "illegal data address", as a real
controller does. --busy makes requests touching one address answer "server device busy"; --slow makes
them answer late (to test timeouts). Prints "READY" on stdout once it listens.
"""
import argparse
import asyncio
import json
import sys

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

FUNCTION_KIND = {1: "coil", 5: "coil", 15: "coil", 2: "discrete", 3: "holding", 6: "holding", 16: "holding", 4: "input"}


def parse_spot(text):
    if not text:
        return None
    kind, addr = text.split(":")
    return kind, int(addr)


def build_device(test, busy, slow, delay):
    dump = test["dump"]

    def blocks(kind, bits):
        out = []
        for block in dump.get(kind, []):
            if bits:
                out.append(SimData(block["address"], values=[bool(v) for v in block["values"]], datatype=DataType.BITS))
            else:
                out.append(SimData(block["address"], values=list(block["values"]), datatype=DataType.REGISTERS))
        # pymodbus wants at least one entry per table: an invalid register, or for bit tables (which
        # accept only bits) one coil at the top of the address space, far from any profile's range.
        if out:
            return out
        return [SimData(65535, values=[False], datatype=DataType.BITS)] if bits else [SimData(0, count=1, datatype=DataType.INVALID)]

    def touches(spot, function_code, address, count):
        return spot and FUNCTION_KIND.get(function_code) == spot[0] and address <= spot[1] < address + count

    async def action(function_code, start_address, address, count, registers, set_values):
        if touches(busy, function_code, address, count):
            return ExcCodes.DEVICE_BUSY
        if touches(slow, function_code, address, count):
            await asyncio.sleep(delay)
        return None

    return SimDevice(
        id=int(test.get("unit", 1)),
        simdata=(blocks("coil", True), blocks("discrete", True), blocks("holding", False), blocks("input", False)),
        action=action,
    )


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--profile", required=True)
    parser.add_argument("--tcp-port", type=int)
    parser.add_argument("--serial")
    parser.add_argument("--baud", type=int, default=9600)
    parser.add_argument("--parity", default="E")
    parser.add_argument("--busy")
    parser.add_argument("--slow")
    parser.add_argument("--delay", type=float, default=3.0)
    args = parser.parse_args()

    with open(args.profile, encoding="utf-8") as f:
        test = json.load(f)["test"]
    device = build_device(test, parse_spot(args.busy), parse_spot(args.slow), args.delay)
    if args.tcp_port is not None:
        server = ModbusTcpServer(device, address=("127.0.0.1", args.tcp_port))
    else:
        server = ModbusSerialServer(device, framer=FramerType.RTU, port=args.serial, baudrate=args.baud,
                                    parity=args.parity, stopbits=1, bytesize=8)
    task = asyncio.create_task(server.serve_forever())
    await asyncio.sleep(0.2)
    print("READY", flush=True)
    await task


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
