package optin

import (
	"github.com/gofiber/fiber/v2"

	"consentmail/preferences"
)

// AdminAPI serves the admin endpoints that validate personal data as signups do:
// imports (importer.go) and rectification (rectify.go).
type AdminAPI struct {
	store *preferences.Store
	auth  *preferences.Authenticator
	q     TxEnqueuer // confirmations of imported rows and of rectified addresses
}

// NewAdminAPI returns the endpoints over store; q queues confirmations.
func NewAdminAPI(store *preferences.Store, auth *preferences.Authenticator, q TxEnqueuer) *AdminAPI {
	return &AdminAPI{store: store, auth: auth, q: q}
}

// Routes mounts the endpoints: admins and marketers import, the DPO (and admins)
// rectify.
func (h *AdminAPI) Routes(r fiber.Router) {
	r.Post("/api/v1/lists/:id/imports", h.auth.Require(preferences.RoleMarketer), h.importCSV)
	r.Patch("/api/v1/subscribers/:id", h.auth.Require(preferences.RoleDPO), h.rectify)
}

// actorOf names the caller in the ledger: the API key's id and name.
func actorOf(c *fiber.Ctx) string {
	p := preferences.Caller(c)
	return "apikey:" + p.KeyID + " (" + p.Name + ")"
}
