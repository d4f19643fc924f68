// Package deliverability checks, in DNS, what receiving mail servers check before they
// trust consentmail's mail, and says in plain words what to fix. It is `consentmail
// doctor` and GET /api/v1/deliverability.
//
// For each sending domain (the domain of CONSENTMAIL_FROM and of every DKIM key) it
// checks:
//
//   - spf: the envelope (MAIL FROM) domain has exactly one parseable SPF record
//     (RFC 7208), that does not end in +all and that authorizes each relay's public
//     address (mechanisms ip4, ip6, a, mx, include and redirect are evaluated, within
//     RFC 7208's limit of 10 DNS lookups);
//   - dkim: the domain's mail is signed, and the public key published at
//     selector._domainkey.domain is the configured key (RFC 6376);
//   - dmarc: _dmarc.domain, or its organizational domain's, holds a DMARC record
//     (RFC 7489), and its policy;
//   - alignment: DKIM's d= (or, failing that, the envelope domain) matches the From
//     domain as the DMARC record's adkim/aspf require, so that DMARC can pass.
//
// And for each relay:
//
//   - ptr: its public address has a reverse DNS name that resolves back to it
//     (forward-confirmed reverse DNS).
//
// Every lookup goes to one configurable DNS server ([NewResolver]), so tests run against
// a server on loopback. A lookup that fails (timeout, SERVFAIL) is a warning, never
// taken for a missing record.
package deliverability

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net/mail"
	"net/netip"
	"slices"
	"strings"

	"github.com/emersion/go-msgauth/dmarc"
	"golang.org/x/net/publicsuffix"

	"consentmail/mailer"
)

// Status is a finding's verdict.
type Status string

// The statuses: OK needs nothing; Warn works but should be improved; Fail makes mail
// land in spam or be refused.
const (
	OK   Status = "ok"
	Warn Status = "warn"
	Fail Status = "fail"
)

// Finding is the result of one check.
type Finding struct {
	// Check is "spf", "dkim", "dmarc", "alignment" or "ptr".
	Check string `json:"check"`
	// Subject is what was checked: a domain, or a relay's address.
	Subject string `json:"subject"`
	Status  Status `json:"status"`
	// Message says what was found, in plain words.
	Message string `json:"message"`
	// Fix says what to do, when Status is not OK.
	Fix string `json:"fix,omitempty"`
}

// Report is the findings of a run, domain by domain, then relay by relay.
type Report struct {
	// DNSServer is the server that was asked.
	DNSServer string    `json:"dns_server"`
	Findings  []Finding `json:"findings"`
}

// Failed reports whether any finding is a failure.
func (r Report) Failed() bool {
	return slices.ContainsFunc(r.Findings, func(f Finding) bool { return f.Status == Fail })
}

// Config is what is checked.
type Config struct {
	// From is the default From address (CONSENTMAIL_FROM).
	From string
	// Domains are further From domains to check (e.g. of lists' from addresses).
	Domains []string
	// EnvelopeDomain is the domain of the envelope sender (MAIL FROM, the return
	// path) when it is not the From address's: the bounce domain of VERP addresses.
	// Empty means each From domain is its own envelope domain.
	EnvelopeDomain string
	// DKIM are the configured signers (Options.DKIM of the mailer).
	DKIM []*mailer.DKIMSigner
	// Relays are the relays' host names or addresses.
	Relays []string
}

// Checker runs the checks for one configuration.
type Checker struct {
	res *Resolver
	cfg Config
}

// New returns a Checker asking res.
func New(res *Resolver, cfg Config) *Checker {
	return &Checker{res: res, cfg: cfg}
}

