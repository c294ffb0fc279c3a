//go:build tools

// Package tools pins kwok, which simulates nodes so pods become Ready on the local control plane.
package tools

import _ "sigs.k8s.io/kwok/cmd/kwok"
