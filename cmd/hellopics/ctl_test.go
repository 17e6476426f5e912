package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hellopics/hellopics/mgmt/operator"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

const ctlWait = 10 * time.Second

type ctlFakeBackend struct {
	status *hellopicsv1.GetStatusResponse
	swErr  error
	target chan string
}

func (f *ctlFakeBackend) Status(context.Context, *hellopicsv1.GetStatusRequest) (*hellopicsv1.GetStatusResponse, error) {
	return f.status, nil
}

func (f *ctlFakeBackend) Switchover(_ context.Context, target string) (*hellopicsv1.SwitchoverResponse, error) {
	if f.target != nil {
		f.target <- target
	}
	if f.swErr != nil {
		return nil, f.swErr
	}
	return &hellopicsv1.SwitchoverResponse{NewMasterId: "mgmt-2", Epoch: 8}, nil
}

// ctlServe runs an operator API on a loopback port until the test ends.
func ctlServe(t *testing.T, b operator.Backend, opts ...operator.Option) (*operator.Server, *operator.Broker, string) {
	t.Helper()
	br := operator.NewBroker(0)
	srv := operator.New(b, br, nil, opts...)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
		br.Close()
	})
	return srv, br, ln.Addr().String()
}

// ctlFreeAddr returns a loopback address nothing listens on.
func ctlFreeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func ctlRunT(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), ctlWait)
	defer cancel()
	code = ctlMain(ctx, args, &o, &e)
	return code, o.String(), e.String()
}

