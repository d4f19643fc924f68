package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"

	"consentmail/preferences"
)

const userUsage = "usage: consentmail user create --email E --role admin|marketer|dpo|viewer\n" +
	"       consentmail user list\n" +
	"       consentmail user disable|enable --email E\n" +
	"       consentmail user reset-password --email E [--reset-totp]"

// runUser manages the people of the admin app. It opens the data directory, so it
// refuses (within a second) while a server holds it, and says to use Settings → Users.
func runUser(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(userUsage)
	}
	sub := args[0]
	var email, role string
	var resetTOTP bool
	cfg, err := commandConfig("user "+sub, args[1:], env, stderr, func(fs *flag.FlagSet) {
		switch sub {
		case "create":
			fs.StringVar(&role, "role", "", "admin, marketer, dpo or viewer")
			fallthrough
		case "disable", "enable", "reset-password":
			fs.StringVar(&email, "email", "", "the user's email address")
		}
		if sub == "reset-password" {
			fs.BoolVar(&resetTOTP, "reset-totp", false, "also remove the user's two-step verification (a lost phone)")
		}
	})
	if err != nil {
		return err
	}
	switch sub {
	case "create", "list", "disable", "enable", "reset-password":
	default:
		return fmt.Errorf("unknown user command %q\n%s", sub, userUsage)
	}
	if sub == "create" && !preferences.ValidRole(role) {
		return errors.New("--role must be admin, marketer, dpo or viewer")
	}
	if sub != "list" && email == "" {
		return fmt.Errorf("--email is required\n%s", userUsage)
	}
	store, closeDB, err := openStoreForCLI(cfg, "manage users in the admin app, Settings → Users")
	if err != nil {
		return err
	}
	defer closeDB()
	if sub == "list" {
		users, err := store.Users(ctx)
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(w, "EMAIL\tROLE\tTWO-STEP\tSTATUS\tLAST SIGN-IN")
		for _, u := range users {
			status, twoStep, last := "active", "off", "never"
			if u.Disabled {
				status = "disabled"
			}
			if u.TOTPEnabled {
				twoStep = "on"
			} else if u.TOTPRequired {
				twoStep = "required"
			}
			if !u.LastSignIn.IsZero() {
				last = u.LastSignIn.UTC().Format("2006-01-02 15:04 UTC")
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", u.Email, u.Role, twoStep, status, last)
		}
		return w.Flush()
	}
	if sub == "create" {
		u, password, err := store.CreateUser(ctx, email, role)
		if errors.Is(err, preferences.ErrConflict) {
			return fmt.Errorf("a user %s exists already (reset their password with: consentmail user reset-password --email %s)", email, email)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "created user %s (role %s); their one-time password is shown once and must be changed at the first sign-in:\n", u.Email, u.Role)
		fmt.Fprintln(stdout, password)
		return nil
	}
	u, err := store.UserByEmail(ctx, email)
	if errors.Is(err, preferences.ErrNotFound) {
		return fmt.Errorf("no user %s (consentmail user list shows them)", email)
	}
	if err != nil {
		return err
	}
	switch sub {
	case "disable", "enable":
		if _, err := store.ChangeUserAccess(ctx, u.ID, sub == "disable"); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "user %s %sd\n", u.Email, sub)
	case "reset-password":
		_, password, err := store.ResetPassword(ctx, u.ID, resetTOTP)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "new one-time password of %s; shown once, to be changed at the next sign-in:\n", u.Email)
		fmt.Fprintln(stdout, password)
	}
	return nil
}
