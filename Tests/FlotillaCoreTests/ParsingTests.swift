import FlotillaCore
import Testing

@Suite("Sizes, durations and addresses")
struct ParsingTests {
    @Test(arguments: [
        ("64MiB", 64 << 20), ("1MiB", 1 << 20), ("512KiB", 512 << 10), ("2GB", 2_000_000_000),
        ("1048576", 1_048_576), ("0", 0), ("10 MiB", 10 << 20), ("3K", 3 << 10),
    ])
    func byteSizes(text: String, bytes: Int) {
        #expect(ByteSize(parsing: text)?.bytes == bytes)
    }

    @Test(arguments: ["", "MiB", "-1MiB", "1.5MiB", "12XB", "99999999999999999999GiB"])
    func invalidByteSizes(text: String) {
        #expect(ByteSize(parsing: text) == nil)
    }

    @Test func byteSizeDescription() {
        #expect(ByteSize(bytes: 64 << 20).description == "64MiB")
        #expect(ByteSize(bytes: 1000).description == "1000B")
    }

    @Test func durations() {
        #expect(DurationText.parse("250ms") == .milliseconds(250))
        #expect(DurationText.parse("5s") == .seconds(5))
        #expect(DurationText.parse("1.5s") == .milliseconds(1500))
        #expect(DurationText.parse("800us") == .microseconds(800))
        #expect(DurationText.parse("2m") == .seconds(120))
        #expect(DurationText.parse("5") == nil)
        #expect(DurationText.parse("-1s") == nil)
        #expect(DurationText.parse("fast") == nil)
        #expect(DurationText.format(.milliseconds(250)) == "250ms")
        #expect(DurationText.format(.seconds(10)) == "10s")
    }

    @Test func hostPorts() {
        #expect(HostPort(parsing: "127.0.0.1:11211") == HostPort(host: "127.0.0.1", port: 11211))
        #expect(HostPort(parsing: "[::1]:0") == HostPort(host: "::1", port: 0))
        #expect(HostPort(parsing: "localhost:8080")?.description == "localhost:8080")
        #expect(HostPort(parsing: "[::1]:9")?.description == "[::1]:9")
        #expect(HostPort(parsing: "127.0.0.1") == nil)
        #expect(HostPort(parsing: ":80") == nil)
        #expect(HostPort(parsing: "h:65536") == nil)
        #expect(HostPort(parsing: "h:x") == nil)
    }
}
