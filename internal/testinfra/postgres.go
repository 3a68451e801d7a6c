package testinfra

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	// The driver the sinks link for Postgres catalogs; used here to create
	// databases.
	_ "github.com/jackc/pgx/v5/stdlib"
)

// Postgres is a throwaway PostgreSQL server: its own data directory, a free
// loopback port, trust authentication for the user "replay". Stop removes
// everything.
type Postgres struct {
	// Port is the TCP port on 127.0.0.1.
	Port int

	dir, bin string
	asUser   *user.User // the postgres account when running as root; nil otherwise
	cmd      *exec.Cmd  // the postmaster
	done     chan struct{}
}

// PostgresBinDir returns the directory of Debian's PostgreSQL server
// binaries (the newest under /usr/lib/postgresql), or an error that says how
// to install them.
func PostgresBinDir() (string, error) {
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(matches) == 0 {
		if p, err := exec.LookPath("initdb"); err == nil {
			return filepath.Dir(p), nil
		}
		return "", errors.New("PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin or on PATH: apt-get install -y postgresql (.ci/run installs it)")
	}
	slices.SortFunc(matches, func(a, b string) int { return versionOf(a) - versionOf(b) })
	return filepath.Dir(matches[len(matches)-1]), nil
}

func versionOf(initdb string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdb))))
	return v
}

// StartPostgres initializes a data directory and starts PostgreSQL on a
// free port, waiting until it accepts connections. PostgreSQL refuses to
// run as root, so as root initdb runs as the postgres account (Debian's
// package creates it) through runuser, and the server as a child process
// with that account's credentials, in a directory it owns.
func StartPostgres(ctx context.Context) (*Postgres, error) {
	bin, err := PostgresBinDir()
	if err != nil {
		return nil, err
	}
	p := &Postgres{bin: bin}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root, PostgreSQL needs the postgres account to run as: %w (apt-get install -y postgresql creates it)", err)
		}
		p.asUser = u
	}
	dir, err := os.MkdirTemp("", "replay-pg-")
	if err != nil {
		return nil, err
	}
	p.dir = dir
	if err := p.chown(dir); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	data, sock := filepath.Join(dir, "data"), filepath.Join(dir, "sock")
	for _, d := range []string{sock} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return nil, errors.Join(err, p.cleanup())
		}
		if err := p.chown(d); err != nil {
			return nil, errors.Join(err, p.cleanup())
		}
	}
	if out, err := p.run(ctx, "initdb", "-D", data, "-U", "replay", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"); err != nil {
		return nil, errors.Join(fmt.Errorf("initdb: %w\n%s", err, out), p.cleanup())
	}
	// A port can be taken between probing and binding: try a few.
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			return nil, errors.Join(err, p.cleanup())
		}
		if err := p.startServer(ctx, data, sock, port); err != nil {
			lastErr = err
			continue
		}
		p.Port = port
		return p, nil
	}
	return nil, errors.Join(lastErr, p.cleanup())
}

// startServer runs the postmaster as a child process (as the postgres
// account when root) that the kernel stops with SIGQUIT, PostgreSQL's
// immediate shutdown, if this process dies first: a test binary killed by
// its timeout leaves no server behind. It returns once the server answers.
func (p *Postgres) startServer(ctx context.Context, data, sock string, port int) error {
	logFile := filepath.Join(p.dir, "postgres.log")
	f, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	cmd := exec.Command(filepath.Join(p.bin, "postgres"), "-D", data, "-p", strconv.Itoa(port), "-k", sock,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
		"-c", "full_page_writes=off", "-c", "max_connections=400")
	cmd.Dir = p.dir
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGQUIT}
	if p.asUser != nil {
		uid, _ := strconv.Atoi(p.asUser.Uid)
		gid, _ := strconv.Atoi(p.asUser.Gid)
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	p.cmd, p.done = cmd, done

	db, err := sql.Open("pgx", fmt.Sprintf("postgres://replay@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=5", port))
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := db.PingContext(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-done:
			log, _ := os.ReadFile(logFile)
			return fmt.Errorf("postgres on port %d exited: %w\n%s", port, err, log)
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("postgres on port %d never answered: %w", port, err)
		case <-tick.C:
		}
	}
}

// DSN returns a URL for database db (created with CreateDatabase, or
// "postgres").
func (p *Postgres) DSN(db string) string {
	return fmt.Sprintf("postgres://replay@127.0.0.1:%d/%s?sslmode=disable", p.Port, db)
}

// CreateDatabase creates database name and returns its DSN.
func (p *Postgres) CreateDatabase(ctx context.Context, name string) (string, error) {
	db, err := sql.Open("pgx", p.DSN("postgres"))
	if err != nil {
		return "", err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+quoteIdent(name)); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return p.DSN(name), nil
}

// Stop stops the server at once (SIGQUIT: immediate shutdown) and removes
// its data directory.
func (p *Postgres) Stop() error {
	_ = p.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	return p.cleanup()
}

func (p *Postgres) cleanup() error { return os.RemoveAll(p.dir) }

// run runs one of the server binaries, as the postgres account when root.
func (p *Postgres) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	path := filepath.Join(p.bin, name)
	var cmd *exec.Cmd
	if p.asUser != nil {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", p.asUser.Username, "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	cmd.Dir = p.dir
	return cmd.CombinedOutput()
}

func (p *Postgres) chown(path string) error {
	if p.asUser == nil {
		return nil
	}
	uid, _ := strconv.Atoi(p.asUser.Uid)
	gid, _ := strconv.Atoi(p.asUser.Gid)
	return os.Chown(path, uid, gid)
}

// PostgresT starts a server for the test and stops it when the test ends.
// A missing installation fails the test with how to install it: it is never
// skipped.
func PostgresT(t testing.TB) *Postgres {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := StartPostgres(ctx)
	if err != nil {
		t.Fatalf("start PostgreSQL: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Errorf("stop PostgreSQL: %v", err)
		}
	})
	return p
}

// PostgresDatabaseT starts a server for the test (see PostgresT) and
// returns the DSN of a fresh database in it.
func PostgresDatabaseT(t testing.TB) string {
	t.Helper()
	p := PostgresT(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dsn, err := p.CreateDatabase(ctx, "catalog")
	if err != nil {
		t.Fatal(err)
	}
	return dsn
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
