import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A swift-log handler that writes one JSON object per line to standard error, with the
/// metadata as top-level fields: `{"ts":"…","level":"info","message":"listening","address":"…"}`.
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    private let label: String

    public init(label: String) {
        self.label = label
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields: [(String, String)] = [
            ("ts", Self.timestamp()),
            ("level", event.level.rawValue),
            ("logger", label),
            ("message", event.message.description),
        ]
        let merged = self.metadata.merging(event.metadata ?? [:]) { $1 }
        for key in merged.keys.sorted() {
            fields.append((key, merged[key]!.description))
        }
        Self.writeLine(fields)
    }

    /// Writes one JSON object on standard error: the fields in order, a value that reads as a
    /// JSON number (`42`, `-1.5`) as a number, every other as a string.
    public static func writeLine(_ fields: [(String, String)]) {
        var line = "{"
        for (index, (key, value)) in fields.enumerated() {
            if index > 0 { line += "," }
            let text = key == "message" || !isJSONNumber(value) ? "\"\(escape(value))\"" : value
            line += "\"\(escape(key))\":\(text)"
        }
        line += "}\n"
        // One write(2) per line, so lines from several threads never interleave.
        var bytes = Array(line.utf8)
        bytes.withUnsafeMutableBytes { buffer in
            _ = write(2, buffer.baseAddress, buffer.count)
        }
    }

    /// A line for an error that ends the process, in the same format as the log lines.
    public static func writeError(_ message: String) {
        writeLine([("ts", timestamp()), ("level", "error"), ("logger", "flotilla"), ("message", message)])
    }

    /// JSON's number grammar, without exponents: `-?(0|[1-9][0-9]*)(\.[0-9]+)?`.
    static func isJSONNumber(_ text: String) -> Bool {
        var bytes = Substring(text).utf8[...]
        if bytes.first == UInt8(ascii: "-") { bytes = bytes.dropFirst() }
        let integer = bytes.prefix { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }
        guard !integer.isEmpty, integer.count == 1 || integer.first != UInt8(ascii: "0"), integer.count <= 15 else {
            return false
        }
        bytes = bytes.dropFirst(integer.count)
        if bytes.isEmpty { return true }
        guard bytes.first == UInt8(ascii: ".") else { return false }
        let fraction = bytes.dropFirst()
        return !fraction.isEmpty && fraction.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }
    }

    static func escape(_ text: String) -> String {
        var escaped = ""
        escaped.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": escaped += "\\\""
            case "\\": escaped += "\\\\"
            case "\n": escaped += "\\n"
            case "\r": escaped += "\\r"
            case "\t": escaped += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                escaped += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: escaped.unicodeScalars.append(scalar)
            }
        }
        return escaped
    }

    /// UTC, with its zone: `2026-12-07T15:13:01.398Z`.
    private static func timestamp() -> String {
        Date.now.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }
}
