import Agent
import CLISupport
import CModbus
import Drivers
import Foundation
import Synchronization

/// The demo building's heat pump: a Modbus TCP server on 127.0.0.1, in process, built on libmodbus's
/// own server side (modbus_receive / modbus_reply), serving the register dump that a profile carries
/// as its test. The daemon reads it through the same ModbusLine as a real controller.
///
/// Only one client is served at a time, like many heat-pump controllers' TCP gateways.
final class DemoHeatPump: @unchecked Sendable {
    let port: Int
    let unit: Int
    private let listenSocket: Int32
    private let context: OpaquePointer
    private let mapping: UnsafeMutablePointer<modbus_mapping_t>
    private let stopFlag = StopFlag()
    private var thread: Thread?
    /// Counts answered requests, for the demo's status line.
    private let served = Atomic<Int>(0)

    /// Builds the register map from `profile.test` (its dump) and starts listening on an ephemeral port.
    init(profile: ModbusProfile) throws(DemoError) {
        guard let test = profile.test else {
            throw DemoError("profile \(profile.id) has no test dump to serve")
        }
        unit = test.unit ?? 1
        func extent(_ kind: String) -> Int32 {
            let end = (test.dump[kind] ?? []).map { $0.address + $0.values.count }.max() ?? 0
            return Int32(min(65536, max(1, end)))
        }
        guard let map = modbus_mapping_new(extent("coil"), extent("discrete"), extent("holding"), extent("input")) else {
            throw DemoError("libmodbus could not allocate the register map")
        }
        mapping = map
        for block in test.dump["holding"] ?? [] {
            for (i, v) in block.values.enumerated() { map.pointee.tab_registers[block.address + i] = UInt16(truncatingIfNeeded: v) }
        }
        for block in test.dump["input"] ?? [] {
            for (i, v) in block.values.enumerated() { map.pointee.tab_input_registers[block.address + i] = UInt16(truncatingIfNeeded: v) }
        }
        for block in test.dump["coil"] ?? [] {
            for (i, v) in block.values.enumerated() { map.pointee.tab_bits[block.address + i] = v == 0 ? 0 : 1 }
        }
        for block in test.dump["discrete"] ?? [] {
            for (i, v) in block.values.enumerated() { map.pointee.tab_input_bits[block.address + i] = v == 0 ? 0 : 1 }
        }
        guard let ctx = modbus_new_tcp("127.0.0.1", 0) else {
            modbus_mapping_free(map)
            throw DemoError("libmodbus could not create a TCP context")
        }
        context = ctx
        let s = modbus_tcp_listen(ctx, 1)
        guard s >= 0 else {
            modbus_free(ctx)
            modbus_mapping_free(map)
            throw DemoError("could not listen on 127.0.0.1 for the demo heat pump (errno \(errno))")
        }
        listenSocket = s
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(s, $0, &length) }
        }
        port = Int(UInt16(bigEndian: address.sin_port))
        let t = Thread { [self] in serve() }
        t.name = "demo-heat-pump"
        thread = t
        t.start()
    }

    var endpoint: String { "tcp://127.0.0.1:\(port)" }
    var requestsServed: Int { served.load(ordering: .relaxed) }

    func stop() {
        stopFlag.set()
        // Unblocks accept(2) and recv(2) in the server thread.
        shutdown(listenSocket, Int32(SHUT_RDWR))
        modbus_close(context)
    }

    private func serve() {
        var query = [UInt8](repeating: 0, count: Int(MODBUS_TCP_MAX_ADU_LENGTH))
        var listening = listenSocket
        while !stopFlag.isSet {
            guard modbus_tcp_accept(context, &listening) >= 0 else {
                if stopFlag.isSet { break }
                usleep(100_000)
                continue
            }
            while !stopFlag.isSet {
                let n = query.withUnsafeMutableBufferPointer { modbus_receive(context, $0.baseAddress) }
                if n < 0 { break }  // client went away: accept the next one
                if n == 0 { continue }  // a frame for another unit id: ignored, as on a real bus
                _ = query.withUnsafeBufferPointer { modbus_reply(context, $0.baseAddress, n, mapping) }
                served.add(1, ordering: .relaxed)
            }
            modbus_close(context)
        }
        close(listenSocket)
    }

    deinit {
        modbus_free(context)
        modbus_mapping_free(mapping)
    }
}

struct DemoError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
