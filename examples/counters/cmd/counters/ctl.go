package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	countersv1 "github.com/hellopics/hellopics/examples/counters/proto/counters/v1"
	"github.com/hellopics/hellopics/pkg/appliance"
	"github.com/hellopics/hellopics/pkg/identity"
	"github.com/hellopics/hellopics/pkg/tlsconf"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

const ctlUsage = `Usage: counters ctl [flags] set KEY VALUE | totals

Talks to the counters application in a mgmt instance through its
operator API: "set" changes the configuration (limit: units each data
component generates in all; rate: units per second; an empty VALUE
removes the key) and needs the master and an admin identity; "totals"
shows the counts (any instance, read identity).

Flags:
`

// ctl runs the operator client; it returns the exit code.
func ctl(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("counters ctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, ctlUsage); fs.PrintDefaults() }
	addr := fs.String("addr", envOr("HELLOPICS_OPERATOR_ADDR", "127.0.0.1:7400"), "mgmt operator API address (env HELLOPICS_OPERATOR_ADDR)")
	timeout := fs.Duration("timeout", 5*time.Second, "time allowed for the request")
	var files tlsconf.Files
	fs.StringVar(&files.Cert, "tls-cert", os.Getenv("HELLOPICS_TLS_CERT"), "operator certificate (PEM) for mutual TLS (env HELLOPICS_TLS_CERT)")
	fs.StringVar(&files.Key, "tls-key", os.Getenv("HELLOPICS_TLS_KEY"), "its private key (env HELLOPICS_TLS_KEY)")
	fs.StringVar(&files.CA, "tls-ca", os.Getenv("HELLOPICS_TLS_CA"), "the deployment's CA certificate (env HELLOPICS_TLS_CA)")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	creds := insecure.NewCredentials()
	if files.Set() {
		src, err := tlsconf.Load(files, nil)
		if err != nil {
			fmt.Fprintln(stderr, "counters ctl:", err)
			return 1
		}
		creds = credentials.NewTLS(src.ClientConfig(tlsconf.Roles(identity.RoleMgmt)))
	}
	cc, err := grpc.NewClient("passthrough:///"+*addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		fmt.Fprintln(stderr, "counters ctl:", err)
		return 1
	}
	defer cc.Close()
	client := hellopicsv1.NewOperatorServiceClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	switch {
	case fs.NArg() == 3 && fs.Arg(0) == "set":
		var cfg countersv1.Config
		if err := appliance.OperatorCall(ctx, client, &countersv1.SetConfig{Key: fs.Arg(1), Value: fs.Arg(2)}, &cfg); err != nil {
			fmt.Fprintln(stderr, "counters ctl: set:", err)
			return 1
		}
		fmt.Fprintf(stdout, "config version %d: %s\n", cfg.GetVersion(), formatValues(cfg.GetValues()))
	case fs.NArg() == 1 && fs.Arg(0) == "totals":
		var t countersv1.Totals
		if err := appliance.OperatorCall(ctx, client, &countersv1.GetTotals{}, &t); err != nil {
			fmt.Fprintln(stderr, "counters ctl: totals:", err)
			return 1
		}
		role := "backup"
		if t.GetMaster() {
			role = "master"
		}
		fmt.Fprintf(stdout, "%s, config version %d: %s\n", role, t.GetConfig().GetVersion(), formatValues(t.GetConfig().GetValues()))
		w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "PAIR\tTOTAL\tREPORTS\tCONFIG APPLIED")
		for _, p := range t.GetPairs() {
			fmt.Fprintf(w, "%s\t%d\t%d\t%d\n", p.GetPairId(), p.GetTotal(), p.GetSeq(), p.GetConfigApplied())
		}
		fmt.Fprintf(w, "all\t%d\t\t\n", t.GetTotal())
		w.Flush()
	default:
		fs.Usage()
		return 2
	}
	return 0
}

func formatValues(v map[string]string) string {
	if len(v) == 0 {
		return "(empty)"
	}
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	s := ""
	for i, k := range keys {
		if i > 0 {
			s += " "
		}
		s += k + "=" + v[k]
	}
	return s
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
