import FlotillaCore

/// Every command of the text and meta protocols, as a bounded dimension for statistics.
public enum MemcacheOperation: Int, CaseIterable, Sendable {
    case get, gets, gat, gats
    case set, add, replace, append, prepend, cas
    case delete, incr, decr, touch
    case flushAll, version, verbosity, stats, quit, lruCrawler
    case metaGet, metaSet, metaDelete, metaArithmetic, metaNoop, metaDebug
    /// A line memcached does not know (answered `ERROR`).
    case unknown

    /// The command's name on the wire (`flush_all`, `mg`, …); `unknown` for anything else.
    public var name: String {
        switch self {
        case .get: "get"
        case .gets: "gets"
        case .gat: "gat"
        case .gats: "gats"
        case .set: "set"
        case .add: "add"
        case .replace: "replace"
        case .append: "append"
        case .prepend: "prepend"
        case .cas: "cas"
        case .delete: "delete"
        case .incr: "incr"
        case .decr: "decr"
        case .touch: "touch"
        case .flushAll: "flush_all"
        case .version: "version"
        case .verbosity: "verbosity"
        case .stats: "stats"
        case .quit: "quit"
        case .lruCrawler: "lru_crawler"
        case .metaGet: "mg"
        case .metaSet: "ms"
        case .metaDelete: "md"
        case .metaArithmetic: "ma"
        case .metaNoop: "mn"
        case .metaDebug: "me"
        case .unknown: "unknown"
        }
    }
}

extension MemcacheOperation: RoleOperation {}
