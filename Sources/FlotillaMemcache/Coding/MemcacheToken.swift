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
        let space = UInt8(ascii: " ")
        let count = line.count
        var index = start
        while index < count {
            if line[index] == space {
                index += 1
                continue
            }
            // A token runs to the next space (found by memchr: keys are most of a line's bytes).
            let end = ByteScan.firstIndex(of: space, in: line, index..<count) ?? count
            tokens.append(MemcacheToken(start: index, end: end))
            if end < count, tokens.count == limit - 1 {
                let rest = end + 1
                return (rest < count, rest)
            }
            index = end
        }
        return (false, count)
    }
}
