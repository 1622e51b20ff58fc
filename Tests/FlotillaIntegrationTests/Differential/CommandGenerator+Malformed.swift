import Foundation

/// Malformed input: lines memcached refuses, with the framing it keeps afterwards.
extension CommandGenerator {
    mutating func malformed() -> Command {
        switch weighted([10, 6, 10, 6, 8, 3, 10, 5, 4, 2, 2]) {
        case 0:
            return text(
                pick([
                    "foo bar", "GET key", "gett key", "sett k 0 0 1", "xyzzy", "mg", "get", "gets", "gat 0", "gat",
                    "gats", "touch key", "incr", "decr key", "delete", "set key 0 0", "cas key 0 0 1", "ms key",
                    "md", "ma", "me", "verbosity", "verbosity abc", "flush_all abc", "incr key", "touch",
                ]) + lineEnd()
            )
        case 1:
            return Command(segments: [.bytes(Array(pick(["mn extra", "mn 1 2 3"]).utf8) + [13, 10])], expectedMN: 1)
        case 2: return tooManyTokens()
        case 3: return text(pick(["\r\n", "\n", " \r\n", "  \r\n"]))
        case 4: return badNumbers()
        case 5: return longKey()
        case 6: return badDataChunk()
        case 7: return badMetaFlags()
        case 8: return badBase64()
        case 9: return oddWhitespace()
        default: return text("get a\tb" + lineEnd())
        }
    }

    private mutating func tooManyTokens() -> Command {
        let key = textKey().text
        switch int(0...5) {
        case 0:
            let data = safeValue(length: int(1...20))
            return text("set \(key) 0 0 \(data.utf8.count) noreply extra\r\n\(data)\r\n")
        case 1: return text("incr \(key) 1 noreply extra\r\n")
        case 2: return text("touch \(key) 0 noreply extra\r\n")
        case 3: return text("delete \(key) 0 noreply extra\r\n")
        case 4: return text("version extra\r\n")
        default:
            // memcached splits a line into at most 24 tokens; keep going well past that for a non-get command.
            return text("touch " + (0..<30).map { _ in "k" }.joined(separator: " ") + "\r\n")
        }
    }

    private mutating func badNumbers() -> Command {
        let key = textKey().text
        let data = "z" + safeValue(length: int(1...8))
        let count = "\(data.utf8.count)"
        switch int(0...6) {
        case 0:
            let flags = pick(["abc", "-1", "1.5", "18446744073709551616", "4294967296"])
            return text("set \(key) \(flags) 0 \(count)\r\n\(data)\r\n")
        case 1:
            let exptime = pick(["abc", "1.5", "99999999999999999999", "4000000000"])
            return text("set \(key) 0 \(exptime) \(count)\r\n\(data)\r\n")
        case 2:
            // The data line is at least two bytes, so even a length that wraps to 0 keeps framing.
            let length = pick(["abc", "-1", "1.5", "4294967296", "2147483648", "-0"])
            return text("set \(key) 0 0 \(length)\r\n\(data)\r\n")
        case 3:
            let unique = pick(["abc", "-1", "18446744073709551616"])
            return text("cas \(key) 0 0 \(count) \(unique)\r\n\(data)\r\n")
        case 4:
            let delta = pick(["-1", "abc", "18446744073709551616", "1.5", "0x10"])
            return text("\(pick(["incr", "decr"])) \(numericKey()) \(delta)\r\n")
        case 5: return text("touch \(key) \(pick(["abc", "1.5", "99999999999999999999"]))\r\n")
        default: return text("gat \(pick(["abc", "1.5"])) \(key)\r\n")
        }
    }

    private mutating func longKey() -> Command {
        let key = String(repeating: "L", count: int(251...300))
        switch int(0...5) {
        case 0: return text("touch \(key) 0\r\n")
        case 1: return text("set \(key) 0 0 3\r\nzzz\r\n")
        case 2: return text("delete \(key)\r\n")
        case 3: return text("mg \(key) v\r\n")
        case 4: return text("ms \(key) 3\r\nzzz\r\n")
        default: return text("incr \(key) 1\r\n")
        }
    }

    private mutating func badDataChunk() -> Command {
        let key = textKey().text
        let declared = int(0...20)
        let body: String
        if chance(0.6) {
            // Too long: memcached reads declared+2 bytes, rejects them, then parses the rest ("z...") as a line.
            body = safeValue(length: declared) + String(repeating: "z", count: int(1...6))
        } else {
            // Too short, then a filler line long enough that the server's read of declared+2 bytes ends inside it.
            let short = safeValue(length: int(0...max(0, declared - 1)))
            body = short + "\r\n" + String(repeating: "z", count: declared + 2)
        }
        let reply = noreply() ? " noreply" : ""
        if chance(0.7) {
            return text("\(pick(["set", "add", "append"])) \(key) 0 0 \(declared)\(reply)\r\n\(body)\r\n")
        }
        let quiet = chance(0.3) ? " q" : ""
        return text("ms \(key) \(declared)\(quiet)\r\n\(body)\r\n")
    }

    private mutating func badMetaFlags() -> Command {
        let key = textKey().text
        switch int(0...9) {
        case 0: return text("mg \(key) \(pick(["!", "@", "1", "v v", "Z", "x", "vv"]))\r\n")
        case 1: return text("mg \(key) \(pick(["N", "Nabc", "Rabc", "T", "Tabc", "N-1x"]))\r\n")
        case 2: return text("mg \(key) O\(String(repeating: "o", count: int(33...40)))\r\n")
        case 3: return text("ms \(key) 3 \(pick(["!", "T", "Tabc", "Fabc", "F-1", "MX", "M", "Cabc"]))\r\nzzz\r\n")
        case 4: return text("ms \(key) \(pick(["abc", "-1", "1.5"]))\r\nzzz\r\n")
        case 5: return text("ma \(key) \(pick(["Dabc", "D-1", "MX", "Nabc", "Jabc", "D18446744073709551616"]))\r\n")
        case 6: return text("md \(key) \(pick(["Cabc", "Tabc", "!", "q q"]))\r\n")
        case 7: return text("mg \(key) E\(pick(["5", "abc"])) v\r\n")
        case 8: return text("ms \(key) 3 E\(pick(["5", "99"])) c\r\nzzz\r\n")
        default: return text("me \(key) \(pick(["x", "v", "bb"]))\r\n")
        }
    }

    private mutating func badBase64() -> Command {
        // memcached silently skips characters outside the alphabet ("a2V5a2V5*" decodes as "keykey"), so only
        // encodings it rejects outright are used here.
        let key = pick(["a2V", "!!!!", "a2V5=", "====", "YQ", "Y", "a2V*", "a b"])
        switch int(0...4) {
        case 0: return text("mg \(key) b v\r\n")
        case 1: return text("ms \(key) 3 b\r\nzzz\r\n")
        case 2: return text("md \(key) b\r\n")
        case 3: return text("ma \(key) b\r\n")
        default: return text("me \(key) b\r\n")
        }
    }

    private mutating func oddWhitespace() -> Command {
        let key = textKey().text
        return text(
            pick([
                "get  \(key)", "get \(key) ", " get \(key)", "get \(key)  \(key)", "mg  \(key) v", "mg \(key)  v ",
                "delete  \(key)", "incr \(key)  1", "touch \(key) 0 ",
            ]) + "\r\n"
        )
    }
}
