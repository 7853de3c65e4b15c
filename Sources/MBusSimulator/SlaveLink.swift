import Drivers

/// One slave's EN 13757-2 link state: selection, frame count bit and position in its multi-telegram
/// readout, plus the faults injected into it. A plain value, so the behaviour is testable without a pty.
struct SlaveLink: Hashable, Sendable {
    let slave: SimulatedSlave
    /// Resolved against the bus's response window, in nanoseconds.
    let responseDelay: Int64

    /// False after `unplug`: the meter is gone from the bus.
    var isPluggedIn = true
    /// Selected by secondary address: addressed by FDh.
    var isSelected = false
    /// Index of the telegram the next "new" REQ_UD2 gets.
    var nextFrame = 0
    /// Index of the telegram last answered, to repeat it when the master did not get it.
    var lastAnsweredFrame: Int? = nil
    /// FCB of the last REQ_UD2 answered. False after a reset, so the master's first FCB = 1 is new.
    var lastFrameCountBit = false
    /// Answers still to be sent with a broken checksum.
    var pendingCorruptions = 0

    init(slave: SimulatedSlave, responseDelay: Int64) {
        self.slave = slave
        self.responseDelay = responseDelay
    }

    /// On the bus and able to answer.
    var isPresent: Bool { isPluggedIn && slave.behaviour != .dead }

    /// SND_NKE: the next REQ_UD2 with FCB = 1 starts the readout from its first telegram.
    mutating func resetLink() {
        nextFrame = 0
        lastAnsweredFrame = nil
        lastFrameCountBit = false
    }

    /// Power returns after an unplug: the meter starts unselected with a fresh link.
    mutating func powerOn() {
        resetLink()
        isSelected = false
    }

    /// The telegram a REQ_UD2 gets (EN 13757-2 5.6): with FCV set and the FCB unchanged the master
    /// missed the last answer, so it is repeated; otherwise the readout moves on, wrapping after the last.
    mutating func frameIndex(for control: ControlField) -> Int {
        if control.frameCountValid, let last = lastAnsweredFrame, control.frameCountBit == lastFrameCountBit {
            return last
        }
        let index = nextFrame
        lastAnsweredFrame = index
        nextFrame = (index + 1) % slave.frames.count
        if control.frameCountValid { lastFrameCountBit = control.frameCountBit }
        return index
    }

    /// The bytes of telegram `index`, with a broken checksum while corruptions are pending.
    mutating func userData(_ index: Int) -> (bytes: [UInt8], corrupted: Bool) {
        var bytes = slave.frames[index]
        guard pendingCorruptions > 0 else { return (bytes, false) }
        pendingCorruptions -= 1
        // The checksum is the second-to-last byte of a long frame; any change makes it wrong.
        bytes[bytes.count - 2] ^= 0x5A
        return (bytes, true)
    }
}

/// An answer a slave puts on the line.
struct SlaveReply: Hashable, Sendable {
    let slaveIndex: Int
    let bytes: [UInt8]
    /// From the end of the request to the first start bit, nanoseconds.
    let delay: Int64
    let corrupted: Bool
}

/// All slaves on the line and how they react to one request from the master.
struct BusSlaves: Hashable, Sendable {
    var links: [SlaveLink]

    /// Applies a request to every slave it reaches and returns the answers, in slave order.
    mutating func replies(to request: MBusFrame) -> [SlaveReply] {
        switch request {
        case .ack:
            return []
        case .short(let frame):
            guard frame.control.isFromMaster else { return [] }
            return shortFrame(frame)
        case .long(let frame):
            guard frame.control.isFromMaster else { return [] }
            return longFrame(frame)
        }
    }

    /// Function codes of the C field (low nibble) the slaves act on.
    private enum Function {
        static let sndNKE: UInt8 = 0x0
        static let sndUD: UInt8 = 0x3
        static let reqUD1: UInt8 = 0xA
        static let reqUD2: UInt8 = 0xB
    }

