import Foundation

/// Normalizes memcached replies so that two servers' answers to the same commands can be compared byte for byte.
///
/// Exactly these differences are tolerated, and nothing else:
/// - **Version string.** `VERSION 1.6.18` becomes `VERSION <v>`: flotilla reports its own version.
/// - **`stats` output.** A whole `STAT ...` block up to `END` becomes `<stats>`: pids, uptimes, rusage, memory and
///   counter values differ by nature. The field names are not ignored: `missingStatNames` lets the test check that
///   memcached's main general-purpose statistics are all present.
/// - **CAS unique values.** The fifth token of `VALUE <key> <flags> <bytes> <cas>` (gets, gats) and the `c<cas>`
///   return flag of meta responses become `<cas>`: CAS values are opaque and each server numbers them on its own.
///   Whether a CAS *matches* is still compared, because the harness feeds each server its own CAS values back.
/// - **Meta debug.** A `ME <key> <k>=<v>...` line becomes `ME <debug>`: it is a human-readable dump of
///   implementation internals (slab class, internal size). A miss (`EN`) is still compared.
/// - **Space padding after arithmetic.** memcached may rewrite a number in place after incr/decr/ma and pad it
///   with trailing spaces ("99 " after decrementing 100); protocol.txt allows this and whether it happens depends on
///   memcached's internal reference counts, so two memcached instances differ. A data block of digits followed by
///   spaces is trimmed, and the length in its `VALUE`/`VA` line reduced to match.
/// - **Clock readings.** The `t<ttl>` (remaining TTL, when not `-1`) and `l<seconds>` (time since last access)
///   return flags become `t<ttl>`/`l<la>`, and their numbers must agree within ±2 seconds: both servers see the same
///   commands at almost the same moment, but each ticks its clock on its own second boundaries.
struct ReplyNormalizer {
    /// A reply with every tolerated difference replaced by a marker.
    struct Normalized: Equatable {
        /// The normalized reply, one line per reply line, with binary bytes escaped.
        var lines: [String]
        /// The clock readings that were replaced, in order; compared with a tolerance.
        var clockReadings: [Int]
        /// The statistic names of each `stats` block, in order.
        var statNames: [[String]]

        /// Equal up to the tolerated differences.
        func agrees(with other: Normalized) -> Bool {
            guard lines == other.lines, clockReadings.count == other.clockReadings.count else { return false }
            return zip(clockReadings, other.clockReadings).allSatisfy { abs($0 - $1) <= ReplyNormalizer.clockSlack }
        }
    }

    /// How far two clock readings may differ, in seconds.
    static let clockSlack = 2

    /// memcached's main general-purpose statistics; a compatible server must report all of them.
    static let requiredStatNames: [String] = [
        "pid", "uptime", "time", "version", "curr_connections", "total_connections", "cmd_get", "cmd_set",
        "get_hits", "get_misses", "curr_items", "total_items", "bytes", "limit_maxbytes", "evictions", "threads",
    ]

    /// Meta response codes whose lines carry return flags.
    private static let metaCodes: Set<String> = ["HD", "VA", "EN", "NF", "NS", "EX"]

    /// Normalizes a complete reply stream.
    ///
    /// Lines are split on "\r\n". Data blocks are not skipped by length: the generator only stores lowercase
    /// letters and digits, so a data line can never be mistaken for a `VALUE`, `STAT`, `ME` or meta response line,
    /// and a server that announces a wrong length still shows up as a difference.
    static func normalize(_ bytes: [UInt8]) -> Normalized {
        var result = Normalized(lines: [], clockReadings: [], statNames: [])
        var statBlock: [String]?
        // The index of the last VALUE/VA header line, while its data line is the next one.
        var dataHeader: Int?
        for line in splitLines(bytes) {
            if let header = dataHeader {
                dataHeader = nil
                let trimmed = trimPadding(line)
                if trimmed.count != line.count {
                    result.lines[header] = reduceLength(of: result.lines[header], by: line.count - trimmed.count)
                    result.lines.append(trimmed)
                    continue
                }
            }
            if line.hasPrefix("STAT ") {
                let name = line.split(separator: " ").dropFirst().first.map(String.init) ?? ""
                statBlock = (statBlock ?? []) + [name]
                continue
            }
            if let names = statBlock {
                // A stats block ends with END; anything else also ends it, and is kept so it is compared.
                result.statNames.append(names)
                result.lines.append("<stats>")
                statBlock = nil
                if line == "END" { continue }
            }
            result.lines.append(normalizeLine(line, clockReadings: &result.clockReadings))
            if line.hasPrefix("VALUE ") || line.hasPrefix("VA ") { dataHeader = result.lines.count - 1 }
        }
        if let names = statBlock {
            result.statNames.append(names)
            result.lines.append("<stats, unterminated>")
        }
        return result
    }

