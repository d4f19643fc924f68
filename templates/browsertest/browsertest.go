// Package browsertest drives pages in a real headless Chromium for the tests of any
// package that serves pages: it starts the browser, opens tabs, saves screenshots
// under test-output/browser at the repository's root, and runs axe-core (installed
// from the npm registry by .ci/run into .ci/node_modules) on a page, failing the test
// on any serious or critical violation.
//
// Without Chromium or axe-core a test is skipped on a developer's machine and fails
// in CI (CI installs both: .ci/run).
package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gofiber/fiber/v2"
)

// FlowTimeout bounds each tab's flow; the browser itself lives as long as the test.
const FlowTimeout = 60 * time.Second

// Browser is one headless Chromium shared by the flows of a test; each flow gets
// its own tab.
type Browser struct {
	ctx context.Context // the browser's first tab; parent of every flow's tab
}

// missing skips the test outside CI and fails it in CI.
func missing(tb testing.TB, what string) {
	tb.Helper()
	if os.Getenv("CI") == "" {
		tb.Skip(what + " is not installed (CI installs it: .ci/run)")
	}
	tb.Fatal(what + " is not installed, and CI is set: .ci/run installs it")
}

func chromiumPath(tb testing.TB) string {
	tb.Helper()
	for _, name := range []string{"/usr/bin/chromium", "chromium"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	missing(tb, "chromium")
	return ""
}

// New starts headless Chromium with a fresh profile until the test ends, with a
// window of width × height (1024 × 768 when zero). Start it after the server:
// cleanups run last-in first-out, and a browser still holding a connection it
// opened in advance makes the server's graceful shutdown wait.
func New(tb testing.TB, width, height int) *Browser {
	tb.Helper()
	if width == 0 {
		width, height = 1024, 768
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(tb)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		// The machine's network is closed: nothing but the test server is reachable.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(tb.TempDir()),
		chromedp.WindowSize(width, height),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	tb.Cleanup(func() { cancel(); cancelAlloc() })
	// The first action starts the browser and binds its life to ctx, which has no
	// deadline; the flows' deadlines apply to their own tabs only.
	if err := within(func() error { return chromedp.Do(ctx) }); err != nil {
		tb.Fatalf("start chromium: %v", err)
	}
	return &Browser{ctx: ctx}
}

// Tab opens a new tab for one flow, closed when the test ends, and returns its
// context with the flow's deadline.
func (b *Browser) Tab(tb testing.TB) context.Context {
	tb.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	tb.Cleanup(cancel)
	if err := within(func() error { return chromedp.Do(ctx) }); err != nil {
		tb.Fatalf("open tab: %v", err)
	}
	ctx, cancelTimeout := context.WithTimeout(ctx, FlowTimeout)
	tb.Cleanup(cancelTimeout)
	return ctx
}

// startTimeout bounds starting the browser and opening a tab, which have no deadline
// of their own (the browser's life is bound to a context without one).
const startTimeout = 60 * time.Second

// within runs do and returns its error, or an error once startTimeout has passed: the
// test fails then instead of waiting for its own timeout.
func within(do func() error) error {
	errc := make(chan error, 1)
	go func() { errc <- do() }()
	select {
	case err := <-errc:
		return err
	case <-time.After(startTimeout):
		return fmt.Errorf("no answer from chromium within %v", startTimeout)
	}
}

// root is the repository's root: the nearest directory above the test's with go.mod.
func root(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("repository root (go.mod) not found above the test")
		}
		dir = parent
	}
}

// Dir is test-output/browser at the repository's root, created if needed.
func Dir(tb testing.TB) string {
	tb.Helper()
	dir := filepath.Join(root(tb), "test-output", "browser")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// Shot saves a full-page PNG of the tab as test-output/browser/NAME.png.
func Shot(tb testing.TB, ctx context.Context, name string) {
	tb.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(Dir(tb), name+".png"), png, 0o644); err != nil {
		tb.Fatal(err)
	}
}

