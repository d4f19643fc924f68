package campaigns

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	gojson "github.com/goccy/go-json"
	"go.etcd.io/bbolt"

	"consentmail/preferences"
)

// bucketCampaigns holds one JSON record per campaign id.
var bucketCampaigns = []byte("campaigns.campaigns")

// Campaign is a campaign as stored and as the API shows it. Its content (subject,
// HTML, text) is copied from the template when it is created, so that editing the
// template later never changes a campaign under way.
type Campaign struct {
	ID       string     `json:"id"`
	Name     string     `json:"name"`
	Subject  string     `json:"subject"`
	Lists    []string   `json:"lists"`
	Template string     `json:"template,omitempty"`
	HTML     string     `json:"html"`
	Text     string     `json:"text,omitempty"`
	From     string     `json:"from"`
	SendAt   *time.Time `json:"send_at,omitempty"`
	Track    bool       `json:"track"`
	Status   string     `json:"status"`
	// PausedReason says why a campaign paused itself (Engine, rates); empty for a
	// campaign paused by hand. Resuming clears it.
	PausedReason string     `json:"paused_reason,omitempty"`
	CreatedAt    time.Time  `json:"created_at"`
	UpdatedAt    time.Time  `json:"updated_at"`
	StartedAt    *time.Time `json:"started_at,omitempty"`
	FinishedAt   *time.Time `json:"finished_at,omitempty"`
	Stats        Stats      `json:"stats"`
}

// Stats are a campaign's live counters (contract §4.5).
type Stats struct {
	Audience     int64 `json:"audience"`
	Queued       int64 `json:"queued"`
	Sent         int64 `json:"sent"`
	Failed       int64 `json:"failed"`
	Skipped      int64 `json:"skipped"`
	Bounced      int64 `json:"bounced"`
	Complained   int64 `json:"complained"`
	Unsubscribed int64 `json:"unsubscribed"`
	Opens        int64 `json:"opens"`
	Clicks       int64 `json:"clicks"`
	// MachineOpens and MachineClicks are the hits machines made (an extension of the
	// contract: Apple's privacy proxy, security scanners, HEAD requests; MachineHit),
	// counted apart from Opens and Clicks, which are people's.
	MachineOpens  int64 `json:"machine_opens"`
	MachineClicks int64 `json:"machine_clicks"`
	// Excluded are the people of the campaign's lists who were left out when it
	// started, each counted once, by reason (see Excluded).
	Excluded Excluded `json:"excluded"`
	// BounceRate is bounced (relay's rejections at send time and bounce reports) over
	// the messages the relay answered for (sent and rejected at send time);
	// ComplaintRate is complained over sent. Both are 0 before anything was sent.
	BounceRate    float64 `json:"bounce_rate"`
	ComplaintRate float64 `json:"complaint_rate"`
	// Domains are the same counters and rates by recipient address domain: the
	// large mailbox providers by name (DomainBucket), every other domain together
	// under "other", so that a person's own domain is never shown nor kept.
	Domains map[string]DomainStats `json:"domains,omitempty"`
}

// DomainStats are a campaign's counters for one recipient domain.
type DomainStats struct {
	Sent          int64   `json:"sent"`
	Bounced       int64   `json:"bounced"`
	Complained    int64   `json:"complained"`
	BounceRate    float64 `json:"bounce_rate"`
	ComplaintRate float64 `json:"complaint_rate"`
}

