package handshake

import (
	"fmt"
	"testing"
	"time"

	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// BenchmarkMgmtPerPair measures what one hello costs mgmt's machine
// with n pairs cycling (a Tick that sends it, the hello back, and the
// state sync the shell does after each output), at 10, 100 and 1,000
// pairs: the cost per hello must stay flat as the pairs grow. Each size
// runs twice: sync=delta is the daemon (TakeChanges after every
// output), sync=whole the way it synced before (the whole registry,
// Pairs, after every output), as the baseline in the same run.
//
//	go test -run XXX -bench MgmtPerPair -benchmem ./pkg/handshake/
func BenchmarkMgmtPerPair(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		for _, sync := range []string{"delta", "whole"} {
			b.Run(fmt.Sprintf("pairs=%d/sync=%s", n, sync), func(b *testing.B) {
				m, err := NewMgmt(MgmtConfig{Epoch: 1, HelloInterval: time.Second, MaxPairs: n, SpreadHellos: true})
				if err != nil {
					b.Fatal(err)
				}
				now := t0
				var starts []Output
				syncOut := func(outs []Output) {
					if len(outs) == 0 {
						return
					}
					if sync == "delta" {
						_ = m.TakeChanges()
					} else {
						_ = m.Pairs()
					}
				}
				for i := range n {
					p := fmt.Sprintf("p%04d", i)
					c, d := SessionID(2*i+1), SessionID(2*i+2)
					m.SessionUp(c, "10.0.0.1:1", now)
					m.SessionUp(d, "10.0.0.2:2", now)
					m.Receive(c, msgID, &hellopicsv1.Identify{Role: roleCtrlPB, PairId: p, Instance: "c-" + p, DataAddr: "c:7000", Epoch: 1}, now)
					m.Receive(d, msgID, &hellopicsv1.Identify{Role: roleDataPB, PairId: p, Instance: "d-" + p, Epoch: 1}, now)
					m.Receive(d, msgReady, &hellopicsv1.Ready{Role: roleDataPB, PairId: p}, now)
					starts = append(starts, m.Receive(c, msgReady, &hellopicsv1.Ready{Role: roleCtrlPB, PairId: p}, now)...)
				}
				back := func(outs []Output, at time.Time) {
					for _, o := range outs {
						ev, ok := o.(Event)
						if !ok || ev.Kind != EventHelloSent {
							continue
						}
						p := m.pairs[ev.PairID]
						hop := p.data.session
						_, dir, _ := m.cycle.InFlight(p.id)
						if dir == dirDC {
							hop = p.ctrl.session
						}
						syncOut(m.Receive(hop, msgHello, &hellopicsv1.Hello{Seq: ev.Seq, Direction: dir, Epoch: 1, PairId: ev.PairID}, at))
					}
				}
				back(starts, now)
				// Warm up: a few intervals, so the hellos are spread.
				for now.Before(t0.Add(20 * time.Second)) {
					at, _ := m.NextDeadline()
					now = at
					outs := m.Tick(now)
					syncOut(outs)
					back(outs, now)
				}
				b.ReportAllocs()
				b.ResetTimer()
				hellos := 0
				for hellos < b.N {
					at, _ := m.NextDeadline()
					now = at
					outs := m.Tick(now)
					syncOut(outs)
					for _, o := range outs {
						if ev, ok := o.(Event); ok && ev.Kind == EventHelloSent {
							hellos++
						}
					}
					back(outs, now)
				}
				b.StopTimer()
				for _, p := range m.Pairs() {
					if c := p.GetCounters(); c.GetMissed() != 0 || c.GetOutOfOrder() != 0 {
						b.Fatalf("%s: missed %d, out of order %d", p.GetPairId(), c.GetMissed(), c.GetOutOfOrder())
					}
				}
			})
		}
	}
}
