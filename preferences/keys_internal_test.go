package preferences

import (
	"bytes"
	"crypto/rand"
	"testing"
)

// A value sealed in place (sealString) opens as the field it was sealed as and no
// other, carries a fresh nonce each time and not its plaintext; appendOpen keeps what
// its buffer held before.
func TestSealedFieldsOpenOnlyAsThemselves(t *testing.T) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	dk, err := newDataKeyFrom(raw)
	if err != nil {
		t.Fatal(err)
	}
	const email = "zoë.quux@example.org"
	a, b := dk.sealString(email, fieldEmail), dk.sealString(email, fieldEmail)
	if bytes.Equal(a, b) || bytes.Equal(a[:12], b[:12]) {
		t.Errorf("one value sealed twice gave the same nonce: %x, %x", a, b)
	}
	if bytes.Contains(a, []byte(email)) || len(a) != 12+len(email)+16 {
		t.Errorf("sealed %q: %x (%d bytes)", email, a, len(a))
	}
	if got, err := dk.openString(a, fieldEmail); err != nil || got != email {
		t.Errorf("opened %q, %v; want %q", got, err, email)
	}
	if got, err := dk.openString(a, fieldName); err == nil {
		t.Errorf("an address opened as a name: %q", got)
	}
	name := dk.sealString("Zoë", fieldName)
	if got, err := dk.openString(name, fieldName); err != nil || got != "Zoë" {
		t.Errorf("a name opened as %q, %v", got, err)
	}
	if got, err := dk.openString(name, fieldEmail); err == nil {
		t.Errorf("a name opened as an address: %q", got)
	}
	if got, err := dk.open(dk.seal([]byte(email), fieldEmail), fieldEmail); err != nil || string(got) != email {
		t.Errorf("seal then open: %q, %v", got, err)
	}
	if dk.sealString("", fieldName) != nil {
		t.Error("an empty value was sealed")
	}
	both, err := dk.appendOpen([]byte("before|"), a, fieldEmail)
	if err != nil || string(both) != "before|"+email {
		t.Errorf("appendOpen: %q, %v", both, err)
	}
	if got, err := dk.appendOpen([]byte("x"), nil, fieldName); err != nil || string(got) != "x" {
		t.Errorf("appendOpen of nothing: %q, %v", got, err)
	}
}
