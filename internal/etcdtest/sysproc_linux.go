package etcdtest

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel kill the etcd process when the test
// process dies, even by SIGKILL.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
