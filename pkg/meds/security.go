package meds

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gosnmp/gosnmp"
)

// Security is one side's SNMP version and credentials: SNMPv2c with a
// community, or SNMPv3 with USM.
type Security struct {
	// Version is gosnmp.Version2c (the default when zero is not wanted,
	// set it explicitly) or gosnmp.Version3.
	Version gosnmp.SnmpVersion
	// Community is the SNMPv2c community, sent and required on receipt.
	Community string

	// User is the SNMPv3 USM user name.
	User string
	// Level is the SNMPv3 security level: gosnmp.NoAuthNoPriv,
	// gosnmp.AuthNoPriv or gosnmp.AuthPriv.
	Level gosnmp.SnmpV3MsgFlags
	// AuthProtocol is the USM authentication protocol (gosnmp.SHA256 for
	// the spec's authPriv profile).
	AuthProtocol gosnmp.SnmpV3AuthProtocol
	// AuthPassphrase is the authentication passphrase (8 octets or more).
	AuthPassphrase string
	// PrivProtocol is the USM privacy protocol (gosnmp.AES for AES-128).
	PrivProtocol gosnmp.SnmpV3PrivProtocol
	// PrivPassphrase is the privacy passphrase (8 octets or more).
	PrivPassphrase string
	// EngineID is this side's authoritative snmpEngineID, used when it
	// receives (requests at an agent, informs at the relay): 5 to 32
	// octets, see NewEngineID. A sender discovers its peer's.
	EngineID string
	// ContextName is the SNMPv3 context name, usually empty.
	ContextName string
}

// IANA enterprise number of the documentation range used by MEDS.
const enterprise = 32473

// NewEngineID returns an RFC 3411 snmpEngineID in the text format under
// the MEDS enterprise number, made of name (cut to 27 octets).
func NewEngineID(name string) string {
	if len(name) > 27 {
		name = name[:27]
	}
	if name == "" {
		name = "meds"
	}
	b := []byte{0x80, 0x00, byte(enterprise >> 8), byte(enterprise & 0xff), 4}
	return string(append(b, name...))
}

// Validate checks that s is complete for its version.
func (s Security) Validate() error {
	switch s.Version {
	case gosnmp.Version2c:
		if s.Community == "" {
			return errors.New("meds: SNMPv2c needs a community")
		}
	case gosnmp.Version3:
		if s.User == "" {
			return errors.New("meds: SNMPv3 needs a user name")
		}
		if s.Level&gosnmp.AuthNoPriv != 0 && len(s.AuthPassphrase) < 8 {
			return errors.New("meds: SNMPv3 authentication needs a passphrase of 8 octets or more")
		}
		if s.Level&gosnmp.AuthPriv == gosnmp.AuthPriv && len(s.PrivPassphrase) < 8 {
			return errors.New("meds: SNMPv3 privacy needs a passphrase of 8 octets or more")
		}
		if s.Level&gosnmp.AuthPriv == 2 {
			return errors.New("meds: SNMPv3 privacy without authentication is not a USM level")
		}
		if s.EngineID != "" && (len(s.EngineID) < 5 || len(s.EngineID) > 32) {
			return fmt.Errorf("meds: SNMPv3 engine id of %d octets, want 5 to 32", len(s.EngineID))
		}
	default:
		return fmt.Errorf("meds: SNMP version %s not supported, want 2c or 3", s.Version)
	}
	return nil
}

func (s Security) usm(engineID string) *gosnmp.UsmSecurityParameters {
	p := &gosnmp.UsmSecurityParameters{UserName: s.User, AuthoritativeEngineID: engineID}
	if s.Level&gosnmp.AuthNoPriv != 0 {
		p.AuthenticationProtocol = s.AuthProtocol
		p.AuthenticationPassphrase = s.AuthPassphrase
	} else {
		p.AuthenticationProtocol = gosnmp.NoAuth
	}
	if s.Level&gosnmp.AuthPriv == gosnmp.AuthPriv {
		p.PrivacyProtocol = s.PrivProtocol
		p.PrivacyPassphrase = s.PrivPassphrase
	} else {
		p.PrivacyProtocol = gosnmp.NoPriv
	}
	return p
}

