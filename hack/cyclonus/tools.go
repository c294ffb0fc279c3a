//go:build tools

// Package tools pins cyclonus, an independent NetworkPolicy engine: the tests compute who can
// reach whom from the policies the operator wrote, without a network plugin.
package tools

import _ "github.com/mattfenwick/cyclonus/cmd/cyclonus"
