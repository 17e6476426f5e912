//go:build !linux

package etcdtest

import "os/exec"

// dieWithParent does nothing here: the test's cleanup kills etcd.
func dieWithParent(*exec.Cmd) {}
