package optin

import (
	"github.com/gofiber/fiber/v2"

	"consentmail/preferences"
	"consentmail/preferences/apiauth"
)

// AdminAPI serves the admin endpoints that validate personal data as signups do:
// imports (importer.go) and rectification (rectify.go).
type AdminAPI struct {
	store *preferences.Store
	guard *apiauth.Guard
	q     TxEnqueuer // confirmations of imported rows and of rectified addresses
}

// NewAdminAPI returns the endpoints over store; q queues confirmations.
func NewAdminAPI(store *preferences.Store, guard *apiauth.Guard, q TxEnqueuer) *AdminAPI {
	return &AdminAPI{store: store, guard: guard, q: q}
}

// Routes mounts the endpoints: admins and marketers import, the DPO (and admins)
// rectify.
func (h *AdminAPI) Routes(r fiber.Router) {
	r.Post("/api/v1/lists/:id/imports", h.guard.Require(preferences.RoleMarketer), h.importCSV)
	r.Patch("/api/v1/subscribers/:id", h.guard.Require(preferences.RoleDPO), h.rectify)
}
