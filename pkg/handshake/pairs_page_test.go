package handshake

import (
	"fmt"
	"testing"

	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// TestPairsPage: status pages walk the registry in pair id order, each
// pair once, with counts of every matching pair on each page; filters by
// id and prefix; a token of another filter is refused.
func TestPairsPage(t *testing.T) {
	m, err := NewMgmt(MgmtConfig{Epoch: 1, HelloInterval: 1e9, MaxPairs: 64})
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{"b-2", "a-1", "b-10", "a-3", "c-1", "b-1", "a-2"} // registered out of order
	for i, p := range ids {
		c, d := SessionID(2*i+1), SessionID(2*i+2)
		m.SessionUp(c, "10.0.0.1:1", t0)
		m.SessionUp(d, "10.0.0.2:2", t0)
		m.Receive(c, msgID, &hellopicsv1.Identify{Role: roleCtrlPB, PairId: p, Instance: "c-" + p, DataAddr: "c:7000", Epoch: 1}, t0)
		m.Receive(d, msgID, &hellopicsv1.Identify{Role: roleDataPB, PairId: p, Instance: "d-" + p, Epoch: 1}, t0)
		if p[0] != 'b' { // the b pairs stay not ready: not cycling
			m.Receive(d, msgReady, &hellopicsv1.Ready{Role: roleDataPB, PairId: p}, t0)
			m.Receive(c, msgReady, &hellopicsv1.Ready{Role: roleCtrlPB, PairId: p}, t0)
		}
	}
	walk := func(match string, limit int) (got []string, pages int) {
		t.Helper()
		q := PairQuery{Match: match, Limit: limit}
		for {
			page, ok := m.PairsPage(q)
			if !ok {
				t.Fatalf("%+v refused", q)
			}
			pages++
			wantTotal, wantCycling := 0, 0
			for _, id := range ids {
				if q.Matches(id) {
					wantTotal++
					if id[0] != 'b' {
						wantCycling++
					}
				}
			}
			if page.Total != wantTotal || page.Cycling != wantCycling {
				t.Fatalf("%+v: total %d cycling %d, want %d %d", q, page.Total, page.Cycling, wantTotal, wantCycling)
			}
			if limit > 0 && len(page.Pairs) > limit {
				t.Fatalf("%+v: %d pairs on a page", q, len(page.Pairs))
			}
			for _, p := range page.Pairs {
				got = append(got, p.GetPairId())
			}
			if page.Next == "" {
				return got, pages
			}
			if len(page.Pairs) == 0 || page.Next != page.Pairs[len(page.Pairs)-1].GetPairId() {
				t.Fatalf("%+v: next %q after %d pairs", q, page.Next, len(page.Pairs))
			}
			q.After = page.Next
		}
	}
	for _, c := range []struct {
		match     string
		limit     int
		want      string
		wantPages int
	}{
		{"", 0, "[a-1 a-2 a-3 b-1 b-10 b-2 c-1]", 1},
		{"", 3, "[a-1 a-2 a-3 b-1 b-10 b-2 c-1]", 3},
		{"", 7, "[a-1 a-2 a-3 b-1 b-10 b-2 c-1]", 1},
		{"", 1, "[a-1 a-2 a-3 b-1 b-10 b-2 c-1]", 7},
		{"b-*", 2, "[b-1 b-10 b-2]", 2},
		{"b-1", 0, "[b-1]", 1},
		{"b-1", 1, "[b-1]", 1},
		{"zz", 5, "[]", 1},
		{"zz*", 5, "[]", 1},
	} {
		got, pages := walk(c.match, c.limit)
		if s := fmt.Sprint(got); s != c.want || pages != c.wantPages {
			t.Errorf("match %q limit %d: %s in %d pages, want %s in %d", c.match, c.limit, s, pages, c.want, c.wantPages)
		}
	}
	if _, ok := m.PairsPage(PairQuery{Match: "a-*", After: "b-1"}); ok {
		t.Error("a token of another filter was taken")
	}
	// A token past a pair that has gone since still works: the page
	// after it.
	if page, ok := m.PairsPage(PairQuery{After: "a-25", Limit: 2}); !ok || len(page.Pairs) != 2 || page.Pairs[0].GetPairId() != "a-3" {
		t.Errorf("after a-25: %v %v", page.Pairs, ok)
	}
	if len(m.Pairs()) != len(ids) {
		t.Errorf("Pairs: %d", len(m.Pairs()))
	}
}
