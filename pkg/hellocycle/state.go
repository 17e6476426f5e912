package hellocycle

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	hellocyclev1 "github.com/hellopics/hellopics/proto/hellopics/hellocycle/v1"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// maxPairID bounds a pair id in the replicated counters, in bytes (the
// registry's own bound).
const maxPairID = 256

// errBadCounters refuses a replicated update or snapshot that does not
// decode or breaks a bound.
var errBadCounters = errors.New("hellocycle: counters")

// counterState is the cycle's replicated state (appliance.State): each
// pair's counters as the master last replicated them. An update
// replaces the counters of the pairs it lists.
type counterState struct {
	maxPairs int
	pairs    map[string]*hellopicsv1.HelloCounters
}

func newCounterState(maxPairs int) *counterState {
	return &counterState{maxPairs: maxPairs, pairs: map[string]*hellopicsv1.HelloCounters{}}
}

// decode checks an update or snapshot before anything of it is applied.
func (s *counterState) decode(b []byte) (*hellocyclev1.Counters, error) {
	var u hellocyclev1.Counters
	if err := proto.Unmarshal(b, &u); err != nil {
		return nil, fmt.Errorf("%w: %w", errBadCounters, err)
	}
	if len(u.GetPairs()) > s.maxPairs {
		return nil, fmt.Errorf("%w: %d pairs, at most %d", errBadCounters, len(u.GetPairs()), s.maxPairs)
	}
	for _, p := range u.GetPairs() {
		id := p.GetPairId()
		if id == "" || len(id) > maxPairID || !utf8.ValidString(id) {
			return nil, fmt.Errorf("%w: pair id %.80q: want 1 to %d bytes of UTF-8", errBadCounters, id, maxPairID)
		}
		if hc := p.GetCounters(); hc.GetReceived() > hc.GetSent() {
			return nil, fmt.Errorf("%w: pair %q received %d of %d sent", errBadCounters, id, hc.GetReceived(), hc.GetSent())
		}
	}
	return &u, nil
}

// Apply replaces the counters of the pairs the update lists; an update
// that would hold more than MaxPairs pairs is refused whole.
func (s *counterState) Apply(update []byte) error {
	u, err := s.decode(update)
	if err != nil {
		return err
	}
	added := 0
	for _, p := range u.GetPairs() {
		if s.pairs[p.GetPairId()] == nil {
			added++
		}
	}
	if len(s.pairs)+added > s.maxPairs {
		return fmt.Errorf("%w: %d pairs after the update, at most %d", errBadCounters, len(s.pairs)+added, s.maxPairs)
	}
	for _, p := range u.GetPairs() {
		hc := p.GetCounters()
		if hc == nil {
			hc = &hellopicsv1.HelloCounters{}
		}
		s.pairs[p.GetPairId()] = hc
	}
	return nil
}

// Snapshot is every pair's counters.
func (s *counterState) Snapshot() ([]byte, error) {
	u := &hellocyclev1.Counters{Pairs: make([]*hellocyclev1.PairCounters, 0, len(s.pairs))}
	for id, hc := range s.pairs {
		u.Pairs = append(u.Pairs, &hellocyclev1.PairCounters{PairId: id, Counters: hc})
	}
	return proto.MarshalOptions{Deterministic: true}.Marshal(u)
}

// Restore replaces every pair's counters with the snapshot's.
func (s *counterState) Restore(snapshot []byte) error {
	u, err := s.decode(snapshot)
	if err != nil {
		return err
	}
	s.pairs = make(map[string]*hellopicsv1.HelloCounters, len(u.GetPairs()))
	for _, p := range u.GetPairs() {
		hc := p.GetCounters()
		if hc == nil {
			hc = &hellopicsv1.HelloCounters{}
		}
		s.pairs[p.GetPairId()] = hc
	}
	return nil
}