// Run performs every check. It always returns a report: failed lookups are findings.
func (c *Checker) Run(ctx context.Context) Report {
	rep := Report{DNSServer: c.res.Server()}
	add := func(f Finding) { rep.Findings = append(rep.Findings, f) }

	relayIPs := map[string][]netip.Addr{}
	var relayErrs []Finding
	for _, h := range c.cfg.Relays {
		ips, err := c.res.IPs(ctx, h)
		switch {
		case err != nil:
			relayErrs = append(relayErrs, Finding{Check: "ptr", Subject: h, Status: Warn,
				Message: fmt.Sprintf("could not look up the relay %s: %v", h, err), Fix: "check the DNS server and run the check again"})
		case len(ips) == 0:
			relayErrs = append(relayErrs, Finding{Check: "ptr", Subject: h, Status: Fail,
				Message: fmt.Sprintf("the relay %s has no address in DNS", h), Fix: "check the host name in CONSENTMAIL_SMTP_URL"})
		}
		relayIPs[h] = ips
	}

	spfDone := map[string]bool{}
	for _, d := range c.domains() {
		env := c.cfg.EnvelopeDomain
		if env == "" {
			env = d
		}
		spfOK := false
		if !spfDone[env] {
			spfDone[env] = true
			f := c.checkSPF(ctx, env, relayIPs)
			spfOK = f.Status != Fail
			add(f)
		} else {
			spfOK = true
		}
		signer := mailer.DKIMSignerFor(c.cfg.DKIM, d)
		dk := c.checkDKIM(ctx, d, signer)
		add(dk)
		rec, f := c.checkDMARC(ctx, d)
		add(f)
		add(alignment(d, env, signer, dk.Status == OK, spfOK, rec))
	}

	rep.Findings = append(rep.Findings, relayErrs...)
	if len(c.cfg.Relays) == 0 {
		add(Finding{Check: "ptr", Status: Warn, Message: "no relay is configured, so its reverse DNS cannot be checked",
			Fix: "set CONSENTMAIL_SMTP_URL"})
	}
	for _, h := range c.cfg.Relays {
		for _, ip := range relayIPs[h] {
			add(c.checkPTR(ctx, h, ip))
		}
	}
	return rep
}

// domains are the From domains to check, lower case, each once.
func (c *Checker) domains() []string {
	var out []string
	addDomain := func(d string) {
		d = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(d), "."))
		if d != "" && !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	if a, err := mail.ParseAddress(c.cfg.From); err == nil {
		addDomain(a.Address[strings.LastIndexByte(a.Address, '@')+1:])
	}
	for _, s := range c.cfg.DKIM {
		addDomain(s.Domain())
	}
	for _, d := range c.cfg.Domains {
		addDomain(d)
	}
	return out
}

// public reports whether receivers on the Internet could see ip as a sender.
func public(ip netip.Addr) bool {
	return ip.IsGlobalUnicast() && !ip.IsPrivate()
}

func (c *Checker) checkSPF(ctx context.Context, domain string, relayIPs map[string][]netip.Addr) Finding {
	f := Finding{Check: "spf", Subject: domain}
	example := "v=spf1 " + c.spfExample(relayIPs) + " -all"
	rec, err := spfRecord(ctx, c.res, domain)
	switch {
	case err != nil && isLookupErr(err):
		f.Status, f.Message, f.Fix = Warn, fmt.Sprintf("could not look up the SPF record of %s: %v", domain, err), "check the DNS server and run the check again"
		return f
	case err != nil:
		f.Status, f.Message = Fail, fmt.Sprintf("the SPF record of %s is broken: %v", domain, err)
		f.Fix = fmt.Sprintf("publish exactly one TXT record at %s starting with v=spf1, such as %q", domain, example)
		return f
	case rec == "":
		f.Status = Fail
		f.Message = fmt.Sprintf("%s has no SPF record: receivers cannot tell which servers may send its mail", domain)
		f.Fix = fmt.Sprintf("publish a TXT record at %s: %q (or include your mail provider's SPF)", domain, example)
		return f
	}
	terms := strings.Fields(rec)
	last := terms[len(terms)-1]
	switch strings.ToLower(last) {
	case "+all", "all":
		f.Status = Fail
		f.Message = fmt.Sprintf("the SPF record of %s ends in %s: it lets any server in the world send as %s", domain, last, domain)
		f.Fix = "end the record with -all (or ~all) instead"
		return f
	}
	var notCovered []string
	var private []string
	for _, h := range c.cfg.Relays {
		for _, ip := range relayIPs[h] {
			if !public(ip) {
				private = append(private, ip.String())
				continue
			}
			lookups := 0
			res, err := evalSPF(ctx, c.res, domain, ip, &lookups)
			if err != nil {
				f.Status, f.Message = Fail, fmt.Sprintf("the SPF record of %s cannot be evaluated: %v", domain, err)
				f.Fix = fmt.Sprintf("fix the record at %s; for example %q", domain, example)
				return f
			}
			if res != "pass" {
				notCovered = append(notCovered, fmt.Sprintf("%s (%s)", ip, h))
			}
		}
	}
	switch {
	case len(notCovered) > 0:
		f.Status = Warn
		f.Message = fmt.Sprintf("the SPF record of %s does not authorize the relay at %s: if the relay sends from that address, SPF fails",
			domain, strings.Join(notCovered, ", "))
		f.Fix = fmt.Sprintf("add the relay to the record, e.g. %q, or include your mail provider's SPF as it documents", example)
	case strings.EqualFold(last, "?all"):
		f.Status = Warn
		f.Message = fmt.Sprintf("the SPF record of %s ends in ?all: it says nothing about other servers", domain)
		f.Fix = "end the record with -all (or ~all)"
	default:
		f.Status = OK
		f.Message = fmt.Sprintf("%s has an SPF record: %s", domain, rec)
		if len(private) > 0 {
			f.Message += fmt.Sprintf(" (the relay is at a private address, %s, so whether the record covers the address it sends from is for its operator to check)",
				strings.Join(private, ", "))
		}
	}
	return f
}

