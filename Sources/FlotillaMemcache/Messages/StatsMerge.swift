/// Several memcached servers' answers to one `stats` group, as one answer: what a proxy in front
/// of them reports for `stats items`, `stats slabs`, `stats settings` and `stats detail dump`.
/// Names keep the order in which they were first seen.
public struct StatsMerge: Sendable {
    public enum Rule: Sendable {
        /// Counts are added up (`stats items`, `stats slabs`); a level or an age (`age`,
        /// `evicted_time`, `chunk_size`, …) keeps the largest value; text keeps the first.
        case sumCounts
        /// Settings: the first server's values, except `summed` names, added up (`maxbytes`).
        case firstExcept(summed: Set<String>)
        /// `PREFIX <prefix> get N hit N set N del N` lines: the counts of each prefix added up.
        case prefixes
    }

    /// Fields (the last `:`-separated part of a name) that are a level or a time, not a count.
    public static let largestKept: Set<String> = [
        "age", "age_hot", "age_warm", "evicted_time", "chunk_size", "chunks_per_page", "secs_since_last_cmd",
    ]

    public let rule: Rule
    private var order: [String] = []
    private var values: [String: String] = [:]

    public init(_ rule: Rule) {
        self.rule = rule
    }

    /// Adds one server's `STAT` (or `PREFIX`) lines.
    public mutating func add(_ lines: [(name: String, value: String)]) {
        for (name, value) in lines {
            let key = Self.key(name, value, rule)
            let value = Self.value(name, value, rule)
            guard let existing = values[key] else {
                order.append(key)
                values[key] = value
                continue
            }
            values[key] = combined(key, existing, value)
        }
    }

    /// The merged lines, in first-seen order.
    public var lines: [(name: String, value: String)] {
        order.map { key in
            switch rule {
            case .prefixes: ("PREFIX", key + " " + values[key]!)
            case .sumCounts, .firstExcept: (key, values[key]!)
            }
        }
    }

    private static func key(_ name: String, _ value: String, _ rule: Rule) -> String {
        guard case .prefixes = rule else { return name }
        return String(value.prefix { $0 != " " })
    }

    private static func value(_ name: String, _ value: String, _ rule: Rule) -> String {
        guard case .prefixes = rule else { return value }
        return String(value.drop { $0 != " " }.dropFirst())
    }

    private func combined(_ key: String, _ existing: String, _ new: String) -> String {
        switch rule {
        case .sumCounts:
            guard let a = UInt64(existing), let b = UInt64(new) else { return existing }
            let field = key.split(separator: ":").last.map(String.init) ?? key
            return String(Self.largestKept.contains(field) ? max(a, b) : a &+ b)
        case .firstExcept(let summed):
            guard summed.contains(key), let a = UInt64(existing), let b = UInt64(new) else { return existing }
            return String(a &+ b)
        case .prefixes:
            // `get 2 hit 1 set 1 del 1`: the numbers in odd places are added up.
            let left = existing.split(separator: " ")
            let right = new.split(separator: " ")
            guard left.count == right.count else { return existing }
            return zip(left, right).enumerated().map { index, pair in
                index % 2 == 1 ? String((UInt64(pair.0) ?? 0) &+ (UInt64(pair.1) ?? 0)) : String(pair.0)
            }.joined(separator: " ")
        }
    }
}
