import FlotillaTestSupport
import Testing

/// One server under comparison: a connection plus the CAS values it reported per pool key.
final class DifferentialSide {
    let name: String
    let port: UInt16
    var client: WireClient
    var casByKey: [Int: UInt64] = [:]

    init(name: String, port: UInt16) throws {
        self.name = name
        self.port = port
        client = try WireClient(port: port)
    }

    func reconnect() throws {
        client.close()
        client = try WireClient(port: port)
    }
}

/// The two servers of a differential run, and what every such run does alike with them: render a
/// command with each side's own CAS tokens, record the CAS a batch's trailing `mg <key> c` reported,
/// and flush both to start again in step.
struct DifferentialPair {
    let seed: UInt64
    let reference: DifferentialSide
    let candidate: DifferentialSide

    func render(_ command: CommandGenerator.Command, for side: DifferentialSide) -> [UInt8] {
        var bytes: [UInt8] = []
        for segment in command.segments {
            switch segment {
            case .bytes(let literal):
                bytes += literal
            case .cas(let key, let choice):
                bytes += Array(casToken(key: key, choice: choice, side: side).utf8)
            }
        }
        return bytes
    }

    /// Resolves a CAS token for one server. `older` is used only when both servers have a CAS above 1 for the key,
    /// so that both sides make the same kind of claim; otherwise both fall back to a bogus value.
    private func casToken(key: Int, choice: CommandGenerator.CasChoice, side: DifferentialSide) -> String {
        let bogus = "999999999999"
        switch choice {
        case .bogus:
            return bogus
        case .current:
            return side.casByKey[key].map(String.init) ?? bogus
        case .older:
            guard let mine = side.casByKey[key], (reference.casByKey[key] ?? 0) > 1, (candidate.casByKey[key] ?? 0) > 1
            else { return bogus }
            return String(mine - 1)
        }
    }

    /// Records the CAS from the reply to a trailing `mg <key> c`: its line is the last one before the final `MN`.
    func recordCas(of key: Int, from bytes: [UInt8], side: DifferentialSide) {
        let lines = ReplyNormalizer.splitLines(bytes)
        guard lines.count >= 2 else { return }
        let answer = lines[lines.count - 2]
        if answer.hasPrefix("HD c"), let value = UInt64(answer.dropFirst(4)) {
            side.casByKey[key] = value
        } else if answer == "EN" {
            side.casByKey[key] = nil
        }
    }

    /// Flushes both servers on new connections and forgets their CAS values.
    func resynchronize() throws {
        for side in [reference, candidate] {
            try side.reconnect()
            side.casByKey.removeAll()
            side.client.send(Array("flush_all\r\nmn\r\n".utf8))
            let result = side.client.read(timeout: .seconds(2)) { $0.suffix(4).elementsEqual(Array("MN\r\n".utf8)) }
            if result.outcome != .satisfied {
                Issue.record("seed \(seed): \(side.name) did not answer flush_all while resynchronizing")
            }
        }
    }
}
