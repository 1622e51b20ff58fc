import FlotillaCore
import Foundation

/// A seeded, deterministic generator of memcached 1.6 command batches for differential testing.
///
/// It covers the text protocol (retrieval, storage, arithmetic, touch, delete, flush_all, version, verbosity, plain
/// stats, quit) and the meta protocol (mg, ms, md, ma, mn, me and their flags), plus malformed input.
///
/// Two rules keep the byte stream framed identically on both servers even after malformed input, established
/// empirically against memcached 1.6:
/// - memcached never resynchronises on "\r\n" inside a data block: it reads exactly `<bytes>+2` bytes, answers
///   `CLIENT_ERROR bad data chunk` if they do not end in "\r\n", and parses whatever follows as new commands; after a
///   storage command line it rejects, it parses the would-be data block as a command line. So every data block that
///   might be re-read as a command line starts with `x`, `z` or a digit (no memcached command does), is short, and a
///   block shorter than declared is always followed by enough filler that the sentinel `mn` is never swallowed.
/// - memcached closes the connection when it has buffered more than 2048 bytes of a line without a newline, unless
///   the line is a `get`/`gets`; whether that happens depends on how the bytes were split, so no other command line
///   is ever longer than 2048 bytes.
///
/// Two memcached 1.6.18 bugs would make even two memcached instances disagree, so the generator steers clear:
/// - incr/decr/ma on a stored number of 2^63 or more scans for a '-' past the end of the item data (the data is not
///   NUL-terminated), so the result depends on leftover memory. Numbers on the arithmetic keys therefore stay far
///   below 2^63 and wrap-around is exercised by `wrapScenario()` on a private key, where the large operand is always
///   the delta (a NUL-terminated token) and a large result is deleted before anything does arithmetic on it.
/// - a `get` with a key over 250 bytes discards the replies of earlier pipelined commands not yet written out, so
///   over-long keys go to every command but get.
///
/// A few deterministic memcached quirks where flotilla is arguably right are avoided too, so that they do not mask
/// other differences once reported: `k` on keys also addressed in base64 (`metaGet`), base64 with stray characters
/// (`badBase64`) and `T` on `ma` (`metaArithmetic`).
///
/// Timing never decides a result: expiry times are 0, already expired (negative, or an absolute time in the past),
/// or far in the future (3600 s and more), and recache thresholds are far from every TTL in use.
struct CommandGenerator {
    /// How a CAS token in a command is chosen; resolved per server because each server numbers CAS on its own.
    enum CasChoice: Sendable, Equatable {
        /// The CAS value this server last reported for the key (a stale one if the key changed since).
        case current
        /// One less than the reported value: older than the item's CAS, for invalidation (`I`) semantics.
        case older
        /// A value far beyond anything either server will have issued.
        case bogus
    }

    /// A piece of a command: literal bytes or a CAS token filled in per server.
    enum Segment: Sendable, Equatable {
        case bytes([UInt8])
        case cas(key: Int, choice: CasChoice)
    }

    /// One generated command and what the driver needs to know to keep framing.
    struct Command: Sendable {
        var segments: [Segment]
        /// How many `MN` lines memcached answers to this command (only `mn` itself produces one).
        var expectedMN = 0
        /// `quit`: both servers must close the connection; it is always the last command of its batch.
        var closesConnection = false
        /// A `mg <key> c` whose reply records this key's CAS for later `cas`/`C` tokens; last in its batch.
        var fetchesCasOfKey: Int?
    }

    /// One key of the pool, known by its text form (if it has one) and its base64 form for the `b` flag.
    struct PoolKey {
        var text: String?
        var base64: String
    }

    /// How a batch's bytes are cut into `send` calls.
    struct ChunkPlan {
        var sizes: [Int]
        var pausesMicroseconds: [UInt32]
    }

    private var random: SplitMix64
    let keys: [PoolKey]

    init(seed: UInt64) {
        random = SplitMix64(seed: seed)
        keys = Self.makeKeyPool()
    }

