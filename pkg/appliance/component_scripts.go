package appliance

import (
	"fmt"

	"github.com/hellopics/hellopics/pkg/notify"
)

// The events a component's scripts are told (tier.ComponentScripts):
// $1 and HELLOPICS_STATE.
const (
	ScriptReady         = "ready"
	ScriptLost          = "lost"
	ScriptMasterChanged = "master_changed"
)

// componentScripts is a component's operator scripts: the runner (nil
// when none is configured) and what they were last told. Loop goroutine
// only, but for the runner's own goroutine.
type componentScripts struct {
	runner *notify.Runner
	epoch  uint64 // the epoch last told as master_changed
	master string // the master's address last told
	// switchTo is the master a SwitchMgmt named in this apply, if any.
	switchTo string
}

// startScripts starts the runner when a script is configured.
func (c *Component) startScripts() {
	sc := c.spec.Config.Scripts
	nc := notify.Config{
		ID: c.name, Component: c.name, Timeout: sc.Timeout, Logger: c.log,
		Scripts: map[string]string{ScriptReady: sc.OnReady, ScriptLost: sc.OnLost, ScriptMasterChanged: sc.OnMasterChanged},
		Env:     []string{"HELLOPICS_ROLE=" + c.name, "HELLOPICS_PAIR=" + c.spec.Config.PairID},
	}
	if nc.Empty() {
		return
	}
	c.scripts.runner = notify.New(nc, nil)
}

// tellScripts queues one event for the scripts; it never blocks.
func (c *Component) tellScripts(event string, epoch uint64, master, reason string) {
	if c.scripts.runner == nil {
		return
	}
	c.log.Info("running scripts", "component", c.name, "state", event, "epoch", epoch, "master", master, "reason", reason,
		"pair", c.spec.Config.PairID, "step", "script")
	c.scripts.runner.Notify(notify.State{State: event, Epoch: epoch, Master: master, Reason: reason})
}

// checkMaster tells the scripts master_changed when the machine knows a
// higher epoch than they were last told: the master, the address a
// SwitchMgmt named in this apply or else the mgmt session's. Loop only.
func (c *Component) checkMaster() {
	to := c.scripts.switchTo
	c.scripts.switchTo = ""
	epoch := c.m.epoch()
	if epoch == 0 || epoch <= c.scripts.epoch {
		return
	}
	master := to
	if master == "" {
		if !c.mgmtUp {
			return // told once a session to the master is up
		}
		master = c.mgmtAddr
	}
	reason := fmt.Sprintf("master at epoch %d", epoch)
	if c.scripts.epoch == 0 {
		reason = "start: " + reason
	} else {
		reason = fmt.Sprintf("%s (was %s at epoch %d)", reason, c.scripts.master, c.scripts.epoch)
	}
	c.scripts.epoch, c.scripts.master = epoch, master
	c.tellScripts(ScriptMasterChanged, epoch, master, reason)
}

// stopScripts kills a running script and drops the waiting ones.
func (c *Component) stopScripts() {
	if c.scripts.runner != nil {
		c.scripts.runner.Close()
	}
}