// spfExample is the mechanisms that would authorize the relays.
func (c *Checker) spfExample(relayIPs map[string][]netip.Addr) string {
	var out []string
	for _, h := range c.cfg.Relays {
		for _, ip := range relayIPs[h] {
			if !public(ip) {
				continue
			}
			if ip.Is4() {
				out = append(out, "ip4:"+ip.String())
			} else {
				out = append(out, "ip6:"+ip.String())
			}
		}
	}
	if len(out) == 0 {
		return "include:YOUR-PROVIDER"
	}
	return strings.Join(out, " ")
}

func (c *Checker) checkDKIM(ctx context.Context, domain string, signer *mailer.DKIMSigner) Finding {
	f := Finding{Check: "dkim", Subject: domain}
	if signer == nil {
		f.Status = Fail
		f.Message = fmt.Sprintf("mail from %s is sent without a DKIM signature: no key is configured for it", domain)
		f.Fix = fmt.Sprintf("make a key (openssl genrsa -out %s.pem 2048), add it with CONSENTMAIL_DKIM_KEYS=%s:SELECTOR:/path/%s.pem and publish the TXT record `consentmail doctor` then shows",
			domain, domain, domain)
		return f
	}
	name := signer.DNSName()
	want := signer.DNSRecord()
	fix := fmt.Sprintf("publish a TXT record at %s: %q", name, want)
	txts, err := c.res.TXT(ctx, name)
	if err != nil {
		f.Status, f.Message, f.Fix = Warn, fmt.Sprintf("could not look up the DKIM key at %s: %v", name, err), "check the DNS server and run the check again"
		return f
	}
	var found []string
	for _, t := range txts {
		if tags := dkimTags(t); tags != nil {
			found = append(found, tags["p"])
		}
	}
	switch {
	case len(found) == 0:
		f.Status = Fail
		f.Message = fmt.Sprintf("no DKIM public key is published at %s: receivers cannot verify the signatures of mail from %s", name, domain)
		f.Fix = fix
		return f
	case len(found) > 1:
		f.Status = Fail
		f.Message = fmt.Sprintf("%d DKIM records are published at %s; receivers need exactly one", len(found), name)
		f.Fix = fmt.Sprintf("keep only one TXT record at %s: %q", name, want)
		return f
	case found[0] == "":
		f.Status = Fail
		f.Message = fmt.Sprintf("the DKIM key at %s is revoked (empty p=)", name)
		f.Fix = fix
		return f
	}
	if !sameKey(found[0], dkimTags(want)["p"]) {
		f.Status = Fail
		f.Message = fmt.Sprintf("the DKIM key published at %s is not the key consentmail signs with: every signature of %s will fail", name, signer.Domain())
		f.Fix = fix + ", or configure the private key that matches the published one"
		return f
	}
	f.Status = OK
	f.Message = fmt.Sprintf("mail from %s is signed with d=%s s=%s, and the key published at %s matches", domain, signer.Domain(), signer.Selector(), name)
	return f
}

