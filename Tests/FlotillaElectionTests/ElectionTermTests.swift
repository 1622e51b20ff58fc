import FlotillaElection
import Testing

@Suite struct ElectionTermTests {
    @Test func coordinatorErrorsHaveBoundedLabels() {
        let error = CoordinatorError(.unreachable, "no endpoint of etcd://127.0.0.1:1 answered")
        #expect(error.shortDescription == "unreachable")
        #expect(error.description == "unreachable: no endpoint of etcd://127.0.0.1:1 answered")
    }
}
