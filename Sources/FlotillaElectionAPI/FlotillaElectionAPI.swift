// The election sidecar API's types and server stubs are generated from openapi.yaml at build time
// by swift-openapi-generator (see openapi-generator-config.yaml); this target holds no hand code.
