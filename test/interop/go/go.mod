module opamp-sdk/interop

go 1.24.0

require (
	github.com/google/go-cmp v0.7.0
	github.com/open-telemetry/opamp-go v0.23.0
	google.golang.org/protobuf v1.36.11
)
