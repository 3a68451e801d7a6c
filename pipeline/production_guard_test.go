package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/replaykit/replay/schemas"
)

func TestNewRefusesProductionTarget(t *testing.T) {
	tests := []struct {
		name   string
		target string
		prod   []string
		allow  bool
		want   string // a part of the error; "" for none
	}{
		{"same name", "http://api.example.com:8080", []string{"API.example.com."}, false, `replay.production_hosts[0] is "API.example.com."`},
		{"same name and port", "https://api.example.com", []string{"other", "api.example.com:443"}, false, `replay.production_hosts[1]`},
		{"same name, other port", "http://api.example.com:8080", []string{"api.example.com:443"}, false, ""},
		{"same address", "http://127.0.0.1:8080", []string{"localhost"}, false, "it resolves to 127.0.0.1"},
		{"same address and port", "http://localhost:8080", []string{"127.0.0.1:8080"}, false, "it resolves to 127.0.0.1"},
		{"same address, other port", "http://localhost:8080", []string{"127.0.0.1:80"}, false, ""},
		{"IPv6 literal", "http://[::1]:8080", []string{"[::1]"}, false, `replay.production_hosts[0] is "[::1]"`},
		{"other host", "http://127.0.0.2:8080", []string{"127.0.0.1"}, false, ""},
		{"allowed", "http://api.example.com", []string{"api.example.com"}, true, ""},
		{"no production hosts", "http://api.example.com", nil, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := validConfig()
			cfg.Replay.Target = tt.target
			cfg.Replay.ProductionHosts = tt.prod
			cfg.Replay.AllowProductionTarget = tt.allow
			_, err := New(cfg, &memSource{}, &memSink{t: t}, nil)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("New() = %v, want no error", err)
				}
				return
			}
			if !errors.Is(err, ErrProductionTarget) {
				t.Fatalf("New() = %v, want ErrProductionTarget", err)
			}
			for _, part := range []string{"replay.target: ", "replay.allow_production_target", tt.want} {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("error %q does not contain %q", err, part)
				}
			}
		})
	}
}

func TestParseHostPort(t *testing.T) {
	tests := []struct {
		in, host, port, err string
	}{
		{in: "api.example.com", host: "api.example.com"},
		{in: " API.Example.COM. ", host: "api.example.com"},
		{in: "api.example.com:8443", host: "api.example.com", port: "8443"},
		{in: "10.0.0.1:80", host: "10.0.0.1", port: "80"},
		{in: "::1", host: "::1"},
		{in: "[::1]", host: "::1"},
		{in: "[::1]:443", host: "::1", port: "443"},
		{in: "", err: "must not be empty"},
		{in: "https://api.example.com", err: "not a URL"},
		{in: "api.example.com/v1", err: "not a URL"},
		{in: "api.example.com:0", err: "between 1 and 65535"},
		{in: "api.example.com:http", err: "between 1 and 65535"},
		{in: ":80", err: "must name a host"},
	}
	for _, tt := range tests {
		hp, err := parseHostPort(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("parseHostPort(%q) = %v, %v; want an error containing %q", tt.in, hp, err, tt.err)
			}
			continue
		}
		if err != nil || hp.host != tt.host || hp.port != tt.port {
			t.Errorf("parseHostPort(%q) = %q %q, %v; want %q %q", tt.in, hp.host, hp.port, err, tt.host, tt.port)
		}
	}
}

func TestCapturedFromTarget(t *testing.T) {
	target := hostPort{host: "api.example.com", port: "443"}
	tests := []struct {
		scheme, host string
		header       string // Host header when host is empty
		want         bool
	}{
		{"https", "api.example.com", "", true},
		{"https", "API.example.com:443", "", true},
		{"http", "api.example.com", "", false}, // port 80
		{"", "api.example.com", "", true},      // port unknown: the host decides
		{"", "api.example.com:8443", "", false},
		{"https", "", "api.example.com", true},
		{"https", "other.example.com", "", false},
		{"https", "", "", false},
	}
	for _, tt := range tests {
		x := &schemas.Exchange{Request: schemas.Request{Scheme: tt.scheme, Host: tt.host}}
		if tt.header != "" {
			x.Request.Headers = map[string][]string{"host": {tt.header}}
		}
		hp, ok := capturedHost(x)
		if got := ok && sameEndpoint(hp, target); got != tt.want {
			t.Errorf("captured %s://%s (Host %q): from the target = %v, want %v", tt.scheme, tt.host, tt.header, got, tt.want)
		}
	}
}

func TestRunStopsOnRecordCapturedFromTarget(t *testing.T) {
	target := &recorder{}
	srv := newServer(t, target)
	hostport := strings.TrimPrefix(srv.URL, "http://")
	fromTarget := func(cid, method string) []byte {
		b, err := json.Marshal(schemas.Envelope{
			CorrelationID: cid, CapturedAt: capturedAt,
			Request: &schemas.EnvelopeRequest{Method: method, Scheme: "http", Host: hostport, Path: "/v1/x"},
		})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// The first record is not selected (POST): it is written, nothing is
	// sent; the second would be replayed into production.
	values := [][]byte{fromTarget("post", "POST"), fromTarget("get", "GET"), fromTarget("get2", "GET")}

	for _, allow := range []bool{false, true} {
		cfg := validConfig()
		cfg.Replay.Target = srv.URL
		cfg.Replay.AllowProductionTarget = allow
		src := &memSource{batches: interleave([][][]byte{values}, 3)}
		sink := &memSink{t: t}
		_, errc := startPipeline(t, context.Background(), cfg, src, sink, nil)
		err := <-errc
		_, sent := target.get("get")
		if allow {
			if err != nil || !sent {
				t.Fatalf("allowed: Run() = %v, sent %v; want nil and the replay sent", err, sent)
			}
			continue
		}
		if !errors.Is(err, ErrProductionTarget) || !strings.Contains(err.Error(), "replay.allow_production_target") ||
			!strings.Contains(err.Error(), hostport) {
			t.Fatalf("Run() = %v, want ErrProductionTarget naming the host and replay.allow_production_target", err)
		}
		if sent {
			t.Fatal("the record captured from the target was sent to it")
		}
		flushed, _ := sink.results()
		if len(flushed) != 1 || flushed[0].Replay != nil {
			t.Fatalf("%d results written, want only the unselected record before it", len(flushed))
		}
		if off := src.committed()[tp(0)]; off != 1 {
			t.Fatalf("committed %d, want 1: nothing at or after the refused record", off)
		}
	}
}
