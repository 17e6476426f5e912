package handshake

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/hellopics/hellopics/pkg/hello"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// Limits on what components may put on the wire. A message that breaks
// one is refused (an Identify with a Reject and a Close, anything else is
// dropped) and reported as an Event whose Refused names the rule.
const (
	// MaxPairIDLen is the longest pair id, in bytes. A pair id is 1 to
	// MaxPairIDLen of the characters A-Z a-z 0-9 - _ . :
	MaxPairIDLen = 64
	// MaxInstanceLen is the longest instance id, in bytes, of printable
	// ASCII without spaces.
	MaxInstanceLen = 128
	// MaxAddrLen is the longest address (ctrl's data_addr, a Peer or
	// Redirect address): host:port with a numeric port 1-65535.
	MaxAddrLen = 256
	// MaxVersionLen is the longest software version string, printable
	// ASCII.
	MaxVersionLen = 64
	// MaxReasonLen is the longest Reject reason sent or logged; longer
	// ones are cut, unprintable bytes replaced.
	MaxReasonLen = 256
	// MaxRelayCounters is the most named counters a Report's relay stats
	// may carry, and MaxCounterNameLen the longest name (the same
	// characters as a pair id).
	MaxRelayCounters  = 16
	MaxCounterNameLen = 32
	// EpochLimit and SeqLimit bound the epochs and hello numbers accepted
	// from the wire: values at or above 2^63 are refused, which leaves
	// room that can never wrap.
	EpochLimit = uint64(1) << 63
	SeqLimit   = hello.SeqLimit
	// MaxSeqJump bounds how far above a master's next hello number an
	// Identify's last_seq may take it. An honest component reports the
	// highest number a master sent it, so it is ahead only of a master
	// that lost the synced state, and by at most what the appliance ever
	// sent: 2^48 is 89 years of 100,000 hellos a second. A larger jump is
	// refused (RefusedSeqRange), so that one forged Identify cannot use up
	// the numbers. mgmt never sends SeqLimit-1 or above (a component's
	// report saturates there), so numbers are never sent twice however
	// the counter was moved; at the end the cycle stops.
	MaxSeqJump = uint64(1) << 48

	// DefaultMaxPairs is MgmtConfig.MaxPairs when none is set. With every
	// string at its limit, a registry of this many pairs still fits in one
	// state-sync frame under pconn's default 1 MiB frame limit.
	DefaultMaxPairs = 512
	// DefaultPairExpiry is MgmtConfig.PairExpiry when none is set.
	DefaultPairExpiry = 10 * time.Minute
)

// Refusal reasons: the value of Event.Refused, one per rule, for shells to
// count (a metric label) and for tests to match. ONLY APPEND.
const (
	RefusedRole            = "role"             // a role that may not connect there
	RefusedPairID          = "pair_id"          // pair id empty, too long or with bad characters
	RefusedInstance        = "instance"         // instance too long or unprintable
	RefusedDataAddr        = "data_addr"        // ctrl's data address missing or invalid
	RefusedVersion         = "version"          // version too long or unprintable
	RefusedEpochRange      = "epoch_range"      // an epoch at or above 2^63
	RefusedEpochAhead      = "epoch_ahead"      // a component has seen a higher epoch than the receiver
	RefusedSeqRange        = "seq_range"        // a hello number at or above 2^63, or MaxSeqJump above the master's
	RefusedInUse           = "in_use"           // the role of the pair is held by a live session
	RefusedTooManyPairs    = "too_many_pairs"   // a new pair beyond MaxPairs
	RefusedWrongPair       = "wrong_pair"       // data of another pair at ctrl
	RefusedIdentityChanged = "identity_changed" // a second, different Identify on a session
	RefusedNotIdentified   = "not_identified"   // a message before Identify
	RefusedMalformed       = "malformed"        // an unknown frame type or undecodable message
	RefusedIdentifyTimeout = "identify_timeout" // no Identify in time
	RefusedReport          = "report"           // a Report breaking a limit or from the wrong side
	RefusedAddr            = "addr"             // an invalid address in Peer or Redirect
)

