//go:build linux

package queuetest

import (
	"os/exec"
	"syscall"
)

// killWithParent makes the kernel kill cmd if the test binary dies without cleaning up.
func killWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
