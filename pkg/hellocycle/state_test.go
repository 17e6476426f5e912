package hellocycle

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	hellocyclev1 "github.com/hellopics/hellopics/proto/hellopics/hellocycle/v1"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

func counters(ids ...string) []byte {
	u := &hellocyclev1.Counters{}
	for i, id := range ids {
		u.Pairs = append(u.Pairs, &hellocyclev1.PairCounters{PairId: id, Counters: &hellopicsv1.HelloCounters{Sent: uint64(i + 2), Received: uint64(i + 1)}})
	}
	b, _ := proto.Marshal(u)
	return b
}

// TestCounterState: updates replace the pairs they list, a snapshot
// restores them all, and what breaks a bound is refused whole.
func TestCounterState(t *testing.T) {
	s := newCounterState(3)
	if err := s.Apply(counters("a", "b")); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(counters("b")); err != nil || s.pairs["b"].GetSent() != 2 || s.pairs["a"].GetSent() != 2 {
		t.Fatalf("update of b: %v, %v", err, s.pairs)
	}
	snap, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		"not protobuf":      {0xff, 0xff},
		"too many pairs":    counters("c", "d"), // a, b, c, d
		"empty pair id":     counters(""),
		"long pair id":      counters(strings.Repeat("x", maxPairID+1)),
		"bad utf-8 pair id": counters("\xff"),
	} {
		if err := s.Apply(b); !errors.Is(err, errBadCounters) {
			t.Errorf("Apply %s: %v", name, err)
		}
	}
	bad, _ := proto.Marshal(&hellocyclev1.Counters{Pairs: []*hellocyclev1.PairCounters{{PairId: "z", Counters: &hellopicsv1.HelloCounters{Sent: 1, Received: 2}}}})
	if err := s.Apply(bad); !errors.Is(err, errBadCounters) {
		t.Errorf("Apply of received > sent: %v", err)
	}
	if len(s.pairs) != 2 {
		t.Fatalf("a refused update changed the state: %v", s.pairs)
	}
	other := newCounterState(3)
	if err := other.Restore(snap); err != nil || len(other.pairs) != 2 || other.pairs["a"].GetReceived() != 1 {
		t.Fatalf("Restore: %v, %v", err, other.pairs)
	}
	if err := other.Restore(nil); err != nil || len(other.pairs) != 0 {
		t.Fatalf("Restore(nil): %v, %v", err, other.pairs)
	}
	if err := newCounterState(1).Restore(snap); !errors.Is(err, errBadCounters) {
		t.Fatalf("Restore beyond MaxPairs: %v", err)
	}
}

// FuzzCounterState: whatever bytes a (compromised) master replicates,
// the state refuses them or holds at most MaxPairs pairs with valid ids
// and no more received than sent, and never panics.
func FuzzCounterState(f *testing.F) {
	f.Add(counters("a", "b"))
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		s := newCounterState(4)
		_ = s.Apply(counters("seed"))
		_ = s.Apply(b)
		_ = s.Restore(b)
		if len(s.pairs) > 4 {
			t.Fatalf("%d pairs held, at most 4", len(s.pairs))
		}
		for id, hc := range s.pairs {
			if id == "" || len(id) > maxPairID || hc.GetReceived() > hc.GetSent() {
				t.Fatalf("pair %q held with %v", id, hc)
			}
		}
	})
}
