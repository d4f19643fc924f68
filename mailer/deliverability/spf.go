package deliverability

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// maxSPFLookups is RFC 7208 §4.6.4's limit on DNS lookups in one evaluation.
const maxSPFLookups = 10

// lookupError is a DNS failure (not an answer saying there is no record).
type lookupError struct{ err error }

func (e *lookupError) Error() string { return e.err.Error() }
func (e *lookupError) Unwrap() error { return e.err }

func isLookupErr(err error) bool {
	var le *lookupError
	return errors.As(err, &le)
}

// spfRecord returns domain's SPF record ("" when it has none), checking that there is
// one and that every term is one RFC 7208 defines.
func spfRecord(ctx context.Context, res *Resolver, domain string) (string, error) {
	txts, err := res.TXT(ctx, domain)
	if err != nil {
		return "", &lookupError{err}
	}
	var recs []string
	for _, t := range txts {
		if f := strings.Fields(t); len(f) > 0 && strings.EqualFold(f[0], "v=spf1") {
			recs = append(recs, t)
		}
	}
	switch len(recs) {
	case 0:
		return "", nil
	case 1:
	default:
		return "", fmt.Errorf("%s has %d SPF records; receivers ignore them all (permerror)", domain, len(recs))
	}
	for _, term := range strings.Fields(recs[0])[1:] {
		if _, _, _, _, err := parseTerm(term); err != nil {
			return "", err
		}
	}
	return recs[0], nil
}

// parseTerm splits an SPF term into its qualifier, name, argument and CIDR lengths
// ("24//64" style, for a and mx). Modifiers have qualifier '='.
func parseTerm(term string) (qual byte, name, arg, cidr string, err error) {
	qual = '+'
	if strings.ContainsAny(term[:1], "+-~?") {
		qual, term = term[0], term[1:]
	}
	i := strings.IndexAny(term, ":=/")
	if i < 0 {
		name = strings.ToLower(term)
	} else {
		name = strings.ToLower(term[:i])
		switch term[i] {
		case '=':
			return '=', name, term[i+1:], "", nil
		case ':':
			arg = term[i+1:]
		case '/':
			cidr = term[i+1:]
		}
	}
	switch name {
	case "all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists":
	default:
		return 0, "", "", "", fmt.Errorf("unknown SPF mechanism %q", term)
	}
	if (name == "a" || name == "mx") && arg != "" {
		if j := strings.IndexByte(arg, '/'); j >= 0 {
			arg, cidr = arg[:j], arg[j+1:]
		}
	}
	if (name == "include" || name == "exists") && arg == "" {
		return 0, "", "", "", fmt.Errorf("SPF mechanism %q needs a domain", term)
	}
	return qual, name, arg, cidr, nil
}

// evalSPF evaluates domain's SPF policy for ip (RFC 7208 §4.6): "pass", "fail",
// "softfail", "neutral" or "none"; an error for a permanent or temporary error. Macros
// (%{…}) and the exists and ptr mechanisms are taken as not matching.
func evalSPF(ctx context.Context, res *Resolver, domain string, ip netip.Addr, lookups *int) (string, error) {
	rec, err := spfRecord(ctx, res, domain)
	if err != nil || rec == "" {
		return "none", err
	}
	count := func() error {
		if *lookups++; *lookups > maxSPFLookups {
			return fmt.Errorf("more than %d DNS lookups (permerror): receivers stop there", maxSPFLookups)
		}
		return nil
	}
	result := map[byte]string{'+': "pass", '-': "fail", '~': "softfail", '?': "neutral"}
	redirect := ""
	for _, term := range strings.Fields(rec)[1:] {
		qual, name, arg, cidr, _ := parseTerm(term) // checked by spfRecord
		if qual == '=' {
			if name == "redirect" {
				redirect = arg
			}
			continue
		}
		if strings.Contains(arg, "%") {
			continue
		}
		match := false
		switch name {
		case "all":
			match = true
		case "ip4", "ip6":
			p, err := netip.ParsePrefix(arg)
			if err != nil {
				a, err2 := netip.ParseAddr(arg)
				if err2 != nil {
					return "", fmt.Errorf("bad address in %q", term)
				}
				p = netip.PrefixFrom(a, a.BitLen())
			}
			match = p.Contains(ip)
		case "a", "mx":
			if err := count(); err != nil {
				return "", err
			}
			target := domain
			if arg != "" {
				target = arg
			}
			hosts := []string{target}
			if name == "mx" {
				if hosts, err = res.MX(ctx, target); err != nil {
					return "", &lookupError{err}
				}
			}
			for _, h := range hosts {
				ips, err := res.IPs(ctx, h)
				if err != nil {
					return "", &lookupError{err}
				}
				for _, a := range ips {
					if cidrContains(a, cidr, ip) {
						match = true
					}
				}
			}
		case "include":
			if err := count(); err != nil {
				return "", err
			}
			r, err := evalSPF(ctx, res, arg, ip, lookups)
			if err != nil {
				return "", err
			}
			if r == "none" {
				return "", fmt.Errorf("include:%s names a domain without an SPF record (permerror)", arg)
			}
			match = r == "pass"
		case "exists", "ptr":
			if err := count(); err != nil {
				return "", err
			}
		}
		if match {
			return result[qual], nil
		}
	}
	if redirect != "" {
		if err := count(); err != nil {
			return "", err
		}
		return evalSPF(ctx, res, redirect, ip, lookups)
	}
	return "neutral", nil
}

// cidrContains reports whether ip is in the network of a with the CIDR lengths of an
// a or mx mechanism ("", "24", "24//64", "/64").
func cidrContains(a netip.Addr, cidr string, ip netip.Addr) bool {
	if a.Is4() != ip.Is4() {
		return false
	}
	parts := strings.Split(cidr, "/")
	bits := ""
	switch {
	case a.Is4():
		bits = parts[0]
	case len(parts) == 3:
		bits = parts[2]
	case len(parts) == 2 && parts[0] == "":
		bits = parts[1]
	}
	n := a.BitLen()
	if bits != "" {
		var err error
		if n, err = strconv.Atoi(bits); err != nil || n < 0 || n > a.BitLen() {
			return false
		}
	}
	p, err := a.Prefix(n)
	return err == nil && p.Contains(ip)
}
