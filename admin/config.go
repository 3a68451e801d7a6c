package admin

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Config configures the admin HTTP server (the admin section of the file).
type Config struct {
	// Listen is the host:port the admin server binds, e.g. 127.0.0.1:9464;
	// empty disables it. Port 0 picks a free port (the bound address is
	// logged and available from Server.Addr).
	Listen string `yaml:"listen"`
	// Token, when set, is the bearer token every /v1/* request must carry
	// (Authorization: Bearer <token>); empty = no authentication. /healthz,
	// /readyz, /metrics and the live page itself are always open; the page
	// asks for the token to read /v1/*.
	Token string `yaml:"token"`
}

// Enabled reports whether the admin server should run.
func (c *Config) Enabled() bool { return c.Listen != "" }

// Validate returns every problem in c, each prefixed with its field name
// (listen, token); the caller adds the section prefix.
func (c *Config) Validate() []error {
	var errs []error
	if c.Listen != "" {
		host, port, err := net.SplitHostPort(c.Listen)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("listen: want host:port (e.g. 127.0.0.1:9464, or :9464 for every interface), got %q", c.Listen))
		default:
			if _, perr := strconv.ParseUint(port, 10, 16); perr != nil {
				errs = append(errs, fmt.Errorf("listen: port must be a number 0..65535 (0 = any free port), got %q", port))
			}
			if strings.ContainsAny(host, " \t") {
				errs = append(errs, fmt.Errorf("listen: host must not contain spaces, got %q", host))
			}
		}
	}
	if strings.ContainsAny(c.Token, " \t\r\n") {
		errs = append(errs, fmt.Errorf("token: must not contain whitespace (it is sent as Authorization: Bearer <token>)"))
	}
	return errs
}
