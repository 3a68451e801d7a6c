package deploy

import (
	"bytes"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"go/version"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	"golang.org/x/mod/modfile"
)

// repoRoot is the repository root, relative to this package's directory
// (where go test runs).
const repoRoot = ".."

// testVersion is the VERSION build argument of the test build.
const testVersion = "v0.0.0-deploy-test"

// image is what the tests read from deploy/Dockerfile.
type image struct {
	build, final instructions.Stage
	metaArgs     []instructions.ArgCommand
	// buildEnv and buildArgs are the go build command of the build stage:
	// the variables set before it and its arguments, with the build
	// arguments expanded as the test build sets them.
	buildEnv, buildArgs []string
}

// dockerfile parses deploy/Dockerfile with BuildKit's own parser, linter
// and instruction types, once.
var dockerfile = sync.OnceValues(readDockerfile)

func parseDockerfile(t *testing.T) image {
	t.Helper()
	img, err := dockerfile()
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func readDockerfile() (image, error) {
	var img image
	raw, err := os.ReadFile("Dockerfile")
	if err != nil {
		return img, err
	}
	res, err := parser.Parse(bytes.NewReader(raw))
	if err != nil {
		return img, fmt.Errorf("parse Dockerfile: %w", err)
	}
	var problems []string
	for _, w := range res.Warnings {
		problems = append(problems, fmt.Sprintf("parser: %s", w.Short))
	}
	lint := linter.New(&linter.Config{Warn: func(rule, _, _, msg string, loc []parser.Range) {
		line := 0
		if len(loc) > 0 {
			line = loc[0].Start.Line
		}
		problems = append(problems, fmt.Sprintf("line %d: %s: %s", line, rule, msg))
	}})
	stages, metaArgs, err := instructions.Parse(res.AST, lint)
	if err != nil {
		return img, fmt.Errorf("Dockerfile instructions: %w", err)
	}
	if len(problems) > 0 {
		return img, fmt.Errorf("Dockerfile lint:\n  %s", strings.Join(problems, "\n  "))
	}
	if len(stages) < 2 {
		return img, fmt.Errorf("Dockerfile has %d stages, want a build stage and a final one", len(stages))
	}
	img.metaArgs = metaArgs
	img.final = stages[len(stages)-1]
	for _, s := range stages {
		if s.Name == "build" {
			img.build = s
		}
	}
	if img.build.Name == "" {
		return img, errors.New(`Dockerfile: no stage named "build"`)
	}
	// The build stage's go build command, expanded as BuildKit would for
	// this machine's platform.
	env := []string{"VERSION=" + testVersion, "TARGETOS=" + runtime.GOOS, "TARGETARCH=" + runtime.GOARCH}
	for _, c := range img.build.Commands {
		run, ok := c.(*instructions.RunCommand)
		if !ok || !strings.Contains(strings.Join(run.CmdLine, " "), "go build") {
			continue
		}
		words, err := shell.NewLex(res.EscapeToken).ProcessWords(strings.Join(run.CmdLine, " "), shell.EnvsFromSlice(env))
		if err != nil {
			return img, fmt.Errorf("Dockerfile: expand %q: %w", run.CmdLine, err)
		}
		i := slices.Index(words, "go")
		if i < 0 || i+1 >= len(words) || words[i+1] != "build" {
			return img, fmt.Errorf("Dockerfile: want VAR=value... go build ..., got %q", words)
		}
		for _, w := range words[:i] {
			if !strings.Contains(w, "=") {
				return img, fmt.Errorf("Dockerfile: %q before go build is not a variable assignment", w)
			}
		}
		img.buildEnv, img.buildArgs = words[:i], words[i+2:]
	}
	if img.buildArgs == nil {
		return img, errors.New("Dockerfile: no RUN ... go build in the build stage")
	}
	return img, nil
}

// flagValue returns the value of -name in args ("-o x" or "-o=x").
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		if a == "-"+name && i+1 < len(args) {
			return args[i+1], true
		}
		if v, ok := strings.CutPrefix(a, "-"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// binaryDir holds the binary the tests build; TestMain removes it.
var binaryDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if binaryDir != "" {
		_ = os.RemoveAll(binaryDir)
	}
	os.Exit(code)
}

// buildBinary builds ./cmd/replay exactly as the Dockerfile's build stage
// does (same variables, same flags, VERSION=testVersion), once.
var buildBinary = sync.OnceValues(func() (string, error) {
	img, err := dockerfile()
	if err != nil {
		return "", err
	}
	if binaryDir, err = os.MkdirTemp("", "replay-deploy-test-"); err != nil {
		return "", err
	}
	bin := filepath.Join(binaryDir, "replay")
	args := slices.Clone(img.buildArgs)
	for i, a := range args {
		if a == "-o" && i+1 < len(args) {
			args[i+1] = bin
		}
	}
	cmd := exec.Command("go", append([]string{"build"}, args...)...)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), img.buildEnv...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s (as in the Dockerfile): %v\n%s", strings.Join(args, " "), err, out)
	}
	return bin, nil
})

