// The cache proxy's own admin endpoints: types and server stubs generated from openapi.yaml.
