/// A record's combinable VIFE codes (extension bits cleared, FCh escapes included), held inline.
///
/// EN 13757-3 allows at most 10 VIFEs per record (`RecordParser.maximumVIFEs`), so ten bytes in two
/// integers hold any record's codes. Why not `[UInt8]`: an array per record with VIFEs was a heap
/// allocation to make and free for every such record of every telegram, and a reference every copy of a
/// record retained and released.
public struct VIFECodes: RandomAccessCollection, Hashable, Sendable, ExpressibleByArrayLiteral, CustomStringConvertible {
    public static let capacity = 10

    /// Codes 0–7, code k in bits 8k…8k+7.
    private var low: UInt64 = 0
    /// Codes 8 and 9.
    private var high: UInt16 = 0
    private var stored: UInt8 = 0

    public init() {}

    /// The first `capacity` codes of `codes` (a parsed record never has more).
    public init<S: Sequence>(_ codes: S) where S.Element == UInt8 {
        for c in codes where stored < Self.capacity { append(c) }
    }

    public init(arrayLiteral codes: UInt8...) { self.init(codes) }

    public var startIndex: Int { 0 }
    public var endIndex: Int { Int(stored) }

    public subscript(position: Int) -> UInt8 {
        precondition(position >= 0 && position < Int(stored), "VIFE index out of range")
        return position < 8
            ? UInt8(truncatingIfNeeded: low >> UInt64(8 * position))
            : UInt8(truncatingIfNeeded: high >> UInt16(8 * (position - 8)))
    }

    /// Adds a code; false (and nothing added) when ten are already held.
    @discardableResult
    public mutating func append(_ code: UInt8) -> Bool {
        let k = Int(stored)
        guard k < Self.capacity else { return false }
        if k < 8 {
            low |= UInt64(code) << UInt64(8 * k)
        } else {
            high |= UInt16(code) << UInt16(8 * (k - 8))
        }
        stored += 1
        return true
    }

    public var description: String { Array(self).description }

    /// What the codes mean, decoded on each walk (no array): combinable VIFEs (EN 13757-3 Table 15), an
    /// FCh escape taking the next code from Table 16, and nothing after a manufacturer-specific VIFE (Fh)
    /// or when the VIF itself is manufacturer-specific.
    func modifiers(manufacturerVIF: Bool) -> VIFEModifiers {
        VIFEModifiers(codes: self, manufacturerVIF: manufacturerVIF)
    }

    /// The same codes without those that made the record a compact profile (a profile's expanded
    /// elements are plain values).
    func removingCompactProfileCodes(manufacturerVIF: Bool) -> VIFECodes {
        var dropped = 0  // bit k: code k goes
        var walk = VIFEModifiers.Walk(codes: self, stopped: manufacturerVIF)
        while let step = walk.next() {
            if !step.escaped && CompactProfile.isProfileCode(step.code) { dropped |= 1 << step.position }
        }
        return VIFECodes(indices.lazy.filter { dropped & (1 << $0) == 0 }.map { self[$0] })
    }
}

/// A record's VIFE modifiers as a sequence computed from its codes: iterating allocates nothing.
public struct VIFEModifiers: Sequence, Sendable {
    let codes: VIFECodes
    let manufacturerVIF: Bool

    public var isEmpty: Bool {
        var i = makeIterator()
        return i.next() == nil
    }

    public func makeIterator() -> Iterator { Iterator(walk: Walk(codes: codes, stopped: manufacturerVIF)) }

    public struct Iterator: IteratorProtocol {
        var walk: Walk
        public mutating func next() -> VIFEModifier? {
            guard let step = walk.next() else { return nil }
            return step.escaped ? VIFTable.combinableFC(step.code) : VIFTable.combinable(step.code)
        }
    }

    /// The walk over the codes that the parser used to do while reading them: each meaningful code with
    /// its position and whether an FCh escape precedes it.
    struct Walk {
        let codes: VIFECodes
        var stopped: Bool
        var i = 0

        init(codes: VIFECodes, stopped: Bool) {
            self.codes = codes
            self.stopped = stopped
        }

        mutating func next() -> (code: UInt8, position: Int, escaped: Bool)? {
            while !stopped && i < codes.count {
                let code = codes[i]
                i += 1
                if code == 0x7C {
                    // FCh escape: the next code is from Table 16. A trailing escape means nothing.
                    guard i < codes.count else { return nil }
                    let escaped = codes[i]
                    i += 1
                    return (escaped, i - 1, true)
                }
                // E111 1111: the rest is the manufacturer's.
                if code == 0x7F { stopped = true }
                return (code, i - 1, false)
            }
            return nil
        }
    }
}