// replayBinary returns the binary built as the Dockerfile builds it.
func replayBinary(t *testing.T) string {
	t.Helper()
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

func TestDockerfileStages(t *testing.T) {
	img := parseDockerfile(t)

	// The build stage's Go is at least the one go.mod asks for.
	raw, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	mod, err := modfile.ParseLax("go.mod", raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	name, tag, _ := strings.Cut(img.build.BaseName, ":")
	if name != "golang" {
		t.Errorf("build stage FROM %s, want the official golang image", img.build.BaseName)
	}
	goVersion, _, _ := strings.Cut(tag, "-")
	if !version.IsValid("go"+goVersion) || version.Compare("go"+goVersion, "go"+mod.Go.Version) < 0 {
		t.Errorf("build stage FROM %s: want a Go version tag ≥ go.mod's go %s", img.build.BaseName, mod.Go.Version)
	}

	// A static binary: cgo off.
	if !slices.Contains(img.buildEnv, "CGO_ENABLED=0") {
		t.Errorf("go build runs with %q, want CGO_ENABLED=0", img.buildEnv)
	}
	out, ok := flagValue(img.buildArgs, "o")
	if !ok {
		t.Fatalf("go build %q has no -o", img.buildArgs)
	}
	if img.buildArgs[len(img.buildArgs)-1] != "./cmd/replay" {
		t.Errorf("go build %q does not build ./cmd/replay", img.buildArgs)
	}
	if ld, _ := flagValue(img.buildArgs, "ldflags"); !strings.Contains(ld, "-X main.version="+testVersion) {
		t.Errorf("go build -ldflags %q does not stamp main.version from the VERSION build argument", ld)
	}

	// The final stage: minimal, with the binary from the build stage as its
	// entrypoint, run by a numeric non-root user.
	base := img.final.BaseName
	if base != "scratch" && !strings.HasPrefix(base, "gcr.io/distroless/static") {
		t.Errorf("final stage FROM %s, want gcr.io/distroless/static… or scratch", base)
	}
	var copied, user string
	var entrypoint []string
	for _, c := range img.final.Commands {
		switch c := c.(type) {
		case *instructions.RunCommand:
			t.Errorf("final stage runs %q: it has no shell, build in the build stage", c.CmdLine)
		case *instructions.CopyCommand:
			if c.From == img.build.Name && slices.Contains(c.SourcePaths, out) {
				copied = c.DestPath
			}
		case *instructions.UserCommand:
			user = c.User
		case *instructions.EntrypointCommand:
			if c.PrependShell {
				t.Errorf("ENTRYPOINT %q is in shell form; the image has no shell, use the exec form", c.CmdLine)
			}
			entrypoint = c.CmdLine
		}
	}
	if copied == "" {
		t.Fatalf("final stage does not COPY --from=%s %s", img.build.Name, out)
	}
	if len(entrypoint) == 0 || entrypoint[0] != copied {
		t.Errorf("ENTRYPOINT %q, want [%q] (where the binary is copied)", entrypoint, copied)
	}
	if uid := dockerfileUID(t); uid == 0 {
		t.Errorf("USER %q runs as root", user)
	}
}

// dockerfileUID returns the numeric user ID the final stage runs as. A name
// fails the test: Kubernetes' runAsNonRoot can only check a number.
func dockerfileUID(t *testing.T) int64 {
	t.Helper()
	img := parseDockerfile(t)
	user := ""
	for _, c := range img.final.Commands {
		if u, ok := c.(*instructions.UserCommand); ok {
			user = u.User
		}
	}
	if user == "" {
		t.Fatal("final stage has no USER: it would run as root")
	}
	name, _, _ := strings.Cut(user, ":")
	uid, err := strconv.ParseInt(name, 10, 64)
	if err != nil {
		t.Fatalf("USER %q: want a numeric UID (Kubernetes' runAsNonRoot cannot check a name)", user)
	}
	return uid
}

// TestDockerfileBuildsAStaticBinary runs the Dockerfile's go build command
// and checks the result would run on an image without a C library: no
// dynamic interpreter, no shared libraries. Then it runs `replay version`,
// as `docker run IMAGE version` would.
func TestDockerfileBuildsAStaticBinary(t *testing.T) {
	t.Parallel()
	bin := replayBinary(t)

	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			interp, _ := io.ReadAll(p.Open())
			t.Errorf("the binary asks for the dynamic loader %q, which distroless/static does not have", bytes.TrimRight(interp, "\x00"))
		}
		if p.Type == elf.PT_DYNAMIC {
			t.Errorf("the binary has a dynamic section: it is not statically linked")
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		t.Fatal(err)
	}
	if len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %q", libs)
	}

	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("replay version: %v\n%s", err, out)
	}
	if first, _, _ := strings.Cut(string(out), "\n"); first != "replay "+testVersion {
		t.Errorf("replay version printed %q, want first line %q", out, "replay "+testVersion)
	}
}

