import NIOCore
import Testing

@testable import FlotillaMemcache

@Suite("Reply writers")
struct ReplyWriterTests {
    static func block(key: String, value: [UInt8], flags: UInt32, cas: UInt64?, into buffer: inout ByteBuffer) {
        Array(key.utf8).withUnsafeBytes { keyBytes in
            value.withUnsafeBytes { valueBytes in
                buffer.writeValueBlock(key: keyBytes, value: valueBytes, flags: flags, cas: cas)
            }
        }
    }

    @Test(
        "a hit's block is the VALUE line, the value and CRLF, at the field's extremes",
        arguments: [
            ("k", 0, 0, nil),
            ("key:1", 42, 5, UInt64(7)),
            (String(repeating: "k", count: 250), UInt32.max, 1000, UInt64.max),
        ] as [(String, UInt32, Int, UInt64?)]
    )
    func valueBlock(key: String, flags: UInt32, length: Int, cas: UInt64?) {
        let value = (0..<length).map { UInt8(truncatingIfNeeded: $0) }
        var buffer = ByteBuffer(string: "before ")
        Self.block(key: key, value: value, flags: flags, cas: cas, into: &buffer)
        let casField = cas.map { " \($0)" } ?? ""
        var expected = ByteBuffer(string: "before VALUE \(key) \(flags) \(length)\(casField)\r\n")
        expected.writeBytes(value)
        expected.writeString("\r\n")
        #expect(buffer == expected)
    }

    @Test("the header alone, from a key buffer, is the same line")
    func valueHeader() {
        var buffer = ByteBuffer()
        buffer.writeValueHeader(key: ByteBuffer(string: "greeting"), flags: 3, length: 5, cas: 99)
        #expect(String(buffer: buffer) == "VALUE greeting 3 5 99\r\n")
    }

    @Test("blocks written one after another do not overlap, whatever the buffer's capacity")
    func manyBlocks() {
        var buffer = ByteBuffer()
        var expected = ""
        for n in 0..<200 {
            let value = Array(repeating: UInt8(ascii: "v"), count: n * 7)
            Self.block(key: "key\(n)", value: value, flags: UInt32(n), cas: nil, into: &buffer)
            expected += "VALUE key\(n) \(n) \(n * 7)\r\n" + String(repeating: "v", count: n * 7) + "\r\n"
        }
        #expect(String(buffer: buffer) == expected)
    }
}
