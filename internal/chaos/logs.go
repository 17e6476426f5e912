package chaos

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Event is one line of a daemon's JSON log (-log-json), the fields the
// checks read.
type Event struct {
	Host   string    // the lab host whose log it is: mgmt-a, mgmt-b, ctrl, data
	T      time.Time // "@timestamp" (millisecond, local time of day) on the run's date
	Step   string
	Epoch  uint64
	Seq    uint64
	HasSeq bool
	Raw    string // the line as written
}

// logTail reads the daemons' logs as they grow (a restarted daemon
// appends to the same file).
type logTail struct {
	dir   string
	hosts []string
	day   time.Time // midnight of the run's first day, local time
	off   map[string]int64
	part  map[string][]byte // a line not yet ended
	evs   []Event
	ret   []time.Time // times of the hello_returned lines, sorted
	other []Event     // lines that are not JSON (panics, runtime errors), not "#" headers
}

func newLogTail(dir string, hosts []string, start time.Time) *logTail {
	y, m, d := start.Date()
	return &logTail{dir: dir, hosts: hosts, day: time.Date(y, m, d, 0, 0, 0, 0, start.Location()),
		off: map[string]int64{}, part: map[string][]byte{}}
}

// poll reads what the logs gained since the last poll and returns the
// number of new events.
func (l *logTail) poll() (int, error) {
	n := len(l.evs)
	for _, h := range l.hosts {
		f, err := os.Open(filepath.Join(l.dir, h+".log"))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("chaos: read log: %w", err)
		}
		if _, err := f.Seek(l.off[h], io.SeekStart); err != nil {
			f.Close()
			return 0, fmt.Errorf("chaos: read log %s: %w", h, err)
		}
		b, err := io.ReadAll(f)
		f.Close()
		if err != nil {
			return 0, fmt.Errorf("chaos: read log %s: %w", h, err)
		}
		l.off[h] += int64(len(b))
		b = append(l.part[h], b...)
		for {
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				break
			}
			l.line(h, string(b[:i]))
			b = b[i+1:]
		}
		l.part[h] = append([]byte(nil), b...)
	}
	return len(l.evs) - n, nil
}

func (l *logTail) line(host, s string) {
	if strings.TrimSpace(s) == "" || strings.HasPrefix(s, "#") {
		return
	}
	var j struct {
		TS    string  `json:"@timestamp"`
		Step  string  `json:"step"`
		Epoch *uint64 `json:"epoch"`
		Seq   *uint64 `json:"seq"`
	}
	if err := json.Unmarshal([]byte(s), &j); err != nil {
		l.other = append(l.other, Event{Host: host, Raw: s})
		return
	}
	ev := Event{Host: host, Step: j.Step, Raw: s}
	if t, err := time.ParseInLocation("15:04:05.000", j.TS, l.day.Location()); err == nil {
		ev.T = l.day.Add(time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute +
			time.Duration(t.Second())*time.Second + time.Duration(t.Nanosecond()))
		// A run across midnight: the log's clock wrapped.
		for len(l.evs) > 0 && ev.T.Before(l.evs[len(l.evs)-1].T.Add(-12*time.Hour)) {
			ev.T = ev.T.Add(24 * time.Hour)
		}
	}
	if j.Epoch != nil {
		ev.Epoch = *j.Epoch
	}
	if j.Seq != nil {
		ev.Seq, ev.HasSeq = *j.Seq, true
	}
	l.evs = append(l.evs, ev)
	if ev.Step == "hello_returned" && !ev.T.IsZero() {
		i := sort.Search(len(l.ret), func(i int) bool { return l.ret[i].After(ev.T) })
		l.ret = append(l.ret, time.Time{})
		copy(l.ret[i+1:], l.ret[i:])
		l.ret[i] = ev.T
	}
}

// returned returns the times of every hello_returned so far, sorted.
func (l *logTail) returned() []time.Time { return l.ret }

// electionSteps are the mgmt lines of election events, whose epoch is
// the highest the instance knows (pkg/election: Event.Epoch).
var electionSteps = map[string]bool{
	"became_master": true, "stepped_down": true, "master_changed": true, "peer_up": true,
	"peer_down": true, "switchover_started": true, "handover_sent": true, "switchover_aborted": true,
}

// Violation is a broken invariant with the log lines that show it.
type Violation struct {
	Invariant string
	What      string
	Lines     []string
}

func (v Violation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", v.Invariant, v.What)
	for _, l := range v.Lines {
		fmt.Fprintf(&b, "\n      %s", l)
	}
	return b.String()
}

// The invariants checked on the logs, by name.
const (
	InvForwardEpoch  = "ctrl/data never forward a hello of a lower epoch after a higher one"
	InvOneClaimant   = "each epoch is claimed by one mgmt instance, and its hellos are sent and come back there only"
	InvEpochsGrow    = "each mgmt instance's epoch never decreases (across restarts)"
	InvSeqOnce       = "no hello number comes back (is counted) twice"
	InvCycleBack     = "after each fault heals the Hello cycle runs again within the bound"
	InvRelay         = "the relay answers every command once, echoing it (except what a fault on data excuses)"
	InvDaemonsHealth = "no daemon dies unless killed, no panic in any log"
)

