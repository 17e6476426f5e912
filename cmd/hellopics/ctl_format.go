package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// This file turns operator API answers into text for a person and JSON
// for scripts. It does no I/O but to the writer it is given, and takes
// the current time as an argument, so that its output is testable.

// ctlJSON is the JSON of `ctl -o json`: every field, with its proto name.
var ctlJSON = protojson.MarshalOptions{EmitUnpopulated: true, UseProtoNames: true}

// ctlMarshalJSON returns m as JSON, indented when multiline.
func ctlMarshalJSON(m proto.Message, multiline bool) ([]byte, error) {
	o := ctlJSON
	if multiline {
		o.Multiline, o.Indent = true, "  "
	}
	b, err := o.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encoding %s as JSON: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	return b, nil
}

// ctlFormatStatus writes a management instance's status as aligned text:
// the instance, its management peers, its pairs and their relays. addr is
// where it was asked; now dates the ages shown.
func ctlFormatStatus(w io.Writer, addr string, st *hellopicsv1.GetStatusResponse, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := func(format string, a ...any) { fmt.Fprintf(tw, format, a...) }

	id := st.GetId()
	if id == "" {
		id = "(no id)"
	}
	if addr != "" {
		p("instance\t%s at %s\n", id, addr)
	} else {
		p("instance\t%s\n", id)
	}
	role := st.GetRole()
	p("role\t%s\n", ctlRole(role))
	p("epoch\t%d\n", st.GetEpoch())
	master := st.GetMasterId()
	switch {
	case master == "":
		master = "none"
	case master == st.GetId():
		master += " (this instance)"
	}
	p("master\t%s\n", master)
	if prio := ctlPriority(st); prio != "" {
		p("priority\t%s\n", prio)
	}
	switch role {
	case hellopicsv1.MgmtRole_MGMT_ROLE_MASTER:
		p("sync version\t%d sent\n", st.GetSyncVersion())
	case hellopicsv1.MgmtRole_MGMT_ROLE_BACKUP:
		p("sync version\t%d applied\n", st.GetSyncVersion())
	default:
		p("sync version\t%d\n", st.GetSyncVersion())
	}
	p("components at\t%s\n", ctlDash(st.GetComponentAddr()))
	p("version\t%s\n", ctlDash(st.GetVersion()))
	if st.GetStarted() != nil {
		started := st.GetStarted().AsTime()
		p("started\t%s (up %s)\n", started.UTC().Format(time.RFC3339), ctlAge(now.Sub(started)))
	} else {
		p("started\t-\n")
	}
	p("\n")

	if len(st.GetTracks()) > 0 {
		p("TRACKED CHECK\tWEIGHT\tSTATE\tSINCE\tLAST ERROR\n")
		for _, tr := range st.GetTracks() {
			weight := fmt.Sprint(tr.GetWeight())
			if tr.GetWeight() == 0 {
				weight = "0 (fault)"
			}
			state := "ok"
			if !tr.GetOk() {
				state = "FAILING"
			}
			p("%s\t%s\t%s\t%s\t%s\n", ctlDash(tr.GetName()), weight, state, ctlAgo(tr.GetSince(), now), ctlDash(tr.GetLastError()))
		}
		p("\n")
	}

	if len(st.GetMgmtPeers()) == 0 {
		p("no other management instance\n")
	} else {
		p("MGMT PEER\tADDRESS\tALIVE\tPRIORITY\tEPOCH\tSYNC LAG\tSYNC\n")
		var syncErrs []string
		for _, mp := range st.GetMgmtPeers() {
			lag, sync := "-", "-" // only a master knows
			if role == hellopicsv1.MgmtRole_MGMT_ROLE_MASTER {
				lag = fmt.Sprint(mp.GetSyncLag())
				switch {
				case mp.GetSyncError() != "":
					sync = "FAILING"
					syncErrs = append(syncErrs, fmt.Sprintf("%s: %s", mp.GetId(), mp.GetSyncError()))
				case mp.GetInSync():
					sync = "in sync"
				case mp.GetAlive():
					sync = "BEHIND"
				}
			}
			prio := fmt.Sprint(mp.GetPriority())
			if mp.GetFault() {
				prio += " FAULT"
			}
			p("%s\t%s\t%s\t%s\t%d\t%s\t%s\n", ctlDash(mp.GetId()), ctlDash(mp.GetAddr()), ctlYesNo(mp.GetAlive()), prio, mp.GetEpoch(), lag, sync)
		}
		for _, e := range syncErrs {
			p("sync to %s\n", e)
		}
	}
	p("\n")

	if len(st.GetPairs()) == 0 {
		p("no pairs registered\n")
		return tw.Flush()
	}
	if role == hellopicsv1.MgmtRole_MGMT_ROLE_BACKUP {
		p("pairs as last synced from the master:\n")
	}
	p("PAIR\tCTRL\tDATA\tCYCLE\tSENT\tRECEIVED\tMISSED\tOUT OF ORDER\tLAST SEQ\tLAST RTT\tLAST HELLO\n")
	for _, ps := range st.GetPairs() {
		c := ps.GetCounters()
		cycle := "stopped"
		if ps.GetCycleRunning() {
			cycle = "running"
		}
		p("%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n",
			ctlDash(ps.GetPairId()), ctlComponent(ps.GetCtrl()), ctlComponent(ps.GetData()), cycle,
			c.GetSent(), c.GetReceived(), c.GetMissed(), c.GetOutOfOrder(), c.GetLastSeq(),
			ctlRTT(c.GetLastRtt()), ctlAgo(c.GetLastHello(), now))
	}
	p("\n")
	p("RELAY\tAGENT\tCLIENTS\tCOMMANDS\tRESPONSES\tEVENTS\tSTATUS BLOCKS\tERRORS\tDROPS\n")
	for _, ps := range st.GetPairs() {
		r := ps.GetRelay()
		if r == nil {
			p("%s\tno report\t-\t-\t-\t-\t-\t-\t-\n", ctlDash(ps.GetPairId()))
			continue
		}
		agent := "unreachable"
		if r.GetAgentReachable() {
			agent = "reachable"
		}
		p("%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", ctlDash(ps.GetPairId()), agent, r.GetClients(),
			r.GetCommands(), r.GetResponses(), r.GetEvents(), r.GetStatusBlocks(), r.GetRelayErrors(), r.GetDrops())
	}
	return tw.Flush()
}

