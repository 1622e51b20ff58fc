import NIOCore

/// A link whose requests `LoopWrites` flushes once per event-loop tick.
public protocol LoopFlushable: AnyObject {
    /// Set while the link waits in the loop's list for its flush.
    var flushPending: Bool { get set }
    func flush()
}

/// A client connection whose replies wait for the end of an upstream read.
public protocol HeldRepliesFlushing: AnyObject {
    /// Writes the replies held during the read.
    func flushReplies()
}

/// Batches one event loop's writes so that a burst leaves in one syscall per connection:
/// - requests to an upstream written during an event-loop tick leave together after the tick's
///   I/O, by one task per tick for all of the loop's links;
/// - replies that one read from an upstream completes leave together after that read, one write
///   per client, instead of one write per reply (a pipelining client gets its replies in one write).
///
/// Everything here runs on the loop.
public final class LoopWrites {
    private let loop: any EventLoop
    /// Links with requests written and not yet flushed, and the task that flushes them.
    private var pendingLinks: [any LoopFlushable] = []
    private var flushingLinks: [any LoopFlushable] = []
    private var linkFlushScheduled = false
    private var flushLinksTask: () -> Void = {}
    /// Clients with replies held back until the upstream read that completed them is over.
    private var pendingClients: [any HeldRepliesFlushing] = []
    private var flushingClients: [any HeldRepliesFlushing] = []
    private var upstreamReadDepth = 0

    public init(loop: any EventLoop) {
        self.loop = loop
        self.flushLinksTask = { [weak self] in self?.flushLinks() }
    }

    /// `link` has a request in its outbound buffer: flush it at the end of this tick.
    public func requestWritten(_ link: any LoopFlushable) {
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

    /// Whether replies completed now wait for the end of an upstream read (`flushReplies()` is
    /// then called once for all of them).
    public var holdingReplies: Bool { upstreamReadDepth > 0 }

    /// An upstream's read is delivering replies.
    public func beginUpstreamRead() {
        upstreamReadDepth += 1
    }

    /// The upstream's read is over: every client it completed replies for writes them now.
    public func endUpstreamRead() {
        upstreamReadDepth -= 1
        guard upstreamReadDepth == 0, !pendingClients.isEmpty else { return }
        swap(&pendingClients, &flushingClients)
        for client in flushingClients {
            client.flushReplies()
        }
        flushingClients.removeAll(keepingCapacity: true)
    }

    /// `client` holds replies until the end of the current upstream read.
    public func repliesHeld(_ client: any HeldRepliesFlushing) {
        pendingClients.append(client)
    }
}

@available(*, unavailable)
extension LoopWrites: Sendable {}
