// Command consentmail runs the consentmail service and its maintenance commands.
//
//	consentmail dev                     the whole service with embedded defaults
//	consentmail serve [--role all]      production
//	consentmail worker                  queue consumer only (needs the Redis queue)
//	consentmail apikey create --role R  print a new API key once
//	consentmail user create --email E --role R   add an admin app user (one-time password printed once)
//	consentmail user list|disable|reset-password  manage them
//	consentmail ledger verify           walk the consent ledger's hash chain
//	                  [--head FILE]     and find in it a head saved earlier
//	consentmail ledger head             print the ledger's head, signed, to keep elsewhere
//	consentmail backup FILE             a consistent copy of the store (from the running server, or the file)
//	consentmail restore FILE            replace the store by a backup; erasures made since are applied again
//	consentmail doctor                  check SPF, DKIM, DMARC, alignment and PTR in DNS
//	consentmail version                 version and build info
//
// Configuration comes from CONSENTMAIL_* variables, each overridden by a flag of the
// same name in kebab-case (CONSENTMAIL_HTTP_ADDR → --http-addr).
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Environ(), os.Stdout, os.Stderr)
	stop()
	if err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		fmt.Fprintln(os.Stderr, "consentmail:", err)
		os.Exit(1)
	}
}

// exitError ends the program with a code after its message was already printed.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

const usage = `usage: consentmail COMMAND [flags]

commands:
  dev                          run everything locally with embedded defaults
  serve [--role all|api|worker]  run the service
  worker                       consume the queue and send (needs the Redis queue)
  apikey create --role ROLE [--name N]
  user create --email E --role ROLE   add a user of the admin app; prints a one-time password
  user list | disable --email E | enable --email E | reset-password --email E [--reset-totp]
  ledger verify [--head FILE]  walk the ledger's chain; with a saved head, detect events cut off
  ledger head                  print the ledger's signed head (keep it elsewhere)
  import --list L file.csv
  backup FILE                  a consistent copy of the store: from the running server (GET /api/v1/backup), else from the file
  restore FILE                 replace the store by a backup (server stopped); re-applies every erasure made since
  doctor                       check SPF, DKIM, DMARC, alignment and the relay's PTR
  version

Configuration: CONSENTMAIL_* environment variables or their --kebab-case flags;
'consentmail serve --help' lists them.`

// run is the whole program: tests call it with their own arguments, environment and
// outputs, and cancel ctx to stop a server.
func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	if len(args) < 2 {
		fmt.Fprintln(stderr, usage)
		return exitError{2}
	}
	if err := checkEnv(env); err != nil {
		return err
	}
	cmd, rest := args[1], args[2:]
	switch cmd {
	case "dev":
		return runServer(ctx, rest, env, stdout, stderr, true)
	case "serve":
		return runServer(ctx, rest, env, stdout, stderr, false)
	case "worker":
		return runServer(ctx, append([]string{"--role", "worker"}, rest...), env, stdout, stderr, false)
	case "apikey":
		if len(rest) == 0 || rest[0] != "create" {
			return errors.New("usage: consentmail apikey create --role admin|marketer|dpo|viewer [--name NAME]")
		}
		return runAPIKeyCreate(ctx, rest[1:], env, stdout, stderr)
	case "user":
		return runUser(ctx, rest, env, stdout, stderr)
	case "ledger":
		switch {
		case len(rest) > 0 && rest[0] == "verify":
			return runLedgerVerify(ctx, rest[1:], env, stdout, stderr)
		case len(rest) > 0 && rest[0] == "head":
			return runLedgerHead(ctx, rest[1:], env, stdout, stderr)
		}
		return errors.New("usage: consentmail ledger verify [--head FILE] | consentmail ledger head")
	case "import":
		return runImport(ctx, rest, env, stdout, stderr)
	case "backup":
		return runBackup(ctx, rest, env, stdout, stderr)
	case "restore":
		return runRestore(ctx, rest, env, stdout, stderr)
	case "doctor":
		return runDoctor(ctx, rest, env, stdout, stderr)
	case "version", "--version", "-v":
		printVersion(stdout)
		return nil
	case "help", "--help", "-h":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	fmt.Fprintln(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

// newFlagSet returns a flag set that reports errors instead of exiting.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("consentmail "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// commandConfig parses a maintenance command's flags (the configuration's, and those
// flags registers) and resolves the configuration as dev does (the secret may come
// from the data directory).
func commandConfig(name string, args []string, env map[string]string, stderr io.Writer, flags func(*flag.FlagSet)) (*Config, error) {
	fs := newFlagSet(name, stderr)
	resolve := configFlags(fs, env)
	if flags != nil {
		flags(fs)
	}
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	cfg, err := resolve(true)
	if err != nil {
		return nil, fmt.Errorf("configuration:\n%w", err)
	}
	return cfg, nil
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitError{0}
		}
		return exitError{2}
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = "dev"

func printVersion(w io.Writer) {
	fmt.Fprintf(w, "consentmail %s\n", version)
	if bi, ok := debug.ReadBuildInfo(); ok {
		fmt.Fprintf(w, "go: %s\n", bi.GoVersion)
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision", "vcs.time", "vcs.modified", "GOOS", "GOARCH":
				fmt.Fprintf(w, "%s: %s\n", s.Key, s.Value)
			}
		}
	}
}

func randomToken(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
