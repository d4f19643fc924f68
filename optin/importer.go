package optin

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"golang.org/x/text/language"

	"consentmail/preferences"
	"consentmail/preferences/address"
	"consentmail/preferences/apiauth"
	"consentmail/preferences/httperr"
)

// ImportResult is the answer of an import (contract §4.4).
type ImportResult struct {
	Imported int           `json:"imported"`
	Pending  int           `json:"pending"`
	Rejected []ImportError `json:"rejected"`
	// The valid rows, with and without proof: what Uniform counts.
	withProof, withoutProof int
}

// ImportError is a rejected row.
type ImportError struct {
	Line  int    `json:"line"`
	Error string `json:"error"`
	rule  bool   // refused by the consent rules, not for what the row says
}

// Uniform is the result told to someone who may not learn whether an address is
// known (a marketer): every valid row counts by what it carries, imported with a
// proof of consent and pending without, and only rows refused for what they say
// (a bad address, a bad date…) are listed. Whether the consent book took a row, or
// had the person already (confirmed, withdrawn, restricted, erased), would tell
// that; the rules apply all the same, and an admin's import reports them by line.
func (r ImportResult) Uniform() ImportResult {
	out := ImportResult{Imported: r.withProof, Pending: r.withoutProof, Rejected: []ImportError{},
		withProof: r.withProof, withoutProof: r.withoutProof}
	for _, e := range r.Rejected {
		if !e.rule {
			out.Rejected = append(out.Rejected, e)
		}
	}
	return out
}

// MaxRejectedReported bounds the rejected rows listed in a result (the count is in
// the last one's message when more were cut).
const MaxRejectedReported = 10000

// HeaderError is a CSV whose header row (line 1) cannot be imported.
type HeaderError struct{ Reason string }

func (e *HeaderError) Error() string { return "line 1: " + e.Reason }

// importColumns are the fixed columns; any other column is an attribute.
var importColumns = []string{"email", "name", "locale", "consented_at", "consent_source", "consent_ip"}

// Import reads a CSV with a header row (columns email, name, locale, consented_at,
// consent_source, consent_ip, then attributes) and adds its rows to list in batches
// of preferences.MaxImportBatch: memory stays flat however many rows. Rows with proof
// (consented_at and consent_source) become confirmed with an imported event carrying
// it; others become pending, and are sent a confirmation when enqueue is not nil. A
// bad row is reported by its line and the others still go in.
func Import(ctx context.Context, store *preferences.Store, list, actor string, r io.Reader,
	enqueue preferences.EnqueueTx) (ImportResult, error) {
	res := ImportResult{Rejected: []ImportError{}}
	if _, err := store.List(ctx, list); err != nil {
		return res, err
	}
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		return res, &HeaderError{"no header row: " + err.Error()}
	}
	col := map[string]int{}
	var attrCols []string
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		if _, dup := col[h]; dup {
			return res, &HeaderError{fmt.Sprintf("column %q twice", h)}
		}
		col[h] = i
		if !slices.Contains(importColumns, h) {
			if !validAttrKey(h) {
				return res, &HeaderError{fmt.Sprintf("column %q is not an attribute name (letters, digits and _)", h)}
			}
			attrCols = append(attrCols, h)
		}
	}
	if _, ok := col["email"]; !ok {
		return res, &HeaderError{"no email column"}
	}
	var mu sync.Mutex                                 // guards res once batches are written concurrently
	reject := func(line int, msg string, rule bool) { // callers hold mu
		if len(res.Rejected) < MaxRejectedReported {
			res.Rejected = append(res.Rejected, ImportError{Line: line, Error: msg, rule: rule})
		}
	}
	// Up to importInFlight batches are written at once while the next is parsed: the
	// store's group committer writes them in one transaction, and sealing each row's
	// data (most of the cost) runs on every core.
	var (
		wg       sync.WaitGroup
		firstErr error
		slots    = make(chan struct{}, importInFlight)
	)
	batch := make([]preferences.ImportRow, 0, preferences.MaxImportBatch)
	lines := make([]int, 0, preferences.MaxImportBatch)
	flush := func() error {
		if len(batch) > 0 {
			slots <- struct{}{}
			wg.Add(1)
			go func(rows []preferences.ImportRow, lines []int) {
				defer func() { <-slots; wg.Done() }()
				out, err := store.Import(ctx, list, actor, rows, enqueue)
				mu.Lock()
				defer mu.Unlock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				res.Imported += out.Imported
				res.Pending += out.Pending
				for _, r := range out.Rejected {
					reject(lines[r.Row], r.Reason, true)
				}
			}(batch, lines)
			batch = make([]preferences.ImportRow, 0, preferences.MaxImportBatch)
			lines = make([]int, 0, preferences.MaxImportBatch)
		}
		mu.Lock()
		defer mu.Unlock()
		return firstErr
	}
	wait := func() error {
		wg.Wait()
		return firstErr
	}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			mu.Lock()
			reject(pe.StartLine, "not valid CSV: "+pe.Err.Error(), false)
			mu.Unlock()
			continue
		}
		if err != nil {
			wait()
			return res, err
		}
		line, _ := cr.FieldPos(0)
		row, msg := importRow(rec, col, attrCols)
		if msg != "" {
			mu.Lock()
			reject(line, msg, false)
			mu.Unlock()
			continue
		}
		mu.Lock()
		if row.HasProof() {
			res.withProof++
		} else {
			res.withoutProof++
		}
		mu.Unlock()
		batch = append(batch, row)
		lines = append(lines, line)
		if len(batch) == cap(batch) {
			if err := flush(); err != nil {
				wait()
				return res, err
			}
		}
	}
	flush()
	err = wait()
	slices.SortStableFunc(res.Rejected, func(a, b ImportError) int { return a.Line - b.Line })
	return res, err
}

