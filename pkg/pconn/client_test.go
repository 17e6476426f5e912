package pconn

import (
	"crypto/tls"
	"errors"
	"net"
	"testing"
	"time"
)

func TestClientReconnectsAfterServerRestart(t *testing.T) {
	checkNoLeaks(t)
	srv := listen(t, testConfig(echo, nil))
	addr := srv.Addr().String()
	ev := newRecorder()
	in := newInbox()
	c := dial(t, testConfig(in, ev), addr)
	ev.next(t, EventEstablished)

	srv.Close() // abrupt: no goodbye
	if fail := ev.next(t, EventFailed); !errors.Is(fail.Err, ErrPeerVanished) && fail.Session != nil {
		t.Logf("loss reported as %v", fail.Err)
	}
	if err := c.Send(1, nil); err == nil && c.Session() != nil {
		// A send may race with the loss; what matters is recovery below.
		t.Log("send during loss queued")
	}
	srv2, err := Listen(addr, testConfig(echo, nil))
	if err != nil {
		t.Skipf("port %s not reusable at once on this machine: %v", addr, err)
	}
	defer srv2.Close()
	ev.next(t, EventEstablished)
	if err := c.Send(9, []byte("back")); err != nil {
		t.Fatal(err)
	}
	for {
		if m := in.next(t); string(m.Payload) == "back" {
			break
		}
	}
	c.Close()
}

func TestClientRotatesAddressesAndGivesUp(t *testing.T) {
	checkNoLeaks(t)
	// Two closed ports: every attempt fails fast.
	var addrs []string
	for range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, ln.Addr().String())
		ln.Close()
	}
	ev := newRecorder()
	cfg := testConfig(newInbox(), ev)
	cfg.MaxRetries = 4
	c := dial(t, cfg, addrs...)
	<-c.Done()
	if !errors.Is(c.Err(), ErrGaveUp) {
		t.Fatalf("client stopped with %v, want ErrGaveUp", c.Err())
	}
	var tried []string
	for _, e := range ev.events {
		if e.Type == EventFailed && e.Session == nil {
			tried = append(tried, e.Addr.String())
		}
	}
	want := []string{addrs[0], addrs[1], addrs[0], addrs[1]}
	if len(tried) != len(want) {
		t.Fatalf("attempts %v, want %v", tried, want)
	}
	for i := range want {
		if tried[i] != want[i] {
			t.Fatalf("attempts %v, want %v", tried, want)
		}
	}
	if err := c.Send(1, nil); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("send after give-up: %v", err)
	}
}

