package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"consentmail/mailer"
	"consentmail/mailer/deliverability"
)

// runDoctor checks in DNS what receivers check (SPF, DKIM, DMARC, alignment, the
// relay's PTR) and prints each finding with its fix; exit 1 when any fails.
func runDoctor(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) error {
	cfg, err := commandConfig("doctor", args, env, stderr, nil)
	if err != nil {
		return err
	}
	dcfg, err := deliverabilityConfig(cfg, nil)
	if err != nil {
		return err
	}
	res, err := deliverability.NewResolver(cfg.DNSServer)
	if err != nil {
		return fmt.Errorf("CONSENTMAIL_DNS_SERVER: %w", err)
	}
	rep := deliverability.New(res, dcfg).Run(ctx)
	fmt.Fprintf(stdout, "Deliverability of %s (DNS server %s)\n\n", cfg.From, rep.DNSServer)
	counts := map[deliverability.Status]int{}
	for _, f := range rep.Findings {
		counts[f.Status]++
		fmt.Fprintf(stdout, "%-4s  %-9s  %s\n      %s\n", strings.ToUpper(string(f.Status)), f.Check, f.Subject, f.Message)
		if f.Fix != "" {
			fmt.Fprintf(stdout, "      fix: %s\n", f.Fix)
		}
	}
	fmt.Fprintf(stdout, "\n%d ok, %d to improve, %d to fix\n", counts[deliverability.OK], counts[deliverability.Warn], counts[deliverability.Fail])
	if rep.Failed() {
		return exitError{1}
	}
	return nil
}

// deliverabilityConfig is what the checks look at: the From address, the DKIM keys
// (loaded from their files unless given), the relays.
func deliverabilityConfig(cfg *Config, keys []*mailer.DKIMSigner) (deliverability.Config, error) {
	if keys == nil {
		var err error
		if keys, err = loadDKIMKeys(cfg.DKIMKeys); err != nil {
			return deliverability.Config{}, err
		}
	}
	// The envelope sender is the From address until VERP return paths (inbound SMTP)
	// put it on the bounce domain.
	return deliverability.Config{From: cfg.From, DKIM: keys, Relays: relayHosts(cfg.Relays)}, nil
}
