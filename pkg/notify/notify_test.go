package notify

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hellopics/hellopics/internal/await"
)

type results struct {
	mu  sync.Mutex
	all []Result
}

func (r *results) add(res Result) { r.mu.Lock(); r.all = append(r.all, res); r.mu.Unlock() }
func (r *results) get() []Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Result(nil), r.all...)
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n")
}

func TestOrderArgumentsEnvironment(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	cmd := `echo "$0 $1 $2 $3 $4|$HELLOPICS_STATE $HELLOPICS_EPOCH $HELLOPICS_MASTER $HELLOPICS_REASON $HELLOPICS_ID" >>` + log
	var got results
	r := New(Config{ID: "a", OnMaster: "echo M >>" + log, OnBackup: "echo B >>" + log, OnAny: cmd}, got.add)
	defer r.Close()
	r.Notify(State{State: Backup, Epoch: 3, Master: "b", Reason: "follows"})
	r.Notify(State{State: Master, Epoch: 4, Master: "a", Reason: "peer_down"})
	r.Notify(State{State: Fault, Epoch: 4, Master: "a", Reason: "track_failed"})
	await.True(t, func() bool { return len(got.get()) == 5 }, "five runs")
	want := []string{
		"B", "sh backup 3 b follows|backup 3 b follows a",
		"M", "sh master 4 a peer_down|master 4 a peer_down a",
		"sh fault 4 a track_failed|fault 4 a track_failed a", // no -notify-fault configured
	}
	if lines := readLines(t, log); strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("runs:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	for _, res := range got.get() {
		if res.ExitCode != 0 || res.Err != nil || res.TimedOut {
			t.Fatalf("run %+v", res)
		}
	}
}

func TestExitStatusAndBoundedOutput(t *testing.T) {
	var got results
	r := New(Config{OnMaster: "head -c 100000 /dev/zero | tr '\\0' x; exit 7"}, got.add)
	defer r.Close()
	r.Notify(State{State: Master, Epoch: 1})
	await.True(t, func() bool { return len(got.get()) == 1 }, "one run")
	res := got.get()[0]
	if res.ExitCode != 7 || res.Err == nil {
		t.Fatalf("exit %d err %v, want 7", res.ExitCode, res.Err)
	}
	if len(res.Output) != MaxOutput {
		t.Fatalf("output %d bytes, want %d", len(res.Output), MaxOutput)
	}
}

// A hanging script, and the child it started, are killed at the
// timeout; the runner goes on with the next state; Notify does not wait.
func TestTimeoutKillsGroupAndContinues(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child")
	log := filepath.Join(dir, "log")
	var got results
	r := New(Config{
		OnMaster: "sleep 300 & echo $! >" + pidFile + "; wait",
		OnBackup: "echo backup $2 >>" + log,
		Timeout:  300 * time.Millisecond,
	}, got.add)
	defer r.Close()
	start := time.Now()
	r.Notify(State{State: Master, Epoch: 1})
	await.True(t, func() bool { _, err := os.Stat(pidFile); return err == nil }, "hanging script started")
	for i := 2; i < 5; i++ {
		r.Notify(State{State: Backup, Epoch: uint64(i)})
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Notify blocked for %v behind a hanging script", d)
	}
	await.True(t, func() bool { return len(got.get()) == 4 }, "four runs")
	res := got.get()[0]
	if !res.TimedOut || res.ExitCode != -1 {
		t.Fatalf("hanging script: %+v", res)
	}
	if res.Duration < 300*time.Millisecond || res.Duration > 10*time.Second {
		t.Fatalf("hanging script ran %v, timeout 300ms", res.Duration)
	}
	if lines := readLines(t, log); strings.Join(lines, ",") != "backup 2,backup 3,backup 4" {
		t.Fatalf("after the timeout: %q", lines)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	// The child (sleep) was in the script's group: killed too. It is
	// reaped by init, so wait for it to be gone.
	await.True(t, func() bool { return syscall.Kill(pid, 0) != nil || zombie(pid) }, "child %d of the hanging script killed", pid)
}

func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] == "Z"
}

// A full queue skips to the latest state instead of blocking.
func TestFullQueueCoalesces(t *testing.T) {
	dir := t.TempDir()
	gate := filepath.Join(dir, "gate")
	log := filepath.Join(dir, "log")
	var got results
	r := New(Config{
		OnAny:     "while [ ! -e " + gate + " ]; do sleep 0.01; done; echo $2 >>" + log,
		QueueSize: 2,
	}, got.add)
	defer r.Close()
	r.Notify(State{State: Backup, Epoch: 1})
	await.True(t, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.queue) == 0
	}, "first state taken by the runner")
	for i := 2; i <= 6; i++ {
		r.Notify(State{State: Backup, Epoch: uint64(i)})
	}
	if c := r.Coalesced(); c != 3 {
		t.Fatalf("coalesced %d, want 3", c)
	}
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	await.True(t, func() bool { return len(got.get()) == 3 }, "three runs")
	if lines := readLines(t, log); strings.Join(lines, ",") != "1,2,6" {
		t.Fatalf("epochs run %q, want 1,2,6", lines)
	}
}

// Close kills a running script and returns.
func TestCloseKillsRunning(t *testing.T) {
	dir := t.TempDir()
	started := filepath.Join(dir, "started")
	var got results
	r := New(Config{OnMaster: "touch " + started + "; sleep 300", Timeout: time.Hour}, got.add)
	r.Notify(State{State: Master, Epoch: 1})
	await.True(t, func() bool { _, err := os.Stat(started); return err == nil }, "script started")
	start := time.Now()
	r.Close()
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("Close took %v", d)
	}
	r.Notify(State{State: Master, Epoch: 2}) // ignored after Close
	if n := len(got.get()); n != 1 {
		t.Fatalf("%d runs, want 1", n)
	}
}

// TestOtherStates: a component's runner (Component, Scripts, Env) runs
// the script of each of its own events, with the extra environment, and
// logs under its component; Empty sees a Scripts command.
func TestOtherStates(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	cmd := `echo "$1 $2 $3 $4|$HELLOPICS_ID $HELLOPICS_PAIR" >>` + log
	cfg := Config{ID: "ctrl", Component: "ctrl", Scripts: map[string]string{"ready": cmd, "lost": "", "master_changed": cmd},
		Env: []string{"HELLOPICS_PAIR=pic0"}}
	if cfg.Empty() || !(Config{Scripts: map[string]string{"ready": ""}}).Empty() {
		t.Fatal("Empty does not look at Scripts")
	}
	var got results
	r := New(cfg, got.add)
	defer r.Close()
	r.Notify(State{State: "master_changed", Epoch: 2, Master: "127.0.0.1:7300", Reason: "start"})
	r.Notify(State{State: "lost", Epoch: 2, Reason: "no script"})
	r.Notify(State{State: "ready", Epoch: 2, Master: "127.0.0.1:7300", Reason: "pair ready"})
	await.True(t, func() bool { return len(got.get()) == 2 }, "two runs")
	want := "master_changed 2 127.0.0.1:7300 start|ctrl pic0\nready 2 127.0.0.1:7300 pair ready|ctrl pic0"
	if lines := strings.Join(readLines(t, log), "\n"); lines != want {
		t.Fatalf("runs:\n%s\nwant:\n%s", lines, want)
	}
}
