package preferences_test

import (
	"reflect"
	"testing"

	"consentmail/preferences"
)

// Mask masks the address for every role and withholds the name and attribute values
// from the roles that do not see personal data.
func TestSubscriberMask(t *testing.T) {
	for _, tc := range []struct {
		role       string
		name, city string
	}{
		{preferences.RoleAdmin, "Ana", "Lyon"},
		{preferences.RoleDPO, "Ana", "Lyon"},
		{preferences.RoleMarketer, preferences.Withheld, preferences.Withheld},
		{preferences.RoleViewer, preferences.Withheld, preferences.Withheld},
		{"", preferences.Withheld, preferences.Withheld},
	} {
		s := &preferences.Subscriber{Email: "ana@example.org", Name: "Ana", Attributes: map[string]any{"city": "Lyon"}}
		s.Mask(tc.role)
		if s.Email != "a***@example.org" || s.Name != tc.name || s.Attributes["city"] != tc.city {
			t.Errorf("Mask(%q) = %q %q %v, want a***@example.org %q city %q", tc.role, s.Email, s.Name, s.Attributes, tc.name, tc.city)
		}
	}
	// Nested values are withheld one by one, keeping their shape for templates.
	s := &preferences.Subscriber{Attributes: map[string]any{"orders": []any{"A-17", 3.0},
		"address": map[string]any{"city": "Lyon", "zip": "69001"}}}
	s.Mask(preferences.RoleMarketer)
	w := preferences.Withheld
	want := map[string]any{"orders": []any{w, w}, "address": map[string]any{"city": w, "zip": w}}
	if !reflect.DeepEqual(s.Attributes, want) {
		t.Errorf("nested attributes masked to %v, want %v", s.Attributes, want)
	}
	erased := &preferences.Subscriber{}
	erased.Mask(preferences.RoleViewer)
	if erased.Email != "" || erased.Name != "" {
		t.Errorf("Mask of an erased subscriber = %+v, want nothing made up", erased)
	}
}
