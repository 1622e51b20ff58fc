import NIOCore

/// Base64 for binary meta-protocol keys (the `b` flag), standard alphabet with padding.
public enum Base64Key {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// Alphabet values, with `=` as 0 and 0x80 for bytes outside the alphabet.
    private static let decodeTable: [UInt8] = {
        var table = [UInt8](repeating: 0x80, count: 256)
        for (index, byte) in alphabet.enumerated() { table[Int(byte)] = UInt8(index) }
        table[Int(UInt8(ascii: "="))] = 0
        return table
    }()

    /// Decodes `bytes` as memcached's `base64_decode` does: bytes outside the alphabet are
    /// skipped, the remaining count must be a multiple of four, decoding stops after a padded
    /// group. Nil where memcached's returns 0 (nothing decoded).
    static func decode(_ bytes: UnsafeRawBufferPointer) -> [UInt8]? {
        let count = bytes.reduce(0) { $0 + (decodeTable[Int($1)] != 0x80 ? 1 : 0) }
        guard count > 0, count % 4 == 0 else { return nil }
        var output = [UInt8]()
        output.reserveCapacity(count / 4 * 3)
        var block: (UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0)
        var filled = 0
        var padding = 0
        for byte in bytes {
            let value = decodeTable[Int(byte)]
            if value == 0x80 { continue }
            if byte == UInt8(ascii: "=") { padding += 1 }
            switch filled {
            case 0: block.0 = value
            case 1: block.1 = value
            case 2: block.2 = value
            default: block.3 = value
            }
            filled += 1
            guard filled == 4 else { continue }
            output.append(block.0 << 2 | block.1 >> 4)
            output.append(block.1 << 4 | block.2 >> 2)
            output.append(block.2 << 6 | block.3)
            filled = 0
            if padding > 0 {
                guard padding <= 2 else { return nil }
                output.removeLast(padding)
                break
            }
        }
        return output.isEmpty ? nil : output
    }

    public static func encode(_ bytes: some Collection<UInt8>, into buffer: inout ByteBuffer) {
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