    static func makeKeyPool() -> [PoolKey] {
        var binary180 = SplitMix64(seed: 180)
        let binaryKey = (0..<180).map { _ in UInt8.random(in: 0...255, using: &binary180) }
        let texts: [String] = [
            "key", "foo", "bar", "n1", "n2", "n3", "counter", "a", "k:with:colons", "UPPER_case-1",
            String(repeating: "x", count: 250), String(repeating: "y", count: 249) + "z",
            "s" + String(repeating: "q", count: 99), "key2", "zz", "caf\u{e9}", "k19",
        ]
        var pool = texts.map { PoolKey(text: $0, base64: Data($0.utf8).base64EncodedString()) }
        // Keys only reachable through base64: binary bytes, an embedded space, and a 240-character encoding.
        for bytes in [[0, 1, 2, 255], Array("a b".utf8), binaryKey] as [[UInt8]] {
            pool.append(PoolKey(text: nil, base64: Data(bytes).base64EncodedString()))
        }
        return pool
    }

    // MARK: Random helpers

    mutating func chance(_ probability: Double) -> Bool {
        Double.random(in: 0..<1, using: &random) < probability
    }

    mutating func int(_ range: ClosedRange<Int>) -> Int {
        Int.random(in: range, using: &random)
    }

    mutating func pick<T>(_ items: [T]) -> T {
        items[Int.random(in: 0..<items.count, using: &random)]
    }

    /// Picks an index from weights.
    mutating func weighted(_ weights: [Double]) -> Int {
        let total = weights.reduce(0, +)
        var roll = Double.random(in: 0..<total, using: &random)
        for (index, weight) in weights.enumerated() {
            if roll < weight { return index }
            roll -= weight
        }
        return weights.count - 1
    }

    static let letters = Array("abcdefghijklmnopqrstuvwxyz0123456789")
    static let safeFirst = Array("xz0123456789")

    /// A value that is harmless if a server re-reads it as a command line: it starts with `x`, `z` or a digit
    /// and holds only lowercase letters and digits, so it can never contain "MN", "\r\n" or a space.
    mutating func safeValue(length: Int) -> String {
        guard length > 0 else { return "" }
        var characters = [pick(Self.safeFirst)]
        for _ in 1..<length { characters.append(pick(Self.letters)) }
        return String(characters)
    }

    /// Values for storage: mostly short, sometimes numeric (for incr/decr), occasionally up to 2 KB.
    ///
    /// A key that arithmetic may touch only gets numbers below 2^62 (see the type's documentation).
    mutating func value(forKey index: Int) -> String {
        switch weighted([60, 25, 5]) {
        case 0: return safeValue(length: int(0...30))
        case 1:
            let small = ["0", "1", "7", "99", "100", "1000", "00012", "9999999999", "4611686018427387903"]
            let large = ["18446744073709551615", "18446744073709551600", "9223372036854775807", "4294967296"]
            return pick(Self.numericKeys.contains(index) ? small : small + large)
        default: return safeValue(length: int(100...2_000))
        }
    }

    /// Deltas for arithmetic on the shared keys: small enough that 10,000 of them cannot lift a number below 2^62
    /// to 2^63.
    mutating func smallDelta() -> String {
        pick(["0", "1", "1", "5", "1000", "1099511627776"])
    }

    mutating func opaque() -> String {
        String((0..<int(1...12)).map { _ in pick(Self.letters) })
    }

    mutating func textKey() -> (index: Int, text: String) {
        // Bias towards a few hot keys so that hits, CAS conflicts and arithmetic on numbers all happen.
        let hot = [0, 1, 3, 4, 5, 6]
        let index = chance(0.5) ? pick(hot) : int(0...(keys.count - 1))
        if let text = keys[index].text { return (index, text) }
        return (0, keys[0].text!)
    }

    /// Keys that meta commands always address by their text form (`foo`, `bar`, `a`, `key2`).
    static let textOnlyMetaKeys: Set<Int> = [1, 2, 7, 13]

