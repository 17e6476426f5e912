package tier

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
)

// NewInstance returns an id unique to this process start, such as
// "host-1234-9f2c01ab", used to tell a restarted component from the old one.
func NewInstance() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "host"
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// AdvertiseAddr returns the address peers should dial for a listener at
// listen: listen itself when it names a host, else the local address this
// machine would use to reach toward (found with a UDP socket that sends
// nothing), with listen's port.
func AdvertiseAddr(listen net.Addr, toward string) (string, error) {
	host, port, err := net.SplitHostPort(listen.String())
	if err != nil {
		return "", fmt.Errorf("advertise address of %s: %w", listen, err)
	}
	if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
		return listen.String(), nil
	}
	c, err := net.Dial("udp", toward)
	if err != nil {
		return "", fmt.Errorf("advertise address: find the local address toward %s: %w (set the advertise address)", toward, err)
	}
	defer c.Close()
	local := c.LocalAddr().(*net.UDPAddr)
	return net.JoinHostPort(local.IP.String(), port), nil
}