    /// Indices of present slaves that a frame to `address` reaches.
    private func reached(by address: UInt8) -> [Int] {
        links.indices.filter { i in
            let link = links[i]
            guard link.isPresent else { return false }
            switch address {
            case 0...LinkAddress.maximumPrimary: return link.slave.primaryAddress == address
            case LinkAddress.networkLayer: return link.isSelected
            case LinkAddress.broadcastWithReply, LinkAddress.broadcastNoReply: return true
            default: return false  // 251 and 252 are reserved
            }
        }
    }

    private func ack(_ i: Int) -> SlaveReply {
        SlaveReply(slaveIndex: i, bytes: [MBusFrame.ackByte], delay: links[i].responseDelay, corrupted: false)
    }

    private mutating func shortFrame(_ frame: ShortFrame) -> [SlaveReply] {
        let targets = reached(by: frame.address)
        var replies: [SlaveReply] = []
        for i in targets {
            switch frame.control.function {
            case Function.sndNKE:
                links[i].resetLink()
                // EN 13757-3: a selected slave stays selected until a non-matching selection,
                // CI 56h or SND_NKE to FDh.
                if frame.address == LinkAddress.networkLayer { links[i].isSelected = false }
                replies.append(ack(i))
            case Function.reqUD2 where frame.address != LinkAddress.broadcastNoReply:
                let index = links[i].frameIndex(for: frame.control)
                let (bytes, corrupted) = links[i].userData(index)
                replies.append(SlaveReply(slaveIndex: i, bytes: bytes, delay: links[i].responseDelay, corrupted: corrupted))
            case Function.reqUD1 where frame.address != LinkAddress.broadcastNoReply:
                // No alarms (class 1 data) to report: the slave acknowledges.
                replies.append(ack(i))
            default:
                continue
            }
        }
        return frame.address == LinkAddress.broadcastNoReply ? [] : replies
    }

    private mutating func longFrame(_ frame: LongFrame) -> [SlaveReply] {
        guard frame.control.function == Function.sndUD else { return [] }
        if frame.address == LinkAddress.networkLayer {
            switch frame.controlInformation {
            case ControlInformation.selectSlave:
                return select(frame.userData)
            case ControlInformation.deselectSlave:
                let selected = reached(by: LinkAddress.networkLayer)
                for i in links.indices { links[i].isSelected = false }
                return selected.map(ack)
            default:
                break
            }
        }
        let targets = reached(by: frame.address)
        for i in targets where frame.controlInformation == ControlInformation.applicationReset {
            // The application restarts its readout at the first telegram.
            links[i].nextFrame = 0
            links[i].lastAnsweredFrame = nil
        }
        // Application reset, data send and other SND_UD are acknowledged at the link layer.
        return frame.address == LinkAddress.broadcastNoReply ? [] : targets.map(ack)
    }

    /// CI 52h to FDh: matching slaves become selected and acknowledge, the others become deselected
    /// and stay silent. A selection starts a new conversation, so the link is reset as by SND_NKE:
    /// masters send FCB = 1 in the first REQ_UD2 after a select.
    private mutating func select(_ data: [UInt8]) -> [SlaveReply] {
        // Only the 8-byte mask is understood; longer selections (with a fabrication number) are ignored.
        guard data.count == 8 else { return [] }
        let mask = SecondaryAddressMask(
            identification: UInt32(data[3]) << 24 | UInt32(data[2]) << 16 | UInt32(data[1]) << 8 | UInt32(data[0]),
            manufacturer: UInt16(data[5]) << 8 | UInt16(data[4]), version: data[6], deviceType: data[7])
        var replies: [SlaveReply] = []
        for i in links.indices where links[i].isPresent {
            if links[i].slave.secondaryAddress?.isSelected(by: mask) == true {
                links[i].isSelected = true
                links[i].resetLink()
                replies.append(ack(i))
            } else {
                links[i].isSelected = false
            }
        }
        return replies
    }

    /// Indices of all slaves (present or not) with this primary address.
    func indices(primaryAddress: UInt8) -> [Int] {
        links.indices.filter { links[$0].slave.primaryAddress == primaryAddress }
    }
}
