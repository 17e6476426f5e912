package appliance

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// A component whose composed applications have several States keeps
// them as one (the runtime's App.State) in parts: every update is
// tagged with its part's number, and a snapshot holds each part's
// snapshot in order, each prefixed by its length. Each application
// replicates through the Node its OnStart was given, which tags its
// updates with its part (Node.part).

// errStatePart marks an update or snapshot of a composed State that
// does not decode: from a master with other applications, or corrupt.
var errStatePart = errors.New("appliance: composed state")

// multiState is the State of a component whose applications have more
// than one: parts[i] is part i+1.
type multiState struct {
	parts []State
}

// tagPart prefixes update with its part's number.
func tagPart(part int, update []byte) []byte {
	b := make([]byte, 0, binary.MaxVarintLen64+len(update))
	b = binary.AppendUvarint(b, uint64(part))
	return append(b, update...)
}

// Apply routes a tagged update to its part.
func (m *multiState) Apply(update []byte) error {
	k, n := uvarint(update)
	if n <= 0 {
		return fmt.Errorf("%w: update of %d bytes has no part number", errStatePart, len(update))
	}
	if k == 0 || k > uint64(len(m.parts)) {
		return fmt.Errorf("%w: update for part %d; this component has parts 1 to %d", errStatePart, k, len(m.parts))
	}
	return m.parts[k-1].Apply(update[n:])
}

// Snapshot is every part's snapshot, each prefixed by its length.
func (m *multiState) Snapshot() ([]byte, error) {
	var out []byte
	for i, p := range m.parts {
		s, err := p.Snapshot()
		if err != nil {
			return nil, fmt.Errorf("appliance: snapshot of state part %d: %w", i+1, err)
		}
		out = binary.AppendUvarint(out, uint64(len(s)))
		out = append(out, s...)
	}
	return out, nil
}

// Restore splits a snapshot into its parts, checks that there are
// exactly as many as this component has, then restores each; an empty
// snapshot restores every part to its empty state.
func (m *multiState) Restore(snapshot []byte) error {
	if len(snapshot) == 0 {
		for i, p := range m.parts {
			if err := p.Restore(nil); err != nil {
				return fmt.Errorf("appliance: restore of state part %d: %w", i+1, err)
			}
		}
		return nil
	}
	pieces, err := splitParts(snapshot, len(m.parts))
	if err != nil {
		return err
	}
	for i, p := range m.parts {
		if err := p.Restore(pieces[i]); err != nil {
			return fmt.Errorf("appliance: restore of state part %d: %w", i+1, err)
		}
	}
	return nil
}

// splitParts cuts a composed snapshot into want pieces, refusing one
// with a length beyond its end, fewer or more pieces than want, or
// bytes left over.
func splitParts(b []byte, want int) ([][]byte, error) {
	pieces := make([][]byte, 0, want)
	for len(b) > 0 {
		if len(pieces) == want {
			return nil, fmt.Errorf("%w: snapshot has more than the %d parts of this component", errStatePart, want)
		}
		l, n := uvarint(b)
		if n <= 0 {
			return nil, fmt.Errorf("%w: snapshot part %d: bad length", errStatePart, len(pieces)+1)
		}
		b = b[n:]
		if l > uint64(len(b)) {
			return nil, fmt.Errorf("%w: snapshot part %d: length %d beyond the %d bytes left", errStatePart, len(pieces)+1, l, len(b))
		}
		pieces = append(pieces, b[:l:l])
		b = b[l:]
	}
	if len(pieces) != want {
		return nil, fmt.Errorf("%w: snapshot has %d parts; this component has %d", errStatePart, len(pieces), want)
	}
	return pieces, nil
}

// uvarint is binary.Uvarint refusing (n 0) a number not in its shortest
// form, so that every composed update and snapshot has one encoding.
func uvarint(b []byte) (uint64, int) {
	v, n := binary.Uvarint(b)
	if n <= 0 || n != uvarintLen(v) {
		return 0, 0
	}
	return v, n
}

// uvarintLen is the length of v's shortest encoding.
func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}
