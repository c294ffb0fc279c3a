//go:build tools

// Package tools pins promtool, Prometheus's rule checker: the tests prove each alert of the
// chart fires on synthetic series that should raise it, and stays quiet on ones that should not.
package tools

import _ "github.com/prometheus/prometheus/cmd/promtool"
