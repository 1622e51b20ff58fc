import FlotillaCore
import Testing

@testable import FlotillaMemcache

@Suite("Memcache tokenizer")
struct TokenizerTests {
    /// The outcome of one tokenization, comparable as a whole.
    struct Outcome: Equatable, CustomStringConvertible {
        var tokens: [Range<Int>]
        var hasRest: Bool
        var restStart: Int

        var description: String { "tokens \(tokens), hasRest \(hasRest), restStart \(restStart)" }
    }

    typealias Tokenizer = (UnsafeRawBufferPointer, Int, Int, inout [MemcacheToken]) -> (hasRest: Bool, restStart: Int)

    /// The tokenizer under test, on `bytes[window]` seen as a line of its own (as the request decoder hands it a
    /// line cut out of its buffer), with `tokens` holding stale entries beforehand.
    static func tokenize(_ bytes: [UInt8], window: Range<Int>? = nil, from start: Int = 0, limit: Int = 24) -> Outcome {
        run(MemcacheTokenizer.tokenize, bytes, window: window, from: start, limit: limit)
    }

    /// The same through the reference tokenizer.
    static func reference(_ bytes: [UInt8], window: Range<Int>? = nil, from start: Int = 0, limit: Int = 24) -> Outcome
    {
        run(ReferenceTokenizer.tokenize, bytes, window: window, from: start, limit: limit)
    }

    private static func run(
        _ tokenizer: Tokenizer,
        _ bytes: [UInt8],
        window: Range<Int>?,
        from start: Int,
        limit: Int
    ) -> Outcome {
        let window = window ?? 0..<bytes.count
        var tokens = [MemcacheToken(start: 99, end: 100), MemcacheToken(start: 7, end: 8)]
        let result = bytes.withUnsafeBytes { all in
            tokenizer(UnsafeRawBufferPointer(rebasing: all[window]), start, limit, &tokens)
        }
        return Outcome(tokens: tokens.map { $0.start..<$0.end }, hasRest: result.hasRest, restStart: result.restStart)
    }

    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    /// A random line of bytes from a small alphabet, with runs of spaces.
    private static func randomLine(_ random: inout SplitMix64) -> [UInt8] {
        let alphabet: [UInt8] = [
            UInt8(ascii: " "), UInt8(ascii: " "), UInt8(ascii: "a"), UInt8(ascii: "b"), UInt8(ascii: "\t"), 0x00,
            UInt8(ascii: "\r"), 0xFF,
        ]
        let length = Int(random.next() % 81)
        var line: [UInt8] = []
        while line.count < length {
            if random.next() % 6 == 0 {
                // A run of spaces.
                let run = Int(random.next() % 6) + 2
                line.append(contentsOf: repeatElement(UInt8(ascii: " "), count: min(run, length - line.count)))
            } else {
                line.append(alphabet[Int(random.next() % UInt64(alphabet.count))])
            }
        }
        return line
    }

    @Test(arguments: [1, 2, 3, 24, 0xF107_111A] as [UInt64])
    func matchesTheByteByByteTokenizer(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        var mismatches = 0
        for _ in 0..<1_500 where mismatches < 10 {
            let line = Self.randomLine(&random)
            // Sometimes inside a larger buffer with spaces and letters after it, which the line must not see.
            let trailing: [UInt8] = random.next() % 3 == 0 ? Self.bytes("  x y  ") : []
            let bytes = line + trailing
            let window = 0..<line.count
            let start = random.next() % 4 == 0 ? Int(random.next() % UInt64(line.count + 1)) : 0
            for limit in 2...24 {
                let expected = Self.reference(bytes, window: window, from: start, limit: limit)
                let actual = Self.tokenize(bytes, window: window, from: start, limit: limit)
                if actual != expected {
                    mismatches += 1
                    Issue.record(
                        "line \(line) from \(start) limit \(limit): expected \(expected), got \(actual)"
                    )
                }
            }
        }
    }

    @Test func manyTokensStopAtTheLimit() {
        let line = Self.bytes((0..<30).map { "t\($0)" }.joined(separator: " "))
        let outcome = Self.tokenize(line)
        #expect(outcome == Self.reference(line))
        #expect(outcome.tokens.count == 23)
        #expect(outcome.hasRest)
        #expect(outcome.restStart == Self.bytes((0..<23).map { "t\($0) " }.joined()).count)
        // Exactly 23 tokens and nothing after them.
        let exact = Self.bytes((0..<23).map { "t\($0)" }.joined(separator: " "))
        let whole = Self.tokenize(exact)
        #expect(whole.tokens.count == 23)
        #expect(!whole.hasRest && whole.restStart == exact.count)
        #expect(whole == Self.reference(exact))
    }

