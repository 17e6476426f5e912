package main

import "github.com/hellopics/hellopics/pkg/daemon"

// The three daemons' command lines live in pkg/daemon, for appliances
// built on hellopics to share; hellopics runs them without applications.
func init() {
	register(&command{name: "mgmt", summary: daemon.MgmtSummary, run: runMgmt})
	register(&command{name: "ctrl", summary: daemon.CtrlSummary, run: runCtrl})
	register(&command{name: "data", summary: daemon.DataSummary, run: runData})
}

func runMgmt(args []string) int {
	return daemon.RunMgmt("hellopics mgmt", args, daemon.Apps{Version: version})
}

func runCtrl(args []string) int {
	return daemon.RunCtrl("hellopics ctrl", args, daemon.Apps{Version: version})
}

func runData(args []string) int {
	return daemon.RunData("hellopics data", args, daemon.Apps{Version: version})
}