func TestClientFallsThroughToLiveAddress(t *testing.T) {
	checkNoLeaks(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	srv := listen(t, testConfig(echo, nil))
	ev := newRecorder()
	c := dial(t, testConfig(newInbox(), ev), dead, srv.Addr().String())
	est := ev.next(t, EventEstablished)
	if est.Addr.String() != srv.Addr().String() {
		t.Fatalf("connected to %v, want %v", est.Addr, srv.Addr())
	}
	c.Close()
}

func TestClientRedirect(t *testing.T) {
	checkNoLeaks(t)
	a := listen(t, testConfig(echo, nil))
	b := listen(t, testConfig(echo, nil))
	ev := newRecorder()
	c := dial(t, testConfig(newInbox(), ev), a.Addr().String())
	if est := ev.next(t, EventEstablished); est.Addr.String() != a.Addr().String() {
		t.Fatalf("first session to %v", est.Addr)
	}
	c.Redirect(b.Addr().String())
	if sd := ev.next(t, EventShutdown); !errors.Is(sd.Err, ErrRedirected) || !errors.Is(sd.Err, ErrClosed) {
		t.Fatalf("old session ended with %v, want ErrRedirected (an ErrClosed)", sd.Err)
	}
	if est := ev.next(t, EventEstablished); est.Addr.String() != b.Addr().String() {
		t.Fatalf("redirected session to %v, want %v", est.Addr, b.Addr())
	}
	c.Close()
}

func TestConfigValidate(t *testing.T) {
	cfg := DefaultConfig(echo)
	if err := cfg.Validate(); err != nil {
		t.Fatalf("default config invalid: %v", err)
	}
	bad := cfg
	bad.Handler = nil
	bad.DeadTimeout = MinDeadTimeout - 1
	bad.RetryJitter = 1
	err := bad.Validate()
	for _, want := range []string{"Handler is nil", "DeadTimeout", "RetryJitter"} {
		mustContain(t, err, want)
	}
	if _, err := Listen("127.0.0.1:0", bad); err == nil {
		t.Fatal("Listen accepted a bad config")
	}
	if _, err := Dial(cfg); err == nil {
		t.Fatal("Dial accepted no address")
	}
}

func TestConnectOnce(t *testing.T) {
	checkNoLeaks(t)
	srv := listen(t, testConfig(echo, nil))
	in := newInbox()
	ev := newRecorder()
	s, err := Connect(t.Context(), testConfig(in, ev), srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	ev.next(t, EventEstablished)
	if err := s.Send(2, []byte("once")); err != nil {
		t.Fatal(err)
	}
	if m := in.next(t); string(m.Payload) != "once" {
		t.Fatalf("got %q", m.Payload)
	}
	srv.Close()
	<-s.Done()
	if s.Err() == nil {
		t.Fatal("no end reason")
	}
	// No reconnection: a closed port fails at once.
	if _, err := Connect(t.Context(), testConfig(in, nil), srv.Addr().String()); err == nil {
		t.Fatal("Connect to a closed server succeeded")
	}
}

// TestClientRedirectAbandonsDial: a Redirect elsewhere ends an attempt
// in flight toward an address that does not answer (here: a TCP port
// that never speaks TLS, so the handshake hangs until DialTimeout).
func TestClientRedirectAbandonsDial(t *testing.T) {
	checkNoLeaks(t)
	mute, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	srv := listen(t, testConfig(echo, nil))
	ev := newRecorder()
	cfg := testConfig(newInbox(), ev)
	cfg.DialTimeout = time.Hour
	cfg.TLS = &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13} //nolint:gosec // never completes
	start := time.Now()
	c := dial(t, cfg, mute.Addr().String())
	conn, err := mute.Accept() // the attempt is in its TLS handshake
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// The server speaks plaintext, so this session would fail its TLS
	// handshake too: what counts is that the hung attempt was abandoned.
	c.Redirect(srv.Addr().String())
	if f := ev.next(t, EventFailed); f.Addr.String() != mute.Addr().String() {
		t.Fatalf("failed attempt to %v, want %v", f.Addr, mute.Addr())
	}
	if d := time.Since(start); d > time.Minute {
		t.Fatalf("the attempt lasted %v", d)
	}
	c.Close()
}

// TestClientDeadPeerAfterRedirect: when a session that came from a
// Redirect goes silent, the next attempt is the address after that one
// in the rotation, not the silent one again (the rotation's position
// was left elsewhere by the redirect).
func TestClientDeadPeerAfterRedirect(t *testing.T) {
	checkNoLeaks(t)
	live := listen(t, testConfig(echo, nil))
	silent := silentServer(t).Addr().String()
	ev := newRecorder()
	cfg := testConfig(newInbox(), ev)
	cfg.DeadTimeout = 100 * time.Millisecond
	c := dial(t, cfg, live.Addr().String(), silent)
	if est := ev.next(t, EventEstablished); est.Addr.String() != live.Addr().String() {
		t.Fatalf("first session to %v", est.Addr)
	}
	c.Redirect(silent)
	if est := ev.next(t, EventEstablished); est.Addr.String() != silent {
		t.Fatalf("redirected session to %v", est.Addr)
	}
	if f := ev.next(t, EventFailed); !errors.Is(f.Err, ErrDeadPeer) {
		t.Fatalf("the silent session ended with %v", f.Err)
	}
	if est := ev.next(t, EventEstablished); est.Addr.String() != live.Addr().String() {
		t.Fatalf("after the silent server: %v, want %v", est.Addr, live.Addr())
	}
	c.Close()
}

// TestClientRedirectFromSilentServer: a Redirect away from a server that
// has gone silent (its host lost) reaches the new address at once, not
// after a drain toward silence bounded by the dead and linger timeouts.
func TestClientRedirectFromSilentServer(t *testing.T) {
	checkNoLeaks(t)
	live := listen(t, testConfig(echo, nil))
	silent := silentServer(t).Addr().String()
	ev := newRecorder()
	cfg := testConfig(newInbox(), ev)
	cfg.DeadTimeout = time.Hour   // longer than the test's event wait:
	cfg.LingerTimeout = time.Hour // only an abort can end the session
	c := dial(t, cfg, silent)
	if est := ev.next(t, EventEstablished); est.Addr.String() != silent {
		t.Fatalf("first session to %v", est.Addr)
	}
	c.Redirect(live.Addr().String())
	if sd := ev.next(t, EventShutdown); !errors.Is(sd.Err, ErrRedirected) {
		t.Fatalf("the silent session ended with %v", sd.Err)
	}
	if est := ev.next(t, EventEstablished); est.Addr.String() != live.Addr().String() {
		t.Fatalf("redirected session to %v, want %v", est.Addr, live.Addr())
	}
	c.Close()
}
