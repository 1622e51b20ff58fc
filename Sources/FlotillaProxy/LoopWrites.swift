import NIOCore

/// Batches one event loop's writes so that a burst leaves in one syscall per connection:
/// - requests to a shard written during an event-loop tick leave together after the tick's I/O,
///   by one task per tick for all of the loop's shard links;
/// - replies that one read from a shard completes leave together after that read, one write per
///   client, instead of one write per reply (a pipelining client gets its replies in one write).
///
/// Everything here runs on the loop.
final class LoopWrites {
    private let loop: any EventLoop
    /// Shard links with requests written and not yet flushed, and the task that flushes them.
    private var pendingLinks: [ShardLink] = []
    private var flushingLinks: [ShardLink] = []
    private var linkFlushScheduled = false
    private var flushLinksTask: () -> Void = {}
    /// Clients with replies held back until the shard read that completed them is over.
    private var pendingClients: [ProxyConnectionHandler] = []
    private var flushingClients: [ProxyConnectionHandler] = []
    private var shardReadDepth = 0

    init(loop: any EventLoop) {
        self.loop = loop
        self.flushLinksTask = { [weak self] in self?.flushLinks() }
    }

    /// `link` has a request in its outbound buffer: flush it at the end of this tick.
    func requestWritten(_ link: ShardLink) {
        if !link.flushPending {
            link.flushPending = true
            pendingLinks.append(link)
        }
        guard !linkFlushScheduled else { return }
        linkFlushScheduled = true
        loop.assumeIsolated().execute(flushLinksTask)
    }

    private func flushLinks() {
        linkFlushScheduled = false
        // A flush can fail a link's calls, whose callbacks may write to another link: those
        // land in `pendingLinks` again and schedule the next flush.
        swap(&pendingLinks, &flushingLinks)
        for link in flushingLinks {
            link.flushPending = false
            link.flush()
        }
        flushingLinks.removeAll(keepingCapacity: true)
    }

    /// Whether replies completed now wait for the end of a shard read (`client.flushReplies()`
    /// is then called once for all of them).
    var holdingReplies: Bool { shardReadDepth > 0 }

    /// A shard's read is delivering replies.
    func beginShardRead() {
        shardReadDepth += 1
    }

    /// The shard's read is over: every client it completed replies for writes them now.
    func endShardRead() {
        shardReadDepth -= 1
        guard shardReadDepth == 0, !pendingClients.isEmpty else { return }
        swap(&pendingClients, &flushingClients)
        for client in flushingClients {
            client.flushReplies()
        }
        flushingClients.removeAll(keepingCapacity: true)
    }

    /// `client` holds replies until the end of the current shard read.
    func repliesHeld(_ client: ProxyConnectionHandler) {
        pendingClients.append(client)
    }
}
