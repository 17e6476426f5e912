// Command counters runs the counters example appliance
// (examples/counters): the hellopics daemons with the example's
// application inside, and a small operator client.
//
//	counters mgmt|ctrl|data [flags]   the daemons, with hellopics' flags
//	counters ctl [flags] set KEY VALUE
//	counters ctl [flags] totals
package main

import (
	"os"

	"github.com/hellopics/hellopics/examples/counters"
	"github.com/hellopics/hellopics/pkg/daemon"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "ctl" {
		os.Exit(ctl(os.Args[2:], os.Stdout, os.Stderr))
	}
	os.Exit(daemon.Main("counters", os.Args[1:], daemon.Apps{
		Mgmt: counters.Mgmt(), Ctrl: counters.Ctrl(), Data: counters.Data(),
	}))
}
