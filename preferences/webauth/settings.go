package webauth

import (
	"errors"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"consentmail/preferences"
	"consentmail/preferences/address"
)

// roles in the order the role pickers list them.
var roles = []string{preferences.RoleViewer, preferences.RoleMarketer, preferences.RoleDPO, preferences.RoleAdmin}

type roleSelect struct {
	ID       string
	Roles    []string
	Selected string
}

// authLogShown is how many sign-in attempts Settings → Users shows.
const authLogShown = 50

type usersData struct {
	Tab        string
	Users      []preferences.User
	Log        []preferences.AuthEvent
	Email      string
	RoleSelect roleSelect
	Errors     map[string]string
	Created    *preferences.User // the user just added
	CreatedKey string
	Password   string // their one-time password, shown once
}

// fill makes the select the one with id, of every role, a viewer unless chosen.
func (r *roleSelect) fill(id string) {
	if r.Selected == "" {
		r.Selected = preferences.RoleViewer
	}
	r.ID, r.Roles = id, roles
}

func (a *Auth) usersPage(c *fiber.Ctx, status int, d usersData) error {
	var err error
	if d.Users, err = a.store.Users(c.UserContext()); err != nil {
		return err
	}
	if d.Log, err = a.store.AuthLog(c.UserContext(), authLogShown); err != nil {
		return err
	}
	d.Tab = "users"
	d.RoleSelect.fill("new-role")
	return a.render(c, status, "settings_users", a.page(c, "settings", "auth.users.title", d))
}

func (a *Auth) users(c *fiber.Ctx) error { return a.usersPage(c, fiber.StatusOK, usersData{}) }

func (a *Auth) createUser(c *fiber.Ctx) error {
	email, role := c.FormValue("email"), c.FormValue("role")
	if !preferences.ValidRole(role) {
		return fiber.NewError(fiber.StatusBadRequest, "unknown role")
	}
	d := usersData{Email: email, RoleSelect: roleSelect{Selected: role}}
	u, password, err := a.store.CreateUser(c.UserContext(), email, role)
	switch {
	case errors.Is(err, address.ErrBadEmail):
		d.Errors = map[string]string{"email": "auth.users.bad_email"}
		return a.usersPage(c, fiber.StatusUnprocessableEntity, d)
	case errors.Is(err, preferences.ErrConflict):
		d.Errors = map[string]string{"email": "auth.users.exists"}
		return a.usersPage(c, fiber.StatusUnprocessableEntity, d)
	case err != nil:
		return err
	}
	// The password is shown on this answer only: no redirect could carry it.
	return a.usersPage(c, fiber.StatusCreated, usersData{Created: &u, CreatedKey: "auth.users.created", Password: password})
}

type userData struct {
	Tab        string
	User       preferences.User
	RoleSelect roleSelect
	Password   string // a one-time password just set, shown once
}

func (a *Auth) userPageWith(c *fiber.Ctx, status int, u preferences.User, password string) error {
	d := userData{Tab: "users", User: u, RoleSelect: roleSelect{ID: "role", Roles: roles, Selected: u.Role}, Password: password}
	return a.render(c, status, "settings_user", a.page(c, "settings", "auth.users.title", d))
}

func (a *Auth) userPage(c *fiber.Ctx) error {
	u, err := a.store.UserByID(c.UserContext(), c.Params("id"))
	if errors.Is(err, preferences.ErrNotFound) {
		return fiber.ErrNotFound
	}
	if err != nil {
		return err
	}
	return a.userPageWith(c, fiber.StatusOK, u, "")
}

func (a *Auth) changeUser(c *fiber.Ctx) error {
	ctx, id := c.UserContext(), c.Params("id")
	me, _ := Current(c)
	var (
		err   error
		flash string
	)
	switch c.FormValue("action") {
	case "role":
		err, flash = ignoreUser(a.store.ChangeUserRole(ctx, id, c.FormValue("role"))), "role"
	case "totp-required":
		err, flash = ignoreUser(a.store.RequireTOTP(ctx, id, true)), "required"
	case "totp-optional":
		err, flash = ignoreUser(a.store.RequireTOTP(ctx, id, false)), "unrequired"
	case "disable":
		if id == me.UserID {
			return a.message(c, fiber.StatusUnprocessableEntity, "auth.forbidden.title", "auth.users.yourself")
		}
		err, flash = ignoreUser(a.store.ChangeUserAccess(ctx, id, true)), "disabled"
	case "enable":
		err, flash = ignoreUser(a.store.ChangeUserAccess(ctx, id, false)), "enabled"
	case "reset":
		u, password, err := a.store.ResetPassword(ctx, id, c.FormValue("reset_totp") == "1")
		if errors.Is(err, preferences.ErrNotFound) {
			return fiber.ErrNotFound
		}
		if err != nil {
			return err
		}
		return a.userPageWith(c, fiber.StatusOK, u, password)
	default:
		return fiber.NewError(fiber.StatusBadRequest, "unknown action")
	}
	switch {
	case errors.Is(err, preferences.ErrNotFound):
		return fiber.ErrNotFound
	case errors.Is(err, preferences.ErrLastAdmin):
		return a.message(c, fiber.StatusConflict, "auth.forbidden.title", "auth.users.last_admin")
	case err != nil:
		return err
	}
	return c.Redirect("/admin/settings/users/"+id+"?flash="+flash, fiber.StatusSeeOther)
}

func ignoreUser(_ preferences.User, err error) error { return err }

type keysData struct {
	Tab        string
	Keys       []preferences.APIKey
	Name       string
	RoleSelect roleSelect
	Errors     map[string]string
	Created    *preferences.APIKey
	Key        string // the key just created, shown once
}

func (a *Auth) keysPage(c *fiber.Ctx, status int, d keysData) error {
	var err error
	if d.Keys, err = a.store.APIKeys(c.UserContext()); err != nil {
		return err
	}
	d.Tab = "apikeys"
	d.RoleSelect.fill("key-role")
	return a.render(c, status, "settings_apikeys", a.page(c, "settings", "auth.keys.title", d))
}

func (a *Auth) apiKeys(c *fiber.Ctx) error { return a.keysPage(c, fiber.StatusOK, keysData{}) }

func (a *Auth) createAPIKey(c *fiber.Ctx) error {
	name, role := c.FormValue("name"), c.FormValue("role")
	if !preferences.ValidRole(role) {
		return fiber.NewError(fiber.StatusBadRequest, "unknown role")
	}
	d := keysData{Name: name, RoleSelect: roleSelect{Selected: role}}
	if utf8.RuneCountInString(name) > 100 {
		d.Errors = map[string]string{"name": "auth.keys.name_long"}
		return a.keysPage(c, fiber.StatusUnprocessableEntity, d)
	}
	k, key, err := a.store.CreateAPIKey(c.UserContext(), role, name)
	if errors.Is(err, preferences.ErrReservedName) {
		d.Errors = map[string]string{"name": "auth.keys.reserved"}
		return a.keysPage(c, fiber.StatusUnprocessableEntity, d)
	}
	if err != nil {
		return err
	}
	return a.keysPage(c, fiber.StatusCreated, keysData{Created: &k, Key: key})
}

func (a *Auth) revokeAPIKey(c *fiber.Ctx) error {
	err := a.store.DeleteAPIKey(c.UserContext(), c.Params("id"))
	if errors.Is(err, preferences.ErrNotFound) {
		return fiber.ErrNotFound
	}
	if err != nil {
		return err
	}
	return c.Redirect("/admin/settings/apikeys?flash=revoked", fiber.StatusSeeOther)
}
