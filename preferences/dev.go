package preferences

import "context"

// DevBootstrap gives `consentmail dev` a working tour: the public list newsletter when
// there is no list yet, and an admin key named keyName. With fixedKey (the configured
// CONSENTMAIL_ADMIN_API_KEY, which the store already holds) that key is the one
// returned; otherwise the previous key of that name is revoked and a new one returned,
// so each start prints a key that works and leaves no older one behind.
func (s *Store) DevBootstrap(ctx context.Context, keyName, fixedKey string) (key string, err error) {
	lists, _, err := s.Lists(ctx, "", 1)
	if err != nil {
		return "", err
	}
	if len(lists) == 0 {
		_, err := s.CreateList(ctx, List{ID: "newsletter", Name: "Newsletter",
			Purpose: "A monthly email about our products and events.", Public: true,
			ConsentText: "I agree to receive the monthly newsletter by email. I can unsubscribe at any time with the link in every email."})
		if err != nil {
			return "", err
		}
	}
	if fixedKey != "" {
		return fixedKey, nil
	}
	keys, err := s.APIKeys(ctx)
	if err != nil {
		return "", err
	}
	for _, k := range keys {
		if k.Name == keyName {
			if err := s.DeleteAPIKey(ctx, k.ID); err != nil {
				return "", err
			}
		}
	}
	_, key, err = s.CreateAPIKey(ctx, RoleAdmin, keyName)
	return key, err
}
