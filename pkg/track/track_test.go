package track

import (
	"context"
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

func TestRunScriptExitCodes(t *testing.T) {
	ctx := context.Background()
	if err := RunScript(ctx, "true", 5*time.Second); err != nil {
		t.Fatalf("true: %v", err)
	}
	err := RunScript(ctx, "echo disk full >&2; exit 3", 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("exit 3: %v, want exit status 3 and the output", err)
	}
	if err := RunScript(ctx, "test ! -e "+filepath.Join(t.TempDir(), "nofile"), 5*time.Second); err != nil {
		t.Fatalf("test ! -e: %v", err)
	}
	if err := RunScript(ctx, "/nonexistent/command", 5*time.Second); err == nil {
		t.Fatal("a missing command passed")
	}
}

// TestRunScriptTimeoutKillsGroup: a hung check is killed at its timeout
// with its children (the process group), and the run fails.
func TestRunScriptTimeoutKillsGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	start := time.Now()
	err := RunScript(context.Background(), "sleep 300 & echo $! > "+pidFile+"; wait", 300*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("hung script: %v, want killed at its timeout", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("run took %v", d)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	// The child is gone (or a zombie about to be reaped by init).
	await.True(t, func() bool {
		if syscall.Kill(pid, 0) != nil {
			return true
		}
		st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		return err != nil || strings.Contains(string(st), ") Z ")
	}, "the hung script's child %d killed", pid)
}

func TestInterfaceUp(t *testing.T) {
	if err := InterfaceUp("/sys/class/net", "lo"); err != nil {
		t.Fatalf("lo: %v", err)
	}
	err := InterfaceUp("/sys/class/net", "hpnosuchif0")
	if err == nil || !strings.Contains(err.Error(), "absent") {
		t.Fatalf("absent interface: %v", err)
	}
	dir := t.TempDir()
	fake := func(state, carrier string) {
		t.Helper()
		d := filepath.Join(dir, "eth9")
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(d, "operstate"), []byte(state+"\n"), 0o644)
		if carrier == "" {
			os.Remove(filepath.Join(d, "carrier"))
		} else {
			os.WriteFile(filepath.Join(d, "carrier"), []byte(carrier+"\n"), 0o644)
		}
	}
	for _, c := range []struct {
		state, carrier string
		ok             bool
	}{{"up", "1", true}, {"unknown", "1", true}, {"down", "0", false}, {"up", "0", false},
		{"lowerlayerdown", "", false}, {"dormant", "1", false}, {"unknown", "", false}} {
		fake(c.state, c.carrier)
		if err := InterfaceUp(dir, "eth9"); (err == nil) != c.ok {
			t.Errorf("operstate %s carrier %q: %v, want ok=%v", c.state, c.carrier, err, c.ok)
		}
	}
}

func TestEffective(t *testing.T) {
	st := []State{{Name: "a", Weight: 50, OK: true}, {Name: "b", Weight: 30}, {Name: "c", Weight: 40}}
	if p, f, failing := Effective(200, st); p != 130 || f || len(failing) != 2 {
		t.Fatalf("Effective = %d %v %v, want 130 false [b c]", p, f, failing)
	}
	if p, _, _ := Effective(60, st); p != 0 {
		t.Fatalf("floor: %d, want 0", p)
	}
	st = append(st, State{Name: "d", Weight: 0})
	if p, f, _ := Effective(200, st); p != 130 || !f {
		t.Fatalf("weight 0 failing: %d %v, want 130 true", p, f)
	}
	st[3].OK = true
	if _, f, _ := Effective(200, st); f {
		t.Fatal("fault with every weight-0 check passing")
	}
}

func TestCheckProblems(t *testing.T) {
	for _, c := range []Check{{}, {Script: "true", Interface: "lo"}, {Interface: "../x"}, {Script: "true", Fall: -1}} {
		if c.Problem() == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	if _, err := Start([]Check{{Script: "true"}, {Script: "true"}}, nil); err == nil {
		t.Error("two checks of one name accepted")
	}
	c := Check{Script: "true", Interval: 3 * time.Second}.WithDefaults()
	if c.Name != "script:true" || c.Timeout != 3*time.Second || c.Fall != DefaultFall || c.Rise != DefaultRise {
		t.Errorf("defaults: %+v", c)
	}
}

// TestFallRise: the first run decides the initial state; after that a
// check turns failing only after Fall failures in a row and passing
// after Rise successes, and onChange hears each change once.
func TestFallRise(t *testing.T) {
	dir := t.TempDir()
	set := func(up bool) {
		d := filepath.Join(dir, "eth9")
		os.MkdirAll(d, 0o755)
		state := "down"
		if up {
			state = "up"
		}
		os.WriteFile(filepath.Join(d, "operstate"), []byte(state), 0o644)
		os.WriteFile(filepath.Join(d, "carrier"), []byte("1"), 0o644)
	}
	set(true)
	var mu sync.Mutex
	var changes []State
	tr, err := start([]Check{{Interface: "eth9", Weight: 10, Interval: 20 * time.Millisecond, Fall: 3, Rise: 2}}, dir,
		func(s State) { mu.Lock(); changes = append(changes, s); mu.Unlock() })
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if st := tr.States()[0]; !st.OK || st.Name != "interface:eth9" || st.Weight != 10 {
		t.Fatalf("initial %+v", st)
	}
	nChanges := func() int { mu.Lock(); defer mu.Unlock(); return len(changes) }
	set(false)
	await.True(t, func() bool { return nChanges() == 1 }, "the check failing")
	mu.Lock()
	got := changes[0]
	mu.Unlock()
	if got.OK || !strings.Contains(got.LastError, "down") {
		t.Fatalf("change %+v, want failing with the operstate", got)
	}
	set(true)
	await.True(t, func() bool { return nChanges() == 2 }, "the check passing again")
	if st := tr.States()[0]; !st.OK || st.LastError != "" {
		t.Fatalf("%+v, want ok", st)
	}
	// The counting itself, without timing: record directly.
	tr2 := &Tracker{checks: []Check{{Name: "x", Fall: 3, Rise: 2}}, states: []State{{Name: "x", OK: true}},
		fails: []int{0}, oks: []int{1}}
	fail := os.ErrNotExist
	for i, want := range []struct {
		err     error
		ok, chg bool
	}{{fail, true, false}, {fail, true, false}, {nil, true, false}, {fail, true, false}, {fail, true, false},
		{fail, false, true}, {nil, false, false}, {fail, false, false}, {nil, false, false}, {nil, true, true}} {
		st, chg := tr2.record(0, want.err, time.Now())
		if st.OK != want.ok || chg != want.chg {
			t.Fatalf("run %d: ok=%v changed=%v, want %v %v", i, st.OK, chg, want.ok, want.chg)
		}
	}
}

// TestStartDecidesFirst: Start returns after the first runs, a failing
// check already failing (no Fall delay at start), and a hung first run
// bounded by its timeout.
func TestStartDecidesFirst(t *testing.T) {
	tr, err := Start([]Check{{Script: "exit 1", Interval: time.Hour}, {Script: "sleep 300", Interval: time.Hour, Timeout: 200 * time.Millisecond},
		{Interface: "lo", Interval: time.Hour}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	st := tr.States()
	if st[0].OK || st[1].OK || !st[2].OK || !strings.Contains(st[1].LastError, "timeout") {
		t.Fatalf("first states %+v", st)
	}
}
