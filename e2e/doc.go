// Package e2e holds the end-to-end tests of hellopics: they build the
// hellopics binary once, run mgmt, ctrl and data as real child processes
// on loopback, and check the handshake and the Hello cycle from the
// outside, through the processes' JSON log lines (and the operator API
// where it is served). The package has no code of its own beyond the
// race-detector flag; everything is in its tests, which are skipped under
// -short.
//
// Run them with:
//
//	go test -race -count=1 ./e2e/
//
// and the benchmarks with:
//
//	go test -run '^$' -bench . -benchtime 20x ./e2e/
package e2e
