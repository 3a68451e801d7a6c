package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/user"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/replaykit/replay/admin"
	"github.com/replaykit/replay/config"
)

// Where replay ctl finds the admin server when neither --addr nor
// admin.listen in --config says.
const (
	envAdminAddr     = config.EnvAdminAddr
	envAdminToken    = "REPLAY_ADMIN_TOKEN"
	defaultAdminAddr = "127.0.0.1:9464"
)

// ctlFlags are the flags every ctl subcommand shares.
type ctlFlags struct {
	addr, token, file string
	timeout           time.Duration
}

// client resolves the address and token and returns an admin API client.
// Address: --addr, else admin.listen from --config, else REPLAY_ADMIN_ADDR,
// else 127.0.0.1:9464. Token: --token, else REPLAY_ADMIN_TOKEN, else
// admin.token from --config.
func (f *ctlFlags) client() (*admin.Client, error) {
	if f.timeout <= 0 {
		return nil, usageError{fmt.Errorf("--timeout %s: must be > 0, e.g. --timeout 10s", f.timeout)}
	}
	addr, token := f.addr, f.token
	if f.file != "" && (addr == "" || token == "") {
		cfg, err := config.Load(f.file, os.Environ(), nil)
		if err != nil {
			return nil, err
		}
		if addr == "" && cfg.Admin.Listen != "" {
			addr = dialable(cfg.Admin.Listen)
		}
		if token == "" {
			token = cfg.Admin.Token
		}
	}
	if addr == "" {
		addr = os.Getenv(envAdminAddr)
	}
	if addr == "" {
		addr = defaultAdminAddr
	}
	if token == "" {
		token = os.Getenv(envAdminToken)
	}
	c, err := admin.NewClient(addr, token, actor(), f.timeout)
	if err != nil {
		return nil, usageError{fmt.Errorf("--addr: %w", err)}
	}
	return c, nil
}

// dialable turns a listen address into one to dial: a wildcard or empty
// host becomes the loopback address.
func dialable(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// actor names who runs ctl: user@host.
func actor() string {
	name := os.Getenv("USER")
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	host, _ := os.Hostname()
	switch {
	case name == "" && host == "":
		return "replay-ctl"
	case host == "":
		return name
	}
	return name + "@" + host
}

// ctlError explains a failed admin call with the flag to fix: a refused
// token or a bad value exits 2, like a bad flag; an unreachable server 1.
func ctlError(c *admin.Client, err error) error {
	var unreachable *admin.UnreachableError
	var bad *admin.RequestError
	var notReplay *admin.NotReplayError
	switch {
	case errors.As(err, &notReplay):
		return usageError{fmt.Errorf("%w; pass --addr, or set %s or admin.listen in --config", err, envAdminAddr)}
	case errors.As(err, &unreachable):
		return fmt.Errorf("%w; is replay run running there with admin.listen set? Pass --addr, or set %s or admin.listen in --config", err, envAdminAddr)
	case errors.Is(err, admin.ErrUnauthorized):
		return usageError{fmt.Errorf("%s: %w; pass --token, or set %s or admin.token in --config", c.URL(), admin.ErrUnauthorized, envAdminToken)}
	case errors.As(err, &bad) && bad.Status == 400:
		return usageError{err}
	}
	return err
}

func newCtlCommand(stdout io.Writer) *cobra.Command {
	var flags ctlFlags
	cmd := &cobra.Command{
		Use:   "ctl",
		Short: "Show and change the live controls of a running replay (pause, rate, dial, ...)",
		Long: `Talk to the admin API of a running 'replay run' (admin.listen).

  replay ctl status              what the run is doing: control, totals, last minute, lag
  replay ctl set --rate 200      change the pacing, the dial or the multipliers
  replay ctl pause               stop starting replays (in-flight ones finish)
  replay ctl resume              start again; also lifts a tripped guardrail

The address is --addr, else admin.listen from --config, else $` + envAdminAddr + `,
else ` + defaultAdminAddr + `. The token is --token, else $` + envAdminToken + `, else
admin.token from --config. Changes are logged by the server with who made them
(user@host of this machine) and from where.

Exit status: 0, 1 when the admin server cannot be reached or fails, 2 for a
bad flag or command, a value the server rejects (each bad field is named), a
missing or wrong token, or an address where something other than replay's
admin API answers.`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&flags.addr, "addr", "", "admin server address, host:port or http(s)://host:port")
	pf.StringVar(&flags.token, "token", "", "admin bearer token (admin.token)")
	pf.StringVarP(&flags.file, "config", "c", "", "replay's YAML config, for admin.listen and admin.token")
	pf.DurationVar(&flags.timeout, "timeout", 10*time.Second, "how long to wait for the admin server")
	cmd.AddCommand(newCtlStatusCommand(&flags, stdout), newCtlSetCommand(&flags, stdout),
		newCtlPauseCommand(&flags, stdout, true), newCtlPauseCommand(&flags, stdout, false))
	return cmd
}

func newCtlStatusCommand(flags *ctlFlags, stdout io.Writer) *cobra.Command {
	var raw bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the run's control, totals, last-minute rates and latencies, live match rate and lag",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := flags.client()
			if err != nil {
				return err
			}
			st, body, err := c.Status(cmd.Context())
			if err != nil {
				return ctlError(c, err)
			}
			if raw {
				_, err := stdout.Write(body)
				return err
			}
			return admin.WriteSummary(stdout, st)
		},
	}
	cmd.Flags().BoolVar(&raw, "json", false, "print the status JSON as the server sends it")
	return cmd
}

