package compare

import "errors"

// Sentinel errors callers branch on (the compare command maps them to exit
// statuses).
var (
	// ErrInvalidConfig is wrapped by Run's error for a bad Config or
	// Options: the message names every bad field.
	ErrInvalidConfig = errors.New("invalid compare configuration")
	// ErrEmptyRun is wrapped by Run's error when neither table holds a row
	// of the run: most likely a mistyped run ID.
	ErrEmptyRun = errors.New("no rows for run")
)
