// Package daemon is the command line of the three hellopics daemons,
// mgmt, ctrl and data, for your own appliance: the subcommands, flags,
// environment variables, help texts and behaviour of "hellopics mgmt",
// "hellopics ctrl" and "hellopics data" (logging, mutual TLS and its
// reload on SIGHUP or when the files change, systemd readiness
// notification, a clean stop on SIGINT or SIGTERM), running the
// applications you give them (pkg/appliance).
//
// An appliance's binary is then a few lines:
//
//	func main() {
//		os.Exit(daemon.Main("counters", os.Args[1:], daemon.Apps{Mgmt: mgmtApp, Ctrl: ctrlApp, Data: dataApp}))
//	}
//
// and runs as "counters mgmt", "counters ctrl" and "counters data", with
// the flags and environment variables of the hellopics daemons (run
// "counters mgmt -h"), so that the systemd units and environment files of
// deploy/ serve it with the binary's name changed. RunMgmt, RunCtrl and
// RunData run one daemon, for a binary with subcommands of its own or a
// binary per daemon.
package daemon

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hellopics/hellopics/pkg/appliance"
)

// Apps are the applications a binary runs in its daemons, and the
// binary's version. Each App may be nil: that daemon then runs no
// application (every application message is refused), as hellopics'
// own do. Each App goes into the Config of its daemon
// (mgmt.Config.App, ctrl.Config.App, data.Config.App).
type Apps struct {
	// Mgmt runs in the management component.
	Mgmt *appliance.App
	// Ctrl runs in the control component.
	Ctrl *appliance.App
	// Data runs in the data component.
	Data *appliance.App
	// Version is the binary's version, printed by the version
	// subcommand and reported by the components to mgmt and the
	// operator ("dev" when empty).
	Version string
}

func (a Apps) version() string {
	if a.Version == "" {
		return "dev"
	}
	return a.Version
}

// Summaries of the daemons, as the usage of Main lists them.
const (
	// MgmtSummary is the one-line description of the mgmt subcommand.
	MgmtSummary = "run the management component"
	// CtrlSummary is the one-line description of the ctrl subcommand.
	CtrlSummary = "run the control component"
	// DataSummary is the one-line description of the data subcommand.
	DataSummary = "run the data component (and its MEDS relay)"
)

// Main runs the program called name (as the user types it: "counters")
// with args, the command-line arguments after the program's name, and
// returns the process exit code: 0 on success, 1 on failure, 2 on bad
// usage. args start with a subcommand: mgmt, ctrl or data runs that
// daemon with its App from apps (see RunMgmt, RunCtrl, RunData) until
// SIGINT or SIGTERM; version prints the name and apps.Version; help
// prints the usage.
func Main(name string, args []string, apps Apps) int {
	return mainTo(name, args, apps, os.Stdout, os.Stderr)
}

func mainTo(name string, args []string, apps Apps, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr, name)
		return 2
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		usage(stdout, name)
		return 0
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, name, apps.version())
		return 0
	case "mgmt":
		return RunMgmt(name+" mgmt", args[1:], apps)
	case "ctrl":
		return RunCtrl(name+" ctrl", args[1:], apps)
	case "data":
		return RunData(name+" data", args[1:], apps)
	}
	fmt.Fprintf(stderr, "%s: unknown subcommand %q\n\n", name, args[0])
	usage(stderr, name)
	return 2
}

func usage(w io.Writer, name string) {
	fmt.Fprintf(w, "%s: an appliance built on hellopics (mgmt, ctrl, data)\n\n", name)
	fmt.Fprintf(w, "Usage:\n  %s <subcommand> [flags]\n\nSubcommands:\n", name)
	for _, c := range [][2]string{
		{"ctrl", CtrlSummary},
		{"data", DataSummary},
		{"help", "print this help"},
		{"mgmt", MgmtSummary},
		{"version", "print the version"},
	} {
		fmt.Fprintf(w, "  %-8s %s\n", c[0], c[1])
	}
	fmt.Fprintf(w, "\nRun '%s <subcommand> -h' for its flags.\n", name)
}

// logName is the name of a daemon's logger: the program's, the first
// word of the command's name ("hellopics" of "hellopics mgmt").
func logName(name string) string {
	if f := strings.Fields(name); len(f) > 0 {
		return f[0]
	}
	return "hellopics"
}
