module opamp-sdk/bench

go 1.24.0

require (
	github.com/gorilla/websocket v1.5.3
	github.com/open-telemetry/opamp-go v0.23.0
)

require google.golang.org/protobuf v1.36.11
