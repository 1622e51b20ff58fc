import NIOCore

/// The classic text commands, checked in the order memcached's `process_command_ascii` checks them.
extension MemcacheRequestDecoder {
    /// memcached's longest key.
    public static let keyMaxLength = 250

    static func error(_ operation: MemcacheOperation, _ message: StaticString, noreply: Bool = false) -> LineOutcome {
        .request(.reply(MemcacheImmediateReply(operation: operation, message: message, suppressed: noreply)))
    }

    func parseCommand(_ line: Line, tokens: [MemcacheToken], hasRest: Bool, restStart: Int) -> LineOutcome {
        // memcached counts a terminal token: `ntokens` is one more than the words on the line.
        let ntokens = tokens.count + 1
        guard ntokens >= 2, tokens[0].count >= 2 else { return Self.error(.unknown, "ERROR") }
        let command = tokens[0]
        let first = line.byte(command, 0)

        if first == UInt8(ascii: "m"), command.count == 2 {
            return parseMeta(line, tokens: tokens, second: line.byte(command, 1))
        }
        switch first {
        case UInt8(ascii: "g"):
            let operation: MemcacheOperation
            if line.equals(command, "get") {
                operation = .get
            } else if line.equals(command, "gets") {
                operation = .gets
            } else if line.equals(command, "gat") {
                operation = .gat
            } else if line.equals(command, "gats") {
                operation = .gats
            } else {
                return Self.error(.unknown, "ERROR")
            }
            guard ntokens >= 3 else { return Self.error(operation, "ERROR") }
            return parseRetrieval(line, operation: operation, tokens: tokens, hasRest: hasRest, restStart: restStart)
        case UInt8(ascii: "s"):
            if line.equals(command, "set") {
                return parseStorage(line, tokens: tokens, mode: .set)
            } else if line.equals(command, "stats") {
                return .request(.stats(arguments: tokens.dropFirst().map { line.string($0) }))
            } else if line.equals(command, "shutdown") {
                return Self.error(.unknown, "ERROR: shutdown not enabled")
            }
            return Self.error(.unknown, "ERROR")
        case UInt8(ascii: "a"):
            if line.equals(command, "add") { return parseStorage(line, tokens: tokens, mode: .add) }
            if line.equals(command, "append") { return parseStorage(line, tokens: tokens, mode: .append) }
            return Self.error(.unknown, "ERROR")
        case UInt8(ascii: "c"):
            if line.equals(command, "cas") { return parseStorage(line, tokens: tokens, mode: .cas) }
            return Self.error(.unknown, "ERROR")
        case UInt8(ascii: "i"):
            if line.equals(command, "incr") { return parseArithmetic(line, tokens: tokens, increment: true) }
            return Self.error(.unknown, "ERROR")
        case UInt8(ascii: "d"):
            if line.equals(command, "delete") { return parseDelete(line, tokens: tokens) }
            if line.equals(command, "decr") { return parseArithmetic(line, tokens: tokens, increment: false) }
            return Self.error(.unknown, "ERROR")
        case UInt8(ascii: "t"):
            if line.equals(command, "touch") { return parseTouch(line, tokens: tokens) }
            return Self.error(.unknown, "ERROR")
        default:
            break
        }
        if line.equals(command, "replace") { return parseStorage(line, tokens: tokens, mode: .replace) }
        if line.equals(command, "prepend") { return parseStorage(line, tokens: tokens, mode: .prepend) }
        if line.equals(command, "bget") {
            guard ntokens >= 3 else { return Self.error(.get, "ERROR") }
            return parseRetrieval(line, operation: .get, tokens: tokens, hasRest: hasRest, restStart: restStart)
        }
        if line.equals(command, "flush_all") { return parseFlushAll(line, tokens: tokens) }
        if line.equals(command, "version") { return .request(.version) }
        if line.equals(command, "quit") { return .request(.quit) }
        if line.equals(command, "lru_crawler") { return parseLRUCrawler(line, tokens: tokens) }
        if line.equals(command, "verbosity") {
            guard ntokens == 3 || ntokens == 4 else { return Self.error(.verbosity, "ERROR") }
            let noreply = Self.lastIsNoreply(line, tokens)
            guard CNumberParsing.strtoul32(line.raw(tokens[1])) != nil else {
                return Self.error(.verbosity, "CLIENT_ERROR bad command line format", noreply: noreply)
            }
            return .request(.verbosity(noreply: noreply))
        }
        // An HTTP request line: memcached hangs up rather than answer.
        if let last = tokens.last, line.raw(last).starts(with: "HTTP/".utf8) {
            return .request(.close(reason: .httpRequest))
        }
        return Self.error(.unknown, "ERROR")
    }

