// Command kubectl is the real kubectl of k8s.io/kubectl, for the test of fleet's
// `kubectl kustomize` fallback (tests/integration/test_render_kustomize.py).
package main

import (
	"k8s.io/component-base/cli"
	"k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/util"
)

func main() {
	if err := cli.RunNoErrOutput(cmd.NewDefaultKubectlCommand()); err != nil {
		util.CheckErr(err)
	}
}
