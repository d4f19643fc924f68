package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// rawMessage is the fixed message of the raw modes, of about size bytes: CRLF line
// ends, no line starting with a dot, so that it needs no dot-stuffing and suits BDAT as
// it is.
func rawMessage(size int) []byte {
	var b strings.Builder
	b.WriteString("From: Newsletter <news@example.org>\r\n" +
		"To: Bench <bench@example.org>\r\n" +
		"Subject: Our spring news\r\n" +
		"Date: Mon, 02 Mar 2026 10:00:00 +0000\r\n" +
		"Message-ID: <raw.bench@example.org>\r\n" +
		"List-Unsubscribe: <http://127.0.0.1/u/0000000000000000000000000000000000000000000000000000>\r\n" +
		"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: text/html; charset=UTF-8\r\n" +
		"Content-Transfer-Encoding: 8bit\r\n\r\n")
	line := "<p style=\"margin:0 0 12px 0;font-family:Helvetica,Arial,sans-serif\">Spring is here and so is our news.</p>\r\n"
	for b.Len() < size {
		b.WriteString(line)
	}
	return []byte(b.String())
}

// The raw sender runs in a child process, as consentmail's workers do, so that it
// pays the same for crossing processes and its CPU is told apart from the sink's. The
// benchmark starts its own executable with rawSenderEnv set to "ADDR CONNS N MODE SIZE";
// the child connects and greets, prints rawReady, waits for a line on stdin, sends,
// and exits.
const (
	rawSenderEnv = "CONSENTMAILBENCH_RAW_SENDER" // outside CONSENTMAIL_*, which the product owns
	rawReady     = "raw sender ready"
)

