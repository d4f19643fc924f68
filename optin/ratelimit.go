package optin

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Rate is a number of events per period, as in CONSENTMAIL_SIGNUP_RATE ("10/min").
// The zero Rate means unlimited.
type Rate struct {
	N   int
	Per time.Duration
}

// ParseRate parses "N/s", "N/min" or "N/h" (also "N/sec", "N/minute", "N/hour"); "0"
// means unlimited.
func ParseRate(s string) (Rate, error) {
	s = strings.TrimSpace(s)
	if s == "0" {
		return Rate{}, nil
	}
	n, unit, ok := strings.Cut(s, "/")
	count, err := strconv.Atoi(n)
	if !ok || err != nil || count < 1 {
		return Rate{}, fmt.Errorf("rate %q: want N/s, N/min or N/h with N ≥ 1, or 0 for unlimited", s)
	}
	per := map[string]time.Duration{"s": time.Second, "sec": time.Second, "second": time.Second,
		"m": time.Minute, "min": time.Minute, "minute": time.Minute, "h": time.Hour, "hour": time.Hour}[unit]
	if per == 0 {
		return Rate{}, fmt.Errorf("rate %q: unknown unit %q (s, min or h)", s, unit)
	}
	return Rate{N: count, Per: per}, nil
}

// String formats the rate as it is parsed.
func (r Rate) String() string {
	if r.N == 0 {
		return "0"
	}
	unit := map[time.Duration]string{time.Second: "s", time.Minute: "min", time.Hour: "h"}[r.Per]
	return strconv.Itoa(r.N) + "/" + unit
}