// Client returns a gosnmp client for target ("host:port") with s, timeout
// and retries; the caller connects and closes it. An SNMPv3 client
// discovers the target's engine itself (RFC 3414 section 4).
func (s Security) Client(target string, timeout time.Duration, retries int) (*gosnmp.GoSNMP, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	host, port, err := splitHostPort(target)
	if err != nil {
		return nil, err
	}
	g := &gosnmp.GoSNMP{
		Target:    host,
		Port:      port,
		Transport: "udp",
		Version:   s.Version,
		Community: s.Community,
		Timeout:   timeout,
		Retries:   retries,
		MaxOids:   gosnmp.MaxOids,
	}
	if s.Version == gosnmp.Version3 {
		g.SecurityModel = gosnmp.UserSecurityModel
		g.MsgFlags = s.Level
		g.ContextName = s.ContextName
		g.SecurityParameters = s.usm("")
	}
	return g, nil
}

func splitHostPort(target string) (string, uint16, error) {
	i := strings.LastIndexByte(target, ':')
	if i < 0 {
		return "", 0, fmt.Errorf("meds: address %q has no port", target)
	}
	host := strings.Trim(target[:i], "[]")
	var port uint64
	for _, c := range target[i+1:] {
		if c < '0' || c > '9' {
			return "", 0, fmt.Errorf("meds: address %q: port is not a number", target)
		}
		port = port*10 + uint64(c-'0')
		if port > 65535 {
			return "", 0, fmt.Errorf("meds: address %q: port out of range", target)
		}
	}
	if i+1 == len(target) {
		return "", 0, fmt.Errorf("meds: address %q has an empty port", target)
	}
	return host, uint16(port), nil
}

// Why a received SNMP packet was refused; every one matches ErrSNMP.
var (
	// ErrSNMP matches every refusal by Decoder.Decode.
	ErrSNMP = errors.New("meds: SNMP packet refused")
	// ErrDecode: the octets are not an SNMP message gosnmp can decode.
	ErrDecode = fmt.Errorf("%w: does not decode", ErrSNMP)
	// ErrSNMPVersion: the message's version is not the configured one.
	ErrSNMPVersion = fmt.Errorf("%w: wrong SNMP version", ErrSNMP)
	// ErrCommunity: an SNMPv2c message with another community.
	ErrCommunity = fmt.Errorf("%w: wrong community", ErrSNMP)
	// ErrUSM: an SNMPv3 message that fails the USM checks (unknown user,
	// wrong level, authentication or decryption failure, time window).
	ErrUSM = fmt.Errorf("%w: USM check failed", ErrSNMP)
	// ErrNotInTimeWindow: an authenticated SNMPv3 message whose engine
	// boots or time is not this engine's (RFC 3414 section 3.2 step 7):
	// a replay, or a sender out of step. Decode returns the packet with
	// it; answer with TimeWindowReport so that the sender catches up.
	ErrNotInTimeWindow = fmt.Errorf("%w: not in time window", ErrUSM)
	// ErrReplay: an authenticated SNMPv3 message this Decoder took
	// already (a replay within the time window), or one older than its
	// full replay cache still covers. It gets no answer.
	ErrReplay = fmt.Errorf("%w: replayed message", ErrUSM)
)

// TimeWindow is how far, in seconds, the engine time of an
// authenticated message may be from the receiver's (RFC 3414).
const TimeWindow = 150

// BootsAt is an snmpEngineBoots for an engine that starts at t without
// a stored count: the seconds since 2020-01-01 UTC, so that each start
// gets a higher value than the one before (while the clock is right)
// and messages of an earlier run fail the time window. At least 1.
func BootsAt(t time.Time) uint32 {
	return uint32(max(1, min(t.Unix()-1577836800, 0x7ffffffe)))
}

// Decoder decodes the SNMP messages one side receives, checks them
// against its Security and builds the answers (Response, and the Report
// of SNMPv3 engine discovery). It opens no socket. A Decoder is not safe
// for concurrent use; give each receiving goroutine its own.
type Decoder struct {
	sec      Security
	engineID string
	x        *gosnmp.GoSNMP
	boots    uint32    // snmpEngineBoots
	start    time.Time // where snmpEngineTime counts from
	now      func() time.Time
	replay   *replayCache // authenticated messages taken (SNMPv3)
}

