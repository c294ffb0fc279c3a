//go:build tools

// Package tools pins Velero's server and its AWS object-store plugin: the disaster-recovery
// tests back departments up to an S3-compatible server and restore them on another cluster.
package tools

import (
	_ "github.com/vmware-tanzu/velero-plugin-for-aws/velero-plugin-for-aws"
	_ "github.com/vmware-tanzu/velero/cmd/velero"
)
