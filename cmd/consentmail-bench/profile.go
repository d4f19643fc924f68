package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// profiler fetches Go profiles of the sending processes through their
// CONSENTMAIL_DEBUG_ADDR: the CPU profile of the campaign's first seconds, and the heap
// when half the messages have reached the sink (what is live mid-campaign).
type profiler struct {
	dir     string
	seconds int
	addrs   map[string]string // process name -> debug address
	wg      sync.WaitGroup
	errs    []string
	mu      sync.Mutex
}

func newProfiler(dir string, seconds int) *profiler {
	if dir == "" {
		return nil
	}
	return &profiler{dir: dir, seconds: seconds, addrs: map[string]string{}}
}

// addr returns a free loopback address for process name's profiler.
func (p *profiler) addr(name string) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	a := ln.Addr().String()
	ln.Close()
	p.addrs[name] = a
	return a, nil
}

// start begins the profiles of mode's round r, as the campaign starts.
func (p *profiler) start(ctx context.Context, mode string, r *round) {
	for name, a := range p.addrs {
		base := "http://" + a + "/debug/pprof/"
		p.fetch(ctx, base+"profile?seconds="+strconv.Itoa(p.seconds), filepath.Join(p.dir, mode+"-"+name+"-cpu.pprof"), nil)
		p.fetch(ctx, base+"heap", filepath.Join(p.dir, mode+"-"+name+"-heap.pprof"), func() bool {
			return r.got.Load() >= int64(r.n/2)
		})
	}
}

// fetch saves url to file, once ready says so (nil: at once).
func (p *profiler) fetch(ctx context.Context, url, file string, ready func() bool) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for ready != nil && !ready() {
			select {
			case <-ctx.Done():
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
		if err := save(ctx, url, file); err != nil {
			p.mu.Lock()
			p.errs = append(p.errs, err.Error())
			p.mu.Unlock()
		}
	}()
}

func save(ctx context.Context, url, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile %s: %s", url, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// wait waits for the profiles and returns notes on them.
func (p *profiler) wait() []string {
	p.wg.Wait()
	notes := []string{"profiles in " + p.dir}
	for _, e := range p.errs {
		notes = append(notes, "profile: "+e)
	}
	return notes
}