    /// `lru_crawler metadump|crawl all|hash|<classes>`, as memcached's `process_lru_crawler_command`
    /// reads them; its other sub-commands (`sleep`, `tocrawl`, `enable`, `disable`) tune a crawler
    /// thread flotilla does not have, and are answered `ERROR`.
    private func parseLRUCrawler(_ line: Line, tokens: [MemcacheToken]) -> LineOutcome {
        guard tokens.count == 3 else { return Self.error(.lruCrawler, "ERROR") }
        let dumps = line.equals(tokens[1], "metadump")
        guard dumps || line.equals(tokens[1], "crawl") else { return Self.error(.lruCrawler, "ERROR") }
        let classes: SlabClasses
        if line.equals(tokens[2], "all") || (dumps && line.equals(tokens[2], "hash")) {
            classes = .all
        } else {
            var ids: [Int] = []
            for part in line.string(tokens[2]).split(separator: ",") {
                guard let id = Int(part), (1...SlabClasses.largestClass).contains(id) else {
                    return Self.error(.lruCrawler, "BADCLASS invalid class id")
                }
                ids.append(id)
            }
            classes = .ids(ids)
        }
        return .request(dumps ? .metadump(classes: classes) : .crawl(classes: classes))
    }

    static func lastIsNoreply(_ line: Line, _ tokens: [MemcacheToken]) -> Bool {
        guard let last = tokens.last, tokens.count >= 2 else { return false }
        return line.equals(last, "noreply")
    }

    private func parseRetrieval(
        _ line: Line,
        operation: MemcacheOperation,
        tokens: [MemcacheToken],
        hasRest: Bool,
        restStart: Int
    ) -> LineOutcome {
        var keyIndex = 1
        var exptime: Int32 = 0
        if operation == .gat || operation == .gats {
            guard let value = CNumberParsing.strtol32(line.raw(tokens[1])) else {
                return Self.error(operation, "CLIENT_ERROR invalid exptime argument")
            }
            exptime = value
            keyIndex = 2
        }
        if !hasRest, tokens.count == keyIndex + 1 {
            let key = RetrievalKeys(one: line.slice(tokens[keyIndex]))
            return .request(.retrieval(RetrievalRequest(operation: operation, exptime: exptime, keys: key)))
        }
        // memcached answers a too-long key with an error for the whole line, and the items
        // before it are still looked up (and, for gat, touched) first.
        var keys: [ByteBuffer] = []
        keys.reserveCapacity(tokens.count - keyIndex)
        for token in tokens[keyIndex...] {
            keys.append(line.slice(token))
        }
        if hasRest {
            // memcached re-tokenizes the rest of a long multi-get line; keys are simply words.
            var more: [MemcacheToken] = []
            var start = restStart
            while start < line.bytes.count {
                let (again, next) = MemcacheTokenizer.tokenize(line.bytes, from: start, into: &more)
                for token in more { keys.append(line.slice(token)) }
                guard again else { break }
                start = next
            }
        }
        return .request(.retrieval(RetrievalRequest(operation: operation, exptime: exptime, keys: RetrievalKeys(keys))))
    }

    private func parseStorage(_ line: Line, tokens: [MemcacheToken], mode: StorageRequest.Mode) -> LineOutcome {
        let ntokens = tokens.count + 1
        let operation = mode.operation
        if mode == .cas {
            guard ntokens == 7 || ntokens == 8 else { return Self.error(operation, "ERROR") }
        } else {
            guard ntokens == 6 || ntokens == 7 else { return Self.error(operation, "ERROR") }
        }
        let noreply = Self.lastIsNoreply(line, tokens)
        let keyToken = tokens[1]
        guard keyToken.count <= Self.keyMaxLength else {
            return Self.error(operation, "CLIENT_ERROR bad command line format", noreply: noreply)
        }
        guard let flags = CNumberParsing.strtoul32(line.raw(tokens[2])),
            let exptime = CNumberParsing.strtol32(line.raw(tokens[3])),
            let length = CNumberParsing.strtol32(line.raw(tokens[4]))
        else {
            return Self.error(operation, "CLIENT_ERROR bad command line format", noreply: noreply)
        }
        var casUnique: UInt64 = 0
        if mode == .cas {
            guard let unique = CNumberParsing.strtoull(line.raw(tokens[5])) else {
                return Self.error(operation, "CLIENT_ERROR bad command line format", noreply: noreply)
            }
            casUnique = unique
        }
        guard length >= 0, length <= Int32.max - 2 else {
            return Self.error(operation, "CLIENT_ERROR bad command line format", noreply: noreply)
        }
        let dataLength = Int(length)
        guard configuration.itemFits(keyLength: keyToken.count, valueLength: dataLength) else {
            let request = MemcacheRequest.tooLarge(
                operation: operation,
                key: line.slice(keyToken),
                noreply: noreply,
                dropsCurrentValue: mode == .set
            )
            return .swallow(count: dataLength + 2, request)
        }
        let key = line.slice(keyToken)
        return .needsData(dataLength: dataLength) { data, terminated in
            guard terminated else {
                return .reply(
                    MemcacheImmediateReply(
                        operation: operation,
                        message: "CLIENT_ERROR bad data chunk",
                        suppressed: noreply
                    )
                )
            }
            return .storage(
                StorageRequest(
                    mode: mode,
                    key: key,
                    flags: flags,
                    exptime: exptime,
                    casUnique: casUnique,
                    noreply: noreply,
                    data: data
                )
            )
        }
    }

