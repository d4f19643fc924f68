package preferences

import (
	"archive/zip"
	"encoding/csv"
	"encoding/json"
	"io"
	"strconv"
	"strings"
	"time"
)

// WriteZip writes the export as a zip of CSV files (GDPR art. 20, a commonly used
// machine-readable format): profile, subscriptions, consent_history, campaigns,
// bounces and processing. Maps (attributes, event details) are JSON in one cell.
func (x *Export) WriteZip(w io.Writer) error {
	zw := zip.NewWriter(w)
	file := func(name string, header []string, rows [][]string) error {
		f, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: x.GeneratedAt})
		if err != nil {
			return err
		}
		cw := csv.NewWriter(f)
		if err := cw.Write(header); err != nil {
			return err
		}
		if err := cw.WriteAll(rows); err != nil {
			return err
		}
		return cw.Error()
	}
	ts := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	}
	js := func(v any) string {
		b, _ := json.Marshal(v)
		return string(b)
	}
	s := x.Subscriber
	if err := file("profile.csv", []string{"id", "email", "name", "locale", "status", "tracking", "created_at", "attributes"},
		[][]string{{s.ID, s.Email, s.Name, s.Locale, s.Status, strconv.FormatBool(s.Tracking), ts(s.CreatedAt), js(s.Attributes)}}); err != nil {
		return err
	}
	var rows [][]string
	for _, sub := range s.Subscriptions {
		rows = append(rows, []string{sub.List, sub.Status, ts(sub.Since)})
	}
	if err := file("subscriptions.csv", []string{"list", "status", "since"}, rows); err != nil {
		return err
	}
	consentTexts := func(e Event) string {
		if len(e.ConsentTexts) == 0 {
			return ""
		}
		return js(e.ConsentTexts)
	}
	events := func(evs []Event) [][]string {
		var out [][]string
		for _, e := range evs {
			out = append(out, []string{strconv.FormatUint(e.Seq, 10), ts(e.At), e.Type, strings.Join(e.Lists, " "), e.Actor,
				e.IP, e.UserAgent, js(e.Details), consentTexts(e), e.PrevHash, e.Hash})
		}
		return out
	}
	eventHeader := []string{"seq", "at", "type", "lists", "actor", "ip", "user_agent", "details", "consent_texts", "prev_hash", "hash"}
	if err := file("consent_history.csv", eventHeader, events(x.ConsentHistory)); err != nil {
		return err
	}
	if err := file("bounces.csv", eventHeader, events(x.Bounces)); err != nil {
		return err
	}
	rows = nil
	for _, c := range x.Campaigns {
		rows = append(rows, []string{c.Campaign, c.Name, c.Result, ts(c.At)})
	}
	if err := file("campaigns.csv", []string{"campaign", "name", "result", "at"}, rows); err != nil {
		return err
	}
	rows = nil
	for _, p := range x.Processing {
		rows = append(rows, []string{p.List, p.Name, p.Purpose, p.LegalBasis, p.ConsentText, p.ConsentVersion,
			strconv.Itoa(p.RetentionDays), strings.Join(p.Recipients, "; "), p.PrivacyURL})
	}
	if err := file("processing.csv", []string{"list", "name", "purpose", "legal_basis", "consent_text", "consent_version",
		"retention_days", "recipients", "privacy_url"}, rows); err != nil {
		return err
	}
	return zw.Close()
}