// importInFlight bounds the batches an import writes at once (memory: that many
// batches of rows).
const importInFlight = 4

// importRow validates one row.
func importRow(rec []string, col map[string]int, attrCols []string) (preferences.ImportRow, string) {
	get := func(name string) string {
		if i, ok := col[name]; ok && i < len(rec) {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	addr, key, err := address.Normalise(get("email"))
	if err != nil {
		return preferences.ImportRow{}, "email: not an email address"
	}
	row := preferences.ImportRow{Email: addr, IndexKey: key, Name: get("name"), ConsentSource: get("consent_source"),
		ConsentIP: get("consent_ip")}
	if msg := checkLine(row.Name, 200); msg != "" {
		return row, "name: " + msg
	}
	if loc := get("locale"); loc != "" {
		tag, err := language.Parse(loc)
		if err != nil || len(loc) > 35 {
			return row, "locale: not a language tag such as en or fr"
		}
		row.Locale = tag.String()
	}
	if at := get("consented_at"); at != "" {
		t, err := time.Parse(time.RFC3339, at)
		if err != nil {
			if t, err = time.Parse("2006-01-02", at); err != nil {
				return row, "consented_at: not a date such as 2024-05-01T10:00:00Z"
			}
		}
		if t.After(time.Now().Add(24 * time.Hour)) {
			return row, "consented_at: in the future"
		}
		row.ConsentedAt = t
	}
	if (row.ConsentedAt.IsZero()) != (row.ConsentSource == "") {
		return row, "proof of consent needs both consented_at and consent_source"
	}
	if msg := checkLine(row.ConsentSource, 500); msg != "" {
		return row, "consent_source: " + msg
	}
	if row.ConsentIP != "" && net.ParseIP(row.ConsentIP) == nil {
		return row, "consent_ip: not an IP address"
	}
	if len(attrCols) > 0 {
		attrs := map[string]string{}
		for _, a := range attrCols {
			if v := get(a); v != "" {
				attrs[a] = v
			}
		}
		if len(attrs) > 0 {
			raw, _ := json.Marshal(attrs)
			if msg := checkAttributes(raw); msg != "" {
				return row, "attributes " + msg
			}
			row.Attributes = raw
		}
	}
	return row, ""
}

// importCSV serves POST /api/v1/lists/{id}/imports (contract §4.4): a text/csv body
// (up to the server's body limit, 1 MiB; the import command takes files of any size),
// ?send_optin=true to send confirmations to rows without proof.
func (h *AdminAPI) importCSV(c *fiber.Ctx) error {
	if ct := c.Get(fiber.HeaderContentType); !strings.HasPrefix(ct, "text/csv") {
		return httperr.New(fiber.StatusUnsupportedMediaType, "unsupported_media_type", "send the CSV as text/csv")
	}
	var enqueue preferences.EnqueueTx
	if c.Query("send_optin") == "true" {
		enqueue = OptinEnqueuer(h.q)
	}
	res, err := Import(c.UserContext(), h.store, c.Params("id"), apiauth.Actor(c),
		bytes.NewReader(c.Body()), enqueue)
	if !preferences.SeesPersonalData(apiauth.Caller(c).Role) {
		res = res.Uniform() // a marketer: no answer may tell whether an address is known
	}
	switch {
	case errors.Is(err, preferences.ErrNotFound):
		return httperr.NotFound("list")
	case errors.As(err, new(*HeaderError)):
		return httperr.Invalid(map[string]string{"csv": err.Error()})
	case err != nil:
		return err
	}
	return c.JSON(res)
}
