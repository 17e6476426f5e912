// Package sim is a deterministic simulator of the whole hellopics
// protocol: the real pure machines (election.Election, handshake.Mgmt,
// handshake.Ctrl, handshake.Data) joined by copies of the daemons'
// glue, on a simulated network of pconn sessions and a simulated clock.
// Everything follows from a seed: no wall clock, no goroutines, no
// global randomness, so a seed replays exactly.
//
// Generate derives a Scenario from a seed (2 or 3 mgmt instances, 1 to
// 3 ctrl/data pairs, timers, latencies and a fault schedule); Run runs
// it and checks the invariants (the Inv* constants) after every step;
// Check runs a seed and, if an invariant breaks, shrinks the fault
// schedule by delta debugging and replays the minimal one with its
// trace (Report). docs/simulator.md says what is modelled, what is not,
// and how to replay a seed; cmd/sim runs millions of seeds.
//
// The glue is copied function by function, each copy naming the shell
// function it mirrors: mgmtProc mirrors mgmt/mgmt.go and mgmt/ha.go
// (startHA, onHAFrame, stepHA, sendHA, electionTick, drainElection,
// alignMastership, syncState, apply, onSession, onFrame), compProc
// mirrors pkg/appliance/component.go and machine.go (onMgmtSession,
// onPeerSession, onFrame, dial, apply), client mirrors
// pkg/pconn/client.go's Client.loop. The application runtime
// (pkg/appliance State, app frames), metrics and logs are left out.
//
// The package is internal: its adapters copy this repository's shells,
// and a user's own machines would need a stable driving API that the
// simulator does not promise yet.
package sim
