import Drivers
import Foundation
import Testing
@testable import Gateway

@Suite("heat-pump serial patterns")
struct SerialPatternTests {
    typealias F = PipelineFixtures

    @Test("the small pattern language matches whole serials")
    func matching() throws {
        let nibe = try SerialPattern("NIBE-[0-9]{8}")
        #expect(nibe.matches("NIBE-12345678"))
        #expect(!nibe.matches("NIBE-1234567"))
        #expect(!nibe.matches("NIBE-123456789"))
        #expect(!nibe.matches("nibe-12345678"))
        let flexible = try SerialPattern("[A-Z]{2,4}\\-[0-9A-F]{4}.")
        #expect(flexible.matches("AB-00FFx"))
        #expect(flexible.matches("ABCD-1234-"))
        #expect(!flexible.matches("A-1234x"))
        for bad in ["", "[0-9", "AB{2", "{3}", "[9-0]", "A{5,2}"] {
            #expect(throws: RegistryError.self) { try SerialPattern(bad) }
        }
    }

    @Test("a mismatch says where and what was expected")
    func reasons() throws {
        let p = try SerialPattern("KHP-R290-[0-9]{4}-[0-9]{3}")
        #expect(p.mismatch("KHP-R290-0007-001") == nil)
        #expect(p.mismatch("KHP-R290-00X7-001") == "serial KHP-R290-00X7-001 does not match the pattern KHP-R290-[0-9]{4}-[0-9]{3}: character 12 is 'X', expected a digit")
        #expect(p.mismatch("KHP-R290-0007-01")?.contains("too short") == true)
        #expect(p.mismatch("KHP-R290-0007-0011")?.contains("too long") == true)
        #expect(p.mismatch("KHP_R290-0007-001")?.contains("character 4 is '_', expected '-'") == true)
    }

    @Test("the registry refuses a device whose registered serial does not fit its profile's pattern")
    func registryValidation() throws {
        var doc = F.document
        _ = try DeviceRegistry(doc)
        doc.devices[3].serial = "KHP-R290-7-1"
        #expect(throws: RegistryError.self) { try DeviceRegistry(doc) }
        do { _ = try DeviceRegistry(doc) } catch { #expect(error.message.contains("modbus:kaisai:unit1") && error.message.contains("character 11 is '-', expected a digit")) }
        doc = F.document
        doc.serialPatterns = ["kaisai-r290-monoblock": "[0-9"]
        #expect(throws: RegistryError.self) { try DeviceRegistry(doc) }
    }

    @Test("a heat pump reporting a serial outside its pattern, or someone else's serial, is rejected with the reason")
    func runtimeValidation() async throws {
        let registry = try F.registry()
        #expect(throws: Never.self) { try registry.identifyModbus(line: "rs485-1", unit: 1, reported: []).get() }
        let ok = registry.identifyModbus(line: "rs485-1", unit: 1, reported: [ReportedIdentity(role: "monoblock", serial: "khp r290 0007 001")])
        #expect(throws: Never.self) { try ok.get() }
        let garbled = registry.identifyModbus(line: "rs485-1", unit: 1, reported: [ReportedIdentity(role: "monoblock", serial: "KHP-R290-00?7-001")])
        guard case .failure(.serialPattern(let d, let p, let why)) = garbled else { Issue.record("\(garbled)"); return }
        #expect(d == "modbus:kaisai:unit1" && p == "kaisai-r290-monoblock" && why.contains("character 12"))
        let other = registry.identifyModbus(line: "rs485-1", unit: 1, reported: [ReportedIdentity(role: "monoblock", serial: "KHP-R290-0009-001")])
        #expect(other == .failure(.serialMismatch(device: "modbus:kaisai:unit1", reported: "KHP-R290-0009-001", registered: "KHP-R290-0007-001")))
        if case .failure(let r) = other { #expect(r.description.contains("the registry expects KHP-R290-0007-001")) }

        // Through the pipeline: rejected, nothing buffered.
        let buffer = MemoryReadingBuffer()
        let pipeline = ReadingPipeline(registry: registry, buffer: buffer)
        var reading = try F.kaisaiReading()
        reading.identities = [ReportedIdentity(role: "monoblock", serial: "KHP-R290-0009-001")]
        let outcome = try await pipeline.ingest(.modbus(ModbusInput(reading, line: "rs485-1", receivedAt: 1)))
        guard case .rejected(.serialMismatch) = outcome else { Issue.record("\(outcome)"); return }
        #expect(try await buffer.all().isEmpty)
        #expect(await pipeline.counters().rejected == 1)
    }

    @Test("existing registry documents without patterns still load")
    func compatible() throws {
        let json = #"{"gateway":"g","building":"1","devices":[{"key":"k","bus":"modbus","modbusUnit":1,"line":"l","profile":"p","serial":"anything"},{"key":"m","bus":"manual"}]}"#
        let r = try DeviceRegistry(JSONDecoder().decode(RegistryDocument.self, from: Data(json.utf8)))
        #expect(r.device(line: "l", unit: 1)?.key == "k")
        #expect(r.device(key: "m")?.bus == .manual)
    }
}
