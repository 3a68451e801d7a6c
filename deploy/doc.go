// Package deploy holds how replay is shipped and run, and no Go code of its
// own: the container image (Dockerfile), Kubernetes manifests (k8s/, a
// kustomize base and an example overlay) and a local stack for Docker
// Compose (compose.yaml, compose/).
//
// CI has neither a Docker engine nor a Kubernetes cluster, so the tests here
// check these files against the binary itself: the Dockerfile's build
// command is run and its output checked to be a static binary; every
// manifest is decoded strictly with the Kubernetes API types and the
// kustomizations are rendered with kustomize's own library (krusty); the
// compose file is loaded with compose-go; and each configuration they carry
// is loaded with config.Load, its probes requested from the admin server's
// real handler, its termination grace period and memory limit compared with
// the bounds that shutdown_grace and the memory budgets imply
// (docs/operations.md derives them).
package deploy
