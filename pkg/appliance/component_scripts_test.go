package appliance_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hellopics/hellopics/ctrl"
	"github.com/hellopics/hellopics/internal/await"
	"github.com/hellopics/hellopics/pkg/appliance"
)

// TestComponentScripts: ctrl's -on-master-changed, -on-ready and
// -on-lost scripts run in order (master_changed at start, ready once
// data is there, lost when data goes) with the event, epoch, master
// address and reason as arguments and environment, and a hanging
// on-ready script, killed at the timeout, blocks neither the component
// (it stays ready, sees data go) nor the scripts after it.
func TestComponentScripts(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "ctrl.scripts")
	rec := func(extra string) string {
		return fmt.Sprintf(`%sprintf '%%s|%%s|%%s|%%s|%%s|%%s|%%s|%%s\n' "$1" "$2" "$3" "$HELLOPICS_STATE" "$HELLOPICS_EPOCH" "$HELLOPICS_MASTER" "$HELLOPICS_ROLE/$HELLOPICS_PAIR" "$4" >> %s`, extra, file)
	}
	m := startMgmt(t, nil)
	cc := ctrl.DefaultConfig()
	cc.MgmtAddrs, cc.ListenAddr, cc.PairID = []string{m.Addr().String()}, "127.0.0.1:0", "p1"
	cc.RetryInterval = 50 * time.Millisecond
	cc.Scripts.OnMasterChanged = rec("")
	// The ready script records itself, then hangs until killed.
	cc.Scripts.OnReady = rec("") + "; sleep 300"
	cc.Scripts.OnLost = rec("")
	cc.Scripts.Timeout = 500 * time.Millisecond
	c, err := ctrl.New(cc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	lines := func() []string {
		b, _ := os.ReadFile(file)
		s := strings.TrimSpace(string(b))
		if s == "" {
			return nil
		}
		return strings.Split(s, "\n")
	}
	d := startData(t, m.Addr().String(), nil)
	await.True(t, func() bool { return c.Ready() && len(lines()) >= 2 }, "ctrl ready and two scripts run")
	start := time.Now()
	d.Close()
	await.True(t, func() bool { return !c.Ready() }, "ctrl sees data lost while its on-ready script hangs")
	await.True(t, func() bool { return len(lines()) >= 3 }, "on-lost ran after the hung on-ready was killed")
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("on-lost ran %v after data went; the hung script's timeout is 500ms", took)
	}
	got := lines()
	want := []string{appliance.ScriptMasterChanged, appliance.ScriptReady, appliance.ScriptLost}
	if len(got) != len(want) {
		t.Fatalf("scripts ran %q; want %v", got, want)
	}
	addr := m.Addr().String()
	for i, l := range got {
		f := strings.Split(l, "|")
		if len(f) != 8 || f[0] != want[i] || f[0] != f[3] || f[1] != f[4] || f[2] != f[5] || f[1] == "0" || f[2] != addr || f[6] != "ctrl/p1" {
			t.Errorf("script %d: %q; want %s, epoch above 0, master %s, the same in the environment, ctrl/p1", i, l, want[i], addr)
		}
	}
	if !strings.HasPrefix(strings.Split(got[0], "|")[7], "start: ") || strings.Split(got[1], "|")[7] != "pair ready" {
		t.Errorf("reasons: %q", got)
	}
}