// RefusalReasons lists every value Event.Refused takes, for shells to
// initialise their counters.
func RefusalReasons() []string {
	return []string{RefusedRole, RefusedPairID, RefusedInstance, RefusedDataAddr, RefusedVersion, RefusedEpochRange,
		RefusedEpochAhead, RefusedSeqRange, RefusedInUse, RefusedTooManyPairs, RefusedWrongPair, RefusedIdentityChanged,
		RefusedNotIdentified, RefusedMalformed, RefusedIdentifyTimeout, RefusedReport, RefusedAddr}
}

// validToken reports whether s is 1 to max bytes of A-Z a-z 0-9 - _ . :
func validToken(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

// ValidPairID reports whether id is an acceptable pair id.
func ValidPairID(id string) bool { return validToken(id, MaxPairIDLen) }

// printable reports whether s is at most max bytes of printable ASCII
// (spaces allowed only if spaces is set).
func printable(s string, max int, spaces bool) bool {
	if len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == ' ' && !spaces {
			return false
		}
	}
	return true
}

// ValidAddr reports whether a is a host:port of at most MaxAddrLen bytes
// of printable ASCII, with a non-empty host and a port 1-65535.
func ValidAddr(a string) bool {
	if a == "" || !printable(a, MaxAddrLen, false) {
		return false
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil || host == "" {
		return false
	}
	n, err := strconv.ParseUint(port, 10, 16)
	return err == nil && n > 0
}

// sameHost reports whether two remote addresses share a host: the IPs of
// two host:port addresses, or the strings themselves when they have no
// port. An empty address never matches.
func sameHost(a, b string) bool {
	ha, hb := hostOf(a), hostOf(b)
	if ha == "" || hb == "" {
		return false
	}
	if ipa, ipb := net.ParseIP(ha), net.ParseIP(hb); ipa != nil && ipb != nil {
		return ipa.Equal(ipb)
	}
	return ha == hb
}

func hostOf(a string) string {
	if h, _, err := net.SplitHostPort(a); err == nil {
		return h
	}
	return a
}

// Sanitize returns s cut to MaxReasonLen bytes with every byte that is not
// printable ASCII replaced by '?': safe to log and to send.
func Sanitize(s string) string {
	if len(s) > MaxReasonLen {
		s = s[:MaxReasonLen-3] + "..."
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, s)
}

// checkIdentifyFields checks the fields of an Identify that do not depend
// on the receiver's state. It returns the refusal reason and a message
// that reveals nothing but what the sender sent, or "".
func checkIdentifyFields(in *hellopicsv1.Identify) (refused, why string) {
	switch {
	case !ValidPairID(in.GetPairId()):
		return RefusedPairID, fmt.Sprintf("pair id must be 1-%d of A-Z a-z 0-9 - _ . :", MaxPairIDLen)
	case !printable(in.GetInstance(), MaxInstanceLen, false):
		return RefusedInstance, fmt.Sprintf("instance must be at most %d printable bytes", MaxInstanceLen)
	case !printable(in.GetVersion(), MaxVersionLen, true):
		return RefusedVersion, fmt.Sprintf("version must be at most %d printable bytes", MaxVersionLen)
	case in.GetRole() == hellopicsv1.Role_ROLE_CTRL && !ValidAddr(in.GetDataAddr()):
		return RefusedDataAddr, fmt.Sprintf("ctrl needs a data address host:port of at most %d bytes", MaxAddrLen)
	case in.GetRole() != hellopicsv1.Role_ROLE_CTRL && in.GetDataAddr() != "":
		return RefusedDataAddr, "only ctrl has a data address"
	case in.GetEpoch() >= EpochLimit:
		return RefusedEpochRange, "epoch out of range"
	case in.GetLastSeq() >= SeqLimit:
		return RefusedSeqRange, "last_seq out of range"
	}
	return "", ""
}

// checkRelay reports whether a Report's relay stats keep to the limits.
func checkRelay(r *hellopicsv1.RelayStats) bool {
	if len(r.GetCounters()) > MaxRelayCounters {
		return false
	}
	for name := range r.GetCounters() {
		if !validToken(name, MaxCounterNameLen) {
			return false
		}
	}
	return true
}
