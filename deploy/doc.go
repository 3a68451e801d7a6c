// Package deploy holds how replay is shipped and run, and no Go code of its
// own: the container image (Dockerfile) and a local stack for Docker Compose
// (compose.yaml, compose/).
//
// CI has no Docker engine, so the tests here check these files against the
// binary itself: the Dockerfile's build command is run and its output
// checked to be a static binary; the compose file is loaded with
// compose-go, and the configuration it mounts is loaded with config.Load
// and its addresses, admin port and stop grace period compared with the
// stack's services and with the bound shutdown_grace implies.
package deploy
