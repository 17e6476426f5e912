package dgram_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/hellopics/hellopics/pkg/dgram"
)

func listen(t *testing.T, network, addr string) *net.UDPConn {
	t.Helper()
	ua, err := net.ResolveUDPAddr(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.ListenUDP(network, ua)
	if err != nil {
		t.Skipf("%s %s: %v", network, addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// readAll reads until want datagrams arrived, failing after a generous
// deadline.
func readAll(t *testing.T, c *net.UDPConn, r *dgram.Reader, want int) []dgram.Msg {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	var got []dgram.Msg
	for len(got) < want {
		ms, err := r.Read()
		if err != nil {
			t.Fatalf("read after %d of %d: %v", len(got), want, err)
		}
		for _, m := range ms {
			got = append(got, dgram.Msg{Buf: bytes.Clone(m.Buf), Addr: m.Addr})
		}
	}
	return got
}

func TestBatchRoundTrip(t *testing.T) {
	for _, tc := range []struct{ name, network, addr string }{
		{"ipv4", "udp4", "127.0.0.1:0"},
		{"ipv6", "udp6", "[::1]:0"},
		{"dual-stack", "udp", ":0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rx := listen(t, tc.network, tc.addr)
			tx := listen(t, tc.network, tc.addr)
			r, err := dgram.NewReader(rx, 8, 0)
			if err != nil {
				t.Fatal(err)
			}
			w, err := dgram.NewWriter(tx, 4) // fewer slots than datagrams: Add flushes
			if err != nil {
				t.Fatal(err)
			}
			to := rx.LocalAddr().(*net.UDPAddr).AddrPort()
			if tc.network == "udp" {
				to = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), to.Port())
			}
			const n = 21
			for i := range n {
				b := bytes.Repeat([]byte{byte(i)}, i*70) // 0 to 1400 octets, one empty
				if err := w.Add(b, to); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if w.Len() != 0 {
				t.Fatalf("Len after Flush = %d", w.Len())
			}
			got := readAll(t, rx, r, n)
			from := tx.LocalAddr().(*net.UDPAddr).AddrPort()
			for i, m := range got {
				if want := bytes.Repeat([]byte{byte(i)}, i*70); !bytes.Equal(m.Buf, want) {
					t.Fatalf("datagram %d: %d octets, want %d", i, len(m.Buf), len(want))
				}
				if m.Addr.Port() != from.Port() || !m.Addr.Addr().Unmap().IsLoopback() {
					t.Fatalf("datagram %d from %v, want port %d on loopback", i, m.Addr, from.Port())
				}
			}
			// The sender's address as read is good to answer: tx
			// sends to its own address as got[0] saw it and reads it.
			if err := w.Add([]byte("reply"), got[0].Addr); err != nil {
				t.Fatal(err)
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			rr, err := dgram.NewReader(tx, 1, 16)
			if err != nil {
				t.Fatal(err)
			}
			if m := readAll(t, tx, rr, 1); string(m[0].Buf) != "reply" {
				t.Fatalf("reply %q", m[0].Buf)
			}
		})
	}
}

func TestConnectedWriterAndTruncation(t *testing.T) {
	rx := listen(t, "udp4", "127.0.0.1:0")
	tx, err := net.DialUDP("udp4", nil, rx.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	w, err := dgram.NewWriter(tx, 8)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"one", "two", "a datagram longer than sixteen octets"} {
		if err := w.Add([]byte(s), netip.AddrPort{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	r, err := dgram.NewReader(rx, 2, 16)
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, rx, r, 3)
	for i, want := range []string{"one", "two", "a datagram longe"} {
		if string(got[i].Buf) != want {
			t.Fatalf("datagram %d = %q, want %q", i, got[i].Buf, want)
		}
	}
}

// TestWriterSkipsRefused: a datagram the socket refuses is reported and
// the others of the batch still go.
func TestWriterSkipsRefused(t *testing.T) {
	rx := listen(t, "udp4", "127.0.0.1:0")
	tx := listen(t, "udp4", "127.0.0.1:0")
	w, err := dgram.NewWriter(tx, 8)
	if err != nil {
		t.Fatal(err)
	}
	to := rx.LocalAddr().(*net.UDPAddr).AddrPort()
	bad := netip.MustParseAddrPort("[2001:db8::1]:161") // IPv6 from an IPv4 socket
	for i, a := range []netip.AddrPort{to, bad, to, bad, to} {
		if err := w.Add(fmt.Appendf(nil, "d%d", i), a); err != nil {
			t.Fatal(err)
		}
	}
	err = w.Flush()
	if err == nil {
		t.Fatal("Flush reported no error for two refused datagrams")
	}
	t.Logf("Flush: %v", err)
	if w.Sent() != 3 || w.Refused() != 2 {
		t.Fatalf("Sent %d Refused %d, want 3 and 2", w.Sent(), w.Refused())
	}
	r, err := dgram.NewReader(rx, 8, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, rx, r, 3)
	for i, want := range []string{"d0", "d2", "d4"} {
		if string(got[i].Buf) != want {
			t.Fatalf("datagram %d = %q, want %q", i, got[i].Buf, want)
		}
	}
}

func TestReadAfterClose(t *testing.T) {
	rx := listen(t, "udp4", "127.0.0.1:0")
	r, err := dgram.NewReader(rx, 4, 0)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := r.Read()
		done <- err
	}()
	_ = rx.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Read did not return after Close")
	}
}

// TestNoAllocations: a steady stream of batches does not allocate.
func TestNoAllocations(t *testing.T) {
	rx := listen(t, "udp4", "127.0.0.1:0")
	tx := listen(t, "udp4", "127.0.0.1:0")
	r, err := dgram.NewReader(rx, 4, 2048)
	if err != nil {
		t.Fatal(err)
	}
	w, err := dgram.NewWriter(tx, 4)
	if err != nil {
		t.Fatal(err)
	}
	to := rx.LocalAddr().(*net.UDPAddr).AddrPort()
	payload := make([]byte, 100)
	allocs := testing.AllocsPerRun(200, func() {
		_ = w.Add(payload, to)
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if ms, err := r.Read(); err != nil || len(ms) != 1 {
			t.Fatalf("read %d datagrams: %v", len(ms), err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per datagram sent and read, want 0", allocs)
	}
}

func TestReachesAndSameAddr(t *testing.T) {
	v4 := listen(t, "udp4", "127.0.0.1:0")
	dual := listen(t, "udp", ":0")
	for _, tc := range []struct {
		conn *net.UDPConn
		to   string
		want bool
	}{
		{v4, "127.0.0.1:161", true},
		{v4, "198.18.0.2:161", false}, // from loopback to another host
		{v4, "[::1]:161", false},
		{dual, "198.18.0.2:161", true},
		{dual, "[2001:db8::1]:161", true},
	} {
		if got := dgram.Reaches(tc.conn, netip.MustParseAddrPort(tc.to)); got != tc.want {
			t.Errorf("Reaches(%v, %s) = %v, want %v", tc.conn.LocalAddr(), tc.to, got, tc.want)
		}
	}
	a, b := netip.MustParseAddrPort("[::ffff:127.0.0.1]:162"), netip.MustParseAddrPort("127.0.0.1:162")
	if !dgram.SameAddr(a, b) || dgram.SameAddr(a, netip.MustParseAddrPort("127.0.0.1:163")) {
		t.Fatal("SameAddr")
	}
}
