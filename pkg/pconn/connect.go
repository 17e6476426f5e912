package pconn

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
)

// Connect makes one connection to addr and returns its session, already
// running; it does not retry or reconnect (use Dial for that). The session
// ends when either side closes it or it fails: watch Done or the
// EventHandler. Connect fails if cfg is invalid, ctx ends, or the attempt
// fails within cfg.DialTimeout.
func Connect(ctx context.Context, cfg Config, addr string) (*Session, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	conn, err := dialConn(ctx, &cfg, addr)
	if err != nil {
		return nil, err
	}
	c := cfg // the session keeps its own copy
	s := newSession(conn, &c, c.logger().Named("session"), nil, nil)
	go s.run()
	return s, nil
}

// dialConn connects to addr with cfg's dialer and TLS settings.
func dialConn(ctx context.Context, cfg *Config, addr string) (net.Conn, error) {
	var conn net.Conn
	var err error
	if cfg.Dial != nil {
		conn, err = cfg.Dial(ctx, addr)
	} else {
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("pconn: connect to %s: %w", addr, err)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	if cfg.TLS != nil {
		tcfg := cfg.TLS
		if tcfg.ServerName == "" {
			tcfg = tcfg.Clone()
			if host, _, err := net.SplitHostPort(addr); err == nil {
				tcfg.ServerName = host
			}
		}
		tc := tls.Client(conn, tcfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("pconn: TLS handshake with %s: %w", addr, err)
		}
		conn = tc
	}
	return conn, nil
}
