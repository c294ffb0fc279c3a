//go:build tools

// Package tools pins krew, kubectl's plugin manager, and its manifest checker: the tests install
// `kubectl govcloud` with the real krew from the repo's manifest and the archive built for it.
package tools

import (
	_ "sigs.k8s.io/krew/cmd/krew"
	_ "sigs.k8s.io/krew/cmd/validate-krew-manifest"
)