// plan is the planner's progress through the audience, stored with the campaign so
// that a restart continues where it stopped.
type plan struct {
	Audience int64                      `json:"audience"`
	Counted  bool                       `json:"counted,omitempty"`
	Queued   int64                      `json:"queued"`
	Jobs     int64                      `json:"jobs"`
	Cursor   preferences.AudienceCursor `json:"cursor"`
	Done     bool                       `json:"done,omitempty"` // the whole audience is queued
	Excluded Excluded                   `json:"excluded,omitzero"`
	Unsubs   int64                      `json:"unsubs,omitempty"`
	// Bounces and Complaints are reported back by inbound mail (Engine.Bounced,
	// Engine.Complained).
	Bounces    int64 `json:"bounces,omitempty"`
	Complaints int64 `json:"complaints,omitempty"`
	// Opens and Clicks are the tracked hits of people written so far
	// (Engine.FlushHits): every hit, not unique people; MachineOpens and MachineClicks
	// those of machines.
	Opens         int64 `json:"opens,omitempty"`
	Clicks        int64 `json:"clicks,omitempty"`
	MachineOpens  int64 `json:"machine_opens,omitempty"`
	MachineClicks int64 `json:"machine_clicks,omitempty"`
	// Watch is where the window of the auto-pause rates starts: the counters when
	// the campaign was last resumed after pausing itself (zero before).
	Watch watch `json:"watch,omitzero"`
	// Domains are Bounces and Complaints by recipient domain, bucketed as the
	// tracker's send counters are (Counts.Domains).
	Domains map[string]domainFeedback `json:"domains,omitempty"`
}

// domainFeedback are the bounce reports and complaints of one recipient domain.
type domainFeedback struct {
	Bounces    int64 `json:"b,omitempty"`
	Complaints int64 `json:"c,omitempty"`
}

func (p *plan) feedback(domain string, bounces, complaints int64) {
	if p.Domains == nil {
		p.Domains = map[string]domainFeedback{}
	}
	d := p.Domains[domain]
	d.Bounces += bounces
	d.Complaints += complaints
	p.Domains[domain] = d
}

// watch are counters at the start of a window of the auto-pause rates.
type watch struct {
	Sent        int64 `json:"sent,omitempty"`
	SyncBounces int64 `json:"sync_bounces,omitempty"`
	Bounces     int64 `json:"bounces,omitempty"`
	Complaints  int64 `json:"complaints,omitempty"`
}

type record struct {
	Campaign
	Plan plan `json:"plan"`
}

func newCampaignID(now time.Time) string {
	var b [12]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixMilli())<<16)
	rand.Read(b[6:]) // never fails (crypto/rand documents it)
	return "cmp_" + hex.EncodeToString(b[:])
}

func getRecord(tx *bbolt.Tx, id string) (*record, error) {
	v := tx.Bucket(bucketCampaigns).Get([]byte(id))
	if v == nil {
		return nil, ErrCampaignNotFound
	}
	var r record
	if err := gojson.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("campaign %s: %w", id, err)
	}
	return &r, nil
}

func putRecord(tx *bbolt.Tx, r *record) error {
	r.Stats = Stats{}
	raw, err := gojson.Marshal(r)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketCampaigns).Put([]byte(r.ID), raw)
}

// createCampaign stores a new draft; c is validated by the caller.
func (s *Store) createCampaign(ctx context.Context, c Campaign) (Campaign, error) {
	if err := ctx.Err(); err != nil {
		return Campaign{}, err
	}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		now := s.now().UTC()
		c.ID, c.Status, c.CreatedAt, c.UpdatedAt = newCampaignID(now), StatusDraft, now, now
		return putRecord(tx, &record{Campaign: c})
	})
	return c, err
}

// campaignRecord returns the stored record of id.
func (s *Store) campaignRecord(id string) (*record, error) {
	var r *record
	err := s.db.View(func(tx *bbolt.Tx) error {
		var err error
		r, err = getRecord(tx, id)
		return err
	})
	return r, err
}

// updateCampaign changes the record of id in one transaction.
func (s *Store) updateCampaign(ctx context.Context, id string, change func(r *record, now time.Time) error) (*record, error) {
	var out *record
	err := s.db.Update(func(tx *bbolt.Tx) error {
		r, err := getRecord(tx, id)
		if err != nil {
			return err
		}
		now := s.now().UTC()
		if err := change(r, now); err != nil {
			return err
		}
		r.UpdatedAt = now
		out = r
		return putRecord(tx, r)
	})
	return out, err
}

// campaignRecords returns up to limit records after the id after, in id order (which
// is creation order), and the cursor of the next page.
func (s *Store) campaignRecords(ctx context.Context, after string, limit int, keep func(*record) bool) ([]*record, string, error) {
	return page(ctx, s.db, bucketCampaigns, after, limit, func(k, v []byte) (*record, bool, error) {
		r, err := decodeRecord(k, v)
		return r, err == nil && (keep == nil || keep(r)), err
	})
}