func newCtlSetCommand(flags *ctlFlags, stdout io.Writer) *cobra.Command {
	var (
		mode, ramp                          string
		rate, pace, dial, multiplierDefault float64
		burst                               int
		multipliers                         []string
		clearMultipliers                    bool
	)
	cmd := &cobra.Command{
		Use:   "set [flags]",
		Short: "Change the pacing (mode, rate, burst, pace, ramp), the dial or the multipliers of a running replay",
		Long: `Change the live control of a running replay; only the flags given change.

  --rate 200                    200 requests per second (rate mode)
  --pace 2                      twice the captured pace (pace mode)
  --ramp 100/s:2m,500/s:5m,2x:10m
                                stages of rate (N/s) or pace (Nx), each with a Go
                                duration, run in turn, the last one held (ramp mode)
  --mode max                    as fast as the workers allow
  --dial 25                     replay 25% of the dial keys (sticky: raising it only adds keys)
  --multiplier tv=1.8 --multiplier android=1.3
                                evacuation multipliers by amplify key value; replaces the map
  --multiplier-default 1        the factor of values not listed

--rate, --pace and --ramp switch to their mode unless --mode says otherwise.
The server checks the whole change and applies all of it or none; a rejected
value exits 2 naming the field.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fl := cmd.Flags()
			update := map[string]any{}
			var implied []string
			if fl.Changed("rate") {
				update["rate"] = rate
				implied = append(implied, "rate")
			}
			if fl.Changed("pace") {
				update["pace"] = pace
				implied = append(implied, "pace")
			}
			if fl.Changed("ramp") {
				stages, err := admin.ParseRamp(ramp)
				if err != nil {
					return usageError{fmt.Errorf("--ramp: %w", err)}
				}
				update["ramp"] = stages
				implied = append(implied, "ramp")
			}
			switch {
			case fl.Changed("mode"):
				update["mode"] = mode
			case len(implied) == 1:
				update["mode"] = implied[0]
			case len(implied) > 1:
				return usageError{fmt.Errorf("--%s given together: say which mode applies with --mode", strings.Join(implied, ", --"))}
			}
			if fl.Changed("burst") {
				update["burst"] = burst
			}
			if fl.Changed("dial") {
				update["dial_percent"] = dial
			}
			if fl.Changed("multiplier") || clearMultipliers {
				m := map[string]float64{}
				for _, kv := range multipliers {
					k, v, ok := strings.Cut(kv, "=")
					f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
					if !ok || strings.TrimSpace(k) == "" || err != nil {
						return usageError{fmt.Errorf("--multiplier %q: want value=factor, e.g. --multiplier tv=1.8", kv)}
					}
					m[strings.TrimSpace(k)] = f
				}
				if clearMultipliers && len(m) > 0 {
					return usageError{errors.New("--clear-multipliers and --multiplier given together")}
				}
				update["multipliers"] = m
			}
			if fl.Changed("multiplier-default") {
				update["multiplier_default"] = multiplierDefault
			}
			if len(update) == 0 {
				return usageError{errors.New("nothing to set: give at least one of --mode, --rate, --burst, --pace, --ramp, --dial, --multiplier, --multiplier-default (see --help)")}
			}
			return updateControl(cmd.Context(), flags, stdout, update)
		},
	}
	f := cmd.Flags()
	f.StringVar(&mode, "mode", "", "pacing mode: rate, pace, ramp or max")
	f.Float64Var(&rate, "rate", 0, "requests per second in rate mode; 0 = unlimited")
	f.IntVar(&burst, "burst", 0, "requests that may start at once in rate mode")
	f.Float64Var(&pace, "pace", 0, "multiple of the captured pace in pace mode (2 = twice as fast)")
	f.StringVar(&ramp, "ramp", "", "ramp stages, e.g. 100/s:2m,500/s:5m,2x:10m")
	f.Float64Var(&dial, "dial", 0, "percent of dial keys replayed, 0 to 100")
	f.StringArrayVar(&multipliers, "multiplier", nil, "evacuation multiplier value=factor (repeatable; replaces all multipliers)")
	f.BoolVar(&clearMultipliers, "clear-multipliers", false, "remove every multiplier (values get --multiplier-default)")
	f.Float64Var(&multiplierDefault, "multiplier-default", 0, "multiplier of values not listed (≥ 1)")
	return cmd
}

func newCtlPauseCommand(flags *ctlFlags, stdout io.Writer, pause bool) *cobra.Command {
	use, short := "pause", "Stop starting replays: in-flight ones finish, records wait and polling stops"
	if !pause {
		use, short = "resume", "Start replaying again after a pause, by an operator or a tripped guardrail"
	}
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return updateControl(cmd.Context(), flags, stdout, map[string]any{"paused": pause})
		},
	}
}

// updateControl sends update and prints the control now in force.
func updateControl(ctx context.Context, flags *ctlFlags, stdout io.Writer, update map[string]any) error {
	c, err := flags.client()
	if err != nil {
		return err
	}
	st, err := c.UpdateControl(ctx, update)
	if err != nil {
		return ctlError(c, err)
	}
	return admin.WriteControl(stdout, st)
}
