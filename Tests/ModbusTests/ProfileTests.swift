import Drivers
import Foundation
import Testing

@Suite("Profiles as data")
struct ProfileTests {
    @Test("the shipped profiles are present: fourteen controller families and the generic SG-Ready one") func shipped() {
        let names = Paths.shippedProfiles().map { ($0 as NSString).lastPathComponent }
        for expected in ["generic-sg-ready.json", "kaisai-r290-monoblock.json", "nibe-s-series.json", "stiebel-eltron-wpm-isg.json",
                         "midea-split.json", "panasonic-aquarea.json", "daikin-altherma.json", "mitsubishi-ecodan-procon.json",
                         "lg-therma-v.json", "samsung-ehs-mim-b19n.json", "luxtronik-2-modbus-v3-90.json",
                         "luxtronik-2-modbus-v3-92.json", "idm-navigator-2.json", "lambda-eu-l.json", "thermia-genesis.json"] {
            #expect(names.contains(expected), "\(expected) is missing")
        }
        let profiles = Paths.shippedProfiles().compactMap { try? loadProfile($0) }
        #expect(profiles.count == names.count, "every shipped profile loads")
        // Each profile says what is confirmed on a real unit and what is not.
        for p in profiles where p.id != "generic-sg-ready" && p.confirmation == nil {
            Issue.record("\(p.id) does not say which of its map needs confirmation on a real unit")
        }
    }

    @Test("each shipped profile's own check passes (dump, alarms, identity, fingerprint)", arguments: Paths.shippedProfiles())
    func ownCheck(path: String) throws {
        let check = ModbusProfileCheck.run(try loadProfile(path))
        #expect(check.failures == [], "\(check.profile)")
        #expect(check.checkedValues > 0)
    }

    @Test("each profile's recorded dump decodes to its expected values (no I/O)", arguments: Paths.shippedProfiles())
    func decodesItsDump(path: String) throws {
        let profile = try loadProfile(path)
        let test = try #require(profile.test)
        #expect(!profile.source.isEmpty, "\(profile.id) cites no source")
        let plan = profile.plan()
        let words: [[UInt16]?] = plan.map { request in
            var out: [UInt16] = []
            for a in request.range {
                let block = test.dump[request.kind.rawValue]?.first { a >= $0.address && a < $0.address + $0.values.count }
                guard let block else { return nil }
                out.append(UInt16(block.values[a - block.address]))
            }
            return out
        }
        #expect(words.allSatisfy { $0 != nil }, "\(profile.id): the plan \(plan) reads addresses the dump does not have")
        let reading = profile.decode(profile.registers, requests: plan, words: words, unit: test.unit ?? 1)
        #expect(differences(reading, profile) == [])
        #expect(test.expected.count == profile.registers.count, "every register has an expected value")
    }

    @Test func notAvailableMarkersAndTypes() throws {
        func reg(_ type: RegisterType, _ json: String = "") throws -> RegisterDefinition {
            let text = "{\"name\":\"x\",\"kind\":\"holding\",\"address\":0,\"type\":\"\(type.rawValue)\"\(json)}"
            return try JSONDecoder().decode(RegisterDefinition.self, from: Data(text.utf8))
        }
        #expect(RegisterDecoder.decode([0x8000], try reg(.i16, ",\"notAvailable\":[32768]")) == .notAvailable)
        #expect(RegisterDecoder.decode([0xFFFF], try reg(.i16)) == .number(-1))
        #expect(RegisterDecoder.decode([0x0001, 0x0002], try reg(.u32)) == .number(65538))
        #expect(RegisterDecoder.decode([0x0002, 0x0001], try reg(.u32, ",\"wordOrder\":\"little\"")) == .number(65538))
        #expect(RegisterDecoder.decode([0xFFFF, 0xFFFE], try reg(.i32)) == .number(-2))
        #expect(RegisterDecoder.decode([0x41A4, 0x0000], try reg(.f32)) == .number(20.5))
        #expect(RegisterDecoder.decode([0x4034, 0x8000, 0, 0], try reg(.f64)) == .number(20.5))
        #expect(RegisterDecoder.decode([0x7FC0, 0x0000], try reg(.f32)) == .notAvailable, "NaN is no reading")
        #expect(RegisterDecoder.decode([0x4142, 0x4300], try reg(.string, ",\"count\":2")) == .text("ABC"))
        #expect(RegisterDecoder.decode([0x4241, 0x0043], try reg(.string, ",\"count\":2,\"byteOrder\":\"little\"")) == .text("ABC"))
        #expect(RegisterDecoder.decode([0x0005], try reg(.bitfield, ",\"bits\":{\"0\":\"a\",\"2\":\"c\"}")) == .flags(["a", "c"]))
        #expect(RegisterDecoder.decode([], try reg(.u16)) == .notAvailable, "too few words is not a trap")
    }

    @Test func invalidProfilesGiveSentences() {
        let dup = #"{"id":"x","name":"x","manufacturer":"x","source":["s"],"numbering":"n","registers":[{"name":"a","kind":"holding","address":0,"type":"u16"},{"name":"a","kind":"holding","address":1,"type":"u16"}]}"#
        #expect(throws: ModbusError.self) { try ModbusProfile.decode(Data(dup.utf8)) }
        do {
            _ = try ModbusProfile.decode(Data(#"{"id":"x"}"#.utf8), origin: "p.json")
        } catch {
            #expect(error.message.contains("missing \"name\""))
        }
    }

    @Test("a split unit has two identities; a wrong outdoor serial raises an alarm with a clear sentence")
    func splitUnitIdentity() throws {
        let profile = try ModbusProfile.load(path: Paths.fixtures + "/split-unit.json")
        let test = try #require(profile.test)
        let plan = profile.plan()
        let words: [[UInt16]?] = plan.map { r in
            let block = test.dump[r.kind.rawValue]!.first { r.address >= $0.address }!
            return r.range.map { UInt16(block.values[$0 - block.address]) }
        }
        let reading = profile.decode(profile.registers, requests: plan, words: words, unit: 3)
        #expect(reading.identities.map(\.serial) == ["IDU2301A0042", "ODU2301B0777"])
        let ok = IdentityCheck.validate(reported: reading.identities,
                                        registry: ["indoor": "IDU2301A0042", "outdoor": "odu-2301b0777"], device: "the heat pump on RTU unit 3")
        #expect(ok.allSatisfy { if case .verified = $0 { true } else { false } })
        let wrong = IdentityCheck.validate(reported: reading.identities,
                                           registry: ["indoor": "IDU2301A0042", "outdoor": "ODU2301B0999"], device: "the heat pump on RTU unit 3")
        let alarm = try #require(wrong.compactMap(\.alarm).first)
        #expect(alarm.code == "serial_mismatch:outdoor")
        #expect(alarm.message.hasPrefix("the heat pump on RTU unit 3 reports outdoor unit serial ODU2301B0777, the registry expects ODU2301B0999"))
    }

    @Test("a device without a serial register: the registry's serial, marked not verified")
    func unverifiableSerial() throws {
        let profile = try loadProfile(Paths.profiles + "/kaisai-r290-monoblock.json")
        let findings = IdentityCheck.validate(reported: [ReportedIdentity(role: "monoblock", model: "R290-A")],
                                              registry: ["monoblock": "KHX-0815"], device: "the heat pump on RTU unit 1", profile: profile)
        guard case .unverified(_, let serial, let reason) = try #require(findings.first) else {
            Issue.record("expected unverified, got \(findings)")
            return
        }
        #expect(serial == "KHX-0815")
        #expect(reason.contains("no serial-number register"))
    }
}
