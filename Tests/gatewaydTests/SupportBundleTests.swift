@testable import Agent
import CLISupport
import Drivers
import Foundation
import Gateway
import Testing
@testable import gatewayd

/// Redaction rules of `gatewayd bundle`, alone.
@Suite("support bundle redaction")
struct SupportRedactionTests {
    @Test("configuration: secret-named values, user:password@ and key-shaped hex go; paths and ordinary values stay")
    func configText() {
        let text = """
            gateway_id = "gw-1"
            keys_file = "/etc/gatewayd/keys"
            mqtt_password = "hunter2hunter2"
            api_token = 'abc'
            # token = "a comment stays as written"
            endpoint = "mqtts://gw:s3cret@portal.example:8883"
            note = "00112233445566778899AABBCCDDEEFF"
            telegram = "2E4493157856341233037A2A0020055923C95AAA26D1B2E7493B2A8B013EC4A6F6"
            """
        let (out, n) = SupportRedaction.configText(text)
        #expect(n == 4, "\(out)")
        #expect(out.contains(#"keys_file = "/etc/gatewayd/keys""#))
        #expect(!out.contains("hunter2"))
        #expect(out.contains(#"api_token = "<redacted>""#))
        #expect(out.contains("# token = \"a comment stays as written\""))
        #expect(out.contains("mqtts://<redacted>@portal.example:8883") && !out.contains("s3cret"))
        #expect(!out.contains("00112233445566778899AABBCCDDEEFF"))
        #expect(out.contains("2E4493157856341233037A2A0020055923C95AAA26D1B2E7493B2A8B013EC4A6F6"), "longer hex is telegram data, not a key")
    }

    @Test("known secrets are scrubbed in any case and spacing, and a leak is caught before writing")
    func secrets() throws {
        var s = SupportRedaction.Secrets()
        let key = try #require(WMBusKey(hex: "000102030405060708090A0B0C0D0E0F"))
        s.add(keyring: WMBusKeyring(keys: [IdentificationNumber("12345678")!: key]))
        s.add(literal: "tok-0123456789\n")
        s.add(literal: "short")  // too short to search for: ignored
        let text = "key 000102030405060708090a0b0c0d0e0f, or 00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F; token tok-0123456789; short"
        let (clean, n) = s.scrub(text)
        #expect(n == 3)
        #expect(s.firstLeak(in: clean) == nil)
        #expect(clean.hasSuffix("short"))
        #expect(s.firstLeak(in: "x 000102030405060708090A0B0C0D0E0F") == "a meter key")
        #expect(s.firstLeak(in: "TOK-0123456789") == "the portal token")
        // A fingerprint is not the key and does not contain it.
        let fp = SupportRedaction.fingerprint(key)
        #expect(fp.count == 8 && s.firstLeak(in: fp) == nil)
    }

    @Test("log lines: key-shaped hex and URL credentials go")
    func logLine() {
        #expect(SupportRedaction.logLine("key=00112233445566778899aabbccddeeff url=https://u:p@h/x") == "key=<redacted> url=https://<redacted>@h/x")
    }
}

/// `gatewayd bundle` and `gatewayd replay` on the demo building, as a technician runs them (issue 17 item 4).
@Suite("support bundle round trip", .serialized)
struct SupportBundleTests {
    static let key = "0F0E0D0C0B0A09080706050403020100"

