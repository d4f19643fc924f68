package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// campaignHTML is a realistic newsletter: a <style> block (inlined by the server),
// personalised with the subscriber's name and city, about 2.5 KB.
const campaignHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Our spring news</title>
<style>
body { margin: 0; padding: 0; background: #f4f4f7; font-family: Helvetica, Arial, sans-serif; color: #333333; }
.wrapper { width: 100%; background: #f4f4f7; padding: 24px 0; }
.content { max-width: 600px; margin: 0 auto; background: #ffffff; border-radius: 6px; padding: 32px; }
h1 { font-size: 24px; margin: 0 0 16px 0; color: #1a1a2e; }
h2 { font-size: 18px; margin: 24px 0 8px 0; color: #1a1a2e; }
p { font-size: 16px; line-height: 24px; margin: 0 0 16px 0; }
.button { display: inline-block; background: #3869d4; color: #ffffff; text-decoration: none; padding: 12px 24px; border-radius: 4px; }
.muted { color: #8a8a99; font-size: 13px; }
</style>
</head>
<body>
<div class="wrapper">
<div class="content">
<h1>Hello {{.Subscriber.Name}},</h1>
<p>Spring has arrived{{with .Subscriber.Attributes.city}} in {{.}}{{end}}, and with it a new season of workshops, talks and open days. Here is what we have planned for the coming weeks.</p>
<h2>Workshops near you</h2>
<p>We are running hands-on workshops in {{.Subscriber.Attributes.city}} and five other cities. Each one lasts an afternoon, needs no prior experience, and ends with a tea with the team.</p>
<p><a class="button" href="https://www.example.org/workshops?utm_source=newsletter">See the workshops</a></p>
<h2>What we shipped this winter</h2>
<p>Faster exports, a calmer dashboard, and the long-awaited dark mode. Thank you to everyone who wrote to us with ideas: most of this list came from you.</p>
<p>Read the full notes on <a href="https://www.example.org/blog/winter-release">our blog</a>.</p>
<h2>An invitation</h2>
<p>Our open day is on the first Saturday of April. Come and meet the people behind the product, ask anything, and leave with a plant from our greenhouse.</p>
<p class="muted">You receive this email because you subscribed to our newsletter. We send it once a month and never share your address.</p>
</div>
</div>
</body>
</html>
`

// campaignText is the plain-text part, personalised the same way.
const campaignText = `Hello {{.Subscriber.Name}},

Spring has arrived{{with .Subscriber.Attributes.city}} in {{.}}{{end}}, and with it a new season of workshops, talks and open days.

Workshops near you: https://www.example.org/workshops
What we shipped this winter: https://www.example.org/blog/winter-release

Our open day is on the first Saturday of April. Come and meet the people behind the product.
`

// apiClient speaks to the consentmail admin API with a bearer key.
type apiClient struct {
	base, key string
	hc        *http.Client
}

func newAPIClient(base, key string) *apiClient {
	return &apiClient{base: base, key: key, hc: &http.Client{Timeout: 30 * time.Second}}
}

// do sends in as JSON and decodes the answer into out, which must come with status want.
func (c *apiClient) do(ctx context.Context, method, path string, in, out any, want int) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if res.StatusCode != want {
		return fmt.Errorf("%s %s: status %d, want %d: %s", method, path, res.StatusCode, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decode %q: %w", method, path, b, err)
		}
	}
	return nil
}

// campaignStats are the stats of GET /api/v1/campaigns/{id}.
type campaignStats struct {
	Audience int64 `json:"audience"`
	Queued   int64 `json:"queued"`
	Sent     int64 `json:"sent"`
	Failed   int64 `json:"failed"`
	Skipped  int64 `json:"skipped"`
}

type campaignView struct {
	ID     string        `json:"id"`
	Status string        `json:"status"`
	Stats  campaignStats `json:"stats"`
}

// createCampaign creates the benchmark's campaign to benchList and returns its id.
func (c *apiClient) createCampaign(ctx context.Context) (string, error) {
	in := map[string]any{"name": "Bench", "subject": "Our spring news, {{.Subscriber.Name}}", "lists": []string{benchList},
		"html": campaignHTML, "text": campaignText}
	var v campaignView
	if err := c.do(ctx, http.MethodPost, "/api/v1/campaigns", in, &v, http.StatusCreated); err != nil {
		return "", err
	}
	return v.ID, nil
}

func (c *apiClient) startCampaign(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodPost, "/api/v1/campaigns/"+id+"/start", nil, nil, http.StatusOK)
}

// waitFinished polls the campaign every 50 ms until it is finished and returns its
// stats; another final status, or timeout, is an error.
func (c *apiClient) waitFinished(ctx context.Context, id string, timeout time.Duration) (*campaignStats, error) {
	deadline := time.Now().Add(timeout)
	for {
		var v campaignView
		if err := c.do(ctx, http.MethodGet, "/api/v1/campaigns/"+id, nil, &v, http.StatusOK); err != nil {
			return nil, err
		}
		switch v.Status {
		case "finished":
			return &v.Stats, nil
		case "cancelled", "paused":
			return &v.Stats, fmt.Errorf("campaign %s is %s", id, v.Status)
		}
		if time.Now().After(deadline) {
			return &v.Stats, fmt.Errorf("campaign %s still %s %v after the sink got every message (stats %+v)", id, v.Status, timeout, v.Stats)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
