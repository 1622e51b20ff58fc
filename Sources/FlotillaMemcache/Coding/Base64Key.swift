import NIOCore

/// Base64 for binary meta-protocol keys (the `b` flag), standard alphabet with padding.
enum Base64Key {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    private static let decodeTable: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, byte) in alphabet.enumerated() { table[Int(byte)] = UInt8(index) }
        return table
    }()

    /// Decodes `bytes`; nil when they are not valid padded base64 or decode to nothing.
    static func decode(_ bytes: UnsafeRawBufferPointer) -> [UInt8]? {
        guard bytes.count > 0, bytes.count % 4 == 0 else { return nil }
        var output = [UInt8]()
        output.reserveCapacity(bytes.count / 4 * 3)
        var index = 0
        while index < bytes.count {
            let isLast = index + 4 == bytes.count
            var quad: (UInt32, Int) = (0, 0)
            var padding = 0
            for offset in 0..<4 {
                let byte = bytes[index + offset]
                if byte == UInt8(ascii: "=") {
                    guard isLast, offset >= 2 else { return nil }
                    padding += 1
                    quad.0 <<= 6
                    continue
                }
                guard padding == 0 else { return nil }
                let value = decodeTable[Int(byte)]
                guard value != 0xFF else { return nil }
                quad.0 = (quad.0 << 6) | UInt32(value)
                quad.1 += 1
            }
            output.append(UInt8(truncatingIfNeeded: quad.0 >> 16))
            if padding < 2 { output.append(UInt8(truncatingIfNeeded: quad.0 >> 8)) }
            if padding < 1 { output.append(UInt8(truncatingIfNeeded: quad.0)) }
            index += 4
        }
        return output.isEmpty ? nil : output
    }

    static func encode(_ bytes: ByteBufferView, into buffer: inout ByteBuffer) {
        let input = Array(bytes)
        var index = 0
        while index + 3 <= input.count {
            let chunk = UInt32(input[index]) << 16 | UInt32(input[index + 1]) << 8 | UInt32(input[index + 2])
            buffer.writeInteger(alphabet[Int(chunk >> 18 & 63)])
            buffer.writeInteger(alphabet[Int(chunk >> 12 & 63)])
            buffer.writeInteger(alphabet[Int(chunk >> 6 & 63)])
            buffer.writeInteger(alphabet[Int(chunk & 63)])
            index += 3
        }
        let remaining = input.count - index
        if remaining > 0 {
            var chunk = UInt32(input[index]) << 16
            if remaining == 2 { chunk |= UInt32(input[index + 1]) << 8 }
            buffer.writeInteger(alphabet[Int(chunk >> 18 & 63)])
            buffer.writeInteger(alphabet[Int(chunk >> 12 & 63)])
            buffer.writeInteger(remaining == 2 ? alphabet[Int(chunk >> 6 & 63)] : UInt8(ascii: "="))
            buffer.writeInteger(UInt8(ascii: "="))
        }
    }
}