// decodeRecord decodes the stored record v of campaign k.
func decodeRecord(k, v []byte) (*record, error) {
	var r record
	if err := gojson.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("campaign %s: %w", k, err)
	}
	return &r, nil
}

// latestRecords returns the limit newest records, newest first: the last ids (ids
// sort in creation order), read backwards without reading the others.
func (s *Store) latestRecords(limit int) ([]*record, error) {
	var out []*record
	err := s.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketCampaigns).Cursor()
		for k, v := c.Last(); k != nil && len(out) < limit; k, v = c.Prev() {
			r, err := decodeRecord(k, v)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// page reads up to limit items (no limit when limit < 1) of bucket after the key after,
// in key order, decoding each with decode (which may leave it out), and returns the
// cursor of the next page: the key of the last item, "" on the last page.
func page[T any](ctx context.Context, db *bbolt.DB, bucket []byte, after string, limit int,
	decode func(k, v []byte) (T, bool, error)) ([]T, string, error) {
	var out []T
	next := ""
	err := db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucket).Cursor()
		k, v := c.First()
		if after != "" {
			k, v = c.Seek([]byte(after))
			if k != nil && bytes.Equal(k, []byte(after)) {
				k, v = c.Next()
			}
		}
		var last []byte
		for ; k != nil; k, v = c.Next() {
			if limit > 0 && len(out) == limit {
				next = string(last)
				return nil
			}
			item, ok, err := decode(k, v)
			if err != nil {
				return err
			}
			if ok {
				out = append(out, item)
				last = k
			}
		}
		return ctx.Err()
	})
	return out, next, err
}

// TransitionError is an action the campaign's status does not allow.
type TransitionError struct {
	Action, Status string
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("a %s campaign cannot %s", e.Status, e.Action)
}

// Actions on a campaign.
const (
	ActionStart  = "start"
	ActionPause  = "pause"
	ActionResume = "resume"
	ActionCancel = "cancel"
	actionRun    = "run" // the engine's: a scheduled campaign whose time has come
)

// transition applies action to r at now; it returns a *TransitionError when the
// status does not allow it.
func transition(r *record, action string, now time.Time) error {
	from := r.Status
	bad := func() error { return &TransitionError{Action: action, Status: from} }
	due := r.SendAt == nil || !r.SendAt.After(now)
	run := func() {
		r.Status = StatusRunning
		if r.StartedAt == nil {
			t := now
			r.StartedAt = &t
		}
	}
	switch action {
	case ActionStart:
		if from != StatusDraft {
			return bad()
		}
		if due {
			run()
		} else {
			r.Status = StatusScheduled
		}
	case ActionPause:
		if from != StatusRunning && from != StatusScheduled {
			return bad()
		}
		r.Status = StatusPaused
	case ActionResume:
		if from != StatusPaused {
			return bad()
		}
		r.PausedReason = ""
		if due {
			run()
		} else {
			r.Status = StatusScheduled
		}
	case actionRun:
		if from != StatusScheduled || !due {
			return bad()
		}
		run()
	case ActionCancel:
		switch from {
		case StatusDraft, StatusScheduled, StatusRunning, StatusPaused:
			r.Status = StatusCancelled
			t := now
			r.FinishedAt = &t
		default:
			return bad()
		}
	default:
		return errors.New("unknown action " + action)
	}
	return nil
}

// active reports whether a campaign may still send.
func active(status string) bool {
	return status == StatusScheduled || status == StatusRunning || status == StatusPaused
}

// Actions returns the actions the campaign's status allows now, among start, pause,
// resume and cancel, in that order: the transitions of the lifecycle, asked.
func (c Campaign) Actions() []string {
	var out []string
	for _, a := range []string{ActionStart, ActionPause, ActionResume, ActionCancel} {
		probe := record{Campaign: c}
		if transition(&probe, a, time.Now()) == nil {
			out = append(out, a)
		}
	}
	return out
}