// rawSenderChild runs the raw sender and exits when this process is one; it returns
// at once otherwise. main and TestMain call it first.
func rawSenderChild() {
	spec, ok := os.LookupEnv(rawSenderEnv)
	if !ok {
		return
	}
	if err := rawSenderMain(spec, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "raw sender:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func rawSenderMain(spec string, stdin io.Reader, stdout io.Writer) error {
	f := strings.Fields(spec)
	usage := fmt.Errorf("%s=%q: want ADDR CONNS N %s|%s|%s SIZE", rawSenderEnv, spec, modeRaw, modeRawData, modeRawGoSMTP)
	if len(f) != 5 {
		return usage
	}
	conns, err1 := strconv.Atoi(f[1])
	n, err2 := strconv.Atoi(f[2])
	size, err3 := strconv.Atoi(f[4])
	mode := f[3]
	if err := errors.Join(err1, err2, err3); err != nil || conns < 1 || n < 1 || size < 1 || !isRawMode(mode) {
		return usage
	}
	msg := rawMessage(size)
	ctx := context.Background()
	senders := make([]func(next *atomic.Int64) error, conns)
	for i := range senders {
		var d net.Dialer
		nc, err := d.DialContext(ctx, "tcp", f[0])
		if err != nil {
			return err
		}
		defer nc.Close()
		if mode == modeRawGoSMTP {
			c := smtp.NewClient(nc)
			if err := c.Hello("bench.localhost"); err != nil {
				return fmt.Errorf("go-smtp client: %w", err)
			}
			senders[i] = func(next *atomic.Int64) error { return sendGoSMTP(c, next, n, msg) }
			continue
		}
		c, err := greetRaw(nc)
		if err != nil {
			return err
		}
		senders[i] = func(next *atomic.Int64) error { return c.send(next, n, mode == modeRaw, msg) }
	}
	fmt.Fprintln(stdout, rawReady)
	if _, err := bufio.NewReader(stdin).ReadString('\n'); err != nil {
		return fmt.Errorf("waiting for the go: %w", err)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, conns)
	for i, send := range senders {
		wg.Go(func() { errs[i] = send(&next) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// isRawMode reports whether mode is one of the raw senders'.
func isRawMode(mode string) bool {
	return mode == modeRaw || mode == modeRawData || mode == modeRawGoSMTP
}

// sendGoSMTP sends as a program written with go-smtp's client does: one
// Client.SendMail per message on the kept connection c (MAIL, RCPT, DATA, then the
// message: four round trips, go-smtp's client does not pipeline), then QUIT.
func sendGoSMTP(c *smtp.Client, next *atomic.Int64, n int, msg []byte) error {
	for {
		i := int(next.Add(1) - 1)
		if i >= n {
			break
		}
		to := "bench" + strconv.Itoa(i) + "@example.org"
		if err := c.SendMail("bounce@example.org", []string{to}, bytes.NewReader(msg)); err != nil {
			return err
		}
	}
	return c.Quit()
}

// rawConn is one greeted SMTP connection of the raw sender.
type rawConn struct {
	r *bufio.Reader
	w *bufio.Writer
}

// greetRaw reads the greeting on nc and says EHLO.
func greetRaw(nc net.Conn) (*rawConn, error) {
	c := &rawConn{r: bufio.NewReader(nc), w: bufio.NewWriterSize(nc, 8<<10)}
	if err := c.expect(220); err != nil {
		return nil, fmt.Errorf("greeting: %w", err)
	}
	c.w.WriteString("EHLO bench.localhost\r\n")
	if err := c.w.Flush(); err != nil {
		return nil, err
	}
	if err := c.expect(250); err != nil {
		return nil, fmt.Errorf("EHLO: %w", err)
	}
	return c, nil
}

// send sends messages to recipients next, next+1, … until n, per message one
// pipelined group of MAIL, RCPT and either "BDAT size LAST" with the message (one
// round trip) or DATA (then the message after the 354: two round trips); then QUIT.
// It is the least an SMTP client can do per message.
func (c *rawConn) send(next *atomic.Int64, n int, bdat bool, rawMessage []byte) error {
	w := c.w
	bdatCmd := "BDAT " + strconv.Itoa(len(rawMessage)) + " LAST\r\n"
	num := make([]byte, 0, 20)
	for {
		i := int(next.Add(1) - 1)
		if i >= n {
			break
		}
		w.WriteString("MAIL FROM:<bounce@example.org>\r\nRCPT TO:<bench")
		w.Write(strconv.AppendInt(num[:0], int64(i), 10))
		w.WriteString("@example.org>\r\n")
		if bdat {
			w.WriteString(bdatCmd)
			w.Write(rawMessage)
		} else {
			w.WriteString("DATA\r\n")
		}
		if err := w.Flush(); err != nil {
			return err
		}
		if err := c.expect(250); err != nil {
			return fmt.Errorf("MAIL: %w", err)
		}
		if err := c.expect(250); err != nil {
			return fmt.Errorf("RCPT: %w", err)
		}
		if !bdat {
			if err := c.expect(354); err != nil {
				return fmt.Errorf("DATA: %w", err)
			}
			w.Write(rawMessage)
			w.WriteString(".\r\n")
			if err := w.Flush(); err != nil {
				return err
			}
		}
		if err := c.expect(250); err != nil {
			return fmt.Errorf("end of data: %w", err)
		}
	}
	w.WriteString("QUIT\r\n")
	if err := w.Flush(); err != nil {
		return err
	}
	return c.expect(221)
}

// expect reads one reply, multi-line or not, and checks its code.
func (c *rawConn) expect(code int) error {
	want := strconv.Itoa(code)
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return err
		}
		if len(line) < 4 || line[:3] != want {
			return fmt.Errorf("reply %q, want %d", strings.TrimSpace(line), code)
		}
		if line[3] != '-' {
			return nil
		}
	}
}

// rawSender is a started raw sender child, connected and waiting for go.
type rawSender struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *tail
}

// startRawSender starts the raw sender child of mode for n messages to addr over
// conns connections and waits until it is connected.
func startRawSender(ctx context.Context, addr string, conns, n int, mode string, size int) (*rawSender, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(childEnv(nil), fmt.Sprintf("%s=%s %d %d %s %d", rawSenderEnv, addr, conns, n, mode, size))
	killWithParent(cmd)
	s := &rawSender{cmd: cmd, stderr: &tail{max: 16 << 10}}
	cmd.Stderr = s.stderr
	if s.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err == nil && strings.TrimSpace(line) != rawReady {
			err = fmt.Errorf("said %q", line)
		}
		ready <- err
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case err = <-ready:
	case <-time.After(30 * time.Second):
		err = errors.New("not ready within 30 s")
	}
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("raw sender: %w\n%s", err, s.stderr)
	}
	return s, nil
}

func (s *rawSender) pid() int { return s.cmd.Process.Pid }

// run tells the sender to go and waits until it has sent everything and exited.
func (s *rawSender) run() error {
	if _, err := io.WriteString(s.stdin, "go\n"); err != nil {
		return err
	}
	s.stdin.Close()
	if err := s.cmd.Wait(); err != nil {
		return fmt.Errorf("raw sender: %w\n%s", err, s.stderr)
	}
	return nil
}
