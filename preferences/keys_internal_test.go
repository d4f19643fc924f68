package preferences

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
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

// Values sealed before the field type (AES-GCM, the label's text as additional data),
// made by a program of crypto/aes and crypto/cipher alone with the key 00 01 … 1f: the
// data already in stores keeps opening. A label changed by one byte fails this.
func TestFieldsOpenWhatEarlierVersionsSealed(t *testing.T) {
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i)
	}
	dk, err := newDataKeyFrom(key)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []struct {
		f         field
		plaintext string
		sealed    string
	}{
		{fieldEmail, "ana@example.org", "000102030405060708090a0b266cb75ba09da376fd2df2a5de9b1f88d8f82e25745840f4e1470bc0c635fb"},
		{fieldName, "Ana Zoë", "101112131415161718191a1b3c90f93613a6f918cb2bcde117fa8ca4261d87cef24d525b"},
		{fieldAttributes, `{"city":"Lyon"}`, "202122232425262728292a2ba918c51918e1383438303ba1af3a89ef3d2f5c61c9d5d5576c8e1aa5c4a136"},
		{fieldIP, "192.0.2.7", "303132333435363738393a3b820c03eed941782d1de1af121bf152cb4dd4f0bb7b13c875b0"},
		{fieldUA, "Firefox/140", "404142434445464748494a4ba4d0dc464053ff2cfcf027a674751a1467bd67344e2546428c86c5"},
		{fieldPersonal, `{"diagnostic":"550 5.1.1"}`, "505152535455565758595a5be905521d8537d7892fc25406efdba1e0d61fddde0c40b41306f4174ab4f14d272c1a301c782a1dc5906d"},
	} {
		sealed, err := hex.DecodeString(v.sealed)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := dk.openString(sealed, v.f); err != nil || got != v.plaintext {
			t.Errorf("%s: opened %q, %v; want %q", v.f, got, err, v.plaintext)
		}
	}
}
