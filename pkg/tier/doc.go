// Package tier is the I/O shell shared by the components of a three-tier
// appliance. It joins pconn sessions to a pure protocol machine (package
// handshake): frames are decoded on the session goroutines and handed, in
// order, to a single Loop goroutine that owns the machine; the machine's
// outputs are carried out by the same goroutine. A component written on
// tier therefore never locks its protocol state, and its protocol can be
// tested without sockets.
//
// The pieces:
//
//   - Loop: one goroutine that runs posted work in order, with a single
//     deadline timer for the machine's next Tick.
//   - Loop.Handler and Loop.EventHandler: pconn handlers that decode
//     frames and session events into work on the Loop.
//   - Decode: a frame to its protobuf message by hellopics MsgType.
//   - Registry: the sessions by handshake.SessionID, for carrying out Send
//     and Close outputs.
//   - LogEvent: a machine event as one log line with the project's keys.
//   - Endpoints: the component's optional Prometheus and gRPC health
//     servers, and its readiness reported to them, to the log and to a
//     callback (systemd).
//   - NewInstance, AdvertiseAddr, Reason: small helpers every component
//     needs (an instance id, the address to advertise, a loss reason).
package tier