    /// A key for a meta command: its text form, or its base64 form with the `b` flag.
    mutating func metaKey() -> (index: Int, token: String, base64: Bool) {
        let index = chance(0.5) ? pick([0, 1, 3, 4, 5, 17, 18]) : int(0...(keys.count - 1))
        let key = keys[index]
        if let text = key.text, Self.textOnlyMetaKeys.contains(index) || chance(0.7) { return (index, text, false) }
        return (index, key.base64, true)
    }

    /// The pool indices of the keys that arithmetic may touch: `n1`, `n2`, `n3`, `counter`.
    ///
    /// memcached either rewrites a number in place after incr/decr/ma (padding it with trailing spaces, keeping the
    /// item's stale, win-token and fetched flags) or replaces the item (dropping them), and which one depends on
    /// internal reference counts, so two memcached instances differ. The padding is normalized away in replies, but
    /// appending to a padded number would bake it into the data, so arithmetic and append/prepend never share a
    /// key; and these keys are never invalidated (`I`) nor handed a recache token (`N`/`R` on mg).
    static let numericKeys = [3, 4, 5, 6]

    mutating func numericKey() -> String {
        keys[pick(Self.numericKeys)].text!
    }

    /// The index of a text key's pool entry (the arithmetic keys are the ones that matter).
    func index(ofText text: String) -> Int {
        keys.firstIndex { $0.text == text } ?? 0
    }

    /// A text key for append/prepend: any key but the arithmetic ones.
    mutating func concatenationKey() -> String {
        for _ in 0..<100 {
            let key = textKey()
            if !Self.numericKeys.contains(key.index) { return key.text }
        }
        return "key"
    }

    mutating func exptime() -> String {
        pick(["0", "0", "0", "3600", "7200", "-1", "2592001", "100000000"])
    }

    mutating func clientFlags() -> String {
        pick(["0", "0", "1", "123", "65535", "4294967295"])
    }

    mutating func lineEnd() -> String {
        // memcached accepts a bare "\n" as the end of a command line.
        chance(0.08) ? "\n" : "\r\n"
    }

    mutating func noreply() -> Bool {
        chance(0.15)
    }

    // MARK: Batches

    /// The next batch of 1...20 commands (now and then a deep pipeline of 100...300). A `quit` or a CAS fetch,
    /// when drawn, ends the batch.
    mutating func nextBatch() -> [Command] {
        if chance(0.03) { return [casFetch()] }
        var batch: [Command] = []
        let count = chance(0.01) ? int(100...300) : int(1...20)
        for _ in 0..<count {
            if chance(0.002) {
                batch.append(Command(segments: [.bytes(Array("quit\r\n".utf8))], closesConnection: true))
                break
            }
            batch.append(nextCommand())
        }
        return batch
    }

    /// How to cut a batch of `length` bytes into sends: whole, byte by byte, or at random boundaries.
    ///
    /// The plan draws from its own generator, seeded from the main one, so that the command sequence does not
    /// depend on `length` (which varies with the CAS values each server hands out).
    mutating func chunkPlan(length: Int) -> ChunkPlan {
        var planRandom = SplitMix64(seed: random.next())
        swap(&random, &planRandom)
        defer { swap(&random, &planRandom) }
        var sizes: [Int] = []
        switch weighted([30, 15, 55]) {
        case 0:
            sizes = [length]
        case 1 where length <= 600:
            sizes = Array(repeating: 1, count: length)
        default:
            var covered = 0
            while covered < length {
                let size =
                    switch weighted([40, 40, 20]) {
                    case 0: int(1...3)
                    case 1: int(4...64)
                    default: int(65...1_024)
                    }
                sizes.append(size)
                covered += size
            }
        }
        // A few pauses make sure the server really sees separate reads, not one coalesced buffer.
        let pauses = sizes.map { _ in chance(0.05) ? UInt32(int(50...400)) : 0 }
        return ChunkPlan(sizes: sizes, pausesMicroseconds: pauses)
    }

    func text(_ string: String) -> Command {
        Command(segments: [.bytes(Array(string.utf8))])
    }

