package preferences_test

import (
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
	erased := &preferences.Subscriber{}
	erased.Mask(preferences.RoleViewer)
	if erased.Email != "" || erased.Name != "" {
		t.Errorf("Mask of an erased subscriber = %+v, want nothing made up", erased)
	}
}