// Do runs actions and fails the test on the first error.
func Do(tb testing.TB, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	tb.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.Fatalf("%s: %v", what, err)
	}
}

// Value runs one action that returns a value and fails the test on error.
func Value[T any](tb testing.TB, ctx context.Context, what string, a chromedp.Action[T]) T {
	tb.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		tb.Fatalf("%s: %v", what, err)
	}
	return v
}

// Open navigates to u, waits for the page to load and returns its HTTP status.
func Open(tb testing.TB, ctx context.Context, u string) int64 {
	tb.Helper()
	res, err := chromedp.Run(ctx, chromedp.NavigateResponse(u))
	if err != nil {
		tb.Fatalf("open %s: %v", u, err)
	}
	return res.Status
}

// Submit clicks sel, which must navigate, waits for the new page and returns its
// HTTP status.
func Submit(tb testing.TB, ctx context.Context, sel string) int64 {
	tb.Helper()
	res, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel)))
	if err != nil {
		tb.Fatalf("click %s: %v", sel, err)
	}
	return res.Status
}

// Heading returns the page's <h1>.
func Heading(tb testing.TB, ctx context.Context) string {
	tb.Helper()
	return strings.TrimSpace(Value(tb, ctx, "read h1", chromedp.Text(chromedp.CSS("h1"))))
}

// Attr returns an attribute of the first element matching sel.
func Attr(tb testing.TB, ctx context.Context, sel, name string) chromedp.AttributeResult {
	tb.Helper()
	return Value(tb, ctx, "read "+sel+" "+name, chromedp.AttributeValue(chromedp.CSS(sel), name))
}

// violation is what axe-core reports of one rule broken on the page.
type violation struct {
	ID     string `json:"id"`
	Impact string `json:"impact"`
	Help   string `json:"help"`
	Nodes  []struct {
		Target []any `json:"target"`
	} `json:"nodes"`
}

// Axe runs axe-core on the tab's page (WCAG 2 A and AA rules, and best practices)
// and fails the test on every serious or critical violation, naming the page, the
// rule and the elements; minor and moderate ones are logged.
func Axe(tb testing.TB, ctx context.Context, page string) {
	tb.Helper()
	src, err := os.ReadFile(filepath.Join(root(tb), ".ci", "node_modules", "axe-core", "axe.min.js"))
	if err != nil {
		missing(tb, "axe-core (npm ci --prefix .ci)")
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](string(src))); err != nil {
		tb.Fatalf("axe on %s: load: %v", page, err)
	}
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](
		`axe.run(document, {resultTypes: ["violations"]}).then(r => JSON.stringify(r.violations))`,
		chromedp.EvalAwaitPromise))
	if err != nil {
		tb.Fatalf("axe on %s: run: %v", page, err)
	}
	var vs []violation
	if err := json.Unmarshal([]byte(raw), &vs); err != nil {
		tb.Fatalf("axe on %s: %v", page, err)
	}
	for _, v := range vs {
		var where []string
		for _, n := range v.Nodes {
			where = append(where, fmt.Sprint(n.Target...))
		}
		msg := fmt.Sprintf("axe on %s: %s (%s): %s at %s", page, v.ID, v.Impact, v.Help, strings.Join(where, ", "))
		if v.Impact == "serious" || v.Impact == "critical" {
			tb.Error(msg)
		} else {
			tb.Log(msg)
		}
	}
}

// Serve serves app on a loopback port until the test ends and returns its base URL.
// Call it before New, so that the browser is closed before the server. The shutdown
// is bounded: a connection the browser left open must not hold the test (one run hung
// there for the whole test timeout).
func Serve(tb testing.TB, app *fiber.App) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- app.Listener(ln) }()
	tb.Cleanup(func() {
		if err := app.ShutdownWithTimeout(10 * time.Second); err != nil {
			tb.Errorf("shutdown: %v", err)
		}
		<-done
	})
	return "http://" + ln.Addr().String()
}