    mutating func casFetch() -> Command {
        // Hot keys, so that the recorded CAS is likely to be used while still current.
        let index = pick([0, 1, 3, 4, 6])
        return Command(segments: [.bytes(Array("mg \(keys[index].text!) c\r\n".utf8))], fetchesCasOfKey: index)
    }

    mutating func nextCommand() -> Command {
        let weights: [Double] = [
            8, 5, 3, 3,  // get gets gat gats
            10, 3, 3, 3, 3, 4,  // set add replace append prepend cas
            4, 5, 4, 3,  // delete incr decr touch
            0.25, 0.5, 0.5, 0.3,  // flush_all version verbosity stats
            10, 8, 4, 5, 1, 1,  // mg ms md ma mn me
            3,  // `mg <key> c` mid-batch: compared like any command (CAS is recorded only from `casFetch()`)
            7,  // malformed
            0.03,  // value over the item size limit
            0.5,  // 64-bit wrap-around on a private key
            0.3,  // a get/gets line longer than memcached's 2048-byte line buffer
        ]
        switch weighted(weights) {
        case 0: return retrieval("get")
        case 1: return retrieval("gets")
        case 2: return getAndTouch("gat")
        case 3: return getAndTouch("gats")
        case 4: return storage("set")
        case 5: return storage("add")
        case 6: return storage("replace")
        case 7: return storage("append")
        case 8: return storage("prepend")
        case 9: return casCommand()
        case 10: return delete()
        case 11: return arithmetic("incr")
        case 12: return arithmetic("decr")
        case 13: return touch()
        case 14: return text(pick(["flush_all", "flush_all 0", "flush_all noreply", "flush_all 0 noreply"]) + "\r\n")
        case 15: return text("version" + lineEnd())
        case 16: return text(pick(["verbosity 0", "verbosity 1", "verbosity 0 noreply"]) + lineEnd())
        case 17: return text("stats\r\n")
        case 18: return metaGet()
        case 19: return metaSet()
        case 20: return metaDelete()
        case 21: return metaArithmetic()
        case 22: return Command(segments: [.bytes(Array("mn\r\n".utf8))], expectedMN: 1)
        case 23: return metaDebug()
        case 24:
            let key = metaKey()
            return text("mg \(key.token) c\(key.base64 ? " b" : "")\r\n")
        case 25: return malformed()
        case 26: return tooLarge()
        case 27: return wrapScenario()
        default: return hugeMultiget()
        }
    }

    // MARK: Text protocol

    mutating func retrieval(_ name: String) -> Command {
        let count = weighted([50, 30, 15, 5]) + 1
        var line = name
        for _ in 0..<(count + (chance(0.05) ? 4 : 0)) { line += " " + textKey().text }
        return text(line + lineEnd())
    }

    /// memcached lets only `get`/`gets` lines grow past its 2048-byte line buffer; these are 3...6 KB.
    mutating func hugeMultiget() -> Command {
        var line = pick(["get", "gets"])
        for _ in 0..<int(12...24) {
            line += " " + keys[pick([10, 11, 12, 0, 1, 3, 6])].text!
        }
        return text(line + "\r\n")
    }

    mutating func getAndTouch(_ name: String) -> Command {
        var line = "\(name) \(exptime())"
        // gat is not exempt from memcached's 2048-byte line limit, so stay well under it.
        for _ in 0..<(weighted([50, 30, 20]) + 1) {
            let key = textKey().text
            if line.utf8.count + key.utf8.count > 1_500 { break }
            line += " " + key
        }
        return text(line + lineEnd())
    }

    mutating func storage(_ name: String) -> Command {
        let key: String
        switch name {
        case "append", "prepend": key = concatenationKey()
        case "set": key = chance(0.3) ? numericKey() : textKey().text
        default: key = textKey().text
        }
        let data = value(forKey: index(ofText: key))
        let reply = noreply() ? " noreply" : ""
        let line = "\(name) \(key) \(clientFlags()) \(exptime()) \(data.utf8.count)\(reply)\(lineEnd())"
        return text(line + data + "\r\n")
    }

