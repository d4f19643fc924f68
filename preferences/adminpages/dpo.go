package adminpages

import (
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"consentmail/preferences"
)

// dpoPage is the DPO's page: finding a person, and the ways to the ledger, its
// verification and the register.
type dpoPage struct {
	Email  string
	Errors map[string]string
}

func (p *Pages) dpo(c *fiber.Ctx) error { return p.renderDPO(c, fiber.StatusOK, "", nil) }

func (p *Pages) renderDPO(c *fiber.Ctx, status int, email string, bad map[string]string) error {
	errKey := ""
	if len(bad) > 0 {
		errKey = "book.err.form"
	}
	return p.render(c, view{name: "dpo", section: "dpo", title: "dpo.title", status: status, errKey: errKey,
		data: dpoPage{Email: email, Errors: bad}})
}

// eventTypes are the ledger's event types, for the filter.
var eventTypes = []string{preferences.EventSignup, preferences.EventConfirmationSent, preferences.EventConfirmed,
	preferences.EventUnsubscribed, preferences.EventPreferences, preferences.EventTrackingGranted,
	preferences.EventTrackingWithdrawn, preferences.EventRectified, preferences.EventRestricted,
	preferences.EventUnrestricted, preferences.EventExported, preferences.EventErased, preferences.EventExpired,
	preferences.EventBounced, preferences.EventComplained, preferences.EventImported, preferences.EventUnmasked}

// ledgerPage is a page of the ledger browser.
type ledgerPage struct {
	Types      []string
	Subscriber string // filters, as typed
	Type       string
	From, To   string // dates, 2006-01-02, UTC
	Events     []ledgerEvent
	Next       string // the address of the next page, "" when there is none
	First      bool   // this is the first page of the filter
	Errors     map[string]string
}

// ledgerEvent is an event with its details in a stable order.
type ledgerEvent struct {
	preferences.Event
	Keys []string // of Details, sorted
}

// ledgerLimit is how many events a page of the ledger shows.
const ledgerLimit = 50

const day = "2006-01-02"

func (p *Pages) ledger(c *fiber.Ctx) error {
	d := ledgerPage{Types: eventTypes, Subscriber: strings.TrimSpace(c.Query("subscriber")), Type: c.Query("type"),
		From: c.Query("from"), To: c.Query("to"), Errors: map[string]string{}}
	if d.Type != "" && !slices.Contains(eventTypes, d.Type) {
		d.Errors["type"] = "dpo.err.type"
	}
	var from, to time.Time
	var err error
	if d.From != "" {
		if from, err = time.Parse(day, d.From); err != nil {
			d.Errors["from"] = "dpo.err.date"
		}
	}
	if d.To != "" {
		if to, err = time.Parse(day, d.To); err != nil {
			d.Errors["to"] = "dpo.err.date"
		}
		to = to.AddDate(0, 0, 1) // the whole day
	}
	var after uint64
	if cur := c.Query("cursor"); cur != "" {
		if after, err = strconv.ParseUint(cur, 10, 64); err != nil {
			d.Errors["cursor"] = "dpo.err.cursor"
		}
	}
	if len(d.Errors) > 0 {
		return p.render(c, view{name: "ledger", section: "dpo", title: "dpo.ledger.title",
			status: fiber.StatusUnprocessableEntity, errKey: "book.err.form", data: d})
	}
	if !from.IsZero() {
		start, err := p.store.LedgerSeqBefore(c.UserContext(), from)
		if err != nil {
			return err
		}
		after = max(after, start)
	}
	d.First = c.Query("cursor") == ""
	// The last event of the range: none after it is shown, and the paging stops there.
	var last uint64
	bounded := !to.IsZero()
	if bounded {
		if last, err = p.store.LedgerSeqBefore(c.UserContext(), to); err != nil {
			return err
		}
	}
	var events []preferences.Event
	next := uint64(0)
	if !bounded || after < last {
		events, next, err = p.store.Ledger(c.UserContext(), preferences.LedgerQuery{Subscriber: d.Subscriber,
			Type: d.Type, After: after, Limit: ledgerLimit})
		if err != nil {
			return err
		}
	}
	for _, e := range events {
		if bounded && e.Seq > last {
			next = 0
			break
		}
		d.Events = append(d.Events, ledgerEvent{Event: e, Keys: slices.Sorted(maps.Keys(e.Details))})
	}
	if bounded && next >= last {
		next = 0
	}
	if next > 0 {
		q := url.Values{"cursor": {strconv.FormatUint(next, 10)}}
		for k, v := range map[string]string{"subscriber": d.Subscriber, "type": d.Type, "from": d.From, "to": d.To} {
			if v != "" {
				q.Set(k, v)
			}
		}
		d.Next = "/admin/dpo/ledger?" + q.Encode()
	}
	return p.render(c, view{name: "ledger", section: "dpo", title: "dpo.ledger.title", data: d})
}

// verifyPage is the result of a verification of the ledger.
type verifyPage struct {
	Result preferences.VerifyResult
	Events int64
}

func (p *Pages) verify(c *fiber.Ctx) error {
	res, err := p.store.VerifyLedger(c.UserContext())
	if err != nil {
		return err
	}
	return p.render(c, view{name: "verify", section: "dpo", title: "dpo.verify.title",
		data: verifyPage{Result: res, Events: int64(res.Events)}})
}

func (p *Pages) registerPage(c *fiber.Ctx) error {
	return p.render(c, view{name: "register", section: "dpo", title: "dpo.register.title",
		data: p.store.BuildRegister(p.register)})
}

// registerJSON downloads the register as the API serves it.
func (p *Pages) registerJSON(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="register.json"`)
	return c.JSON(p.store.BuildRegister(p.register))
}

// registerMarkdown downloads the register as Markdown (the API's ?format=md).
func (p *Pages) registerMarkdown(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, "text/markdown; charset=utf-8")
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="register.md"`)
	return c.SendString(p.store.BuildRegister(p.register).Markdown())
}
