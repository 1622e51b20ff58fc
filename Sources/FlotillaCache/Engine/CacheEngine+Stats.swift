import FlotillaCore
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
            context.totals.reset()
            store.resetCounters()
            context.connections.resetTotals()
            context.prefixes.reset()
            out.writeMemcacheLine("RESET")
        case "settings":
            for (name, value) in settingsStats() { Self.writeStat(name, value, into: &out) }
            out.writeMemcacheLine("END")
        case "items":
            for (name, value) in itemStats() { Self.writeStat(name, value, into: &out) }
            out.writeMemcacheLine("END")
        case "slabs":
            for (name, value) in slabStats() { Self.writeStat(name, value, into: &out) }
            out.writeMemcacheLine("END")
        case "sizes":
            // memcached tracks item sizes only when started with `-o track_sizes`.
            Self.writeStat("sizes_status", "disabled", into: &out)
            out.writeMemcacheLine("END")
        case "conns":
            for (name, value) in connectionStats() { Self.writeStat(name, value, into: &out) }
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
            switch arguments.count == 2 ? arguments[1] : "" {
            case "on":
                context.prefixes.setEnabled(true)
                out.writeMemcacheLine("OK")
            case "off":
                context.prefixes.setEnabled(false)
                out.writeMemcacheLine("OK")
            case "dump":
                context.prefixes.dump(into: &out)
            default:
                out.writeMemcacheLine("CLIENT_ERROR usage: stats detail on|off|dump")
                return Outcome(operation: .stats, failed: true)
            }
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

    /// `stats settings`: memcached 1.6's keys in its order, with flotilla's values; what flotilla
    /// does not have (slabs, extstore, TLS, UDP, SASL) reads as memcached reads it switched off.
    private func settingsStats() -> [(String, String)] {
        let configuration = context.configuration
        let local = connection?.local ?? "tcp:\(configuration.listen.host):\(configuration.listen.port)"
        let listenPort = local.split(separator: ":").last.map(String.init) ?? "\(configuration.listen.port)"
        return [
            ("maxbytes", "\(configuration.memoryLimit)"),
            ("maxconns", "\(configuration.maxConnections)"),
            ("tcpport", listenPort),
            ("udpport", "0"),
            ("inter", configuration.listen.host),
            ("verbosity", "0"),
            ("oldest", "0"),
            ("evictions", "on"),
            ("domain_socket", "NULL"),
            ("umask", "700"),
            ("shutdown_command", "no"),
            ("growth_factor", "1.00"),
            ("chunk_size", "\(Item.overhead)"),
            ("num_threads", "\(context.threads)"),
            ("num_threads_per_udp", "0"),
            ("stat_key_prefix", ":"),
            ("detail_enabled", context.prefixes.isEnabled ? "yes" : "no"),
            ("reqs_per_event", "0"),
            ("cas_enabled", "yes"),
            ("tcp_backlog", "1024"),
            ("binding_protocol", "ascii"),
            ("auth_enabled_sasl", "no"),
            ("auth_enabled_ascii", "no"),
            ("item_size_max", "\(configuration.maxItemSize)"),
            ("maxconns_fast", "yes"),
            ("hashpower_init", "0"),
            ("slab_reassign", "no"),
            ("slab_automove", "0"),
            ("slab_automove_ratio", "0.00"),
            ("slab_automove_window", "0"),
            ("slab_chunk_max", "\(configuration.maxItemSize)"),
            ("lru_crawler", "yes"),
            ("lru_crawler_sleep", "0"),
            ("lru_crawler_tocrawl", "0"),
            ("tail_repair_time", "0"),
            ("flush_enabled", "yes"),
            ("dump_enabled", "yes"),
            ("hash_algorithm", "swift-hasher"),
            ("lru_maintainer_thread", "no"),
            ("lru_segmented", "no"),
            ("hot_lru_pct", "0"),
            ("warm_lru_pct", "0"),
            ("hot_max_factor", "0.00"),
            ("warm_max_factor", "0.00"),
            ("temp_lru", "no"),
            ("temporary_ttl", "0"),
            ("idle_timeout", "0"),
            ("watcher_logbuf_size", "0"),
            ("worker_logbuf_size", "0"),
            ("read_buf_mem_limit", "\(configuration.requestMemory)"),
            ("track_sizes", "no"),
            ("inline_ascii_response", "no"),
            ("ext_item_size", "0"),
            ("ext_item_age", "0"),
            ("ext_low_ttl", "0"),
            ("ext_recache_rate", "0"),
            ("ext_wbuf_size", "0"),
            ("ext_compact_under", "0"),
            ("ext_drop_under", "0"),
            ("ext_max_sleep", "0"),
            ("ext_max_frag", "0.00"),
            ("slab_automove_freeratio", "0.000"),
            ("ext_drop_unread", "no"),
            ("ssl_enabled", "no"),
            ("ssl_chain_cert", "(null)"),
            ("ssl_key", "(null)"),
            ("ssl_verify_mode", "0"),
            ("ssl_keyformat", "0"),
            ("ssl_ciphers", "NULL"),
            ("ssl_ca_cert", "NULL"),
            ("ssl_wbuf_size", "0"),
            ("ssl_session_cache", "no"),
            ("ssl_kernel_tls", "no"),
            ("ssl_min_version", "none"),
            ("num_napi_ids", "(null)"),
            ("memory_file", "(null)"),
        ]
    }

    /// `stats items`: flotilla keeps every item in one LRU, reported as memcached's class 1 (as
    /// `lru_crawler metadump` and `stats cachedump` do), and nothing while it is empty. The LRU
    /// is not segmented: every item counts as cold, and every hit as a hit to cold.
    private func itemStats() -> [(String, String)] {
        let storage = store.totals()
        guard storage.items > 0 else { return [] }
        let now = clock.now
        let age = storage.oldestAccess.map { now &- min(now, $0) } ?? 0
        let counters = storage.counters
        let hits = context.totals[.getHits]
        let fields: [(String, String)] = [
            ("number", "\(storage.items)"),
            ("number_hot", "0"),
            ("number_warm", "0"),
            ("number_cold", "\(storage.items)"),
            ("age_hot", "0"),
            ("age_warm", "0"),
            ("age", "\(age)"),
            ("mem_requested", "\(storage.bytes)"),
            ("evicted", "\(counters.evictions)"),
            ("evicted_nonzero", "\(counters.evictedNonzero)"),
            ("evicted_time", "\(counters.evictedTime)"),
            ("outofmemory", "\(counters.outOfMemory)"),
            ("tailrepairs", "0"),
            ("reclaimed", "\(counters.reclaimed)"),
            ("expired_unfetched", "\(counters.expiredUnfetched)"),
            ("evicted_unfetched", "\(counters.evictedUnfetched)"),
            ("evicted_active", "0"),
            ("crawler_reclaimed", "\(counters.crawlerReclaimed)"),
            ("crawler_items_checked", "\(counters.crawlerItemsChecked)"),
            ("lrutail_reflocked", "0"),
            ("moves_to_cold", "0"),
            ("moves_to_warm", "0"),
            ("moves_within_lru", "0"),
            ("direct_reclaims", "0"),
            ("hits_to_hot", "0"),
            ("hits_to_warm", "0"),
            ("hits_to_cold", "\(hits)"),
            ("hits_to_temp", "0"),
        ]
        let slabClass = StripedStore.slabClass
        return fields.map { ("items:\(slabClass):\($0.0)", $0.1) }
    }

    /// `stats slabs`: flotilla allocates each item to its size, so its one class has one chunk an
    /// item, sized by the mean item, and no free chunks; `total_malloced` is the bytes charged
    /// against `--memory`.
    private func slabStats() -> [(String, String)] {
        let storage = store.totals()
        guard storage.items > 0 else { return [("active_slabs", "0"), ("total_malloced", "0")] }
        let totals = context.totals
        let fields: [(String, String)] = [
            ("chunk_size", "\(storage.bytes / storage.items)"),
            ("chunks_per_page", "1"),
            ("total_pages", "\(storage.items)"),
            ("total_chunks", "\(storage.items)"),
            ("used_chunks", "\(storage.items)"),
            ("free_chunks", "0"),
            ("free_chunks_end", "0"),
            ("get_hits", "\(totals[.getHits])"),
            ("cmd_set", "\(totals[.cmdSet])"),
            ("delete_hits", "\(totals[.deleteHits])"),
            ("incr_hits", "\(totals[.incrHits])"),
            ("decr_hits", "\(totals[.decrHits])"),
            ("cas_hits", "\(totals[.casHits])"),
            ("cas_badval", "\(totals[.casBadval])"),
            ("touch_hits", "\(totals[.touchHits])"),
        ]
        let slabClass = StripedStore.slabClass
        return fields.map { ("\(slabClass):\($0.0)", $0.1) } + [
            ("active_slabs", "1"),
            ("total_malloced", "\(storage.bytes)"),
        ]
    }

    /// `stats conns`: the listener (as id 0), then every open connection, oldest first.
    private func connectionStats() -> [(String, String)] {
        let now = clock.now
        let listener = connection?.local ?? "unknown"
        var stats: [(String, String)] = [
            ("0:addr", listener),
            ("0:state", "conn_listening"),
            ("0:secs_since_last_cmd", "\(now &- min(now, CacheClock.startOffset))"),
        ]
        for entry in context.registry.snapshot() {
            stats.append(("\(entry.id):addr", entry.remote))
            stats.append(("\(entry.id):listen_addr", entry.local))
            stats.append(("\(entry.id):state", entry === connection ? "conn_parse_cmd" : "conn_waiting"))
            stats.append(("\(entry.id):secs_since_last_cmd", "\(entry.secondsSinceLastCommand(now: now))"))
        }
        return stats
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
