package campaigns

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"

	gojson "github.com/goccy/go-json"

	"consentmail/preferences"
	"consentmail/queue"
)

// KindCampaign is the queue message kind of campaign jobs.
const KindCampaign = "campaign"

// job is the body of a KindCampaign message: a batch of recipients of one campaign,
// each carrying what rendering needs, so that workers never open the store. A test
// send carries addresses instead.
type job struct {
	Campaign string `json:"c"`
	// Seq numbers the campaign's jobs from 0; a job keeps it when parked or retried,
	// so that the campaign is finished once each number is done.
	Seq        int64                   `json:"s"`
	Recipients []preferences.Recipient `json:"r,omitempty"`
	Test       []string                `json:"t,omitempty"`
}

// JobCodec seals job bodies: they carry personal data (addresses, names) through the
// queue, which may be a Redis server on another host or the data directory, so they are
// encrypted with a key derived from the root secret that every process shares.
type JobCodec struct{ aead cipher.AEAD }

const jobAAD = "consentmail campaign job v1"

// NewJobCodec derives the job key from the root secret.
func NewJobCodec(secret []byte) (*JobCodec, error) {
	block, err := aes.NewCipher(preferences.DeriveKey(secret, "campaign-jobs"))
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &JobCodec{aead: aead}, nil
}

func (c *JobCodec) encode(j *job) ([]byte, error) {
	plain, err := gojson.Marshal(j)
	if err != nil {
		return nil, err
	}
	ns := c.aead.NonceSize()
	out := make([]byte, ns, ns+len(plain)+c.aead.Overhead())
	if _, err := rand.Read(out); err != nil {
		return nil, err
	}
	return c.aead.Seal(out, out, plain, []byte(jobAAD)), nil
}

var errBadJob = errors.New("campaign job cannot be opened (wrong secret or corrupted)")

func (c *JobCodec) decode(body []byte) (*job, error) {
	ns := c.aead.NonceSize()
	if len(body) < ns+c.aead.Overhead() {
		return nil, errBadJob
	}
	plain, err := c.aead.Open(nil, body[:ns], body[ns:], []byte(jobAAD))
	if err != nil {
		return nil, errBadJob
	}
	var j job
	if err := gojson.Unmarshal(plain, &j); err != nil {
		return nil, fmt.Errorf("campaign job: %w", err)
	}
	if j.Campaign == "" {
		return nil, errors.New("campaign job without a campaign")
	}
	return &j, nil
}

// Forget is the campaign jobs' queue.Forgetting: a job that held the subscriber is
// rewritten without them (a body that cannot be opened is left alone).
func (c *JobCodec) Forget(m queue.Message, subscriber string) ([]byte, bool) {
	body, changed, err := c.WithoutSubscriber(m.Body, subscriber)
	return body, err == nil && changed
}

// WithoutSubscriber returns the body of a campaign job without the recipient
// subscriber, and whether it was there. A job left with no recipient is kept: its
// worker marks it done, so that the campaign still finishes.
func (c *JobCodec) WithoutSubscriber(body []byte, subscriber string) ([]byte, bool, error) {
	j, err := c.decode(body)
	if err != nil {
		return nil, false, err
	}
	kept := j.Recipients[:0]
	for _, r := range j.Recipients {
		if r.ID != subscriber {
			kept = append(kept, r)
		}
	}
	if len(kept) == len(j.Recipients) {
		return nil, false, nil
	}
	j.Recipients = kept
	out, err := c.encode(j)
	return out, err == nil, err
}
