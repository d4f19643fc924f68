package preferences_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"consentmail/preferences"
)

// BenchmarkAudienceWithData reads a campaign's recipients with their personal data, as
// a Redis campaign's planner does (and the embedded queue's claims, ten at a time): the
// indexes' rule, then the record and the data key of each. One op is one recipient.
//
//	go test ./preferences -run '^$' -bench AudienceWithData -benchmem
func BenchmarkAudienceWithData(b *testing.B) {
	s := newStore(b)
	mustCreateList(b, s, "news")
	const people = 2000
	rows := make([]preferences.ImportRow, 0, people)
	for i := range people {
		addr := fmt.Sprintf("p%05d@example.org", i)
		rows = append(rows, preferences.ImportRow{Email: addr, IndexKey: addr, Name: "Person " + addr, Locale: "en",
			Attributes: []byte(`{"city":"Lyon"}`), ConsentedAt: time.Now(), ConsentSource: "bench"})
	}
	ctx := context.Background()
	for batch := range slices.Chunk(rows, preferences.MaxImportBatch) {
		if _, err := s.Import(ctx, "news", "bench", batch, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for read := 0; read < b.N; {
		out, _, _, err := s.Audience(ctx, []string{"news"}, preferences.AudienceCursor{}, min(people, b.N-read), true)
		if err != nil {
			b.Fatal(err)
		}
		if len(out) == 0 {
			b.Fatal("no recipients")
		}
		read += len(out)
	}
}
