package appliance

import (
	"errors"
	"strings"
	"testing"

	"github.com/hellopics/hellopics/pkg/tier"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// TestPublish: an application's event reaches the operator event
// stream with its kind, pair, message and the instance's epoch; a bad
// kind, pair id or message is refused, and so is Publish outside mgmt.
func TestPublish(t *testing.T) {
	a := startApp(t, "a", 200, map[string]string{"a": freeAddr(t)}) // a single instance: master
	defer a.Close()
	waitUntil(t, "a to be master", func() bool {
		var m bool
		a.loop.Do(func() { m = a.node.IsMaster() })
		return m
	})
	got := make(chan *hellopicsv1.WatchEventsResponse, 10)
	a.OnEvent(func(ev *hellopicsv1.WatchEventsResponse) {
		if strings.HasPrefix(ev.GetKind(), "config_") {
			got <- ev
		}
	})
	var epoch uint64
	var errs []error
	a.loop.Do(func() {
		epoch = a.node.Epoch()
		errs = append(errs, a.node.Publish("config_applied", "p1", "version 3 applied"))
		for _, bad := range [][3]string{
			{"", "", "x"}, {"Config", "", "x"}, {"config applied", "", "x"}, {strings.Repeat("k", MaxEventKind+1), "", "x"},
			{"config_x", "p 1", "x"}, {"config_x", "", strings.Repeat("m", MaxEventMessage+1)}, {"config_x", "", "\xff"},
		} {
			if err := a.node.Publish(bad[0], bad[1], bad[2]); err == nil {
				t.Errorf("Publish(%.20q, %q, %.20q) accepted", bad[0], bad[1], bad[2])
			}
		}
	})
	if errs[0] != nil {
		t.Fatal(errs[0])
	}
	ev := wait(t, got)
	if ev.GetKind() != "config_applied" || ev.GetPairId() != "p1" || ev.GetMessage() != "version 3 applied" || ev.GetEpoch() != epoch || epoch == 0 || ev.GetTime() == nil {
		t.Fatalf("event %v; want config_applied p1 at epoch %d", ev, epoch)
	}
	select {
	case ev := <-got:
		t.Fatalf("a refused event was published: %v", ev)
	default:
	}
	loop := tier.NewLoop(0)
	defer loop.Close()
	ct := NewRuntime(RuntimeConfig{Role: Ctrl, PairID: "p1", App: &App{}, Loop: loop, Link: &memLink{}})
	if err := ct.Node().Publish("x", "", "y"); !errors.Is(err, ErrWrongRole) {
		t.Fatalf("Publish on ctrl: %v", err)
	}
}
