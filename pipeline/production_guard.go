package pipeline

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sourcegraph/conc"

	"github.com/replaykit/replay/schemas"
)

// ErrProductionTarget is wrapped by the error of New when replay.target (or
// replay.baseline) is a production host, and by the error of Run when a
// selected record was captured from the target (or the baseline) itself.
// replay.allow_production_target turns both checks off.
var ErrProductionTarget = errors.New("replay target is a production host")

// productionLookupTimeout bounds the DNS lookups New makes to compare the
// target with replay.production_hosts.
const productionLookupTimeout = 2 * time.Second

// hostPort is a host (name lower-cased without a trailing dot, or IP) and a
// port, "" when not known.
type hostPort struct {
	host, port string
	raw        string // as configured or captured, for messages
}

func (hp hostPort) String() string {
	if hp.port == "" {
		return hp.host
	}
	return net.JoinHostPort(hp.host, hp.port)
}

// parseHostPort parses a replay.production_hosts entry: host, host:port,
// IPv4, [IPv6] or [IPv6]:port.
func parseHostPort(s string) (hostPort, error) {
	raw := s
	s = strings.TrimSpace(s)
	if s == "" {
		return hostPort{}, errors.New("must not be empty; give a host name or host:port")
	}
	if strings.Contains(s, "://") || strings.ContainsAny(s, "/?#@ \t") {
		return hostPort{}, fmt.Errorf("must be a host or host:port, not a URL, got %q", raw)
	}
	host, port := s, ""
	if strings.HasPrefix(s, "[") || strings.Count(s, ":") == 1 {
		if h, p, err := net.SplitHostPort(s); err == nil {
			host, port = h, p
		} else if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
			host = s[1 : len(s)-1]
		} else {
			return hostPort{}, fmt.Errorf("must be a host or host:port, got %q: %v", raw, err)
		}
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return hostPort{}, fmt.Errorf("port %q of %q is not a number between 1 and 65535", port, raw)
		}
	}
	host = normalizeHost(host)
	if host == "" {
		return hostPort{}, fmt.Errorf("must name a host, got %q", raw)
	}
	return hostPort{host: host, port: port, raw: raw}, nil
}

func normalizeHost(h string) string { return strings.TrimSuffix(strings.ToLower(h), ".") }

// defaultPort is the port a URL scheme implies, "" when unknown.
func defaultPort(scheme string) string {
	switch strings.ToLower(scheme) {
	case "http":
		return "80"
	case "https":
		return "443"
	}
	return ""
}

// targetHostPort is the host and port requests go to.
func targetHostPort(u *url.URL) hostPort {
	port := u.Port()
	if port == "" {
		port = defaultPort(u.Scheme)
	}
	return hostPort{host: normalizeHost(u.Hostname()), port: port, raw: u.Host}
}

// sameEndpoint reports whether a and b may be the same endpoint: the same
// host, and the same port unless one of them does not say.
func sameEndpoint(a, b hostPort) bool {
	return a.host == b.host && (a.port == "" || b.port == "" || a.port == b.port)
}

// endpoint is one place replayed requests go: replay.target, or
// replay.baseline.
type endpoint struct {
	field string // replay.target or replay.baseline
	url   string // as configured
	hp    hostPort
	fix   string // what it should point at instead
}

// endpoints returns where a configuration sends requests: the target, and
// the baseline when one is set.
func endpoints(cfg Config, c *compiled) []endpoint {
	out := []endpoint{{"replay.target", cfg.Replay.Target, targetHostPort(c.target), "the new cluster"}}
	if c.baseline != nil {
		out = append(out, endpoint{"replay.baseline", cfg.Replay.Baseline, targetHostPort(c.baseline), "a second copy of the old version"})
	}
	return out
}

// checkProductionTargets returns an error wrapping ErrProductionTarget
// when one of eps is a production host by name or by address.
func checkProductionTargets(ctx context.Context, eps []endpoint, prod []hostPort) error {
	for _, ep := range eps {
		if err := checkProductionTarget(ctx, ep, prod); err != nil {
			return err
		}
	}
	return nil
}

