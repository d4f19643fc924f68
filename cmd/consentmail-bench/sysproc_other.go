//go:build !linux

package main

import (
	"os/exec"
	"time"
)

// killWithParent is a no-op where the kernel offers no parent-death signal.
func killWithParent(*exec.Cmd) {}

// selfCPU is unknown without Linux's getrusage semantics and /proc: the CPU split
// then shows zeros.
func selfCPU() time.Duration { return 0 }