    mutating func casCommand() -> Command {
        let key = textKey()
        let data = value(forKey: key.index)
        let reply = noreply() ? " noreply" : ""
        let choice = pick([CasChoice.current, .current, .current, .bogus, .older])
        let head = "cas \(key.text) \(clientFlags()) \(exptime()) \(data.utf8.count) "
        return Command(segments: [
            .bytes(Array(head.utf8)), .cas(key: key.index, choice: choice),
            .bytes(Array("\(reply)\r\n\(data)\r\n".utf8)),
        ])
    }

    mutating func delete() -> Command {
        let key = textKey().text
        let tail = pick(["", "", "", " noreply", " 0", " 0 noreply"])
        return text("delete \(key)\(tail)" + lineEnd())
    }

    mutating func arithmetic(_ name: String) -> Command {
        let key = numericKey()
        let delta = smallDelta()
        return text("\(name) \(key) \(delta)\(noreply() ? " noreply" : "")" + lineEnd())
    }

    mutating func touch() -> Command {
        text("touch \(textKey().text) \(exptime())\(noreply() ? " noreply" : "")" + lineEnd())
    }

    // MARK: Meta protocol

    /// Builds a meta command line; a CAS flag, when present, becomes a per-server segment.
    mutating func metaLine(
        _ name: String,
        key: (index: Int, token: String, base64: Bool),
        length: Int?,
        flags: [String],
        casFlag: CasChoice?
    ) -> [Segment] {
        var flags = flags
        if key.base64 { flags.append("b") }
        flags.shuffle(using: &random)
        var head = "\(name) \(key.token)"
        if let length { head += " \(length)" }
        for flag in flags { head += " " + flag }
        guard let casFlag else { return [.bytes(Array(head.utf8))] }
        return [.bytes(Array((head + " C").utf8)), .cas(key: key.index, choice: casFlag)]
    }

    mutating func metaGet() -> Command {
        let key = metaKey()
        var flags: [String] = []
        if chance(0.6) { flags.append("v") }
        // Whether memcached rewrote a number in place decides its padded size and its hit-before flag, so neither
        // `s` nor `h` is asked of the arithmetic keys.
        let numeric = Self.numericKeys.contains(key.index)
        let sizeFlag = numeric ? [] : ["s", "h"]
        // memcached's `k` renders the key as the *item* was created (base64 only after `ms ... b` in set mode;
        // vivify, append and arithmetic lose it), not as requested; that quirk was reported once, so `k` is only
        // asked of keys that meta commands never address in base64.
        let keyFlag = Self.textOnlyMetaKeys.contains(key.index) ? ["k"] : []
        for flag in ["f", "t", "c", "l", "q", "u"] + sizeFlag + keyFlag where chance(0.25) {
            flags.append(flag)
        }
        if chance(0.25) { flags.append("O" + opaque()) }
        if !numeric && chance(0.15) { flags.append("N" + pick(["0", "3600", "7200"])) }
        // Recache thresholds far from every TTL in use: 30 never wins against 3600, 100000 always does.
        if !numeric && chance(0.15) { flags.append("R" + pick(["30", "100000"])) }
        if chance(0.15) { flags.append("T" + pick(["0", "3600", "7200", "-1"])) }
        let segments = metaLine("mg", key: key, length: nil, flags: flags, casFlag: nil)
        return Command(segments: segments + [.bytes(Array(lineEnd().utf8))])
    }

    mutating func metaSet() -> Command {
        let key = metaKey()
        let data = value(forKey: key.index)
        var flags: [String] = []
        let invalidate = Self.numericKeys.contains(key.index) ? [] : ["I"]
        for flag in ["c", "k", "q"] + invalidate where chance(0.2) { flags.append(flag) }
        if chance(0.3) { flags.append("F" + clientFlags()) }
        if chance(0.3) { flags.append("T" + exptime()) }
        if chance(0.25) { flags.append("O" + opaque()) }
        if chance(0.35) {
            let concatenating = ["A", "P", "a", "p"]
            let modes = ["E", "R", "S", "e", "r", "s"] + (Self.numericKeys.contains(key.index) ? [] : concatenating)
            flags.append("M" + pick(modes))
        }
        let casFlag: CasChoice? = chance(0.2) ? pick([.current, .current, .bogus, .older]) : nil
        let segments = metaLine("ms", key: key, length: data.utf8.count, flags: flags, casFlag: casFlag)
        return Command(segments: segments + [.bytes(Array("\r\n\(data)\r\n".utf8))])
    }

