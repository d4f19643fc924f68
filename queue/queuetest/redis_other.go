//go:build !linux

package queuetest

import "os/exec"

// killWithParent is a no-op where the kernel offers no parent-death signal.
func killWithParent(*exec.Cmd) {}
