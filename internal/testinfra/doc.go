// Package testinfra starts the real servers replay's tests and the scaling
// benchmark run against, on this machine, each in a throwaway directory on
// a free loopback port: PostgreSQL (Debian's postgresql package, for the SQL
// catalog) and versitygw (an S3-protocol server with a posix backend, for
// the warehouse). It is shared by every package that needs them, so they
// start one way everywhere.
//
// A missing server is an error that says how to install it; the *T helpers
// fail the test with it rather than skip, since .ci/run installs both
// (apt-get install postgresql; go install versitygw).
//
// It must not be imported by non-test code of the binary: it runs external
// programs and exists for tests and benchmarks only.
package testinfra