    mutating func metaDelete() -> Command {
        let key = metaKey()
        var flags: [String] = []
        let invalidate = Self.numericKeys.contains(key.index) ? [] : ["I"]
        for flag in ["k", "q"] + invalidate where chance(0.25) { flags.append(flag) }
        if chance(0.2) { flags.append("O" + opaque()) }
        if chance(0.2) { flags.append("T" + pick(["0", "3600", "-1"])) }
        let casFlag: CasChoice? = chance(0.2) ? pick([.current, .bogus]) : nil
        let segments = metaLine("md", key: key, length: nil, flags: flags, casFlag: casFlag)
        return Command(segments: segments + [.bytes(Array(lineEnd().utf8))])
    }

    mutating func metaArithmetic() -> Command {
        let numeric = pick(Self.numericKeys)
        let base64 = chance(0.3)
        let key = (index: numeric, token: base64 ? keys[numeric].base64 : keys[numeric].text!, base64: base64)
        var flags: [String] = []
        for flag in ["t", "c", "v", "k", "q"] where chance(0.3) { flags.append(flag) }
        if chance(0.2) { flags.append("O" + opaque()) }
        if chance(0.25) { flags.append("N" + pick(["0", "3600"])) }
        if chance(0.2) { flags.append("J" + pick(["0", "13", "4611686018427387903"])) }
        if chance(0.4) { flags.append("D" + smallDelta()) }
        // No `T`: when the number grows longer, memcached 1.6.18 applies the new TTL to the item it just replaced,
        // so the TTL is silently lost (reported once; flotilla keeps it).
        if chance(0.35) { flags.append("M" + pick(["I", "i", "+", "D", "d", "-"])) }
        let casFlag: CasChoice? = chance(0.1) ? pick([.current, .bogus]) : nil
        let segments = metaLine("ma", key: key, length: nil, flags: flags, casFlag: casFlag)
        return Command(segments: segments + [.bytes(Array(lineEnd().utf8))])
    }

    mutating func metaDebug() -> Command {
        let key = metaKey()
        return text("me \(key.token)\(key.base64 ? " b" : "")\r\n")
    }

    /// 64-bit wrap-around and overflow, as one command group on a key no other command uses: the stored number
    /// stays small whenever it is the operand, and a result of 2^63 or more is deleted straight away.
    mutating func wrapScenario() -> Command {
        // Never 0: `ma wrap D18446744073709551615` would leave 2^64-1 for the next arithmetic to read.
        let start = pick(["1", "5", "1000"])
        var script = "set wrap 0 0 \(start.utf8.count)\r\n\(start)\r\n"
        switch int(0...4) {
        case 0: script += "incr wrap 18446744073709551615\r\nget wrap\r\n"
        case 1: script += "decr wrap 18446744073709551615\r\nincr wrap 18446744073709551614\r\nget wrap\r\n"
        case 2: script += "ma wrap D18446744073709551615 v\r\nma wrap MD D18446744073709551615 v\r\n"
        case 3: script += "delete wrap\r\nma wrap N0 J18446744073709551615 v\r\nmg wrap v\r\n"
        default:
            let huge = pick(["18446744073709551616", "184467440737095516150", "99999999999999999999"])
            script = "set wrap 0 0 \(huge.utf8.count)\r\n\(huge)\r\nincr wrap 1\r\ndecr wrap 1\r\nma wrap v\r\n"
        }
        return text(script + "delete wrap\r\n")
    }

    mutating func tooLarge() -> Command {
        // Over memcached's default 1 MiB item limit: it answers SERVER_ERROR and swallows the whole block.
        let data = String(repeating: "z", count: 2_000_000)
        return text("set big 0 0 \(data.utf8.count)\r\n\(data)\r\n")
    }
}
