/// The format of a full frame (its DIF/DIFE/VIF/VIFE bytes in order) and the expansion of a compact
/// frame's values back into a full record stream (EN 13757-3:2018 Annex, compact profile; OMS Vol. 2).
/// The format signature is the EN 13757-4 CRC of these bytes.
enum CompactFormat {
    /// The DIB/VIB bytes of every record, data left out. Nil when the records do not scan (the record
    /// parser then reports why) or when they end in manufacturer data, which a compact frame cannot carry.
    static func extract(_ d: ArraySlice<UInt8>) -> [UInt8]? {
        var out: [UInt8] = []
        var i = d.startIndex
        while i < d.endIndex {
            let dif = d[i]
            if dif == 0x2F { i += 1; continue }
            guard dif & 0x0F != 0x0F else { return nil }
            guard let header = headerEnd(d, i) else { return nil }
            out.append(contentsOf: d[i..<header])
            guard let size = dataSize(dif: dif, d, header) else { return nil }
            i = header + size
        }
        return i == d.endIndex ? out : nil
    }

    /// Interleaves `format` headers with `values`. Nil when they do not fit together exactly.
    static func expand(format: [UInt8], values: ArraySlice<UInt8>) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(format.count + values.count)
        let f = format[...]
        var i = f.startIndex
        var v = values.startIndex
        while i < f.endIndex {
            guard let header = headerEnd(f, i) else { return nil }
            out.append(contentsOf: f[i..<header])
            guard let size = dataSize(dif: f[i], values, v), v + size <= values.endIndex else { return nil }
            out.append(contentsOf: values[v..<(v + size)])
            v += size
            i = header
        }
        // 2Fh after the values is idle filler (an encrypted compact frame is padded to whole AES blocks).
        return values[v...].allSatisfy({ $0 == 0x2F }) ? out : nil
    }

    /// Index after the DIB and VIB that start at `i`.
    static func headerEnd(_ d: ArraySlice<UInt8>, _ start: Int) -> Int? {
        var i = start
        guard i < d.endIndex else { return nil }
        var ext = d[i] & 0x80 != 0
        i += 1
        var count = 0
        while ext {
            guard i < d.endIndex, count < RecordParser.maximumDIFEs else { return nil }
            ext = d[i] & 0x80 != 0
            i += 1
            count += 1
        }
        guard i < d.endIndex else { return nil }
        let vif = d[i]
        i += 1
        if vif & 0x7F == 0x7C {
            guard i < d.endIndex else { return nil }
            let n = Int(d[i])
            i += 1 + n
            guard i <= d.endIndex else { return nil }
        }
        ext = vif & 0x80 != 0
        count = 0
        while ext {
            guard i < d.endIndex, count < RecordParser.maximumVIFEs + 1 else { return nil }
            ext = d[i] & 0x80 != 0
            i += 1
            count += 1
        }
        return i
    }

    /// Bytes of data after the header, for variable length including the LVAR byte at `at`.
    static func dataSize(dif: UInt8, _ d: ArraySlice<UInt8>, _ at: Int) -> Int? {
        let field = DataField(rawValue: dif & 0x0F)!
        if let size = field.size { return size }
        guard field == .variableLength, at < d.endIndex else { return nil }
        let lvar = d[at]
        switch lvar {
        case 0x00...0xBF: return 1 + Int(lvar)
        case 0xC0...0xC9: return 1 + Int(lvar - 0xC0)
        case 0xD0...0xD9: return 1 + Int(lvar - 0xD0)
        case 0xE0...0xEF: return 1 + Int(lvar - 0xE0)
        case 0xF0...0xF4: return 1 + 4 * Int(lvar - 0xEC)
        case 0xF5: return 1 + 48
        case 0xF6: return 1 + 64
        default: return nil
        }
    }
}
