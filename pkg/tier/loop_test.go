package tier

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/hellopics/hellopics/pkg/handshake"
)

func TestLoopRunsInOrder(t *testing.T) {
	l := NewLoop(4)
	defer l.Close()
	var got []int
	for i := range 100 {
		if !l.Post(func() { got = append(got, i) }) {
			t.Fatal("post refused on a running loop")
		}
	}
	var n int
	l.Do(func() { n = len(got) })
	if n != 100 {
		t.Fatalf("%d items ran before Do, want 100", n)
	}
	for i, v := range got {
		if v != i {
			t.Fatalf("item %d ran as %d", i, v)
		}
	}
}

func TestLoopAtReplacesAndCancels(t *testing.T) {
	l := NewLoop(0)
	defer l.Close()
	fired := make(chan string, 4)
	l.Do(func() {
		l.At("a", time.Now().Add(time.Hour), func() { fired <- "replaced" })
		l.At("a", time.Now(), func() { fired <- "a" })
		l.At("b", time.Now(), func() { fired <- "cancelled" })
		l.At("b", time.Time{}, nil)
		l.At("c", time.Now().Add(time.Millisecond), func() { fired <- "c" })
	})
	seen := map[string]bool{}
	for len(seen) < 2 {
		select {
		case s := <-fired:
			if s != "a" && s != "c" {
				t.Fatalf("timer %q fired", s)
			}
			seen[s] = true
		case <-time.After(20 * time.Second):
			t.Fatalf("timers did not fire; saw %v", seen)
		}
	}
}

func TestLoopClose(t *testing.T) {
	l := NewLoop(1)
	l.Close()
	if l.Post(func() {}) {
		t.Fatal("post accepted after Close")
	}
	if l.Do(func() { t.Fatal("ran after Close") }) {
		t.Fatal("Do reported success after Close")
	}
	l.Close() // twice is fine
}

func TestEventLogRateLimitsRefusals(t *testing.T) {
	var buf bytes.Buffer
	l := NewEventLog(hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Debug}), "mgmt", time.Hour)
	for range 500 {
		l.Log(handshake.Event{Kind: handshake.EventRejected, Refused: "pair_id", Message: "refused"})
	}
	l.Log(handshake.Event{Kind: handshake.EventRejected, Refused: "in_use", Message: "refused too"})
	for range 3 {
		l.Log(handshake.Event{Kind: handshake.EventReady, Message: "ctrl ready"})
	}
	out := buf.String()
	if n := strings.Count(out, "refused=pair_id"); n != 1 {
		t.Errorf("%d lines for 500 pair_id refusals; want 1:\n%s", n, out)
	}
	if n := strings.Count(out, "refused=in_use"); n != 1 {
		t.Errorf("%d lines for the in_use refusal; want 1", n)
	}
	if n := strings.Count(out, "ctrl ready"); n != 3 {
		t.Errorf("%d ordinary events logged; want all 3", n)
	}
}

// TestLoopUrgentFirst: urgent work runs before the backlog queued with
// Post, and between two items of a batch the loop took already.
func TestLoopUrgentFirst(t *testing.T) {
	l := NewLoop(0)
	defer l.Close()
	var mu sync.Mutex
	var order []string
	rec := func(s string) func() {
		return func() { mu.Lock(); order = append(order, s); mu.Unlock() }
	}
	block := make(chan struct{})
	l.Post(func() { <-block })
	// Queued behind the blocked item, so taken as one batch after it:
	// a posts urgent work, which must run before b.
	l.Post(func() { rec("a")(); l.PostUrgent(rec("u2")) })
	l.Post(rec("b"))
	for i := range 50 {
		l.Post(rec(fmt.Sprintf("n%d", i)))
	}
	l.PostUrgent(rec("u1"))
	close(block)
	done := make(chan struct{})
	l.Post(func() { close(done) })
	<-done
	mu.Lock()
	defer mu.Unlock()
	if len(order) < 4 || order[0] != "u1" || order[1] != "a" || order[2] != "u2" || order[3] != "b" {
		t.Fatalf("order %v, want u1 a u2 b first", order[:min(len(order), 6)])
	}
	if len(order) != 54 {
		t.Fatalf("%d items ran, want 54", len(order))
	}
}

// TestLoopAtUrgent: an urgent deadline runs, and a stopped loop refuses
// urgent work.
func TestLoopAtUrgent(t *testing.T) {
	l := NewLoop(0)
	ran := make(chan struct{})
	l.Do(func() { l.AtUrgent("hb", time.Now().Add(5*time.Millisecond), func() { close(ran) }) })
	select {
	case <-ran:
	case <-time.After(10 * time.Second):
		t.Fatal("urgent deadline never ran")
	}
	l.Close()
	if l.PostUrgent(func() {}) {
		t.Fatal("PostUrgent accepted on a stopped loop")
	}
}