// LogStats are the counts the log checks saw: a check that saw nothing
// checked nothing, and the summary says so.
type LogStats struct {
	Forwarded map[string]int // hello_forwarded lines, by host
	Returned  int            // hello_returned lines, both mgmt
	Claims    []string       // "epoch N by host", in epoch order
	EpochMax  map[string]uint64
}

// checkLogs checks the log invariants over the whole run.
func checkLogs(evs []Event) (LogStats, []Violation) {
	st := LogStats{Forwarded: map[string]int{}, EpochMax: map[string]uint64{}}
	var vs []Violation
	// Files are read one after another: order each host's lines by time,
	// keeping the file order among equal times.
	byHost := map[string][]Event{}
	for _, e := range evs {
		byHost[e.Host] = append(byHost[e.Host], e)
	}
	// (1) forwarded epochs never go back, per component, whole run.
	for _, h := range []string{"ctrl", "data"} {
		var last Event
		var max uint64
		for _, e := range byHost[h] {
			if e.Step != "hello_forwarded" {
				continue
			}
			st.Forwarded[h]++
			if e.Epoch < max {
				vs = append(vs, Violation{InvForwardEpoch, fmt.Sprintf("%s forwarded a hello of epoch %d after one of epoch %d", h, e.Epoch, max),
					[]string{h + " " + last.Raw, h + " " + e.Raw}})
			}
			if e.Epoch >= max {
				max, last = e.Epoch, e
			}
		}
	}
	// (2) one claimant per epoch; hellos of an epoch at its claimant only.
	claimed := map[uint64]Event{}
	for _, h := range []string{"mgmt-a", "mgmt-b"} {
		for _, e := range byHost[h] {
			if e.Step != "became_master" {
				continue
			}
			if o, ok := claimed[e.Epoch]; ok && o.Host != h {
				vs = append(vs, Violation{InvOneClaimant, fmt.Sprintf("epoch %d claimed by %s and by %s", e.Epoch, o.Host, h),
					[]string{o.Host + " " + o.Raw, h + " " + e.Raw}})
				continue
			}
			if _, ok := claimed[e.Epoch]; !ok {
				claimed[e.Epoch] = e
			}
		}
	}
	epochs := make([]uint64, 0, len(claimed))
	for e := range claimed {
		epochs = append(epochs, e)
	}
	sort.Slice(epochs, func(i, j int) bool { return epochs[i] < epochs[j] })
	for _, e := range epochs {
		st.Claims = append(st.Claims, fmt.Sprintf("%d:%s", e, claimed[e].Host))
	}
	reported := map[string]bool{}
	seen := map[uint64]Event{}
	for _, h := range []string{"mgmt-a", "mgmt-b"} {
		for _, e := range byHost[h] {
			if e.Step != "hello_sent" && e.Step != "hello_returned" {
				continue
			}
			if c, ok := claimed[e.Epoch]; ok && c.Host != h {
				k := fmt.Sprint(h, e.Epoch)
				if !reported[k] {
					reported[k] = true
					vs = append(vs, Violation{InvOneClaimant, fmt.Sprintf("%s at %s, an epoch %s claimed", e.Step, h, c.Host),
						[]string{c.Host + " " + c.Raw, h + " " + e.Raw}})
				}
			}
			if e.Step != "hello_returned" || !e.HasSeq {
				continue
			}
			st.Returned++
			// (4) a hello number counted once.
			if o, ok := seen[e.Seq]; ok {
				vs = append(vs, Violation{InvSeqOnce, fmt.Sprintf("hello %d came back twice (%s epoch %d, %s epoch %d)", e.Seq, o.Host, o.Epoch, h, e.Epoch),
					[]string{o.Host + " " + o.Raw, h + " " + e.Raw}})
				continue
			}
			seen[e.Seq] = e
		}
	}
	// (3) each instance's known epoch never decreases.
	for _, h := range []string{"mgmt-a", "mgmt-b"} {
		var max uint64
		var last Event
		for _, e := range byHost[h] {
			if !electionSteps[e.Step] {
				continue
			}
			if e.Epoch < max {
				vs = append(vs, Violation{InvEpochsGrow, fmt.Sprintf("%s's epoch went from %d to %d", h, max, e.Epoch),
					[]string{h + " " + last.Raw, h + " " + e.Raw}})
			}
			if e.Epoch >= max {
				max, last = e.Epoch, e
			}
		}
		st.EpochMax[h] = max
	}
	return st, vs
}

// firstAfter returns the first time in ts (sorted) at or after t.
func firstAfter(ts []time.Time, t time.Time) (time.Time, bool) {
	i := sort.Search(len(ts), func(i int) bool { return !ts[i].Before(t) })
	if i == len(ts) {
		return time.Time{}, false
	}
	return ts[i], true
}

// longestGap returns the longest interval without a returned hello
// between the last one before from and the first one at or after to.
func longestGap(ts []time.Time, from, to time.Time) (gap time.Duration, start, end time.Time) {
	i := sort.Search(len(ts), func(i int) bool { return !ts[i].Before(from) })
	if i > 0 {
		i--
	}
	for ; i+1 < len(ts); i++ {
		if ts[i].After(to) {
			break
		}
		if d := ts[i+1].Sub(ts[i]); d > gap {
			gap, start, end = d, ts[i], ts[i+1]
		}
	}
	return gap, start, end
}