    /// The required statistic names missing from any `stats` block of a reply.
    static func missingStatNames(_ normalized: Normalized) -> [String] {
        normalized.statNames.flatMap { names in
            requiredStatNames.filter { !names.contains($0) }
        }
    }

    /// Strips trailing spaces from a line of digits; any other line is returned unchanged.
    private static func trimPadding(_ line: String) -> String {
        guard line.hasSuffix(" ") else { return line }
        var trimmed = Substring(line)
        while trimmed.hasSuffix(" ") { trimmed = trimmed.dropLast() }
        guard !trimmed.isEmpty, trimmed.allSatisfy({ $0.isASCII && $0.isNumber }) else { return line }
        return String(trimmed)
    }

    /// Lowers the length token of a `VALUE <key> <flags> <bytes>` or `VA <bytes>` line.
    private static func reduceLength(of header: String, by amount: Int) -> String {
        var tokens = header.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
        let index = tokens.first == "VA" ? 1 : 3
        guard index < tokens.count, let length = Int(tokens[index]) else { return header }
        tokens[index] = String(length - amount)
        return tokens.joined(separator: " ")
    }

    private static func normalizeLine(_ line: String, clockReadings: inout [Int]) -> String {
        if line.hasPrefix("VERSION ") { return "VERSION <v>" }
        if line.hasPrefix("ME ") { return "ME <debug>" }
        var tokens = line.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
        guard let code = tokens.first else { return line }
        if code == "VALUE" {
            if tokens.count == 5 { tokens[4] = "<cas>" }
            return tokens.joined(separator: " ")
        }
        guard metaCodes.contains(code) else { return line }
        // For VA the first token after the code is the value length, not a flag.
        let firstFlag = code == "VA" ? 2 : 1
        guard tokens.count > firstFlag else { return line }
        for index in firstFlag..<tokens.count {
            let token = tokens[index]
            guard let flag = token.first else { continue }
            let argument = token.dropFirst()
            switch flag {
            case "c" where !argument.isEmpty && argument.allSatisfy(\.isNumber):
                tokens[index] = "c<cas>"
            case "t" where !argument.isEmpty && argument != "-1":
                if let seconds = Int(argument) {
                    clockReadings.append(seconds)
                    tokens[index] = "t<ttl>"
                }
            case "l" where !argument.isEmpty:
                if let seconds = Int(argument) {
                    clockReadings.append(seconds)
                    tokens[index] = "l<la>"
                }
            default:
                break
            }
        }
        return tokens.joined(separator: " ")
    }

    /// Splits on "\r\n"; a trailing fragment without one is kept, marked, so that truncation shows.
    static func splitLines(_ bytes: [UInt8]) -> [String] {
        var lines: [String] = []
        var start = 0
        var index = 0
        while index + 1 < bytes.count {
            if bytes[index] == 13 && bytes[index + 1] == 10 {
                lines.append(escape(bytes[start..<index]))
                index += 2
                start = index
            } else {
                index += 1
            }
        }
        if start < bytes.count {
            lines.append(escape(bytes[start...]) + "<no CRLF>")
        }
        return lines
    }

    /// Renders bytes readably and losslessly: printable ASCII as is, everything else as `\r`, `\n`, `\t`, `\xNN`.
    static func escape<Bytes: Collection>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        var text = ""
        text.reserveCapacity(bytes.count)
        for byte in bytes {
            switch byte {
            case 13: text += "\\r"
            case 10: text += "\\n"
            case 9: text += "\\t"
            case 92: text += "\\\\"
            case 32...126: text.unicodeScalars.append(Unicode.Scalar(byte))
            default: text += "\\x" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return text
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
