package preferences_test

import "consentmail/preferences/internal/preftest"

// The consent book's tests call preftest's helpers, shared with its adapters' tests,
// by these short names.
type (
	testStore = preftest.Store
	listOpts  = preftest.ListOpt
	recorder  = preftest.Recorder
)

const ledgerBucket = preftest.LedgerBucket

var (
	seqKey              = preftest.SeqKey
	testSecret          = preftest.Secret
	epoch               = preftest.Epoch
	errEnqueue          = preftest.ErrEnqueue
	newClock            = preftest.NewClock
	openDB              = preftest.OpenDB
	newStore            = preftest.NewStore
	newStoreWith        = preftest.NewStoreWith
	private             = preftest.Private
	mustCreateList      = preftest.CreateList
	signupInput         = preftest.SignupInput
	noEnqueue           = preftest.NoEnqueue
	mustSignup          = preftest.Signup
	mustConfirm         = preftest.Confirm
	allEvents           = preftest.AllEvents
	subscribersInLedger = preftest.SubscribersInLedger
	mustVerify          = preftest.Verify
)