// NewDecoder returns a Decoder for sec. For SNMPv3 it acts as the
// authoritative engine sec.EngineID (NewEngineID("meds") when empty).
func NewDecoder(sec Security) (*Decoder, error) {
	if err := sec.Validate(); err != nil {
		return nil, err
	}
	now := time.Now()
	d := &Decoder{sec: sec, x: &gosnmp.GoSNMP{Version: sec.Version, Community: sec.Community, Logger: gosnmp.NewLogger(nil)},
		boots: BootsAt(now), start: now, now: time.Now, replay: newReplayCache(DefaultReplayCache)}
	if sec.Version == gosnmp.Version3 {
		d.engineID = sec.EngineID
		if d.engineID == "" {
			d.engineID = NewEngineID("meds")
		}
		d.x.SecurityModel = gosnmp.UserSecurityModel
		d.x.MsgFlags = sec.Level
		d.x.SecurityParameters = sec.usm(d.engineID)
		if err := d.x.SecurityParameters.InitSecurityKeys(); err != nil {
			return nil, fmt.Errorf("meds: localise USM keys for engine %x: %w", d.engineID, err)
		}
	}
	return d, nil
}

// EngineID returns the local authoritative engine id (SNMPv3), or "".
func (d *Decoder) EngineID() string { return d.engineID }

// SetEngineClock sets snmpEngineBoots and the moment snmpEngineTime
// counts from (NewDecoder: BootsAt(now) and now). It empties the replay
// cache: messages of other boots fail the time window.
func (d *Decoder) SetEngineClock(boots uint32, start time.Time) {
	d.boots, d.start = boots, start
	d.replay = newReplayCache(d.replay.max)
}

// SetClock replaces time.Now as the Decoder's clock (tests).
func (d *Decoder) SetClock(now func() time.Time) { d.now = now }

// SetReplayCache sets how many authenticated messages are remembered to
// refuse their replays (DefaultReplayCache when n <= 0), emptying the
// cache.
func (d *Decoder) SetReplayCache(n int) { d.replay = newReplayCache(n) }

// ReplayCacheLen is how many authenticated messages are remembered now.
func (d *Decoder) ReplayCacheLen() int { return d.replay.len() }

// EngineClock returns snmpEngineBoots and snmpEngineTime at now.
func (d *Decoder) EngineClock(now time.Time) (boots, secs uint32) {
	return d.boots, uint32(max(0, now.Sub(d.start)/time.Second))
}