    @Test(arguments: [
        // Leading, trailing and repeated spaces are skipped.
        ("  get  a  ", 0, 24, Outcome(tokens: [2..<5, 7..<8], hasRest: false, restStart: 10)),
        ("get a", 0, 24, Outcome(tokens: [0..<3, 4..<5], hasRest: false, restStart: 5)),
        ("get a ", 0, 24, Outcome(tokens: [0..<3, 4..<5], hasRest: false, restStart: 6)),
        ("     ", 0, 24, Outcome(tokens: [], hasRest: false, restStart: 5)),
        (" ", 0, 24, Outcome(tokens: [], hasRest: false, restStart: 1)),
        ("", 0, 24, Outcome(tokens: [], hasRest: false, restStart: 0)),
        ("x", 0, 24, Outcome(tokens: [0..<1], hasRest: false, restStart: 1)),
        // Only the space separates: tabs, NUL and CR belong to tokens.
        ("a\tb c\0d \r", 0, 24, Outcome(tokens: [0..<3, 4..<7, 8..<9], hasRest: false, restStart: 9)),
        // Exactly limit - 1 tokens, then spaces: the rest starts after the first of them.
        ("a b   ", 0, 3, Outcome(tokens: [0..<1, 2..<3], hasRest: true, restStart: 4)),
        ("a b ", 0, 3, Outcome(tokens: [0..<1, 2..<3], hasRest: false, restStart: 4)),
        ("a b", 0, 3, Outcome(tokens: [0..<1, 2..<3], hasRest: false, restStart: 3)),
        ("a b c d", 0, 3, Outcome(tokens: [0..<1, 2..<3], hasRest: true, restStart: 4)),
        ("a  b  c", 0, 3, Outcome(tokens: [0..<1, 3..<4], hasRest: true, restStart: 5)),
        ("a b", 0, 2, Outcome(tokens: [0..<1], hasRest: true, restStart: 2)),
        ("ab  ", 0, 2, Outcome(tokens: [0..<2], hasRest: true, restStart: 3)),
        ("ab", 0, 2, Outcome(tokens: [0..<2], hasRest: false, restStart: 2)),
        // A start offset: offsets stay those of the line.
        ("get key", 4, 24, Outcome(tokens: [4..<7], hasRest: false, restStart: 7)),
        ("xx  a b", 2, 24, Outcome(tokens: [4..<5, 6..<7], hasRest: false, restStart: 7)),
        ("abc def", 1, 24, Outcome(tokens: [1..<3, 4..<7], hasRest: false, restStart: 7)),
        ("get a b c", 4, 3, Outcome(tokens: [4..<5, 6..<7], hasRest: true, restStart: 8)),
        ("get a ", 6, 24, Outcome(tokens: [], hasRest: false, restStart: 6)),
        ("get a", 5, 24, Outcome(tokens: [], hasRest: false, restStart: 5)),
    ])
    func handWrittenLines(text: String, start: Int, limit: Int, expected: Outcome) {
        let line = Self.bytes(text)
        #expect(Self.reference(line, from: start, limit: limit) == expected, "reference")
        #expect(Self.tokenize(line, from: start, limit: limit) == expected)
        // The same line cut out of a larger buffer that goes on with more tokens.
        let longer = line + Self.bytes(" tail more  ")
        #expect(Self.tokenize(longer, window: 0..<line.count, from: start, limit: limit) == expected, "in a buffer")
    }

    @Test func anEmptyBufferWithoutStorage() {
        var tokens = [MemcacheToken(start: 1, end: 2)]
        let result = MemcacheTokenizer.tokenize(UnsafeRawBufferPointer(start: nil, count: 0), into: &tokens)
        #expect(tokens.isEmpty)
        #expect(result.hasRest == false && result.restStart == 0)
    }
}

/// The tokenizer as it was before it searched with memchr: byte by byte, the behavior to keep.
private enum ReferenceTokenizer {
    static func tokenize(
        _ line: UnsafeRawBufferPointer,
        from start: Int = 0,
        limit: Int = MemcacheTokenizer.maxTokens,
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
