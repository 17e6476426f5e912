// Package mgmt is the management component: it accepts the control and
// data components, keeps the peer registry, tells each component where its
// peer is and runs the Hello cycle of every ready pair, by driving the pure
// handshake.Mgmt machine from a tier.Loop. It serves the operator gRPC API
// (package mgmt/operator).
package mgmt
