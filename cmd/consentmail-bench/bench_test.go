package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary be the raw sender child, as the command's binary is.
func TestMain(m *testing.M) {
	rawSenderChild()
	os.Exit(m.Run())
}

// TestSmoke runs the whole command on a small audience and checks that every mode
// delivered each message exactly once (run fails otherwise) and printed its row.
func TestSmoke(t *testing.T) {
	modes := []string{modeRaw, modeRawData, modeRawGoSMTP, modeEmbedded, modeRedis1}
	if _, err := exec.LookPath("redis-server"); err != nil && os.Getenv("CI") == "" {
		t.Logf("redis-server not found: skipping mode %s; install Redis to run it", modeRedis1)
		modes = modes[:len(modes)-1]
	}
	// The consentmail binary is built without -race, whatever this test runs with:
	// the benchmark measures the product as it ships.
	bin := filepath.Join(t.TempDir(), "consentmail")
	if out, err := exec.Command("go", "build", "-o", bin, "consentmail/cmd/consentmail").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	const n = 300
	err := run(ctx, []string{"consentmail-bench", "-n", "300", "-conns", "4", "-consentmail", bin,
		"-modes", strings.Join(modes, ",")}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\nstdout:\n%s\nstderr:\n%s", err, &stdout, &stderr)
	}
	out := stdout.String()
	t.Logf("output:\n%s", out)
	if !regexp.MustCompile(`(?m)^  embedded ≥ 85% of the raw go-smtp sender \(\d+-byte messages\): \d+\.\d% (ok|MISSED)$`).MatchString(out) {
		t.Errorf("no target line comparing embedded with the raw go-smtp sender in:\n%s", out)
	}
	for _, m := range modes {
		row := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(m) + `\s+\d+\s+\d+%`)
		if !row.MatchString(out) {
			t.Errorf("no result row for mode %s in:\n%s", m, out)
		}
		sink := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(m) + `:\n(?:  .*\n)*?  sink: 300 messages \(\d+ bytes on average\), 300 distinct recipients, 0 duplicates, 0 missing, 0 unknown`)
		if !sink.MatchString(out) {
			t.Errorf("mode %s: want the sink to have got %d distinct messages, in:\n%s", m, n, out)
		}
	}
}

func TestRecipientIndex(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want int
	}{
		{recipientAddr(0), 0},
		{recipientAddr(999999), 999999},
		{"Bench42@Example.org", 42},
		{"bench-1@example.org", -1},
		{"bench1@example.com", -1},
		{"someone@example.org", -1},
		{"bench@example.org", -1},
	} {
		if got := recipientIndex(tc.addr); got != tc.want {
			t.Errorf("recipientIndex(%q) = %d, want %d", tc.addr, got, tc.want)
		}
	}
}