func TestCtlStatus(t *testing.T) {
	_, _, addr := ctlServe(t, &ctlFakeBackend{status: ctlTestStatus()})
	code, out, errOut := ctlRunT(t, "-addr", addr, "status")
	if code != 0 || !strings.Contains(out, "mgmt-1 (this instance)") || !strings.Contains(out, "pic0  ready 10.0.0.5:41000") {
		t.Errorf("status: code %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}

	code, out, errOut = ctlRunT(t, "status", "-addr", addr, "-o", "json")
	var m map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &m) != nil || m["id"] != "mgmt-1" {
		t.Errorf("status -o json: code %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
}

func TestCtlStatusSeveral(t *testing.T) {
	_, _, addr := ctlServe(t, &ctlFakeBackend{status: ctlTestStatus()})
	down := ctlFreeAddr(t)
	list := addr + "," + down
	code, out, errOut := ctlRunT(t, "-addr", list, "status")
	if code != 1 || !strings.Contains(out, "mgmt-1 at "+addr) {
		t.Errorf("status: code %d\nstdout:\n%s", code, out)
	}
	want := "hellopics ctl: cannot reach mgmt at " + down + ": connection refused (is `hellopics mgmt` running? set -addr)\n"
	if errOut != want {
		t.Errorf("stderr = %q, want %q", errOut, want)
	}

	code, out, _ = ctlRunT(t, "-addr", list, "-o", "json", "status")
	var entries []struct {
		Addr   string         `json:"addr"`
		Status map[string]any `json:"status"`
		Error  string         `json:"error"`
	}
	if err := json.Unmarshal([]byte(out), &entries); err != nil || code != 1 || len(entries) != 2 {
		t.Fatalf("status -o json: code %d, %v\n%s", code, err, out)
	}
	if entries[0].Addr != addr || entries[0].Status["id"] != "mgmt-1" || entries[1].Addr != down || entries[1].Error == "" {
		t.Errorf("status -o json = %+v", entries)
	}
}

func TestCtlEnvAddr(t *testing.T) {
	_, _, addr := ctlServe(t, &ctlFakeBackend{status: ctlTestStatus()})
	t.Setenv("HELLOPICS_OPERATOR_ADDR", addr)
	if code, out, errOut := ctlRunT(t, "status"); code != 0 {
		t.Errorf("status with HELLOPICS_OPERATOR_ADDR: code %d\n%s%s", code, out, errOut)
	}
}

func TestCtlHealth(t *testing.T) {
	srv, _, addr := ctlServe(t, &ctlFakeBackend{})
	if code, out, _ := ctlRunT(t, "-addr", addr, "health"); code != 1 || out != "NOT_SERVING\n" {
		t.Errorf("health before SetServing: code %d, %q", code, out)
	}
	srv.SetServing(true)
	if code, out, _ := ctlRunT(t, "-addr", addr, "health"); code != 0 || out != "SERVING\n" {
		t.Errorf("health: code %d, %q", code, out)
	}
	down := ctlFreeAddr(t)
	code, out, _ := ctlRunT(t, "-addr", down+","+addr, "health")
	if want := fmt.Sprintf("%-21s  UNREACHABLE\n%-21s  SERVING\n", down, addr); code != 0 || out != want {
		t.Errorf("health of two: code %d\n%q\nwant\n%q", code, out, want)
	}
	code, out, _ = ctlRunT(t, "-addr", addr, "-o", "json", "health")
	if code != 0 || !strings.Contains(out, `"status": "SERVING"`) {
		t.Errorf("health -o json: code %d, %s", code, out)
	}
}

func TestCtlSwitchover(t *testing.T) {
	backup := &ctlFakeBackend{swErr: fmt.Errorf("%w: the master is mgmt-1", operator.ErrNotMaster), target: make(chan string, 1)}
	master := &ctlFakeBackend{target: make(chan string, 1)}
	_, _, baddr := ctlServe(t, backup)
	_, _, maddr := ctlServe(t, master)
	code, out, errOut := ctlRunT(t, "-addr", baddr+","+maddr, "switchover", "-to", "mgmt-2")
	if code != 0 || out != "switchover done: mgmt-2 is master at epoch 8\n" {
		t.Errorf("switchover: code %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if got := <-master.target; got != "mgmt-2" {
		t.Errorf("master got target %q", got)
	}
	if got := <-backup.target; got != "mgmt-2" {
		t.Errorf("backup got target %q", got)
	}

	// Alone, the backup's refusal is the answer.
	code, _, errOut = ctlRunT(t, "-addr", baddr, "switchover")
	if want := "hellopics ctl: switchover: mgmt at " + baddr + ": not the master: the master is mgmt-1\n"; code != 1 || errOut != want {
		t.Errorf("switchover on a backup: code %d, stderr %q, want %q", code, errOut, want)
	}
}

func TestCtlWatch(t *testing.T) {
	ev := func(i int) *hellopicsv1.WatchEventsResponse {
		return &hellopicsv1.WatchEventsResponse{
			Time: timestamppb.New(ctlTestNow.Add(time.Duration(i) * time.Second)), Kind: "hello_missed", PairId: "pic0",
			Message: fmt.Sprintf("hello %d missed", i), Epoch: 7,
		}
	}
	for _, output := range []string{"text", "json"} {
		t.Run(output, func(t *testing.T) {
			_, br, addr := ctlServe(t, &ctlFakeBackend{})
			br.Publish(ev(0)) // history
			pr, pw := io.Pipe()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var errOut bytes.Buffer
			done := make(chan int, 1)
			go func() {
				done <- ctlMain(ctx, []string{"-addr", addr, "-o", output, "watch"}, pw, &errOut)
				pw.Close()
			}()
			lines := make(chan string)
			go func() {
				defer close(lines)
				sc := bufio.NewScanner(pr)
				for sc.Scan() {
					lines <- sc.Text()
				}
			}()
			next := func() string {
				t.Helper()
				select {
				case l := <-lines:
					return l
				case <-time.After(ctlWait):
					t.Fatal("no event line")
					return ""
				}
			}
			// The history arrives first, which also proves the
			// subscription is in place before the next event.
			first := next()
			br.Publish(ev(1))
			second := next()
			if output == "text" {
				if !strings.Contains(first, "hello_missed") || !strings.HasSuffix(second, "pic0      hello 1 missed") {
					t.Errorf("lines %q, %q", first, second)
				}
			} else {
				var m map[string]any
				if err := json.Unmarshal([]byte(second), &m); err != nil || m["message"] != "hello 1 missed" || m["kind"] != "hello_missed" {
					t.Errorf("json line %q: %v", second, err)
				}
			}
			cancel() // Ctrl-C
			drained := make(chan struct{})
			go func() {
				defer close(drained)
				for range lines {
				}
			}()
			defer func() {
				select {
				case <-drained:
				case <-time.After(ctlWait):
				}
			}()
			select {
			case code := <-done:
				if code != 0 {
					t.Errorf("watch ended with %d: %s", code, errOut.String())
				}
			case <-time.After(ctlWait):
				t.Fatal("watch did not stop on cancel")
			}
		})
	}
}

func TestCtlWatchUnreachable(t *testing.T) {
	down := ctlFreeAddr(t)
	code, _, errOut := ctlRunT(t, "-addr", down, "watch")
	if code != 1 || !strings.Contains(errOut, "cannot reach mgmt at "+down+": connection refused") {
		t.Errorf("watch: code %d, stderr %q", code, errOut)
	}
}

func TestCtlUsage(t *testing.T) {
	tests := [][]string{
		{},
		{"bogus"},
		{"-o", "yaml", "status"},
		{"-addr", "nohostport", "status"},
		{"-timeout", "0s", "status"},
		{"status", "extra"},
		{"-nosuchflag"},
	}
	for _, args := range tests {
		if code, _, errOut := ctlRunT(t, args...); code != 2 || errOut == "" {
			t.Errorf("ctl %q: code %d, stderr %q; want 2 and a message", args, code, errOut)
		}
	}
	if code, out, _ := ctlRunT(t, "help"); code != 0 || !strings.Contains(out, "switchover [-to ID]") {
		t.Errorf("ctl help: code %d, %q", code, out)
	}
}