// TestBinaryNeedsNoCgo checks that no dependency of the binary outside the
// standard library has cgo code. With CGO_ENABLED=0 such a package builds
// its no-cgo fallback, or a stub that fails at run time (mattn/go-sqlite3
// does), which only a run of that code path would show.
func TestBinaryNeedsNoCgo(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "-json=ImportPath,Standard,CgoFiles", "./cmd/replay")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	var seen int
	for {
		var p struct {
			ImportPath string
			Standard   bool
			CgoFiles   []string
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		seen++
		if len(p.CgoFiles) > 0 && !p.Standard {
			t.Errorf("%s uses cgo (%s): the static image would build it without cgo; find a pure-Go alternative", p.ImportPath, strings.Join(p.CgoFiles, ", "))
		}
	}
	if seen < 100 {
		t.Fatalf("go list listed %d packages; expected the binary's whole dependency graph", seen)
	}
}

// TestDockerignoreKeepsBuildInputs checks that deploy/Dockerfile.dockerignore
// leaves in the build context every file go build reads for the binary:
// go.mod, go.sum, and the Go and embedded files of the module's packages.
func TestDockerignoreKeepsBuildInputs(t *testing.T) {
	f, err := os.Open("Dockerfile.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	ignored := func(rel string) bool {
		m, err := pm.MatchesOrParentMatches(filepath.ToSlash(rel))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	// The file is read: what it is for is excluded.
	for _, rel := range []string{".git/HEAD", "bin/replay", "deploy/k8s/base/deployment.yaml"} {
		if !ignored(rel) {
			t.Errorf("%s is in the build context; the dockerignore should leave it out", rel)
		}
	}

	cmd := exec.Command("go", "list", "-deps", "-json=Dir,Module,GoFiles,EmbedFiles", "./cmd/replay")
	cmd.Dir = repoRoot
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	inputs := []string{"go.mod", "go.sum"}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p struct {
			Dir                 string
			Module              *struct{ Main bool }
			GoFiles, EmbedFiles []string
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if p.Module == nil || !p.Module.Main {
			continue
		}
		for _, name := range append(p.GoFiles, p.EmbedFiles...) {
			rel, err := filepath.Rel(root, filepath.Join(p.Dir, name))
			if err != nil {
				t.Fatal(err)
			}
			inputs = append(inputs, rel)
		}
	}
	if len(inputs) < 20 {
		t.Fatalf("found %d build inputs; expected the module's packages", len(inputs))
	}
	for _, rel := range inputs {
		if ignored(rel) {
			t.Errorf("the dockerignore leaves %s out of the build context; go build needs it", rel)
		}
	}
}
