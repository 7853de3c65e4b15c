import Drivers
import Testing
@testable import MBusSimulator

/// Wire timing as the master sees it. Only lower bounds are asserted: a loaded machine can make
/// everything later, never earlier.
@Suite("M-Bus wire timing")
struct TimingTests {
    @Test("A 100-byte answer at 2400 baud is paced at 11 bit times per byte after the request's wire time")
    func answerIsPacedAtTheBaudRate() throws {
        let slave = try SimulatedSlave(primaryAddress: 1, hexFrames: [Meters.wfh21])
        #expect(slave.frames[0].count == 100)
        let (bus, master) = try runningBus([slave], baudRate: 2400)
        defer { bus.stop() }
        let timing = LineTiming(baudRate: 2400)

        let request = MBusFrame.reqUD2(address: 1, frameCountBit: true)
        let sent = master.send(request)
        let received = master.read(timeout: .seconds(5)) { $0.count >= 100 }
        #expect(try FrameCodec.decodeComplete(received.bytes).encoded == slave.frames[0])

        // The answer may start 11 bit times after the request's last stop bit, and the request itself
        // takes 5 × 11 bit times on the wire even though the master wrote it to the pty at once.
        let earliestStart = sent + timing.duration(characters: request.encoded.count) + timing.duration(bits: 11)
        // Byte k is complete k + 1 character times after the answer started.
        for (k, time) in received.times.enumerated() {
            #expect(time >= earliestStart + timing.duration(characters: k + 1), "byte \(k) came early")
        }
        let first = try #require(received.times.first)
        let last = try #require(received.times.last)
        // 100 × 11 / 2400 s ≈ 458 ms of wire time from the earliest start of the answer to its last byte.
        #expect(last - earliestStart >= 100 * 11 * 1_000_000_000 / 2400)
        #expect(first - sent >= timing.duration(characters: 5) + timing.duration(bits: 11))
        #expect(last - first > 0)
    }

    @Test("A slow slave answers near the end of the response window")
    func slowSlave() throws {
        let slave = try SimulatedSlave(primaryAddress: 2, hexFrames: [Meters.gwf], behaviour: .slow)
        let (bus, master) = try runningBus([slave], baudRate: 9600)
        defer { bus.stop() }
        let sent = master.send(.sndNKE(address: 2))
        let received = master.read(timeout: .seconds(2)) { !$0.isEmpty }
        #expect(received.bytes == [0xE5])
        let timing = LineTiming(baudRate: 9600)
        let floor = timing.duration(characters: 5) + bus.responseWindow.slowDelay.nanoseconds + timing.characterTime
        #expect(try #require(received.times.first) - sent >= floor)
    }

    @Test("Response delays outside the EN 13757-2 window are refused")
    func delayOutsideWindow() throws {
        let tooSlow = try SimulatedSlave(primaryAddress: 1, hexFrames: [Meters.gwf], responseDelay: .milliseconds(400))
        #expect(throws: SimulatorError.self) { try MBusBusSimulator(slaves: [tooSlow], baudRate: 2400) }
        let tooFast = try SimulatedSlave(primaryAddress: 1, hexFrames: [Meters.gwf], responseDelay: .microseconds(100))
        #expect(throws: SimulatorError.self) { try MBusBusSimulator(slaves: [tooFast], baudRate: 2400) }
        #expect(throws: SimulatorError.self) { try MBusBusSimulator(slaves: [], baudRate: 115200) }
        let window = ResponseWindow(baudRate: 2400)
        #expect(window.earliest == .nanoseconds(4_583_334))
        #expect(window.latest == .nanoseconds(137_500_000) + .milliseconds(50))
    }
}
