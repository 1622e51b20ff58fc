import NIOCore

/// The meta commands, validated in the order memcached's `process_m*_command` functions do.
extension MemcacheRequestDecoder {
    /// memcached refuses meta commands with more than this many tokens (`MFLAG_MAX_OPT_LENGTH`).
    static let metaMaxTokens = 20
    /// Longest opaque token (`O…`) memcached echoes back.
    public static let maxOpaqueLength = 32

    func parseMeta(_ line: Line, tokens: [MemcacheToken], second: UInt8) -> LineOutcome {
        switch second {
        case UInt8(ascii: "n"):
            return .request(.meta(MetaRequest(command: .noop, key: ByteBuffer(), flags: MetaFlags(), tokens: [])))
        case UInt8(ascii: "e"):
            return parseMetaDebug(line, tokens: tokens)
        case UInt8(ascii: "g"):
            return parseMetaFlagged(line, tokens: tokens, command: .get)
        case UInt8(ascii: "d"):
            return parseMetaFlagged(line, tokens: tokens, command: .delete)
        case UInt8(ascii: "a"):
            return parseMetaFlagged(line, tokens: tokens, command: .arithmetic)
        case UInt8(ascii: "s"):
            return parseMetaSet(line, tokens: tokens)
        default:
            return Self.error(.unknown, "ERROR")
        }
    }

    private func parseMetaDebug(_ line: Line, tokens: [MemcacheToken]) -> LineOutcome {
        let ntokens = tokens.count + 1
        guard ntokens >= 3, tokens[1].count <= Self.keyMaxLength else {
            return Self.error(.metaDebug, "CLIENT_ERROR bad command line format")
        }
        var flags = MetaFlags()
        var key = line.slice(tokens[1])
        if ntokens >= 4, line.equals(tokens[2], "b") {
            guard let decoded = Base64Key.decode(line.raw(tokens[1])) else {
                return Self.error(.metaDebug, "CLIENT_ERROR bad command line format")
            }
            key = ByteBuffer(bytes: decoded)
            flags.keyIsBinary = true
        }
        return .request(.meta(MetaRequest(command: .debug, key: key, flags: flags, tokens: [])))
    }

    private func parseMetaFlagged(_ line: Line, tokens: [MemcacheToken], command: MetaRequest.Command) -> LineOutcome {
        let operation = command.operation
        let ntokens = tokens.count + 1
        guard ntokens >= 3 else { return Self.error(operation, "ERROR") }
        guard tokens[1].count <= Self.keyMaxLength else {
            return Self.error(operation, "CLIENT_ERROR bad command line format")
        }
        guard ntokens <= Self.metaMaxTokens else {
            if command == .get { return Self.error(operation, "CLIENT_ERROR options flags are too long") }
            return Self.error(operation, "CLIENT_ERROR options flags too long")
        }
        switch Self.preparse(line, tokens: tokens, from: 2) {
        case .failure(let message):
            // md and ma report every flag problem with one message.
            return Self.error(operation, command == .get ? message : "CLIENT_ERROR invalid or duplicate flag")
        case .success(let (flags, key)):
            let metaTokens = tokens[2...].map { MetaToken(flag: line.byte($0, 0), token: line.slice($0)) }
            return .request(.meta(MetaRequest(command: command, key: key, flags: flags, tokens: metaTokens)))
        }
    }

    private func parseMetaSet(_ line: Line, tokens: [MemcacheToken]) -> LineOutcome {
        let ntokens = tokens.count + 1
        guard ntokens >= 3 else { return Self.error(.metaSet, "ERROR") }
        guard tokens[1].count <= Self.keyMaxLength, ntokens != 3 else {
            return Self.error(.metaSet, "CLIENT_ERROR bad command line format")
        }
        guard ntokens <= Self.metaMaxTokens else {
            return Self.error(.metaSet, "CLIENT_ERROR options flags too long")
        }
        guard let length = CNumberParsing.strtol32(line.raw(tokens[2])), length >= 0, length <= Int32.max - 2 else {
            return Self.error(.metaSet, "CLIENT_ERROR bad command line format")
        }
        let dataLength = Int(length)
        func refuse(_ message: StaticString) -> LineOutcome {
            let reply = MemcacheImmediateReply(operation: .metaSet, message: message)
            return .swallow(count: dataLength + 2, .reply(reply))
        }
        let flags: MetaFlags
        let key: ByteBuffer
        switch Self.preparse(line, tokens: tokens, from: 3) {
        case .failure(let message):
            return refuse(message)
        case .success(let parsed):
            (flags, key) = parsed
        }
        for token in tokens[3...] where line.byte(token, 0) == UInt8(ascii: "O") {
            if token.count > Self.maxOpaqueLength { return refuse("CLIENT_ERROR opaque token too long") }
        }
        switch flags.mode {
        case nil, UInt8(ascii: "E"), UInt8(ascii: "A"), UInt8(ascii: "P"), UInt8(ascii: "R"), UInt8(ascii: "S"):
            break
        default:
            return refuse("CLIENT_ERROR invalid mode for ms M token")
        }
        guard configuration.itemFits(keyLength: key.readableBytes, valueLength: dataLength) else {
            let request = MemcacheRequest.tooLarge(
                operation: .metaSet,
                key: key,
                noreply: false,
                dropsCurrentValue: true
            )
            return .swallow(count: dataLength + 2, request)
        }
        let metaTokens = tokens[3...].map { MetaToken(flag: line.byte($0, 0), token: line.slice($0)) }
        return .needsData(dataLength: dataLength) { data, terminated in
            guard terminated else {
                return .reply(MemcacheImmediateReply(operation: .metaSet, message: "CLIENT_ERROR bad data chunk"))
            }
            return .meta(MetaRequest(command: .set, key: key, flags: flags, tokens: metaTokens, data: data))
        }
    }

