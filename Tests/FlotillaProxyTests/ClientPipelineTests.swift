import FlotillaMemcache
import NIOCore
import Testing

@testable import FlotillaProxy

@Suite("ClientPipeline: reply order, bounds, hold and close of one client connection")
struct ClientPipelineTests {
    private func bytes(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

    /// Starts `operations` as one round of processing.
    private func start(_ pipeline: inout ClientPipeline, _ count: Int) -> [ReplySlot] {
        let check1 = pipeline.beginProcessing()
        #expect(check1)
        var slots: [ReplySlot] = []
        for index in 0..<count where pipeline.canStartRequest {
            slots.append(pipeline.open(.get, now: UInt64(index)))
        }
        pipeline.endProcessing()
        return slots
    }

    @Test("replies leave in request order whatever order they complete in")
    func replyOrder() {
        var pipeline = ClientPipeline(maxPending: 8)
        let slots = start(&pipeline, 3)
        var outbound = ByteBuffer()
        let check2 = pipeline.finish(slots[2], bytes("C"), endsRetrieval: false)?.atHead == false
        #expect(check2)
        let check3 = pipeline.takeReady(into: &outbound, decoderIdle: true) == []
        #expect(check3)
        let check4 = pipeline.finish(slots[1], bytes("B"), endsRetrieval: false)?.atHead == false
        #expect(check4)
        let check5 = pipeline.finish(slots[0], bytes("A"), endsRetrieval: false)?.atHead == true
        #expect(check5)
        let check6 = pipeline.takeReady(into: &outbound, decoderIdle: true) == [.sendReplies]
        #expect(check6)
        #expect(String(buffer: outbound) == "ABC")
        #expect(pipeline.isDone(slots[0]) && pipeline.isDone(slots[2]))
    }

    @Test("a retrieval's hits get their END; a slot finished twice counts once; noreply sends nothing")
    func retrievalAndDuplicates() {
        var pipeline = ClientPipeline(maxPending: 8)
        let slots = start(&pipeline, 2)
        let check7 = pipeline.finish(slots[0], bytes("VALUE k 0 1\r\nx\r\n"), endsRetrieval: true) != nil
        #expect(check7)
        let check8 = pipeline.finish(slots[0], bytes("again"), endsRetrieval: false) == nil
        #expect(check8)
        let check9 = pipeline.finish(slots[1], nil, endsRetrieval: false) != nil
        #expect(check9)
        var outbound = ByteBuffer()
        _ = pipeline.takeReady(into: &outbound, decoderIdle: true)
        #expect(String(buffer: outbound) == "VALUE k 0 1\r\nx\r\nEND\r\n")
    }

    @Test("replies completed while requests are being started wait for the end of that round")
    func gatherWhileProcessing() {
        var pipeline = ClientPipeline(maxPending: 8)
        let check10 = pipeline.beginProcessing()
        #expect(check10)
        let check11 = !pipeline.beginProcessing()
        #expect(check11)
        let slot = pipeline.open(.version, now: 0)
        _ = pipeline.finish(slot, bytes("VERSION 1\r\n"), endsRetrieval: false)
        var outbound = ByteBuffer()
        let check12 = pipeline.takeReady(into: &outbound, decoderIdle: true) == []
        #expect(check12)
        pipeline.endProcessing()
        let check13 = pipeline.takeReady(into: &outbound, decoderIdle: true) == [.sendReplies]
        #expect(check13)
        #expect(String(buffer: outbound) == "VERSION 1\r\n")
    }

    @Test("at the bound no request starts and reads wait; below half, it resumes and the read is done")
    func boundAndResume() {
        var pipeline = ClientPipeline(maxPending: 4)
        let slots = start(&pipeline, 10)
        #expect(slots.count == 4)
        #expect(pipeline.paused)
        let check14 = !pipeline.readRequested()
        #expect(check14)
        var outbound = ByteBuffer()
        _ = pipeline.finish(slots[0], bytes("0"), endsRetrieval: false)
        let check15 = pipeline.takeReady(into: &outbound, decoderIdle: false) == [.sendReplies]
        #expect(check15)
        #expect(pipeline.paused)
        _ = pipeline.finish(slots[1], bytes("1"), endsRetrieval: false)
        _ = pipeline.finish(slots[2], bytes("2"), endsRetrieval: false)
        let check16 = pipeline.takeReady(into: &outbound, decoderIdle: false) == [.sendReplies, .resume]
        #expect(check16)
        #expect(!pipeline.paused)
        let check17 = pipeline.takePendingRead()
        #expect(check17)
        let check18 = !pipeline.takePendingRead()
        #expect(check18)
        let check19 = pipeline.readRequested()
        #expect(check19)
    }

    @Test("a held pipeline starts nothing and defers reads until released")
    func hold() {
        var pipeline = ClientPipeline(maxPending: 8)
        let check20 = pipeline.beginProcessing()
        #expect(check20)
        _ = pipeline.open(.cas, now: 0)
        pipeline.hold()
        #expect(!pipeline.canStartRequest)
        pipeline.endProcessing()
        let check21 = !pipeline.readRequested()
        #expect(check21)
        let check22 = pipeline.release()
        #expect(check22)
        let check23 = !pipeline.release()
        #expect(check23)
        let check24 = pipeline.takePendingRead()
        #expect(check24)
    }

    @Test("quit closes once every earlier reply is out, and starts nothing after it")
    func quitClosesAfterEarlierReplies() {
        var pipeline = ClientPipeline(maxPending: 8)
        let check25 = pipeline.beginProcessing()
        #expect(check25)
        let first = pipeline.open(.get, now: 0)
        pipeline.closeWhenReplied()
        #expect(!pipeline.canStartRequest)
        pipeline.endProcessing()
        var outbound = ByteBuffer()
        let check26 = pipeline.takeReady(into: &outbound, decoderIdle: true) == []
        #expect(check26)
        _ = pipeline.finish(first, bytes("END\r\n"), endsRetrieval: false)
        let check27 = pipeline.takeReady(into: &outbound, decoderIdle: true) == [.close]
        #expect(check27)
        #expect(pipeline.closing)
        let check28 = !pipeline.beginProcessing()
        #expect(check28)
        #expect(String(buffer: outbound) == "END\r\n")
    }

    @Test("a drain closes an idle connection, not one with a request in progress or half received")
    func drain() {
        var pipeline = ClientPipeline(maxPending: 8)
        let slots = start(&pipeline, 1)
        pipeline.quiesce()
        var outbound = ByteBuffer()
        let check29 = pipeline.takeReady(into: &outbound, decoderIdle: true) == []
        #expect(check29)
        _ = pipeline.finish(slots[0], bytes("x"), endsRetrieval: false)
        let check30 = pipeline.takeReady(into: &outbound, decoderIdle: false) == [.sendReplies]
        #expect(check30)
        let check31 = pipeline.takeReady(into: &outbound, decoderIdle: true) == [.close]
        #expect(check31)
    }

    @Test("a client's recent writes are remembered while replies are outstanding, forgotten after")
    func recentWrites() {
        var pipeline = ClientPipeline(maxPending: 8)
        let slots = start(&pipeline, 2)
        pipeline.noteWrite(bytes("k"))
        #expect(pipeline.lastWrite(bytes("k")) == slots[1].sequence)
        #expect(pipeline.lastWrite(bytes("other")) == nil)
        _ = pipeline.finish(slots[0], nil, endsRetrieval: false)
        _ = pipeline.finish(slots[1], nil, endsRetrieval: false)
        var outbound = ByteBuffer()
        _ = pipeline.takeReady(into: &outbound, decoderIdle: false)
        #expect(pipeline.lastWrite(bytes("k")) == nil)
    }

    @Test("a client that stops reading its replies starts nothing and is not read until its channel drains")
    func unwritableClient() {
        var pipeline = ClientPipeline(maxPending: 8)
        let slots = start(&pipeline, 2)
        let check1 = !pipeline.writabilityChanged(false)
        #expect(check1)
        #expect(pipeline.paused)
        let check2 = !pipeline.readRequested()
        #expect(check2)
        var outbound = ByteBuffer()
        _ = pipeline.finish(slots[0], bytes("0"), endsRetrieval: false)
        _ = pipeline.finish(slots[1], bytes("1"), endsRetrieval: false)
        // Every reply is out, but the client has not read them: nothing resumes.
        let check3 = pipeline.takeReady(into: &outbound, decoderIdle: false) == [.sendReplies]
        #expect(check3)
        let check4 = pipeline.beginProcessing()
        #expect(check4)
        let check5 = !pipeline.canStartRequest
        #expect(check5)
        pipeline.endProcessing()
        // It read them: requests start again and the read held back is done.
        let check6 = pipeline.writabilityChanged(true)
        #expect(check6)
        let check7 = pipeline.takePendingRead()
        #expect(check7)
        #expect(start(&pipeline, 1).count == 1)
    }

    @Test("retrieval keys count at the size this client's values have: large values go one request at a time")
    func replyBudget() {
        var pipeline = ClientPipeline(maxPending: 64, replyBudget: 1_000_000)
        var outbound = ByteBuffer()
        /// Starts multi-gets of `keys` keys while the pipeline lets them.
        func startGets(_ keys: Int, _ count: Int) -> [ReplySlot] {
            _ = pipeline.beginProcessing()
            var slots: [ReplySlot] = []
            for index in 0..<count where pipeline.canStartRequest {
                slots.append(pipeline.open(.get, keys: keys, now: UInt64(index)))
            }
            pipeline.endProcessing()
            return slots
        }
        // Before any reply, a key may hold memcached's largest item: a first request goes alone.
        var slots = startGets(10, 5)
        #expect(slots.count == 1)
        #expect(pipeline.paused)
        // Its ten values were 10 bytes each: from then on, small values pipeline freely.
        _ = pipeline.finish(slots[0], ByteBuffer(repeating: 0, count: 100), endsRetrieval: true)
        let check1 = pipeline.takeReady(into: &outbound, decoderIdle: false) == [.sendReplies, .resume]
        #expect(check1)
        #expect(pipeline.bytesPerKey <= ClientPipeline.initialBytesPerKey / 2)
        for slot in slots { _ = pipeline.finish(slot, nil, endsRetrieval: false) }
        for _ in 0..<20 {
            slots = startGets(1, 1)
            _ = pipeline.finish(slots[0], ByteBuffer(repeating: 0, count: 10), endsRetrieval: true)
            _ = pipeline.takeReady(into: &outbound, decoderIdle: false)
        }
        #expect(pipeline.bytesPerKey == ClientPipeline.minimumBytesPerKey)
        slots = startGets(10, 40)
        #expect(slots.count == 40)
        // A reply of large values counts at once: the next requests wait for the bytes to go out.
        _ = pipeline.finish(slots[0], ByteBuffer(repeating: 0, count: 2_000_000), endsRetrieval: true)
        #expect(pipeline.bytesPerKey == 200_000)
        let check2 = pipeline.beginProcessing()
        #expect(check2)
        let check3 = !pipeline.canStartRequest
        #expect(check3)
        pipeline.endProcessing()
        let check4 = !pipeline.readRequested()
        #expect(check4)
        for slot in slots.dropFirst() { _ = pipeline.finish(slot, nil, endsRetrieval: false) }
        let check5 = pipeline.takeReady(into: &outbound, decoderIdle: false) == [.sendReplies, .resume]
        #expect(check5)
        #expect(pipeline.countedBytes == 0)
    }
}
