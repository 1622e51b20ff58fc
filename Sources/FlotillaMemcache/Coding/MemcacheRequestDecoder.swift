import NIOCore

/// Frames and parses the memcached text and meta protocols, one request per call.
///
/// A single-step decoder: `decode(buffer:)` returns nil when it needs more bytes. It mirrors
/// memcached 1.6's framing rules so that malformed input is answered the way memcached answers
/// it: a line without a newline after 2048 bytes closes the connection unless it is a multi-get;
/// a storage command whose value is too large is answered and its data skipped as it arrives;
/// a data block that does not end in `\r\n` is refused and what follows is read as commands.
public struct MemcacheRequestDecoder {
    /// The limits the decoder enforces while it frames requests.
    public struct Configuration: Sendable {
        /// Largest item, key and value and per-item header included. Default 1 MiB.
        public var maxItemSize: Int
        /// Longest line of any command but get/gets (memcached's 2048 bytes).
        public var maxLineLength: Int
        /// Longest get/gets line, which memcached lets grow for multi-gets. Default 1 MiB.
        public var maxRetrievalLineLength: Int

        public init(maxItemSize: Int = 1 << 20, maxLineLength: Int = 2048, maxRetrievalLineLength: Int = 1 << 20) {
            self.maxItemSize = maxItemSize
            self.maxLineLength = maxLineLength
            self.maxRetrievalLineLength = maxRetrievalLineLength
        }

        /// Whether a value of `valueLength` bytes under a key of `keyLength` bytes fits an item.
        public func itemFits(keyLength: Int, valueLength: Int) -> Bool {
            ItemSizeLimit(maxItemSize: maxItemSize).fits(keyLength: keyLength, valueLength: valueLength)
        }
    }

    enum State {
        case line
        case swallowing(remaining: Int)
        case closed
    }

    public let configuration: Configuration
    var state: State = .line
    /// Bytes of the pending line already searched for a newline.
    var scanned = 0
    var tokens: [MemcacheToken] = []
    /// The connection's first byte was seen: a binary-protocol client is recognised by it alone.
    var sawFirstByte = false

    public init(configuration: Configuration = .init()) {
        self.configuration = configuration
        self.tokens.reserveCapacity(MemcacheTokenizer.maxTokens)
    }

    /// True when no request is partly received: the connection may close without cutting one.
    public var isIdle: Bool {
        if case .line = state { return scanned == 0 }
        return false
    }

    /// Decodes the next request from `buffer`, or returns nil when more bytes are needed.
    public mutating func decode(buffer: inout ByteBuffer) -> MemcacheRequest? {
        while true {
            switch state {
            case .closed:
                buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
                return nil
            case .swallowing(let remaining):
                let skipped = min(remaining, buffer.readableBytes)
                buffer.moveReaderIndex(forwardBy: skipped)
                guard skipped == remaining else {
                    state = .swallowing(remaining: remaining - skipped)
                    return nil
                }
                state = .line
            case .line:
                // memcached's binary protocol: a connection whose first byte is the magic 0x80
                // (memcached looks at the first byte only, as here). Flotilla speaks text and meta
                // only: it answers "unknown command" in the binary format once the 24-byte header
                // is in, and hangs up, rather than wait for a newline that never comes (a binary
                // client then waited for its timeout).
                // Looked at once per connection, not on every request.
                if !sawFirstByte, let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) {
                    if first == 0x80 {
                        guard buffer.readableBytes >= 24 else { return nil }
                        let opcode = buffer.getInteger(at: buffer.readerIndex + 1, as: UInt8.self)!
                        let opaque = buffer.getInteger(at: buffer.readerIndex + 12, as: UInt32.self)!
                        state = .closed
                        buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
                        return .binaryProtocol(opcode: opcode, opaque: opaque)
                    }
                    sawFirstByte = true
                }
                guard let newline = findNewline(in: buffer) else {
                    scanned = buffer.readableBytes
                    if let reason = lineLimitExceeded(buffer) {
                        state = .closed
                        scanned = 0
                        return .close(reason: reason)
                    }
                    return nil
                }
                scanned = newline
                switch parseLine(buffer: buffer, newline: newline) {
                case .request(let request):
                    buffer.moveReaderIndex(forwardBy: newline + 1)
                    scanned = 0
                    return request
                case .swallow(let count, let request):
                    buffer.moveReaderIndex(forwardBy: newline + 1)
                    scanned = 0
                    state = .swallowing(remaining: count)
                    return request
                case .needsData(let dataLength, let build):
                    let total = newline + 1 + dataLength + 2
                    guard buffer.readableBytes >= total else { return nil }
                    let dataStart = buffer.readerIndex + newline + 1
                    let data = buffer.getSlice(at: dataStart, length: dataLength)!
                    let terminated =
                        buffer.getInteger(at: dataStart + dataLength, as: UInt16.self) == 0x0D0A
                    buffer.moveReaderIndex(forwardBy: total)
                    scanned = 0
                    return build(data, terminated)
                }
            }
        }
    }

    private func findNewline(in buffer: ByteBuffer) -> Int? {
        buffer.withUnsafeReadableBytes { bytes in
            ByteScan.firstIndex(of: UInt8(ascii: "\n"), in: bytes, scanned..<max(scanned, bytes.count))
        }
    }

    /// memcached keeps reading a long line only when it is a get or gets (a large multi-get).
    private func lineLimitExceeded(_ buffer: ByteBuffer) -> MemcacheRequest.CloseReason? {
        let count = buffer.readableBytes
        guard count > configuration.maxLineLength else { return nil }
        let isRetrieval = buffer.withUnsafeReadableBytes { bytes -> Bool in
            var index = 0
            while index < bytes.count, bytes[index] == UInt8(ascii: " ") { index += 1 }
            guard index <= 100 else { return false }
            let rest = UnsafeRawBufferPointer(rebasing: bytes[index...])
            return rest.starts(with: "get ".utf8) || rest.starts(with: "gets ".utf8)
        }
        if !isRetrieval || count > configuration.maxRetrievalLineLength {
            return .lineTooLong
        }
        return nil
    }
}

