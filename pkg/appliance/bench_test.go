package appliance_test

// Application messages through the framework against bare pconn, side
// by side in the same run:
//
//	go test -run '^$' -bench BenchmarkAppMessages -benchmem -count 3 ./pkg/appliance/
//
// framework: real ctrl and data components (and their mgmt) in this
// process on loopback; ctrl's application Calls data's, which answers
// (roundtrip), or Sends a stream that data's handler counts (stream).
// Each message carries a 64-byte google.protobuf.BytesValue.
//
// pconn: the same message as a bare pconn frame (SendProto), decoded
// into a new message by the receiving handler: the transport the
// framework runs on, without the envelope, the loop and the calls.
//
// Metrics: rt/s (round trips per second, one in flight), msgs/s
// (messages per second received), vs-pconn (this rate over the median of
// the pconn runs of the same workload just before), allocs/op (both
// ends; a round trip is two messages).

import (
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/hellopics/hellopics/pkg/appliance"
	"github.com/hellopics/hellopics/pkg/pconn"
)

// scoped is a testing.TB whose Cleanup functions run when its stop is
// called: the components of one run of a benchmark function stop at its
// end, not with the whole benchmark (which calls it once per b.N tried),
// so that no earlier run's components compete for the CPU.
type scoped struct {
	testing.TB
	cleanups []func()
}

func (s *scoped) Cleanup(f func()) { s.cleanups = append(s.cleanups, f) }

func (s *scoped) stop() {
	for i := len(s.cleanups) - 1; i >= 0; i-- {
		s.cleanups[i]()
	}
}

// pconnRates are the rates of the pconn runs of the workload that ran
// last (all -count runs of it come first), for the framework runs after
// them to compare with their median: one noisy run does not skew the
// ratio.
var pconnRates []float64

// framework says a framework run came since the last pconn run.
var framework bool

func BenchmarkAppMessages(b *testing.B) {
	payload := make([]byte, 64)
	b.Run("roundtrip-64B/pconn", func(b *testing.B) { benchPconnRoundTrip(b, payload) })
	b.Run("roundtrip-64B/framework", func(b *testing.B) { benchAppRoundTrip(b, payload) })
	b.Run("stream-64B/pconn", func(b *testing.B) { benchPconnStream(b, payload) })
	b.Run("stream-64B/framework", func(b *testing.B) { benchAppStream(b, payload) })
}

func report(b *testing.B, unit string, start time.Time, pconn bool) {
	elapsed := time.Since(start)
	rate := float64(b.N) / elapsed.Seconds()
	b.ReportMetric(rate, unit)
	if elapsed < 100*time.Millisecond {
		return // a probe run that sizes b.N: too short to compare
	}
	if pconn {
		if framework {
			pconnRates, framework = nil, false
		}
		pconnRates = append(pconnRates, rate)
		return
	}
	framework = true
	if len(pconnRates) > 0 {
		sorted := slices.Clone(pconnRates)
		slices.Sort(sorted)
		b.ReportMetric(rate/sorted[len(sorted)/2], "vs-pconn")
	}
}

// pconnPair is a pconn server and a client session to it.
func pconnPair(b *testing.B, server, client pconn.Handler) (*pconn.Session, func()) {
	b.Helper()
	srv, err := pconn.Listen("127.0.0.1:0", pconn.DefaultConfig(server))
	if err != nil {
		b.Fatal(err)
	}
	s, err := pconn.Connect(b.Context(), pconn.DefaultConfig(client), srv.Addr().String())
	if err != nil {
		srv.Close()
		b.Fatal(err)
	}
	return s, func() { s.Close(); <-s.Done(); srv.Close() }
}

const benchType = pconn.MsgType(100)

func benchPconnRoundTrip(b *testing.B, payload []byte) {
	answered := make(chan struct{}, 1)
	s, stop := pconnPair(b,
		pconn.HandlerFunc(func(s *pconn.Session, m pconn.Message) error {
			in := new(wrapperspb.BytesValue)
			if err := proto.Unmarshal(m.Payload, in); err != nil {
				return err
			}
			return s.SendProto(benchType, in)
		}),
		pconn.HandlerFunc(func(s *pconn.Session, m pconn.Message) error {
			in := new(wrapperspb.BytesValue)
			if err := proto.Unmarshal(m.Payload, in); err != nil {
				return err
			}
			answered <- struct{}{}
			return nil
		}))
	defer stop()
	req := wrapperspb.Bytes(payload)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if err := s.SendProto(benchType, req); err != nil {
			b.Fatal(err)
		}
		<-answered
	}
	report(b, "rt/s", start, true)
}

func benchAppRoundTrip(b *testing.B, payload []byte) {
	mux := appliance.NewMux()
	appliance.HandleCall(mux, func(c *appliance.Context, m *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error) { return m, nil })
	sc := &scoped{TB: b}
	defer sc.stop()
	tr := startTrio(sc, nil, nil, &appliance.App{Mux: mux})
	cn := tr.ctrl.Node()
	req := wrapperspb.Bytes(payload)
	answered := make(chan error, 1)
	done := func(_ proto.Message, err error) { answered <- err }
	to := appliance.Target{Role: appliance.Data}
	call := func() {
		if err := cn.Call(to, req, 10*time.Second, done); err != nil {
			answered <- err
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		cn.Post(call)
		if err := <-answered; err != nil {
			b.Fatal(err)
		}
	}
	report(b, "rt/s", start, false)
}

func benchPconnStream(b *testing.B, payload []byte) {
	var got atomic.Int64
	all := make(chan struct{})
	want := int64(b.N)
	s, stop := pconnPair(b,
		pconn.HandlerFunc(func(s *pconn.Session, m pconn.Message) error {
			in := new(wrapperspb.BytesValue)
			if err := proto.Unmarshal(m.Payload, in); err != nil {
				return err
			}
			if got.Add(1) == want {
				close(all)
			}
			return nil
		}),
		pconn.HandlerFunc(func(*pconn.Session, pconn.Message) error { return nil }))
	defer stop()
	msg := wrapperspb.Bytes(payload)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; {
		err := s.SendProto(benchType, msg)
		switch {
		case err == nil:
			i++
		case errors.Is(err, pconn.ErrQueueFull):
			time.Sleep(20 * time.Microsecond) // the receiver is behind
		default:
			b.Fatal(err)
		}
	}
	<-all
	report(b, "msgs/s", start, true)
}

func benchAppStream(b *testing.B, payload []byte) {
	var got atomic.Int64
	all := make(chan struct{})
	want := int64(b.N)
	mux := appliance.NewMux()
	appliance.Handle(mux, func(c *appliance.Context, m *wrapperspb.BytesValue) error {
		if got.Add(1) == want {
			close(all)
		}
		return nil
	})
	sc := &scoped{TB: b}
	defer sc.stop()
	tr := startTrio(sc, nil, nil, &appliance.App{Mux: mux})
	cn := tr.ctrl.Node()
	msg := wrapperspb.Bytes(payload)
	to := appliance.Target{Role: appliance.Data}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for sent := 0; sent < b.N; {
		var err error
		// A batch per turn of the loop, as an application sending from
		// one handler or hook would.
		cn.Do(func() {
			for n := 0; n < 256 && sent < b.N; n++ {
				if err = cn.Send(to, msg); err != nil {
					return
				}
				sent++
			}
		})
		switch {
		case err == nil:
		case errors.Is(err, appliance.ErrQueueFull):
			time.Sleep(20 * time.Microsecond)
		default:
			b.Fatal(err)
		}
	}
	<-all
	report(b, "msgs/s", start, false)
}