// ctlFormatPairs writes pairs as a table, one row per pair: its
// components' state and address, whether both are ready, its cycle, its
// hello counters, the last round trip and how long ago the last hello
// returned (dated from now), and epoch, the mastership epoch of the
// instance that answered.
func ctlFormatPairs(w io.Writer, epoch uint64, pairs []*hellopicsv1.PairStatus, now time.Time) error {
	if len(pairs) == 0 {
		_, err := fmt.Fprintln(w, "no pairs registered")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "PAIR\tCTRL\tDATA\tREADY\tCYCLE\tSENT\tRECEIVED\tMISSED\tOUT OF ORDER\tLAST RTT\tLAST HELLO\tEPOCH\n")
	for _, ps := range pairs {
		c := ps.GetCounters()
		cycle := "stopped"
		if ps.GetCycleRunning() {
			cycle = "running"
		}
		ready := ps.GetCtrl().GetState() == hellopicsv1.ComponentState_COMPONENT_STATE_READY &&
			ps.GetData().GetState() == hellopicsv1.ComponentState_COMPONENT_STATE_READY
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\t%d\n",
			ctlDash(ps.GetPairId()), ctlComponent(ps.GetCtrl()), ctlComponent(ps.GetData()), ctlYesNo(ready), cycle,
			c.GetSent(), c.GetReceived(), c.GetMissed(), c.GetOutOfOrder(),
			ctlRTT(c.GetLastRtt()), ctlAgo(c.GetLastHello(), now), epoch)
	}
	return tw.Flush()
}

// ctlFormatEvent returns an event as one line: time, kind, pair, message.
func ctlFormatEvent(ev *hellopicsv1.WatchEventsResponse) string {
	t := "-"
	if ev.GetTime() != nil {
		t = ev.GetTime().AsTime().UTC().Format("2006-01-02T15:04:05.000Z07:00")
	}
	msg := strings.ReplaceAll(ev.GetMessage(), "\n", " ")
	return fmt.Sprintf("%s  %-18s  %-8s  %s", t, ctlDash(ev.GetKind()), ctlDash(ev.GetPairId()), msg)
}

func ctlRole(r hellopicsv1.MgmtRole) string {
	switch r {
	case hellopicsv1.MgmtRole_MGMT_ROLE_MASTER:
		return "master"
	case hellopicsv1.MgmtRole_MGMT_ROLE_BACKUP:
		return "backup"
	case hellopicsv1.MgmtRole_MGMT_ROLE_CANDIDATE:
		return "candidate (electing)"
	}
	return "unknown"
}

// ctlComponent is a registry entry as "state address".
func ctlComponent(c *hellopicsv1.ComponentStatus) string {
	state := ctlComponentState(c)
	if c.GetAddr() == "" {
		return state
	}
	return state + " " + c.GetAddr()
}

// ctlComponentState is a registry entry's state in a word, "absent" for
// none.
func ctlComponentState(c *hellopicsv1.ComponentStatus) string {
	if c == nil {
		return "absent"
	}
	switch c.GetState() {
	case hellopicsv1.ComponentState_COMPONENT_STATE_DOWN:
		return "down"
	case hellopicsv1.ComponentState_COMPONENT_STATE_IDENTIFIED:
		return "identified"
	case hellopicsv1.ComponentState_COMPONENT_STATE_READY:
		return "ready"
	}
	return "unknown"
}

func ctlRTT(d *durationpb.Duration) string {
	if d == nil {
		return "-"
	}
	return d.AsDuration().Round(time.Microsecond).String()
}

func ctlAgo(t *timestamppb.Timestamp, now time.Time) string {
	if t == nil {
		return "-"
	}
	return ctlAge(now.Sub(t.AsTime())) + " ago"
}

// ctlAge is a duration rounded for a person: milliseconds under a second,
// seconds under a day.
func ctlAge(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < 24*time.Hour:
		return d.Round(time.Second).String()
	}
	days := d / (24 * time.Hour)
	return fmt.Sprintf("%dd%s", days, (d - days*24*time.Hour).Round(time.Second))
}

// ctlPriority is the election priority line: the priority announced,
// and the configured one when the tracked checks lowered it or the
// instance is in the fault state; "" from a server that reports none.
func ctlPriority(st *hellopicsv1.GetStatusResponse) string {
	base, prio := st.GetBasePriority(), st.GetPriority()
	switch {
	case st.GetFault():
		return fmt.Sprintf("%d (base %d): FAULT, a tracked check of weight 0 fails; never master", prio, base)
	case prio != base:
		return fmt.Sprintf("%d (base %d, lowered by failing tracked checks)", prio, base)
	case base == 0 && len(st.GetTracks()) == 0:
		return ""
	}
	return fmt.Sprint(prio)
}

func ctlYesNo(b bool) string {
	if b {
		return "yes"
	}
	return "NO"
}

func ctlDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
