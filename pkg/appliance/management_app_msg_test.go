package appliance

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/hellopics/hellopics/pkg/pconn"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// TestAppMessages: a Call from an identified component reaches the
// application with the component's name and is answered on its session;
// a message on a session that has not identified itself is dropped.
func TestAppMessages(t *testing.T) {
	mux := NewMux()
	HandleCall(mux, func(c *Context, m *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		return wrapperspb.String(c.From.String() + ": " + m.GetValue()), nil
	})
	mc := DefaultManagementConfig()
	mc.ListenAddr = "127.0.0.1:0"
	mc.App = &App{Mux: mux}
	m, err := StartManagement(mc)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()

	frames := make(chan pconn.Message, 16)
	cfg := pconn.DefaultConfig(pconn.HandlerFunc(func(_ *pconn.Session, f pconn.Message) error {
		frames <- pconn.Message{Type: f.Type, Payload: append([]byte(nil), f.Payload...)}
		return nil
	}))
	s, err := pconn.Connect(t.Context(), cfg, m.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	body, _ := proto.Marshal(wrapperspb.String("hi"))
	call := &hellopicsv1.AppBatch{Messages: []*hellopicsv1.AppMessage{{Type: "google.protobuf.StringValue", Body: body, Call: 7}}}

	// Before Identify: dropped and counted.
	if err := s.SendProto(MsgTypeApp, call); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the unidentified message to be refused", func() bool {
		var n float64
		m.loop.Do(func() { n = refusedCount(t, m, RefusedUnidentified) })
		return n == 1
	})

	if err := s.SendProto(pconn.MsgType(hellopicsv1.MsgType_MSG_TYPE_ID), &hellopicsv1.Identify{
		Role: hellopicsv1.Role_ROLE_CTRL, PairId: "pic0", Instance: "i1", DataAddr: "127.0.0.1:1", Version: "test"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SendProto(MsgTypeApp, call); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(20 * time.Second)
	for {
		select {
		case f := <-frames:
			if f.Type != MsgTypeApp {
				continue
			}
			var batch hellopicsv1.AppBatch
			if err := proto.Unmarshal(f.Payload, &batch); err != nil || len(batch.GetMessages()) != 1 {
				t.Fatal(len(batch.GetMessages()), err)
			}
			rep := batch.GetMessages()[0]
			var v wrapperspb.StringValue
			if err := proto.Unmarshal(rep.GetBody(), &v); err != nil {
				t.Fatal(err)
			}
			if !rep.GetReply() || rep.GetCall() != 7 || v.GetValue() != "ctrl/pic0: hi" {
				t.Fatalf("reply %v with %q", &rep, v.GetValue())
			}
			return
		case <-timeout:
			t.Fatal("no reply")
		}
	}
}

// refusedCount reads hellopics_mgmt_app_refused_total{reason}.
func refusedCount(t *testing.T, m *Management, reason string) float64 {
	t.Helper()
	for _, c := range m.rt.Collectors() {
		ch := make(chan prometheus.Metric, 16)
		c.Collect(ch)
		close(ch)
		for mt := range ch {
			var d dto.Metric
			if err := mt.Write(&d); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(mt.Desc().String(), "app_refused_total") {
				continue
			}
			for _, l := range d.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return d.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
