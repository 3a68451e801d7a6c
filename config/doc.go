// Package config is replay's one configuration file: the struct that
// composes each package's own settings, its defaults (the embedded default
// needs no file at all), loading from YAML, overrides from environment
// variables and --set flags, and validation that names every bad field.
//
// It owns no behaviour: packages receive their section as a value. YAML is
// read with gopkg.in/yaml.v3, the maintained YAML library for Go that reports
// unknown fields with their line numbers and decodes durations like "5s".
package config