    private func parseDelete(_ line: Line, tokens: [MemcacheToken]) -> LineOutcome {
        let ntokens = tokens.count + 1
        guard ntokens >= 3, ntokens <= 5 else { return Self.error(.delete, "ERROR") }
        var noreply = false
        if ntokens > 3 {
            let holdIsZero = line.equals(tokens[2], "0")
            noreply = Self.lastIsNoreply(line, tokens)
            let valid = (ntokens == 4 && (holdIsZero || noreply)) || (ntokens == 5 && holdIsZero && noreply)
            guard valid else {
                return Self.error(
                    .delete,
                    "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]",
                    noreply: noreply
                )
            }
        }
        guard tokens[1].count <= Self.keyMaxLength else {
            return Self.error(.delete, "CLIENT_ERROR bad command line format", noreply: noreply)
        }
        return .request(.delete(key: line.slice(tokens[1]), noreply: noreply))
    }

    private func parseArithmetic(_ line: Line, tokens: [MemcacheToken], increment: Bool) -> LineOutcome {
        let operation: MemcacheOperation = increment ? .incr : .decr
        let ntokens = tokens.count + 1
        guard ntokens == 4 || ntokens == 5 else { return Self.error(operation, "ERROR") }
        let noreply = Self.lastIsNoreply(line, tokens)
        guard tokens[1].count <= Self.keyMaxLength else {
            return Self.error(operation, "CLIENT_ERROR bad command line format", noreply: noreply)
        }
        guard let delta = CNumberParsing.strtoull(line.raw(tokens[2])) else {
            return Self.error(operation, "CLIENT_ERROR invalid numeric delta argument", noreply: noreply)
        }
        let request = ArithmeticRequest(
            increment: increment,
            key: line.slice(tokens[1]),
            delta: delta,
            noreply: noreply
        )
        return .request(.arithmetic(request))
    }

    private func parseTouch(_ line: Line, tokens: [MemcacheToken]) -> LineOutcome {
        let ntokens = tokens.count + 1
        guard ntokens == 4 || ntokens == 5 else { return Self.error(.touch, "ERROR") }
        let noreply = Self.lastIsNoreply(line, tokens)
        guard tokens[1].count <= Self.keyMaxLength else {
            return Self.error(.touch, "CLIENT_ERROR bad command line format", noreply: noreply)
        }
        guard let exptime = CNumberParsing.strtol32(line.raw(tokens[2])) else {
            return Self.error(.touch, "CLIENT_ERROR invalid exptime argument", noreply: noreply)
        }
        return .request(.touch(key: line.slice(tokens[1]), exptime: exptime, noreply: noreply))
    }

    private func parseFlushAll(_ line: Line, tokens: [MemcacheToken]) -> LineOutcome {
        let ntokens = tokens.count + 1
        guard ntokens >= 2, ntokens <= 4 else { return Self.error(.flushAll, "ERROR") }
        let noreply = Self.lastIsNoreply(line, tokens)
        var delay: Int32?
        if ntokens != (noreply ? 3 : 2) {
            guard let value = CNumberParsing.strtol32(line.raw(tokens[1])) else {
                return Self.error(.flushAll, "CLIENT_ERROR invalid exptime argument", noreply: noreply)
            }
            delay = value
        }
        return .request(.flushAll(delay: delay, noreply: noreply))
    }
}
