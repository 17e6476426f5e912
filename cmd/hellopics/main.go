// Command hellopics runs the components of a hellopics appliance: the
// management, control and data components, the MEDS relay, the SNMP agent
// simulator, a TPCE client, the operator client and a one-machine demo.
//
// Usage:
//
//	hellopics <subcommand> [flags] [args]
//
// Run "hellopics help" for the list of subcommands and
// "hellopics <subcommand> -h" for the flags of one.
package main

import (
	"fmt"
	"io"
	"os"
	"sort"
)

// command is one subcommand. Each lives in its own file and registers
// itself from init.
type command struct {
	name    string
	summary string
	// run executes the subcommand with the arguments after its name and
	// returns the process exit code.
	run func(args []string) int
}

var commands = map[string]*command{}

func register(c *command) {
	if _, dup := commands[c.name]; dup {
		panic("hellopics: subcommand registered twice: " + c.name)
	}
	commands[c.name] = c
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "hellopics: a three-tier network appliance framework (mgmt, ctrl, data)\n\n")
	fmt.Fprintf(w, "Usage:\n  hellopics <subcommand> [flags] [args]\n\nSubcommands:\n")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, commands[n].summary)
	}
	fmt.Fprintf(w, "\nRun 'hellopics <subcommand> -h' for its flags.\n")
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 {
		usage(os.Stderr)
		return 2
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		usage(os.Stdout)
		return 0
	case "version", "-version", "--version":
		fmt.Println("hellopics", version)
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "hellopics: unknown subcommand %q\n\n", args[0])
		usage(os.Stderr)
		return 2
	}
	return c.run(args[1:])
}

// version is set at link time with -ldflags "-X main.version=...".
var version = "dev"
