package linktoken_test

import (
	"testing"
	"time"

	"consentmail/preferences/linktoken"
)

// BenchmarkCampaignTokens signs what one campaign message carries: its unsubscribe and
// preference links and its bounce and mailto-unsubscribe addresses.
//
//	go test ./preferences/linktoken -run '^$' -bench CampaignTokens -benchmem
func BenchmarkCampaignTokens(b *testing.B) {
	s := linktoken.NewSigner([]byte("0123456789abcdef0123456789abcdef"))
	const sub, cmp = "sub_0192a3b4c5d6e7f8a9b0c1d2", "cmp_0192a3b4c5d60000a9b0c1d2"
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		linktoken.Unsubscribe(s, sub, []string{"news"}, cmp, now)
		linktoken.Preferences(s, sub, now)
		if _, err := linktoken.Bounce(s, sub, cmp); err != nil {
			b.Fatal(err)
		}
		if _, err := linktoken.MailUnsubscribe(s, sub, cmp); err != nil {
			b.Fatal(err)
		}
	}
}
