// Package mgmt is the management component: it accepts the control and
// data components, keeps the peer registry, tells each component where its
// peer is and runs the Hello cycle of every ready pair; its instances
// elect a master and keep the backups in sync. It runs on the management
// shell of package appliance (appliance.Management, beside the component
// shell ctrl and data run on), with the application of Config.App
// inside, and serves the operator gRPC API (package mgmt/operator) and
// the metrics beside it.
package mgmt