// Decode decodes and checks one received message. A nil error with
// discovery true means an SNMPv3 engine discovery probe (or a message for
// another engine id): answer it with Report and deliver nothing. Refusals
// wrap ErrDecode, ErrSNMPVersion, ErrCommunity or ErrUSM.
func (d *Decoder) Decode(b []byte) (p *gosnmp.SnmpPacket, discovery bool, err error) {
	ver, ok := peekVersion(b)
	if !ok {
		return nil, false, fmt.Errorf("%w: no SNMP message header in %d octets", ErrDecode, len(b))
	}
	if ver != d.sec.Version {
		return nil, false, fmt.Errorf("%w: got %s, want %s", ErrSNMPVersion, ver, d.sec.Version)
	}
	defer func() {
		// gosnmp is defensive but its decoders are large; a panic on a
		// hostile packet must cost that packet only.
		if r := recover(); r != nil {
			p, discovery, err = nil, false, fmt.Errorf("%w: decoder panic: %v", ErrDecode, r)
		}
	}()
	p, err = d.x.UnmarshalTrap(b, false)
	if err != nil {
		if ver == gosnmp.Version3 {
			return nil, false, fmt.Errorf("%w: %v", ErrUSM, err)
		}
		return nil, false, fmt.Errorf("%w: %v", ErrDecode, err)
	}
	if ver != gosnmp.Version3 {
		if p.Community != d.sec.Community {
			return nil, false, fmt.Errorf("%w: %q", ErrCommunity, p.Community)
		}
		return p, false, nil
	}
	usm, ok := p.SecurityParameters.(*gosnmp.UsmSecurityParameters)
	if !ok || p.SecurityModel != gosnmp.UserSecurityModel {
		return nil, false, fmt.Errorf("%w: security model %d is not USM", ErrUSM, p.SecurityModel)
	}
	if usm.AuthoritativeEngineID != d.engineID {
		if p.MsgFlags&gosnmp.Reportable != 0 {
			return p, true, nil
		}
		return nil, false, fmt.Errorf("%w: message for engine %x, we are %x", ErrUSM, usm.AuthoritativeEngineID, d.engineID)
	}
	if usm.UserName != d.sec.User {
		return nil, false, fmt.Errorf("%w: unknown user %q", ErrUSM, usm.UserName)
	}
	if p.MsgFlags&gosnmp.AuthPriv != d.sec.Level&gosnmp.AuthPriv {
		return nil, false, fmt.Errorf("%w: security level %s, want %s", ErrUSM, p.MsgFlags&gosnmp.AuthPriv, d.sec.Level&gosnmp.AuthPriv)
	}
	if p.MsgFlags&gosnmp.AuthNoPriv != 0 { // authenticated: the time window applies
		boots, secs := d.EngineClock(d.now())
		mb, mt := usm.AuthoritativeEngineBoots, usm.AuthoritativeEngineTime
		if boots == 0x7fffffff || mb != boots || max(mt, secs)-min(mt, secs) > TimeWindow {
			return p, false, fmt.Errorf("%w: the message says boots %d time %d, this engine is at boots %d time %d", ErrNotInTimeWindow, mb, mt, boots, secs)
		}
		// Authenticated and in the window: refuse it if it was taken
		// before (RFC 3414 leaves replays inside the window to us).
		switch d.replay.check(usm.AuthenticationParameters, int64(mt), int64(secs)) {
		case replaySeen:
			return nil, false, fmt.Errorf("%w: msgID %d boots %d time %d taken before", ErrReplay, p.MsgID, mb, mt)
		case replayTooOld:
			return nil, false, fmt.Errorf("%w: msgID %d time %d is not newer than the oldest the full replay cache forgot (%d)", ErrReplay, p.MsgID, mt, d.replay.floor)
		}
	}
	return p, false, nil
}

// OIDNotInTimeWindows is usmStatsNotInTimeWindows.0.
const OIDNotInTimeWindows = "1.3.6.1.6.3.15.1.1.2.0"

// TimeWindowReport returns the Report answering req, which Decode
// refused with ErrNotInTimeWindow: usmStatsNotInTimeWindows (count),
// with this engine's boots and time, authenticated (authNoPriv) as RFC
// 3414 asks, so the sender may trust them and send again.
func (d *Decoder) TimeWindowReport(req *gosnmp.SnmpPacket, count uint32) ([]byte, error) {
	own, ok := d.x.SecurityParameters.(*gosnmp.UsmSecurityParameters)
	if !ok {
		return nil, errors.New("meds: time window report: not an SNMPv3 decoder")
	}
	sp, ok := own.Copy().(*gosnmp.UsmSecurityParameters)
	if !ok {
		return nil, errors.New("meds: time window report: USM parameters do not copy")
	}
	sp.AuthoritativeEngineBoots, sp.AuthoritativeEngineTime = d.EngineClock(d.now())
	rep := &gosnmp.SnmpPacket{
		Version: gosnmp.Version3, MsgFlags: gosnmp.AuthNoPriv, SecurityModel: gosnmp.UserSecurityModel,
		SecurityParameters: sp, ContextEngineID: d.engineID, ContextName: req.ContextName,
		PDUType: gosnmp.Report, MsgID: req.MsgID, RequestID: req.RequestID, MsgMaxSize: 65507,
		Variables: []gosnmp.SnmpPDU{{Name: OIDNotInTimeWindows, Type: gosnmp.Counter32, Value: uint(count)}},
		Logger:    gosnmp.NewLogger(nil),
	}
	b, err := rep.MarshalMsg()
	if err != nil {
		return nil, fmt.Errorf("meds: encode time window report: %w", err)
	}
	return b, nil
}

