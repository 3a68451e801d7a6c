package testinfra

import (
	"bytes"
	"os/exec"
	"sync"
	"testing"
)

// ChromiumT returns the path of Debian's Chromium (or a chromium on PATH),
// or fails the test naming what needs it and how to install it: the
// browser tests are the only check that a page reads well, so they do not
// skip.
func ChromiumT(t testing.TB, what string) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "/usr/bin/chromium"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatalf("chromium not found on PATH or at /usr/bin/chromium; %s renders the page in it. Install it: apt-get install -y chromium", what)
	return ""
}

// SyncBuffer collects output written from other goroutines (a browser
// allocator's, a progress reporter's) while the test may read it.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
