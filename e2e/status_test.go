package e2e

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// The operator API (GetStatus) is used where the binary serves it; the
// probe finds out once, by starting a mgmt and waiting for its "operator
// API listening" line.
var operator struct {
	once   sync.Once
	served bool
}

// operatorServed reports whether mgmt serves the operator API.
func operatorServed(tb testing.TB) bool {
	tb.Helper()
	operator.once.Do(func() {
		p := startProc(tb, "mgmt-probe", "mgmt", "-listen", "127.0.0.1:0", "-operator", "127.0.0.1:0", "-log-json")
		defer p.Kill()
		if _, _, err := p.waitFor(0, msg("listening for components"), 1, waitTimeout); err != nil {
			tb.Fatalf("probe mgmt did not start: %v\n%s", err, p.Tail(20))
		}
		// The operator line follows at once when it is served; 3 s
		// without it means it is not.
		_, _, err := p.waitFor(0, msg("operator API listening"), 1, 3*time.Second)
		operator.served = err == nil
		if testing.Verbose() {
			fmt.Fprintf(os.Stderr, "e2e: mgmt serves the operator API: %v\n", operator.served)
		}
	})
	return operator.served
}

// Status calls GetStatus on the current mgmt, on a fresh connection (a
// restarted mgmt is on the same address; a fresh client does not inherit
// gRPC's reconnect backoff).
func (c *cluster) Status() (*hellopicsv1.GetStatusResponse, error) {
	cc, err := grpc.NewClient(c.opAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return hellopicsv1.NewOperatorServiceClient(cc).GetStatus(ctx, &hellopicsv1.GetStatusRequest{})
}

// PairStatus returns pair's entry in GetStatus (nil if absent).
func (c *cluster) PairStatus(pair string) *hellopicsv1.PairStatus {
	c.t.Helper()
	st, err := c.Status()
	if err != nil {
		c.t.Fatalf("GetStatus on %s: %v\n%s", c.opAddr, err, c.Tails())
	}
	for _, ps := range st.GetPairs() {
		if ps.GetPairId() == pair {
			return ps
		}
	}
	return nil
}

// Counters returns pair's counters on the current mgmt: from GetStatus
// when the operator API is served (checked against the log, read just
// before), else from the log. Cycle starts and stops always come from the
// log.
func (c *cluster) Counters(pair string) counters {
	c.t.Helper()
	k := logCounters(c.Mgmt(), 0, pair)
	k.source = "log"
	if !operatorServed(c.t) {
		return k
	}
	ps := c.PairStatus(pair)
	if ps == nil {
		c.t.Fatalf("GetStatus has no pair %s\n%s", pair, c.Tails())
	}
	h := ps.GetCounters()
	if h.GetSent() < k.sent || h.GetReceived() < k.received || h.GetMissed() < k.missed || h.GetOutOfOrder() < k.outOfOrder {
		c.t.Errorf("GetStatus counters %v behind the log's (read before): %v", h, k)
	}
	k.sent, k.received, k.missed, k.outOfOrder, k.lastSeq = h.GetSent(), h.GetReceived(), h.GetMissed(), h.GetOutOfOrder(), h.GetLastSeq()
	k.running = ps.GetCycleRunning()
	k.lastRTT = h.GetLastRtt().AsDuration()
	k.ctrlState, k.dataState = ps.GetCtrl().GetState(), ps.GetData().GetState()
	k.source = "GetStatus"
	return k
}

// WaitReceivedGrowing polls GetStatus (every 5 ms) until pair's cycle
// runs and received has grown by n over what it is now; without the
// operator API it waits for n more hello_returned lines.
func (c *cluster) WaitReceivedGrowing(pair string, n uint64) counters {
	c.t.Helper()
	if !operatorServed(c.t) {
		c.WaitHellos(c.Mgmt().Mark(), pair, int(n))
		return c.Counters(pair)
	}
	first := c.Counters(pair)
	deadline := time.Now().Add(waitTimeout)
	for {
		k := c.Counters(pair)
		if k.running && k.received >= first.received+n {
			return k
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("GetStatus: %s received did not grow by %d within %v: first %v, now %v\n%s", pair, n, waitTimeout, first, k, c.Tails())
		}
		time.Sleep(5 * time.Millisecond) // polling an API, not timing
	}
}
