import FlotillaMemcache
import FlotillaServer
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// `stats`: memcached's general statistics under memcached's field names.
extension CacheEngine {
    mutating func stats(_ arguments: [String], into out: inout ByteBuffer) -> Outcome {
        context.totals.commit(&counters)
        guard let subcommand = arguments.first else {
            for (name, value) in generalStats() { Self.writeStat(name, value, into: &out) }
            out.writeMemcacheLine("END")
            return Outcome(operation: .stats)
        }
        switch subcommand {
        case "reset":
            out.writeMemcacheLine("RESET")
        case "settings":
            let configuration = context.configuration
            Self.writeStat("maxbytes", "\(configuration.memoryLimit)", into: &out)
            Self.writeStat("maxconns", "\(configuration.maxConnections)", into: &out)
            Self.writeStat("num_threads", "\(context.threads)", into: &out)
            Self.writeStat("item_size_max", "\(configuration.maxItemSize)", into: &out)
            Self.writeStat("evictions", "on", into: &out)
            Self.writeStat("cas_enabled", "yes", into: &out)
            out.writeMemcacheLine("END")
        case "cachedump":
            // memcached: `stats cachedump <class> <limit>`; flotilla keeps every item in class 1.
            guard arguments.count == 3, let slabClass = UInt32(arguments[1]), let limit = UInt32(arguments[2]) else {
                out.writeMemcacheLine("CLIENT_ERROR bad command line")
                return Outcome(operation: .stats, failed: true)
            }
            guard slabClass <= SlabClasses.largestClass else {
                out.writeMemcacheLine("CLIENT_ERROR Illegal slab id")
                return Outcome(operation: .stats, failed: true)
            }
            if slabClass == StripedStore.slabClass {
                store.cachedump(limit: Int(limit), into: &out)
            } else {
                out.writeMemcacheLine("END")
            }
        case "detail":
            out.writeMemcacheLine("CLIENT_ERROR usage: stats detail on|off|dump")
            return Outcome(operation: .stats, failed: true)
        default:
            out.writeMemcacheLine("ERROR")
            return Outcome(operation: .stats, failed: true)
        }
        return Outcome(operation: .stats)
    }

    private static func writeStat(_ name: String, _ value: String, into out: inout ByteBuffer) {
        out.writeStaticString("STAT ")
        out.writeString(name)
        out.writeInteger(UInt8(ascii: " "))
        out.writeString(value)
        out.writeStaticString("\r\n")
    }

    private func generalStats() -> [(String, String)] {
        let totals = context.totals
        let storage = store.totals()
        let uptime = ContinuousClock.now - context.started
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        func seconds(_ time: timeval) -> String {
            let micros = String(Int(time.tv_usec))
            return "\(time.tv_sec)." + String(repeating: "0", count: max(0, 6 - micros.count)) + micros
        }
        var stats: [(String, String)] = [
            ("pid", "\(getpid())"),
            ("uptime", "\(uptime.components.seconds)"),
            ("time", "\(clock.unixNow)"),
            ("version", CacheContext.protocolVersion),
            ("libevent", "swift-nio"),
            ("pointer_size", "\(MemoryLayout<Int>.size * 8)"),
            ("rusage_user", seconds(usage.ru_utime)),
            ("rusage_system", seconds(usage.ru_stime)),
            ("max_connections", "\(context.configuration.maxConnections)"),
            ("curr_connections", "\(context.connections.current)"),
            ("total_connections", "\(context.connections.accepted)"),
            ("rejected_connections", "\(context.connections.refused)"),
            ("connection_structures", "\(context.connections.current)"),
        ]
        for counter in CacheCounter.allCases {
            stats.append((counter.statName, "\(totals[counter])"))
        }
        stats += [
            ("limit_maxbytes", "\(context.configuration.memoryLimit)"),
            ("accepting_conns", "1"),
            ("threads", "\(context.threads)"),
            ("bytes", "\(storage.bytes)"),
            ("curr_items", "\(storage.items)"),
            ("total_items", "\(storage.counters.totalItems)"),
            ("expired_unfetched", "\(storage.counters.expiredUnfetched)"),
            ("evicted_unfetched", "\(storage.counters.evictedUnfetched)"),
            ("evictions", "\(storage.counters.evictions)"),
            ("reclaimed", "\(storage.counters.reclaimed)"),
        ]
        return stats
    }
}