// checkProductionTarget returns an error wrapping ErrProductionTarget when
// ep is one of prod by name, or shares an address with one of them.
// Lookups that fail are ignored: the check is a guard, not a dependency on
// DNS.
func checkProductionTarget(ctx context.Context, ep endpoint, prod []hostPort) error {
	target := ep.hp
	refuse := func(why string) error {
		fe := &FieldError{Field: ep.field, Problem: fmt.Sprintf(
			"%q is a production host (%s); point %s at %s, or set replay.allow_production_target: true to replay against it on purpose",
			ep.url, why, ep.field, ep.fix)}
		return fmt.Errorf("%w: %w", ErrProductionTarget, fe)
	}
	var candidates []int
	for i, hp := range prod {
		if !portsMayMatch(target, hp) {
			continue
		}
		if hp.host == target.host {
			return refuse(fmt.Sprintf("replay.production_hosts[%d] is %q", i, hp.raw))
		}
		candidates = append(candidates, i)
	}
	if len(candidates) == 0 {
		return nil
	}

	ctx, cancel := context.WithTimeout(ctx, productionLookupTimeout)
	defer cancel()
	addrs := make([][]net.IPAddr, len(prod)+1)
	var wg conc.WaitGroup
	lookup := func(slot int, host string) {
		wg.Go(func() { addrs[slot], _ = net.DefaultResolver.LookupIPAddr(ctx, host) })
	}
	lookup(len(prod), target.host)
	for _, i := range candidates {
		lookup(i, prod[i].host)
	}
	wg.Wait()
	for _, i := range candidates {
		for _, a := range addrs[i] {
			for _, b := range addrs[len(prod)] {
				if a.IP.Equal(b.IP) {
					return refuse(fmt.Sprintf("it resolves to %s, as replay.production_hosts[%d] %q does", b.IP, i, prod[i].raw))
				}
			}
		}
	}
	return nil
}

func portsMayMatch(target, prod hostPort) bool {
	return prod.port == "" || prod.port == target.port
}

// capturedHost is the host a record was captured from: request.host, or
// its Host header, with the port its scheme implies when it names none.
// ok is false when the record names no host.
func capturedHost(x *schemas.Exchange) (hp hostPort, ok bool) {
	raw := x.Request.Host
	if raw == "" {
		for k, vs := range x.Request.Headers {
			if strings.EqualFold(k, "Host") && len(vs) > 0 {
				raw = vs[0]
				break
			}
		}
	}
	if raw == "" {
		return hostPort{}, false
	}
	host, port := raw, ""
	if h, p, err := net.SplitHostPort(raw); err == nil {
		host, port = h, p
	} else if strings.HasPrefix(raw, "[") && strings.HasSuffix(raw, "]") {
		host = raw[1 : len(raw)-1]
	}
	if port == "" {
		port = defaultPort(x.Request.Scheme)
	}
	return hostPort{host: normalizeHost(host), port: port, raw: raw}, true
}

// capturedFromEndpoint returns the error that stops a run when x was
// captured from one of eps (the target or the baseline), or nil.
func capturedFromEndpoint(x *schemas.Exchange, eps []endpoint) error {
	captured, ok := capturedHost(x)
	if !ok {
		return nil
	}
	for _, ep := range eps {
		if sameEndpoint(captured, ep.hp) {
			return productionRecordError(x, captured, ep)
		}
	}
	return nil
}

// productionRecordError is the error that stops a run when a selected
// record was captured from the target or the baseline.
func productionRecordError(x *schemas.Exchange, captured hostPort, ep endpoint) error {
	return fmt.Errorf("%w: record %s (correlation_id %s) was captured from %s, which is %s %s: "+
		"replaying it would send production traffic back to production; point %s at %s, "+
		"or set replay.allow_production_target: true to replay against it on purpose",
		ErrProductionTarget, x.Source, x.CorrelationID, captured.raw, ep.field, ep.url, ep.field, ep.fix)
}
