package preferences

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	gojson "github.com/goccy/go-json"
)

// TestStoredJSONIsEncodingJSONs checks that what the store writes with goccy/go-json
// (records, ledger bodies) is byte for byte what encoding/json writes, and reads back
// the same: the ledger's hashes cover these bytes, and its format is documented as
// encoding/json's. Strings carry what each encoder escapes on its own terms: HTML
// characters, U+2028, control bytes, invalid UTF-8.
func TestStoredJSONIsEncodingJSONs(t *testing.T) {
	odd := "<b>&amp;</b> \u2028\u2029 \x01\x1f \"q\" \\ é 漢 \xff\xfe end"
	at := time.Date(2026, 12, 6, 16, 30, 0, 123456789, time.FixedZone("CET", 3600))
	values := []any{
		eventBody{At: at.UTC().Format(time.RFC3339Nano), Type: EventSignup, Subscriber: "sub_0193", Lists: []string{"b", odd, "a"},
			Actor: odd, IP: []byte{0, 1, 2, 0xff}, UA: []byte(odd), Details: map[string]string{"z": odd, "a": "1", odd: "k", "consent_version.a": "v1"},
			Personal: []byte("p")},
		eventBody{},
		subRecord{ID: "sub_1", Index: []byte{9, 8}, Email: []byte(odd), Locale: "fr", Status: StatusActive, Tracking: true,
			Created: at, Updated: at.UTC(), Active: at, Subs: []subscription{{List: odd, Status: SubConfirmed, Since: at, Version: "v", Nonce: odd}}},
		subRecord{},
		personalView{Email: []byte(odd), Name: nil, Attrs: []byte(`{"city":"Lyon"}`), Locale: odd, Tracking: true},
	}
	for _, v := range values {
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		got, err := gojson.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%T:\ngoccy         %s\nencoding/json %s", v, got, want)
		}
	}
	// Decoding: what encoding/json wrote reads back the same through both.
	for _, v := range values {
		raw, _ := json.Marshal(v)
		switch v.(type) {
		case eventBody:
			var a, b eventBody
			decodeBoth(t, raw, &a, &b)
		case subRecord:
			var a, b subRecord
			decodeBoth(t, raw, &a, &b)
		case personalView:
			var a, b personalView
			decodeBoth(t, raw, &a, &b)
		}
	}
}

func decodeBoth[T any](t *testing.T, raw []byte, std, goccy *T) {
	t.Helper()
	if err := json.Unmarshal(raw, std); err != nil {
		t.Fatal(err)
	}
	if err := decodeJSON(raw, goccy); err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(std)
	b, _ := json.Marshal(goccy)
	if !bytes.Equal(a, b) {
		t.Errorf("%T decoded differently:\nencoding/json %s\ngoccy         %s", *std, a, b)
	}
}