// Report returns the Report answering an SNMPv3 discovery probe req:
// usmStatsUnknownEngineIDs with this engine's id, boots and time.
func (d *Decoder) Report(req *gosnmp.SnmpPacket, unknownEngineIDs uint32) ([]byte, error) {
	boots, engineTime := d.EngineClock(d.now())
	sp := &gosnmp.UsmSecurityParameters{
		AuthoritativeEngineID:    d.engineID,
		AuthoritativeEngineBoots: boots,
		AuthoritativeEngineTime:  engineTime,
		AuthenticationProtocol:   gosnmp.NoAuth,
		PrivacyProtocol:          gosnmp.NoPriv,
		Logger:                   gosnmp.NewLogger(nil),
	}
	if u, ok := req.SecurityParameters.(*gosnmp.UsmSecurityParameters); ok {
		sp.UserName = u.UserName
	}
	rep := &gosnmp.SnmpPacket{
		Version:            gosnmp.Version3,
		MsgFlags:           gosnmp.NoAuthNoPriv,
		SecurityModel:      gosnmp.UserSecurityModel,
		SecurityParameters: sp,
		ContextEngineID:    d.engineID,
		ContextName:        req.ContextName,
		PDUType:            gosnmp.Report,
		MsgID:              req.MsgID,
		RequestID:          req.RequestID,
		MsgMaxSize:         65507,
		Variables:          []gosnmp.SnmpPDU{{Name: OIDUnknownEngine, Type: gosnmp.Counter32, Value: uint(unknownEngineIDs)}},
		Logger:             gosnmp.NewLogger(nil),
	}
	b, err := rep.MarshalMsg()
	if err != nil {
		return nil, fmt.Errorf("meds: encode discovery report: %w", err)
	}
	return b, nil
}

// Response returns the Response answering req (a request or an
// InformRequest) with the given error-status, error-index and bindings,
// under req's version and credentials.
func (d *Decoder) Response(req *gosnmp.SnmpPacket, status gosnmp.SNMPError, index uint8, vars []gosnmp.SnmpPDU) ([]byte, error) {
	resp := &gosnmp.SnmpPacket{
		Version:            req.Version,
		Community:          req.Community,
		MsgFlags:           req.MsgFlags &^ gosnmp.Reportable,
		SecurityModel:      req.SecurityModel,
		SecurityParameters: req.SecurityParameters,
		ContextEngineID:    req.ContextEngineID,
		ContextName:        req.ContextName,
		PDUType:            gosnmp.GetResponse,
		MsgID:              req.MsgID,
		RequestID:          req.RequestID,
		MsgMaxSize:         req.MsgMaxSize,
		Error:              status,
		ErrorIndex:         index,
		Variables:          vars,
		Logger:             gosnmp.NewLogger(nil),
	}
	if usm, ok := req.SecurityParameters.(*gosnmp.UsmSecurityParameters); ok {
		// This engine is the authoritative one: the answer carries its
		// boots and time, which keeps the sender in the time window.
		sp, ok := usm.Copy().(*gosnmp.UsmSecurityParameters)
		if !ok {
			return nil, fmt.Errorf("meds: response to request %d: USM parameters do not copy", req.RequestID)
		}
		if usm.AuthoritativeEngineID == d.engineID {
			sp.AuthoritativeEngineBoots, sp.AuthoritativeEngineTime = d.EngineClock(d.now())
		}
		resp.SecurityParameters = sp
		if resp.MsgFlags&gosnmp.AuthPriv == gosnmp.AuthPriv {
			// A fresh salt for the encrypted answer.
			if err := sp.InitPacket(resp); err != nil {
				return nil, fmt.Errorf("meds: salt for response to request %d: %w", req.RequestID, err)
			}
		}
	}
	b, err := resp.MarshalMsg()
	if err != nil {
		return nil, fmt.Errorf("meds: encode response to request %d: %w", req.RequestID, err)
	}
	return b, nil
}

// peekVersion reads the msgVersion of a BER-encoded SNMP message.
func peekVersion(b []byte) (gosnmp.SnmpVersion, bool) {
	if len(b) < 2 || b[0] != 0x30 {
		return 0, false
	}
	i := 2
	if b[1]&0x80 != 0 {
		n := int(b[1] & 0x7f)
		if n == 0 || n > 4 {
			return 0, false
		}
		i += n
	}
	if len(b) < i+3 || b[i] != 0x02 || b[i+1] != 1 {
		return 0, false
	}
	switch v := b[i+2]; v {
	case 0:
		return gosnmp.Version1, true
	case 1:
		return gosnmp.Version2c, true
	case 3:
		return gosnmp.Version3, true
	}
	return 0, false
}
