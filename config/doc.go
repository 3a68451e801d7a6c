// Package config is replay's one configuration file: the struct that
// composes each package's own settings, its defaults (the embedded default
// needs no file at all), loading from YAML, overrides from environment
// variables and --set flags, and validation that names every bad field.
//
// Every problem is named by its YAML path and, in a file, its line, with the
// fix: a misspelled field gets the nearest known one (check.go walks the
// YAML node tree against the Config type before decoding), a bad value the
// kind and range the field takes. --set and REPLAY_* are checked the same
// way, every leaf field can be set by both, and a REPLAY_* variable that
// names no field is refused (see Load for the exceptions).
//
// It owns no behaviour: packages receive their section as a value. YAML is
// read with gopkg.in/yaml.v3, the maintained YAML library for Go that reports
// unknown fields with their line numbers and decodes durations like "5s".
package config
