package campaigns

import (
	"context"
	"errors"
	"time"

	"consentmail/preferences"
)

// ErrCampaignNotFound is returned for a campaign that does not exist.
var ErrCampaignNotFound = errors.New("campaigns: campaign not found")

// Campaign statuses (contract §4.5).
const (
	StatusDraft     = "draft"
	StatusScheduled = "scheduled"
	StatusRunning   = "running"
	StatusPaused    = "paused"
	StatusCancelled = "cancelled"
	StatusFinished  = "finished"
)

// Definition is what a worker needs to render and send a campaign, with the campaign's
// current status. Workers on other hosts never open the store: the process that owns
// the store publishes every campaign's definition to the Tracker when it starts and
// on every change of status.
type Definition struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Subject string `json:"subject"`
	HTML    string `json:"html"`
	Text    string `json:"text,omitempty"`
	From    string `json:"from"`
	// Lists are the campaign's lists; ListNames their names, for List-Id.
	Lists     []string          `json:"lists"`
	ListNames map[string]string `json:"list_names,omitempty"`
	Track     bool              `json:"track,omitempty"`
	Status    string            `json:"status"`
}

// Verdict is what a worker may do for one recipient of a job.
type Verdict uint8

const (
	// Send: the recipient is claimed for this worker until the claim's deadline.
	Send Verdict = iota
	// Skip: consent was withdrawn after the job was queued; Claim recorded the skip.
	Skip
	// Done: already recorded (sent, failed or skipped).
	Done
	// Paused: the campaign is paused; nothing was claimed. The job waits.
	Paused
	// Cancelled: the campaign is cancelled or gone; nothing was claimed. The job ends.
	Cancelled
	// Busy: claimed by another delivery whose claim has not expired (a worker still
	// sending it, or one that died less than a visibility timeout ago). The recipient
	// must be looked at again once that claim may have expired.
	Busy
)

// Outcome is the result of one send, recorded once per (campaign, subscriber).
type Outcome struct {
	Subscriber string
	Result     Result
	// Status and Reply are the relay's enhanced status code and reply of a
	// ResultBounced, carried to the store's owner with the hard bounce (HardBounces).
	Status, Reply string
	// Domain is the recipient's domain as the per-domain counters name it
	// (DomainBucket: a large mailbox provider, else OtherDomain).
	Domain string
}

// MaxDomains bounds the domains a campaign counts apart: the first MaxDomains
// domains a campaign's results name have counters of their own, the rest share
// OtherDomain's. The worker names only the domains DomainBucket names, fewer than
// this; the bound holds whatever a tracker is given.
const MaxDomains = 32

// OtherDomain is the counters of every domain DomainBucket does not name, of the
// domains beyond MaxDomains, and of recipients without one.
const OtherDomain = "other"

// DomainSends are the send counters of one recipient domain.
type DomainSends struct {
	Sent    int64 `json:"sent,omitempty"`
	Bounced int64 `json:"bounced,omitempty"` // ResultBounced
}

// Result is a recorded send result.
type Result uint8

const (
	ResultNone    Result = 0
	ResultSent    Result = 's'
	ResultFailed  Result = 'f'
	ResultSkipped Result = 'k'
	// ResultBounced is a relay's synchronous rejection of the address itself (a hard
	// bounce, mailer.HardBounce): counted as failed and as bounced, and queued for the
	// store's owner to block the subscriber (Tracker.HardBounces).
	ResultBounced Result = 'b'
)

// HardBounce is a ResultBounced waiting for the store's owner to record it against
// the subscriber.
type HardBounce struct {
	Campaign   string `json:"c"`
	Subscriber string `json:"s"`
	Status     string `json:"e,omitempty"`
	Reply      string `json:"r,omitempty"`
}

// Counts are a campaign's send counters kept by the Tracker.
type Counts struct {
	Sent    int64 `json:"sent"`
	Failed  int64 `json:"failed"`
	Skipped int64 `json:"skipped"`
	// Bounced counts the ResultBounced among Failed.
	Bounced int64 `json:"bounced"`
	// Domains are Sent and Bounced by recipient domain (at most MaxDomains and
	// OtherDomain).
	Domains map[string]DomainSends `json:"domains,omitempty"`
	// JobsDone counts distinct jobs whose every recipient is settled.
	JobsDone int64 `json:"-"`
}

// Settled is the number of recipients with a recorded result.
func (c Counts) Settled() int64 { return c.Sent + c.Failed + c.Skipped }

// Tracker is the state of sending that every worker shares: campaign definitions and
// statuses, claims and durable per-(campaign, subscriber) results, and, for workers
// without the store, withdrawals of consent. BoltTracker serves one process with the
// embedded queue; RedisTracker serves any number of worker processes.
type Tracker interface {
	// Publish stores def (with its status) for workers. The store's owner calls it
	// before a change of status is answered.
	Publish(ctx context.Context, def *Definition) error
	// Definition returns the published definition of campaign id, or an error
	// wrapping ErrCampaignNotFound.
	Definition(ctx context.Context, id string) (*Definition, error)
	// Claim decides for each recipient of a job, in one round trip: Paused or
	// Cancelled for all when the campaign is not running; otherwise Done when already
	// recorded, Busy when claimed until a later time, Skip (recorded at once) when the
	// recipient may no longer receive the campaign, else Send, claiming the
	// recipient until the deadline. A tracker that reads the book (BoltTracker) fills
	// in, in rs, the personal data of the recipients to send that were queued with
	// their id and lists only (EngineConfig.IDsOnly).
	Claim(ctx context.Context, campaign string, rs []preferences.Recipient, until time.Time) ([]Verdict, error)
	// Record stores results durably and counts them; a claimed recipient's claim
	// ends. Recording a subscriber again overwrites the result without counting
	// twice. An Outcome with Result 0 (ResultNone) records nothing and only releases
	// the recipient's claim if it holds one, so that a retried job may send to them.
	Record(ctx context.Context, campaign string, outcomes []Outcome) error
	// Result returns the recorded result of one subscriber (0 if none).
	Result(ctx context.Context, campaign, subscriber string) (Result, error)
	// HardBounces returns up to max of the hard bounces recorded and not yet
	// acknowledged, oldest first; a subscriber recorded ResultBounced again (a
	// redelivered job) is queued once. Only the store's owner reads them.
	HardBounces(ctx context.Context, max int) ([]HardBounce, error)
	// AckHardBounces removes the n oldest hard bounces, once recorded in the store.
	AckHardBounces(ctx context.Context, n int) error
	// Counts returns the campaign's counters.
	Counts(ctx context.Context, campaign string) (Counts, error)
	// JobDone records that the campaign's job number seq is done (each of its
	// recipients has a result, or the campaign was cancelled); recording it again
	// counts nothing. The campaign is finished when every job it queued is done.
	JobDone(ctx context.Context, campaign string, seq int64) error
	// Status returns the campaign's published status ("" when unknown), for workers
	// to check between the messages of a job.
	Status(ctx context.Context, campaign string) (string, error)
}