extension MemcacheRequestDecoder {
    enum LineOutcome {
        case request(MemcacheRequest)
        /// Answer with the request, then skip `count` bytes of data.
        case swallow(count: Int, MemcacheRequest)
        /// The command carries a data block of `dataLength` bytes plus `\r\n`.
        case needsData(dataLength: Int, build: (ByteBuffer, Bool) -> MemcacheRequest)
    }

    /// The current line, with helpers to compare and slice its tokens.
    struct Line {
        let bytes: UnsafeRawBufferPointer
        let buffer: ByteBuffer
        /// Absolute index of the line's first byte in `buffer`.
        let base: Int

        func slice(_ token: MemcacheToken) -> ByteBuffer {
            buffer.getSlice(at: base + token.start, length: token.count)!
        }

        func string(_ token: MemcacheToken) -> String {
            String(decoding: UnsafeRawBufferPointer(rebasing: bytes[token.start..<token.end]), as: UTF8.self)
        }

        func raw(_ token: MemcacheToken) -> UnsafeRawBufferPointer {
            UnsafeRawBufferPointer(rebasing: bytes[token.start..<token.end])
        }

        func raw(_ token: MemcacheToken, droppingFirst count: Int) -> UnsafeRawBufferPointer {
            UnsafeRawBufferPointer(rebasing: bytes[(token.start + count)..<token.end])
        }

        func equals(_ token: MemcacheToken, _ literal: StaticString) -> Bool {
            ByteScan.equals(bytes, token.start..<token.end, literal)
        }

        func byte(_ token: MemcacheToken, _ offset: Int) -> UInt8 {
            offset < token.count ? bytes[token.start + offset] : 0
        }
    }

    private mutating func parseLine(buffer: ByteBuffer, newline: Int) -> LineOutcome {
        // Taken out of `self`, so that the tokenizer refills this storage rather than a copy of it.
        var tokens = self.tokens
        self.tokens = []
        defer { self.tokens = tokens }
        return buffer.withUnsafeReadableBytes { all -> LineOutcome in
            var length = newline
            if length > 1, all[length - 1] == UInt8(ascii: "\r") { length -= 1 }
            // memcached handles the line as a C string: it ends at the first NUL byte.
            if let nul = ByteScan.firstIndex(of: 0, in: all, 0..<length) { length = nul }
            let line = Line(
                bytes: UnsafeRawBufferPointer(rebasing: all[..<length]),
                buffer: buffer,
                base: buffer.readerIndex
            )
            let (hasRest, restStart) = MemcacheTokenizer.tokenize(line.bytes, into: &tokens)
            return self.parseCommand(line, tokens: tokens, hasRest: hasRest, restStart: restStart)
        }
    }
}