    enum Preparse {
        case success((MetaFlags, ByteBuffer))
        case failure(StaticString)
    }

    /// memcached's `_meta_flag_preparse`: one pass over the flags that validates them, refuses
    /// duplicates, decodes a base64 key and reads the numeric arguments.
    static func preparse(_ line: Line, tokens: [MemcacheToken], from start: Int) -> Preparse {
        var flags = MetaFlags()
        var key = line.slice(tokens[1])
        var seen: (UInt64, UInt64) = (0, 0)
        var failure: StaticString?
        var message: StaticString = "CLIENT_ERROR bad command line format"
        for token in tokens[start...] {
            let flag = line.byte(token, 0)
            guard flag < 127 else { return .failure("CLIENT_ERROR duplicate flag") }
            let bit = UInt64(1) << UInt64(flag & 63)
            let alreadySeen = flag < 64 ? seen.0 & bit != 0 : seen.1 & bit != 0
            guard !alreadySeen else { return .failure("CLIENT_ERROR duplicate flag") }
            if flag < 64 { seen.0 |= bit } else { seen.1 |= bit }
            let argument = line.raw(token, droppingFirst: 1)
            switch flag {
            case UInt8(ascii: "b"):
                if let decoded = Base64Key.decode(line.raw(tokens[1])) {
                    key = ByteBuffer(bytes: decoded)
                } else {
                    message = "CLIENT_ERROR error decoding key"
                    failure = message
                    key = ByteBuffer()
                }
                flags.keyIsBinary = true
            case UInt8(ascii: "N"), UInt8(ascii: "T"), UInt8(ascii: "R"):
                guard let value = CNumberParsing.strtol32(argument) else {
                    message = "CLIENT_ERROR bad token in command line format"
                    failure = message
                    continue
                }
                flags.reportsOrChangesState = true
                switch flag {
                case UInt8(ascii: "N"): flags.vivifyExptime = value
                case UInt8(ascii: "T"): flags.newExptime = value
                default: flags.recacheExptime = value
                }
            case UInt8(ascii: "l"), UInt8(ascii: "h"):
                flags.reportsOrChangesState = true
            case UInt8(ascii: "O"), UInt8(ascii: "P"), UInt8(ascii: "L"),
                UInt8(ascii: "k"), UInt8(ascii: "s"), UInt8(ascii: "t"), UInt8(ascii: "c"), UInt8(ascii: "f"):
                break
            case UInt8(ascii: "v"):
                flags.returnValue = true
            case UInt8(ascii: "u"):
                flags.noUpdate = true
            case UInt8(ascii: "q"):
                flags.noReply = true
            case UInt8(ascii: "F"):
                if let value = CNumberParsing.strtoul32(argument) {
                    flags.clientFlags = value
                } else {
                    failure = message
                }
            case UInt8(ascii: "C"):
                if let value = CNumberParsing.strtoull(argument) {
                    flags.compareCAS = value
                } else {
                    message = "CLIENT_ERROR bad token in command line format"
                    failure = message
                }
            case UInt8(ascii: "M"):
                if token.count != 2 {
                    message = "CLIENT_ERROR incorrect length for M token"
                    failure = message
                } else {
                    flags.mode = line.byte(token, 1)
                }
            case UInt8(ascii: "J"):
                if let value = CNumberParsing.strtoull(argument) {
                    flags.initial = value
                } else {
                    message = "CLIENT_ERROR invalid numeric initial value"
                    failure = message
                }
            case UInt8(ascii: "D"):
                if let value = CNumberParsing.strtoull(argument) {
                    flags.delta = value
                } else {
                    message = "CLIENT_ERROR invalid numeric delta value"
                    failure = message
                }
            case UInt8(ascii: "I"):
                flags.invalidate = true
            default:
                return .failure("CLIENT_ERROR invalid flag")
            }
        }
        if failure != nil { return .failure(message) }
        return .success((flags, key))
    }
}