// dkimTags parses a DKIM key record's tags; nil when txt is not one.
func dkimTags(txt string) map[string]string {
	tags := map[string]string{}
	for _, part := range strings.Split(txt, ";") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			continue
		}
		tags[strings.TrimSpace(k)] = strings.Join(strings.Fields(v), "")
	}
	if v, ok := tags["v"]; ok && v != "DKIM1" {
		return nil
	}
	if _, ok := tags["p"]; !ok {
		return nil
	}
	return tags
}

// sameKey compares two p= values: the same bytes, or the same RSA key written once as
// SubjectPublicKeyInfo and once as PKCS#1 (both are seen in the wild).
func sameKey(a, b string) bool {
	if a == b {
		return true
	}
	da, err1 := base64.StdEncoding.DecodeString(a)
	db, err2 := base64.StdEncoding.DecodeString(b)
	if err1 != nil || err2 != nil {
		return false
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	parse := func(der []byte) equaler {
		if k, err := x509.ParsePKIXPublicKey(der); err == nil {
			if e, ok := k.(equaler); ok {
				return e
			}
		}
		if k, err := x509.ParsePKCS1PublicKey(der); err == nil {
			return k
		}
		return nil
	}
	ka, kb := parse(da), parse(db)
	return ka != nil && kb != nil && ka.Equal(kb)
}

// orgDomain is the organizational domain (RFC 7489 §3.2) of d.
func orgDomain(d string) string {
	if o, err := publicsuffix.EffectiveTLDPlusOne(d); err == nil {
		return o
	}
	return d
}

func (c *Checker) checkDMARC(ctx context.Context, domain string) (*dmarc.Record, Finding) {
	f := Finding{Check: "dmarc", Subject: domain}
	org := orgDomain(domain)
	names := []string{"_dmarc." + domain}
	if org != domain {
		names = append(names, "_dmarc."+org)
	}
	for _, name := range names {
		txts, err := c.res.TXT(ctx, name)
		if err != nil {
			f.Status, f.Message, f.Fix = Warn, fmt.Sprintf("could not look up the DMARC record at %s: %v", name, err), "check the DNS server and run the check again"
			return nil, f
		}
		var recs []string
		for _, t := range txts {
			if strings.HasPrefix(strings.TrimSpace(t), "v=DMARC1") {
				recs = append(recs, t)
			}
		}
		if len(recs) == 0 {
			continue
		}
		if len(recs) > 1 {
			f.Status, f.Message = Fail, fmt.Sprintf("%d DMARC records are published at %s; receivers ignore them all", len(recs), name)
			f.Fix = "keep exactly one"
			return nil, f
		}
		rec, err := dmarc.Parse(recs[0])
		if err != nil {
			f.Status, f.Message = Fail, fmt.Sprintf("the DMARC record at %s is broken: %v", name, err)
			f.Fix = fmt.Sprintf("publish a valid record at %s, such as %q", name, "v=DMARC1; p=none; rua=mailto:dmarc@"+org)
			return nil, f
		}
		switch rec.Policy {
		case dmarc.PolicyNone:
			f.Status = Warn
			f.Message = fmt.Sprintf("%s has a DMARC record (%s) with p=none: receivers only report, nothing protects the domain from forgery", domain, name)
			f.Fix = "once the reports show your mail passing, move to p=quarantine, then p=reject"
		default:
			f.Status = OK
			f.Message = fmt.Sprintf("%s has a DMARC record (%s) with p=%s", domain, name, rec.Policy)
		}
		return rec, f
	}
	f.Status = Fail
	f.Message = fmt.Sprintf("%s has no DMARC record: Gmail and Yahoo refuse or junk bulk mail from domains without one", domain)
	f.Fix = fmt.Sprintf("publish a TXT record at _dmarc.%s: %q", org, "v=DMARC1; p=none; rua=mailto:dmarc@"+org)
	return nil, f
}

// aligned reports whether domain a aligns with b under mode (RFC 7489 §3.1).
func aligned(a, b string, mode dmarc.AlignmentMode) bool {
	if mode == dmarc.AlignmentStrict {
		return strings.EqualFold(a, b)
	}
	return strings.EqualFold(orgDomain(a), orgDomain(b))
}

func alignment(from, env string, signer *mailer.DKIMSigner, dkimOK, spfOK bool, rec *dmarc.Record) Finding {
	f := Finding{Check: "alignment", Subject: from}
	adkim, aspf := dmarc.AlignmentMode(dmarc.AlignmentRelaxed), dmarc.AlignmentMode(dmarc.AlignmentRelaxed)
	if rec != nil {
		if rec.DKIMAlignment != "" {
			adkim = rec.DKIMAlignment
		}
		if rec.SPFAlignment != "" {
			aspf = rec.SPFAlignment
		}
	}
	dkimAligned := signer != nil && dkimOK && aligned(from, signer.Domain(), adkim)
	spfAligned := spfOK && aligned(from, env, aspf)
	switch {
	case dkimAligned:
		f.Status = OK
		f.Message = fmt.Sprintf("DKIM (d=%s) aligns with the From domain %s, so DMARC passes", signer.Domain(), from)
	case spfAligned:
		f.Status = Warn
		f.Message = fmt.Sprintf("only SPF (envelope domain %s) aligns with the From domain %s; forwarded mail loses SPF and then fails DMARC", env, from)
		f.Fix = "fix the DKIM finding for " + from + " above"
	default:
		f.Status = Fail
		switch {
		case signer == nil:
			f.Message = fmt.Sprintf("mail from %s has no DKIM signature, and its envelope domain %s does not align with it: DMARC fails", from, env)
		case !dkimOK:
			f.Message = fmt.Sprintf("the DKIM signature of mail from %s (d=%s) cannot be verified, and its envelope domain %s does not align with it: DMARC fails", from, signer.Domain(), env)
		default:
			f.Message = fmt.Sprintf("neither DKIM d=%s nor the envelope domain %s aligns with the From domain %s: DMARC fails", signer.Domain(), env, from)
		}
		f.Fix = fmt.Sprintf("sign mail from %s with a key of %s (CONSENTMAIL_DKIM_KEYS) and publish it", from, orgDomain(from))
	}
	return f
}

func (c *Checker) checkPTR(ctx context.Context, host string, ip netip.Addr) Finding {
	f := Finding{Check: "ptr", Subject: ip.String()}
	if !public(ip) {
		f.Status = Warn
		f.Message = fmt.Sprintf("the relay %s is at a private address (%s): receivers see the address it sends from, which cannot be checked from here", host, ip)
		f.Fix = "ask the relay's operator that its sending address has a reverse DNS name that resolves back to it"
		return f
	}
	names, err := c.res.PTR(ctx, ip)
	if err != nil {
		f.Status, f.Message, f.Fix = Warn, fmt.Sprintf("could not look up the reverse DNS of %s: %v", ip, err), "check the DNS server and run the check again"
		return f
	}
	fix := fmt.Sprintf("ask whoever runs %s (your hosting or mail provider) to set its reverse DNS (PTR) to a name such as %s, and make that name's A/AAAA record point to %s", ip, host, ip)
	if len(names) == 0 {
		f.Status = Fail
		f.Message = fmt.Sprintf("the relay's address %s (%s) has no reverse DNS name: many receivers refuse mail from such addresses", ip, host)
		f.Fix = fix
		return f
	}
	for _, n := range names {
		ips, err := c.res.IPs(ctx, n)
		if err != nil {
			f.Status, f.Message, f.Fix = Warn, fmt.Sprintf("could not look up %s, the reverse DNS name of %s: %v", n, ip, err), "check the DNS server and run the check again"
			return f
		}
		if slices.Contains(ips, ip) {
			f.Status = OK
			f.Message = fmt.Sprintf("the relay's address %s has the reverse DNS name %s, which resolves back to it", ip, n)
			return f
		}
	}
	f.Status = Fail
	f.Message = fmt.Sprintf("the reverse DNS name of %s (%s) does not resolve back to %s: receivers treat that as forged", ip, strings.Join(names, ", "), ip)
	f.Fix = fix
	return f
}
