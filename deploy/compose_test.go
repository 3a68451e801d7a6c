package deploy

import (
	"context"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/replaykit/replay/config"
)

// loadCompose loads deploy/compose.yaml with compose-go, the library
// `docker compose` itself uses: the file is validated against the Compose
// specification's schema (unknown keys are errors), interpolated with an
// empty environment, and its relative paths resolved.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	details := types.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(dir, "compose.yaml")}},
		Environment: types.Mapping{},
	}
	p, err := loader.LoadWithContext(context.Background(), details, func(o *loader.Options) {
		o.SetProjectName("replay", true)
	})
	if err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return p
}

// TestComposeStack checks deploy/compose.yaml without a Docker engine: every
// file it mounts or builds from exists, every image is pinned, and replay's
// configuration loads and names the stack's own services for the broker,
// the catalog, the object store and the target.
func TestComposeStack(t *testing.T) {
	p := loadCompose(t)
	for _, name := range []string{"redpanda", "captures", "minio", "create-bucket", "rest", "target", "replay"} {
		if _, ok := p.Services[name]; !ok {
			t.Errorf("compose.yaml has no service %s", name)
		}
	}
	for name, s := range p.Services {
		if s.Build == nil {
			ref := s.Image[strings.LastIndex(s.Image, "/")+1:]
			_, tag, ok := strings.Cut(ref, ":")
			if !ok || tag == "latest" {
				t.Errorf("service %s: image %q is not pinned to a version", name, s.Image)
			}
		}
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("service %s mounts %s, which does not exist: %v", name, v.Source, err)
			}
		}
	}

	r, ok := p.Services["replay"]
	if !ok {
		t.FailNow()
	}
	// Built from this repository with deploy/Dockerfile.
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	if r.Build == nil || r.Build.Context != root {
		t.Fatalf("replay is not built from the repository root %s: %+v", root, r.Build)
	}
	dockerfile := r.Build.Dockerfile
	if !filepath.IsAbs(dockerfile) {
		dockerfile = filepath.Join(r.Build.Context, dockerfile)
	}
	if want, _ := filepath.Abs("Dockerfile"); dockerfile != want {
		t.Errorf("replay is built with %s, want deploy/Dockerfile", dockerfile)
	}

	// The configuration it mounts loads and validates with its environment.
	args := []string(r.Command)
	i := slices.Index(args, "--config")
	if len(args) == 0 || args[0] != "run" || i < 0 || i+1 >= len(args) {
		t.Fatalf("replay command %q, want run --config FILE", args)
	}
	var file string
	for _, v := range r.Volumes {
		if v.Type == types.VolumeTypeBind && v.Target == args[i+1] {
			file = v.Source
		}
	}
	if file == "" {
		t.Fatalf("--config %s is not a file mounted into the replay service", args[i+1])
	}
	var environ []string
	for k, v := range r.Environment {
		if v != nil {
			environ = append(environ, k+"="+*v)
		}
	}
	cfg, err := config.Load(file, environ, nil)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}

	// Every address in it is a service of the stack, on a port that
	// service listens on.
	addrs := map[string]string{"replay.target": hostPort(t, cfg.Pipeline.Replay.Target), "sink.catalog.uri": hostPort(t, cfg.Sink.Catalog.URI)}
	for j, b := range cfg.Source.Kafka.Brokers {
		addrs["source.kafka.brokers["+strconv.Itoa(j)+"]"] = b
	}
	if ep, ok := cfg.Sink.Catalog.Properties["s3.endpoint"]; ok {
		addrs["sink.catalog.properties.s3.endpoint"] = hostPort(t, ep)
	} else {
		t.Error("sink.catalog.properties has no s3.endpoint: the warehouse would be looked for on AWS")
	}
	for field, addr := range addrs {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			t.Errorf("%s: %v", field, err)
			continue
		}
		s, ok := p.Services[host]
		if !ok {
			t.Errorf("%s = %s: no service %s in compose.yaml", field, addr, host)
			continue
		}
		if !listensOn(s, port) {
			t.Errorf("%s = %s: service %s does not listen on %s (ports, expose or command)", field, addr, host, port)
		}
		if !dependsOn(p, "replay", host) {
			t.Errorf("replay does not depend on %s (%s), directly or through another service", host, field)
		}
	}
	if !strings.HasPrefix(cfg.Sink.Catalog.Warehouse, "s3://") {
		t.Errorf("sink.catalog.warehouse %q: want the MinIO bucket", cfg.Sink.Catalog.Warehouse)
	}

	// The admin server is published on its own port, and `docker compose
	// stop` waits for a clean shutdown.
	port := adminPort(t, cfg)
	published := false
	for _, sp := range r.Ports {
		published = published || sp.Target == uint32(port)
	}
	if !published {
		t.Errorf("replay does not publish admin.listen's port %d", port)
	}
	if bound := shutdownBound(t, cfg); r.StopGracePeriod == nil || time.Duration(*r.StopGracePeriod) < bound {
		t.Errorf("replay stop_grace_period %v: want at least %s for shutdown_grace %s", r.StopGracePeriod, bound, cfg.Pipeline.ShutdownGrace)
	}
}

// dependsOn reports whether service from starts after service to: it
// depends on it, or on a service that does.
func dependsOn(p *types.Project, from, to string) bool {
	seen := map[string]bool{}
	next := []string{from}
	for len(next) > 0 {
		name := next[0]
		next = next[1:]
		for dep := range p.Services[name].DependsOn {
			if dep == to {
				return true
			}
			if !seen[dep] {
				seen[dep] = true
				next = append(next, dep)
			}
		}
	}
	return false
}

// hostPort returns the host:port of a URL, with the scheme's port when it
// has none.
func hostPort(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		t.Fatalf("%q is not a URL with a host", raw)
	}
	if u.Port() != "" {
		return u.Host
	}
	if u.Scheme == "https" {
		return net.JoinHostPort(u.Hostname(), "443")
	}
	return net.JoinHostPort(u.Hostname(), "80")
}

// listensOn reports whether service s declares port: published, exposed, or
// bound in its command (a broker's listener addresses).
func listensOn(s types.ServiceConfig, port string) bool {
	for _, sp := range s.Ports {
		if strconv.FormatUint(uint64(sp.Target), 10) == port {
			return true
		}
	}
	for _, e := range s.Expose {
		if strings.Split(e, "/")[0] == port {
			return true
		}
	}
	for _, arg := range s.Command {
		if strings.Contains(arg, ":"+port) {
			return true
		}
	}
	return false
}