    /// All text of an unpacked bundle, by file.
    static func unpack(_ archive: String) throws -> [String: String] {
        let dir = NSTemporaryDirectory() + "bundle-check-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try SupportArchive.unpack(archive, into: dir)
        var out: [String: String] = [:]
        let e = FileManager.default.enumerator(atPath: dir)
        while let name = e?.nextObject() as? String {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: dir + "/" + name, isDirectory: &isDir), !isDir.boolValue {
                out[name] = String(decoding: try Data(contentsOf: URL(fileURLWithPath: dir + "/" + name)), as: UTF8.self)
            }
        }
        return out
    }

    static func archive(in output: String) throws -> String {
        let dir = try #require(output.split(separator: "\n").first { $0.hasPrefix("bundle written: ") })
        return String(dir.dropFirst("bundle written: ".count).split(separator: " ").first ?? "")
    }

    @Test("bundle the running demo and the stopped one, replay it: same readings; no key, token or stranger's bytes inside")
    func roundTrip() async throws {
        var ws = try DaemonTests.workspace()
        // A key for the demo's encrypted allocator (not its real one: the gateway finds it wrong).
        try Data("23701267 \(Self.key)\n".utf8).write(to: URL(fileURLWithPath: ws.dir + "/keys"))
        chmod(ws.dir + "/keys", 0o600)
        var config = try String(contentsOfFile: ws.config, encoding: .utf8)
        config = config.replacingOccurrences(of: "demo = true\n", with: "demo = true\nkeys_file = \"\(ws.dir)/keys\"\n")
        try Data(config.utf8).write(to: URL(fileURLWithPath: ws.config))
        ws.config = ws.dir + "/gatewayd.toml"

        // Runs until told to stop, so the live bundle never races the daemon's own end.
        let daemon = try DaemonProcess(["run", "--config", ws.config, "--duration", "10m"], log: ws.dir + "/log")
        // 1. Live, over the status socket, once every bus has something in the journal.
        var live: (status: Int32?, log: String)?
        for _ in 0..<480 where daemon.isRunning {
            if let e = try? await SupportBundleBuilder.fetchEvidence(socket: ws.dir + "/status.sock", timeout: 2),
               Set(e.journal.entries.map(\.bus)) == [.mbus, .wmbus, .modbus], e.journal.entries.count > 20,
               // The keyless replay below needs the allocator whose key is wrong (the radio replay takes a while).
               e.journal.entries.contains(where: { $0.device == "wmbus:VIP:23701267" }) {
                live = try ListenCommandTests.run(["bundle", "--config", ws.config, "--out", ws.dir + "/live"])
                break
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        let liveRun = try #require(live, "the daemon never journaled a telegram; log:\n\(daemon.log())")
        #expect(liveRun.status == 0, "\(liveRun.log)")
        #expect(liveRun.log.contains("evidence: live from"), "\(liveRun.log)")
        // An orderly stop saves the picture beside the buffer.
        daemon.signal(SIGTERM)
        let exit = await daemon.wait(timeoutSeconds: 240)
        #expect(exit == 0, "exit \(String(describing: exit)); log:\n\(daemon.log())")

        // 2. After it stopped: the picture it saved beside the buffer.
        let saved = try ListenCommandTests.run(["bundle", "--config", ws.config, "--out", ws.dir + "/saved", "--frames", "500"])
        #expect(saved.status == 0, "\(saved.log)")
        #expect(saved.log.contains("evidence: saved by the daemon"), "\(saved.log)")
        #expect(saved.log.contains("1 meter key (fingerprints only)"))

        let token = try String(contentsOfFile: ws.dir + "/demo-portal-token", encoding: .utf8)
        let registry = try DeviceRegistry.load(path: DaemonTests.seeds + "/registry.json")
        for archive in [try Self.archive(in: liveRun.log), try Self.archive(in: saved.log)] {
            let files = try Self.unpack(archive)
            for name in ["MANIFEST.json", "README.txt", "config/gatewayd.toml", "config-check.txt", "registry.json", "frames.json",
                         "alarms.json", "recent.log", "buffer.json", "counters.json", "set-days.json"] {
                #expect(files[name] != nil, "\(name) missing from \(archive): \(files.keys.sorted())")
            }
            for (name, text) in files {
                #expect(!text.localizedCaseInsensitiveContains(Self.key), "the meter key is in \(name)")
                #expect(!text.contains(token), "the portal token is in \(name)")
            }
            let journal = try LocalEndpoints.jsonDecoder.decode(FrameJournalSnapshot.self, from: Data(try #require(files["frames.json"]).utf8))
            #expect(!journal.entries.isEmpty)
            #expect(journal.entries.allSatisfy { registry.device(key: $0.device) != nil })
            // Strangers of the demo: their addresses (id bytes least significant first) are in no frame.
            for frame in journal.entries.flatMap(\.frames) {
                for reversed in ["74720901", "06020100", "32518391"] { #expect(!frame.contains(reversed), "a stranger's telegram: \(frame)") }
            }
            // After a whole cycle: every bus's evidence, and the strangers heard by identity.
            #expect(journal.entries.count > 20)
            #expect(Set(journal.entries.map(\.bus)) == [.mbus, .wmbus, .modbus])
            #expect(Set(journal.strangers.map(\.identification)).isSuperset(of: ["01097274"]))
            #expect(files["MANIFEST.json"]!.contains("\"fingerprint\""))
            #expect(files["recent.log"]!.contains("gatewayd starting"))
        }

        // 3. Replay the saved bundle at a "desk" with the building's keys: everything the same.
        let replay = try ListenCommandTests.run(["replay", try Self.archive(in: saved.log), "--keys", ws.dir + "/keys", "--json"])
        #expect(replay.status == 0, "\(replay.log)")
        let doc = try #require(replay.log.split(separator: "\n").first { $0.hasPrefix("{") })
        let object = try #require(try JSONSerialization.jsonObject(with: Data(doc.utf8)) as? [String: Any])
        let frames = try #require(object["frames"] as? Int)
        #expect(frames > 20)
        #expect(object["same"] as? Int == frames, "\(doc.prefix(2000))")
        #expect(object["differs"] as? Int == 0)
        #expect((object["readings"] as? Int ?? 0) > 100)
        // The wrong key reproduces at the desk only with the same key; without keys it is a different story.
        let keyless = try ListenCommandTests.run(["replay", try Self.archive(in: saved.log)])
        #expect(keyless.status == 2, "\(keyless.log)")
        #expect(keyless.log.contains("the gateway has a key for 23701267; none given here"))
        #expect(keyless.log.contains("wmbus:VIP:23701267"))
        print("support bundle: \(frames) telegrams/frames replayed, \(object["same"] ?? 0) same, \(object["readings"] ?? 0) values")
    }
}
