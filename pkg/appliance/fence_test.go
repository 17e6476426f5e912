package appliance

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/hellopics/hellopics/pkg/handshake"
	"github.com/hellopics/hellopics/pkg/tier"
)

// knownEpoch is a Fence that knows one epoch: it stamps it and, like
// ctrl's and data's, refuses a message stamped below it.
type knownEpoch struct{ epoch atomic.Uint64 }

func (f *knownEpoch) Epoch() uint64                   { return f.epoch.Load() }
func (f *knownEpoch) Admit(_ Peer, epoch uint64) bool { return epoch >= f.epoch.Load() }

// TestMessagesStampedAndFenced: every message carries its sender's
// epoch; a receiver that knows a newer one refuses it with stale_epoch,
// which a Call's caller sees as its error; once the sender knows the
// epoch too, the message goes through and the handler reads the stamp.
func TestMessagesStampedAndFenced(t *testing.T) {
	got := make(chan uint64, 10)
	dmux := NewMux()
	HandleCall(dmux, func(c *Context, m *wrapperspb.Int64Value) (*wrapperspb.Int64Value, error) {
		got <- c.Epoch
		return m, nil
	})
	cf, df := &knownEpoch{}, &knownEpoch{}
	cf.epoch.Store(2) // ctrl has not heard of the failover yet
	df.epoch.Store(3)
	p := newFencedPair(t, &App{}, &App{Mux: dmux}, cf, df)

	call := func() error {
		res := make(chan error, 1)
		p.cLoop.Do(func() {
			p.ctrl.Node().Call(Target{Role: Data}, wrapperspb.Int64(7), 0, func(_ proto.Message, err error) { res <- err })
		})
		return wait(t, res)
	}
	var re *RemoteError
	if err := call(); !errors.As(err, &re) || !strings.Contains(re.Message, ErrStaleEpoch.Error()) {
		t.Fatalf("call stamped 2 to data at epoch 3: %v; want a stale-epoch refusal", err)
	}
	if n := counterValue(p.data.refused.WithLabelValues(RefusedStaleEpoch)); n != 1 {
		t.Fatalf("data counted %v stale_epoch refusals; want 1", n)
	}
	select {
	case e := <-got:
		t.Fatalf("the handler ran for a fenced-off message (epoch %d)", e)
	default:
	}
	cf.epoch.Store(3)
	if err := call(); err != nil {
		t.Fatalf("call at epoch 3: %v", err)
	}
	if e := wait(t, got); e != 3 {
		t.Fatalf("handler saw epoch %d; want 3", e)
	}
}

// TestMgmtRefusesEpochAbove: mgmt, without a Fence, refuses a component's
// message stamped above its own epoch (it is deposed) and takes one at
// or below it.
func TestMgmtRefusesEpochAbove(t *testing.T) {
	loop := tier.NewLoop(0)
	t.Cleanup(loop.Close)
	got := make(chan uint64, 2)
	mux := NewMux()
	Handle(mux, func(c *Context, m *wrapperspb.Int64Value) error { got <- c.Epoch; return nil })
	link := &memLink{self: Peer{Role: Mgmt}, to: map[Role]*Runtime{}}
	rt := NewRuntime(RuntimeConfig{Role: Mgmt, App: &App{Mux: mux}, Link: link, Loop: loop})
	loop.Do(func() { rt.Start(); rt.SetMastership(true, 4) })
	defer loop.Do(rt.Stop)
	from := Peer{Role: Ctrl, PairID: "p1"}
	deliver := func(epoch uint64) {
		rec, _, err := appendRecord(nil, "google.protobuf.Int64Value", wrapperspb.Int64(1), header{epoch: epoch})
		if err != nil {
			t.Fatal(err)
		}
		ins, err := rt.Decode(rec)
		if err != nil || len(ins) != 1 {
			t.Fatalf("decode: %v, %d", err, len(ins))
		}
		loop.Do(func() { rt.Deliver(from, ins[0]) })
	}
	deliver(5)
	if n := counterValue(rt.refused.WithLabelValues(RefusedStaleEpoch)); n != 1 {
		t.Fatalf("mgmt at epoch 4 counted %v stale_epoch refusals of an epoch-5 message; want 1", n)
	}
	deliver(4)
	if e := wait(t, got); e != 4 {
		t.Fatalf("handler saw epoch %d; want 4", e)
	}
}

// TestComponentFenceIsTheHelloFence: the component shell's Fence is
// its handshake machine's: it stamps the epoch the machine knows,
// refuses a message of an older epoch from mgmt or the peer, and a
// master's newer epoch raises it.
func TestComponentFenceIsTheHelloFence(t *testing.T) {
	d, err := handshake.NewData(handshake.DataConfig{PairID: "p1", Instance: "d-1"})
	if err != nil {
		t.Fatal(err)
	}
	f := componentFence{&Component{m: dataMachine{d}}}
	mgmt, ctrl := Peer{Role: Mgmt}, Peer{Role: Ctrl, PairID: "p1"}
	if !f.Admit(mgmt, 3) || f.Epoch() != 3 {
		t.Fatalf("a master's epoch 3: admitted and raised to %d; want 3", f.Epoch())
	}
	if f.Admit(mgmt, 2) || f.Admit(ctrl, 2) {
		t.Fatalf("epoch 2 admitted at 3")
	}
	if !f.Admit(ctrl, 4) || f.Epoch() != 3 {
		t.Fatalf("ctrl's epoch 4: the fence is %d; only mgmt raises it", f.Epoch())
	}
	if f.Admit(mgmt, handshake.EpochLimit) {
		t.Fatalf("an epoch out of range admitted")
	}
}
