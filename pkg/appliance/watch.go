package appliance

import (
	"google.golang.org/protobuf/proto"

	"github.com/hellopics/hellopics/pkg/handshake"
	"github.com/hellopics/hellopics/pkg/pconn"
	hellopicsv1 "github.com/hellopics/hellopics/proto/hellopics/v1"
)

// Watch sessions: with two or more mgmt addresses, a component keeps a
// light session to each besides its session to the master. It sends a
// watch Identify on it and then only listens: the instance that becomes
// master sends an Elected on every watch session at once, so that a
// component still on the old master (its host lost: no reset, only
// silence) follows the new one within a round trip of the election, not
// when MgmtDeadTimeout gives up. The component switches only to an epoch
// above any it has seen (handshake MasterElected).

// startWatches dials a watch session to every mgmt address, unless
// turned off or there is only one. mc is the mgmt client's configuration.
// Loop only.
func (c *Component) startWatches(mc pconn.Config) error {
	cfg := &c.spec.Config
	if cfg.NoWatch || len(cfg.MgmtAddrs) < 2 {
		return nil
	}
	wc := mc
	// The peer's dead timeout: a lost watch session matters only to
	// redial it, so it need not be pinged as often as the master's.
	wc.DeadTimeout = max(cfg.DeadTimeout, cfg.MgmtDeadTimeout)
	// No application frames on a watch session: an APP frame is an
	// unknown type here and costs the session.
	wc.Handler = c.loop.Handler(c.onWatchFrame)
	wc.EventHandler = c.loop.EventHandler(c.onWatchSession)
	wc.Logger = c.log.Named("mgmt-watch")
	for _, addr := range cfg.MgmtAddrs {
		w, err := pconn.Dial(wc, addr)
		if err != nil {
			return err
		}
		c.watches = append(c.watches, w)
	}
	return nil
}

func (c *Component) onWatchSession(ev pconn.Event) {
	switch {
	case ev.Session == nil:
		c.log.Trace("mgmt not reachable for a watch session; will retry", "component", c.name, "peer", ev.Addr.String(), "error", ev.Err)
	case ev.Type == pconn.EventEstablished:
		addr := ev.Addr.String()
		c.watchSess[ev.Session] = addr
		if err := ev.Session.SendProto(pconn.MsgType(hellopicsv1.MsgType_MSG_TYPE_ID), c.m.WatchIdentify()); err != nil {
			c.log.Debug("cannot identify on a watch session", "component", c.name, "peer", addr, "error", err)
			return
		}
		c.log.Debug("watching mgmt", "component", c.name, "peer", addr, "step", "watch")
	default:
		if addr, ok := c.watchSess[ev.Session]; ok {
			delete(c.watchSess, ev.Session)
			c.log.Debug("watch session ended; will retry", "component", c.name, "peer", addr, "error", ev.Err)
		}
	}
}

func (c *Component) onWatchFrame(ps *pconn.Session, t hellopicsv1.MsgType, msg proto.Message) {
	addr, ok := c.watchSess[ps]
	if !ok {
		return
	}
	switch t {
	case hellopicsv1.MsgType_MSG_TYPE_ELECTED:
		epoch := msg.(*hellopicsv1.Elected).GetEpoch()
		if c.mgmtUp && c.mgmtAddr == addr {
			// Already there (a held Identify this instance just
			// accepted): the session itself carries the epoch.
			c.log.Debug("mgmt elected; already connected to it", "component", c.name, "peer", addr, "epoch", epoch)
			return
		}
		c.apply(c.m.MasterElected(addr, epoch))
	case hellopicsv1.MsgType_MSG_TYPE_REJECT:
		c.log.Warn("mgmt refuses the watch session", "component", c.name, "peer", addr,
			"reason", handshake.Sanitize(msg.(*hellopicsv1.Reject).GetReason()))
	default:
		c.log.Debug("unexpected message on a watch session", "component", c.name, "peer", addr, "type", t.String())
	}
}
