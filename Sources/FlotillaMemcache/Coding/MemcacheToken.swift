/// One space-separated token of a command line, as offsets into the line.
public struct MemcacheToken: Sendable, Hashable {
    public var start: Int
    public var end: Int

    public var count: Int { end - start }
}

/// Splits a command line the way memcached's `tokenize_command` does.
///
/// Only the space character separates tokens (tabs and control bytes are part of a token), runs
/// of spaces are skipped, and at most `limit - 1` tokens are produced; `hasRest` tells that the
/// line went on past them, which memcached treats as an extra token when it counts arguments.
struct MemcacheTokenizer {
    static let maxTokens = 24

    static func tokenize(
        _ line: UnsafeRawBufferPointer,
        from start: Int = 0,
        limit: Int = maxTokens,
        into tokens: inout [MemcacheToken]
    ) -> (hasRest: Bool, restStart: Int) {
        tokens.removeAll(keepingCapacity: true)
        var tokenStart = start
        var index = start
        let space = UInt8(ascii: " ")
        while index < line.count {
            if line[index] == space {
                if tokenStart != index {
                    tokens.append(MemcacheToken(start: tokenStart, end: index))
                    if tokens.count == limit - 1 {
                        let rest = index + 1
                        return (rest < line.count, rest)
                    }
                }
                tokenStart = index + 1
            }
            index += 1
        }
        if tokenStart != index {
            tokens.append(MemcacheToken(start: tokenStart, end: index))
        }
        return (false, line.count)
    }
}
