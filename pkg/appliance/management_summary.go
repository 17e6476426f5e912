package appliance

import (
	"math"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// DefaultHelloSummaryInterval is how often the master logs one INFO
// summary line per running Hello cycle: often enough that someone
// watching the log sees the hellos flow within a minute, rare enough
// that a year of one pair is about half a million lines, not thirty
// million (one per hello at 1 s).
const DefaultHelloSummaryInterval = time.Minute

// helloBaseline is a pair's counters and RTT histogram at the start of
// a summary period.
type helloBaseline struct {
	at                                 time.Time
	sent, received, missed, outOfOrder uint64
	buckets                            []uint64 // cumulative counts, as the histogram reports them
	count                              uint64
}

// startHelloSummary arms the summary timer. On the loop.
func (s *Management) startHelloSummary() {
	if s.cfg.HelloSummaryInterval <= 0 {
		return
	}
	s.loop.At("hello_summary", time.Now().Add(s.cfg.HelloSummaryInterval), s.helloSummary)
}

// helloBaselineNow snapshots pair's counters and RTT histogram. On the loop.
func (s *Management) helloBaselineNow(pair string, now time.Time) (helloBaseline, bool) {
	b := helloBaseline{at: now}
	// One pair's counters, not the registry's: a failover starts a
	// thousand cycles, each asking for its own.
	c, found := s.machine.PairCounters(pair)
	if v := s.cfg.CycleView; v != nil && found {
		c = v.Counters(pair)
	}
	if found {
		b.sent, b.received, b.missed, b.outOfOrder = c.GetSent(), c.GetReceived(), c.GetMissed(), c.GetOutOfOrder()
	}
	if m, ok := s.rttSnapshot(pair); ok {
		b.count = m.Histogram.GetSampleCount()
		for _, bk := range m.Histogram.GetBucket() {
			b.buckets = append(b.buckets, bk.GetCumulativeCount())
		}
	}
	return b, found
}

// helloCycleStarted starts pair's first summary period. On the loop.
func (s *Management) helloCycleStarted(pair string) {
	if s.cfg.HelloSummaryInterval <= 0 {
		return
	}
	if b, ok := s.helloBaselineNow(pair, time.Now()); ok {
		// The first hello went out in the step that started the cycle:
		// count it in the first period.
		b.sent = since(1, b.sent)
		if s.helloBase == nil {
			s.helloBase = make(map[string]helloBaseline)
		}
		s.helloBase[pair] = b
	}
}

// helloSummary logs one line per running cycle for the period since
// the last line (or the cycle's start) and re-arms. On the loop.
func (s *Management) helloSummary() {
	defer s.startHelloSummary()
	now := time.Now()
	cycling := s.machine.ReadyPairs() // sorted: the lines come in pair order
	running := make(map[string]bool, len(cycling))
	for _, pair := range cycling {
		running[pair] = true
	}
	for pair := range s.helloBase {
		if !running[pair] || !s.machine.IsMaster() {
			delete(s.helloBase, pair)
		}
	}
	for _, pair := range cycling {
		prev, ok := s.helloBase[pair]
		if !ok {
			continue
		}
		cur, _ := s.helloBaselineNow(pair, now)
		s.helloBase[pair] = cur
		args := []any{"component", "mgmt", "step", "hello_summary", "pair", pair, "epoch", s.machine.Epoch(),
			"period", now.Sub(prev.at).Round(time.Second).String(),
			"sent", since(prev.sent, cur.sent), "received", since(prev.received, cur.received),
			"missed", since(prev.missed, cur.missed), "out_of_order", since(prev.outOfOrder, cur.outOfOrder)}
		p50, p99, ok := rttPercentiles(s.rttBounds(pair), prev, cur)
		if ok {
			args = append(args, "rtt_p50", millis(p50), "rtt_p99", millis(p99))
		} else {
			args = append(args, "rtt_p50", "none", "rtt_p99", "none")
		}
		s.log.Info("hello cycle summary", args...)
	}
}

// rttSnapshot reads pair's series of the RTT histogram (the metric's).
func (s *Management) rttSnapshot(pair string) (*dto.Metric, bool) {
	h, ok := s.metrics.rtt.WithLabelValues(pair).(prometheus.Metric)
	if !ok {
		return nil, false
	}
	var m dto.Metric
	if err := h.Write(&m); err != nil || m.Histogram == nil {
		return nil, false
	}
	return &m, true
}

// rttBounds is the upper bound of each bucket of the RTT histogram.
func (s *Management) rttBounds(pair string) []float64 {
	m, ok := s.rttSnapshot(pair)
	if !ok {
		return nil
	}
	out := make([]float64, 0, len(m.Histogram.GetBucket()))
	for _, bk := range m.Histogram.GetBucket() {
		out = append(out, bk.GetUpperBound())
	}
	return out
}

// rttPercentiles estimates the median and 99th percentile of the RTTs
// observed between two snapshots of the histogram, interpolating
// linearly inside a bucket (as Prometheus' histogram_quantile does).
// It returns false when no hello returned in between.
func rttPercentiles(bounds []float64, prev, cur helloBaseline) (p50, p99 time.Duration, ok bool) {
	total := since(prev.count, cur.count)
	if total == 0 || len(bounds) == 0 || len(cur.buckets) != len(bounds) {
		return 0, 0, false
	}
	delta := make([]uint64, len(bounds))
	for i := range bounds {
		var before uint64
		if i < len(prev.buckets) {
			before = prev.buckets[i]
		}
		delta[i] = since(before, cur.buckets[i])
	}
	q := func(q float64) time.Duration {
		rank := q * float64(total)
		lower, below := 0.0, uint64(0)
		for i, ub := range bounds {
			if float64(delta[i]) >= rank {
				in := delta[i] - below
				frac := 1.0
				if in > 0 {
					frac = (rank - float64(below)) / float64(in)
				}
				return seconds(lower + (ub-lower)*frac)
			}
			lower, below = ub, delta[i]
		}
		return seconds(bounds[len(bounds)-1]) // beyond the last bucket: its bound, at least
	}
	return q(0.5), q(0.99), true
}

func seconds(f float64) time.Duration {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return 0
	}
	return time.Duration(f * float64(time.Second)).Round(time.Microsecond)
}

// millis formats d in milliseconds to the microsecond ("0.612ms"):
// ASCII, unlike Duration's µs, and one unit for every line.
func millis(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 3, 64) + "ms"
}

// since is a counter's increase, 0 if it went back (a pair re-registered).
func since(prev, cur uint64) uint64 {
	if cur < prev {
		return 0
	}
	return cur - prev
}
