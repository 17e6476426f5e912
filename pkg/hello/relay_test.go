package hello

import (
	"errors"
	"testing"

	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// TestRelay: each leg of both directions goes to the right next hop;
// a hello of another pair, or one travelling the wrong way, goes
// nowhere; LastSeq is the highest number of the pair seen, capped.
func TestRelay(t *testing.T) {
	mgmt := hellopicsv1.Role_ROLE_MGMT
	c, _ := NewRelay(ctrl, "p1")
	d, _ := NewRelay(data, "p1")
	for _, tc := range []struct {
		r    *Relay
		from hellopicsv1.Role
		dir  hellopicsv1.Direction
		to   hellopicsv1.Role
		err  error
	}{
		{c, mgmt, viaCD, data, nil},
		{d, ctrl, viaCD, mgmt, nil},
		{d, mgmt, viaDC, ctrl, nil},
		{c, data, viaDC, mgmt, nil},
		{c, mgmt, viaDC, 0, ErrWrongWay},
		{c, data, viaCD, 0, ErrWrongWay},
		{d, mgmt, viaCD, 0, ErrWrongWay},
		{d, ctrl, viaDC, 0, ErrWrongWay},
		{c, ctrl, viaCD, 0, ErrWrongWay},
		{d, mgmt, hellopicsv1.Direction(9), 0, ErrWrongWay},
	} {
		to, err := tc.r.Forward(tc.from, &hellopicsv1.Hello{Seq: 5, Direction: tc.dir, PairId: "p1"})
		if to != tc.to || !errors.Is(err, tc.err) {
			t.Errorf("%s: %s from %s: %s, %v; want %s, %v", RoleName(tc.r.role), tc.dir, RoleName(tc.from), RoleName(to), err, RoleName(tc.to), tc.err)
		}
	}
	if _, err := c.Forward(mgmt, &hellopicsv1.Hello{Seq: 99, Direction: viaCD, PairId: "p2"}); !errors.Is(err, ErrOtherPair) {
		t.Fatalf("another pair's hello: %v", err)
	}
	if c.LastSeq() != 5 {
		t.Fatalf("LastSeq %d; another pair's hello counted", c.LastSeq())
	}
	c.Forward(mgmt, &hellopicsv1.Hello{Seq: 1<<64 - 1, Direction: viaCD, PairId: "p1"})
	if c.LastSeq() != SeqLimit-1 {
		t.Fatalf("LastSeq %d; want capped at SeqLimit-1", c.LastSeq())
	}
	if _, err := NewRelay(hellopicsv1.Role_ROLE_MGMT, "p1"); err == nil {
		t.Fatal("a mgmt relay")
	}
	if _, err := NewRelay(ctrl, ""); err == nil {
		t.Fatal("a relay without a pair")
	}
}
