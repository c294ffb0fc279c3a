//go:build tools

// Package tools pins the upstream Kubernetes control-plane binaries that the
// local test cluster runs; `go build` of these import paths yields them.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
