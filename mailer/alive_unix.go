//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package mailer

import (
	"net"
	"syscall"
)

// alive reports whether an idle connection still looks usable: the peer has neither
// closed it nor sent anything unasked (such as "421 idle timeout"). It peeks without
// blocking, so a pipelined message is never written into a connection already dead.
func alive(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	ok = false
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		ok = n < 0 && (err == syscall.EAGAIN || err == syscall.EWOULDBLOCK)
		return true // never wait for readiness
	})
	return err == nil && ok
}
