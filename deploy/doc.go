// Package deploy holds how replay is shipped, and no Go code of its own: the
// container image (Dockerfile).
//
// CI has no Docker engine, so the tests here check the Dockerfile against
// the binary itself: it is parsed and linted with BuildKit's own parser,
// its go build command is run and the output checked to be a static binary
// that runs `replay version`.
package deploy
