package daemon_test

import (
	"os"

	"github.com/hellopics/hellopics/pkg/appliance"
	"github.com/hellopics/hellopics/pkg/daemon"
)

// An appliance's binary: the three daemons with its applications. Its
// main would pass os.Args[1:] ("counters mgmt -listen :7300", ...) and
// exit with the code; here it prints its usage.
func Example() {
	mgmtApp := &appliance.App{Name: "counters", Mux: appliance.NewMux()}
	ctrlApp := &appliance.App{Name: "counters", Mux: appliance.NewMux()}
	dataApp := &appliance.App{Name: "counters", Mux: appliance.NewMux()}
	apps := daemon.Apps{Mgmt: mgmtApp, Ctrl: ctrlApp, Data: dataApp, Version: "1.0.0"}

	code := daemon.Main("counters", []string{"help"}, apps) // os.Args[1:] in a real main
	if code != 0 {
		os.Exit(code)
	}
	// Output:
	// counters: an appliance built on hellopics (mgmt, ctrl, data)
	//
	// Usage:
	//   counters <subcommand> [flags]
	//
	// Subcommands:
	//   ctrl     run the control component
	//   data     run the data component (and its MEDS relay)
	//   help     print this help
	//   mgmt     run the management component
	//   version  print the version
	//
	// Run 'counters <subcommand> -h' for its flags.
}
