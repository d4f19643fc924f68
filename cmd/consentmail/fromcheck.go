package main

import (
	"errors"
	"fmt"
	"net/mail"
	"strings"

	"consentmail/mailer"
)

// fromCheck returns the check the list and campaign APIs run on a sender address:
// with DKIM keys configured, an address on a domain none covers is refused, since its
// mail would be sent unsigned and fail DMARC alignment. Without keys (or a sender),
// every address passes.
func fromCheck(sender *mailer.Sender) func(from string) error {
	if sender == nil || len(sender.DKIMDomains()) == 0 {
		return nil
	}
	return func(from string) error {
		err := sender.CheckFrom(from)
		if err == nil || !errors.Is(err, mailer.ErrNoDKIMKey) {
			return err
		}
		domain := from
		if a, perr := mail.ParseAddress(from); perr == nil {
			domain = strings.ToLower(a.Address[strings.LastIndexByte(a.Address, '@')+1:])
		}
		return fmt.Errorf("no DKIM key for %s: DMARC alignment would fail; add one to CONSENTMAIL_DKIM_KEYS (keys are for %s)",
			domain, strings.Join(sender.DKIMDomains(), ", "))
	}
}
