// Package hellocycle is the Hello cycle written as an application on
// the framework (pkg/appliance), the first one: what an appliance of
// its own would write for a periodic probe of its pairs, and what mgmt
// runs with -hello-cycle app.
//
// Mgmt returns the application of mgmt: the pure machine of pkg/hello
// (hello.Cycle) driven from the application's hooks and timers. Its
// hellos are hellopics.v1.Hello application messages, fenced by the
// framework's epochs (ctrl and data refuse a deposed master's); their
// numbers come from a replicated Sequence, so that no master sends a
// number twice; its counters are replicated State, batched (every
// CountersInterval, the pairs that changed), so that a new master
// carries on counting; its events go to the logs and to the operator
// event stream (Node.Publish). Relay returns the application of ctrl
// and data: each hello passed on to its next hop (hello.Relay), and the
// highest number seen reported to every master the component
// identifies to (Seen, once it saw one). Every mgmt instance of an
// appliance runs the same cycle: this one or the built-in.
//
// Compose them beside an appliance's own application with
// appliance.Compose; the mgmt package does so when its Config.HelloCycle
// is "app", and ctrl and data always run the relay.
package hellocycle
