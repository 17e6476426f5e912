package tpce_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hellopics/hellopics/data/tpce"
	"github.com/hellopics/hellopics/pkg/meds"
)

// echoServer answers every command with a response of the same id and
// text, or a relay error for ids divisible by errEvery (if > 0).
func echoServer(t *testing.T, errEvery uint32) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				rd := meds.NewReader(c, 0)
				var out []byte
				for {
					m, err := rd.Next()
					if err != nil {
						return
					}
					m.Type = meds.TypeResponse
					if errEvery > 0 && m.ID%errEvery == 0 {
						m.Type, m.Text = meds.TypeRelayError, []byte("agent unreachable")
					}
					out = meds.AppendMessage(out[:0], m)
					if _, err := c.Write(out); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func TestRunLoad(t *testing.T) {
	addr := echoServer(t, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := tpce.RunLoad(ctx, tpce.LoadConfig{Addr: addr, Clients: 3, Window: 4, Size: 100, Count: 100, Check: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Commands != 100 || len(res.Latencies) != 100 || res.Rate() <= 0 || res.Percentile(0.99) < res.Percentile(0.5) {
		t.Fatalf("result %+v", res)
	}
}

func TestRunLoadCountsRelayErrors(t *testing.T) {
	addr := echoServer(t, 5)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := tpce.RunLoad(ctx, tpce.LoadConfig{Addr: addr, Clients: 1, Window: 2, Size: 8, Count: 20})
	if err != nil {
		t.Fatal(err)
	}
	if res.Commands != 16 || res.RelayErrors != 4 {
		t.Fatalf("answered %d, relay errors %d", res.Commands, res.RelayErrors)
	}
}

func TestRunLoadNeedsAnEnd(t *testing.T) {
	if _, err := tpce.RunLoad(context.Background(), tpce.LoadConfig{Addr: "127.0.0.1:1"}); err == nil {
		t.Fatal("a load without count or duration was accepted")
	}
}

func TestRecvAfterClose(t *testing.T) {
	addr := echoServer(t, 0)
	c, err := tpce.Dial(context.Background(), addr, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Command(1, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	m, err := c.Recv()
	if err != nil || m.Type != meds.TypeResponse || string(m.Text) != "hi" {
		t.Fatalf("got %v %v", m, err)
	}
	_ = c.Close()
	if _, err := c.Recv(); err == nil {
		t.Fatal("Recv after Close succeeded")
	}
}
