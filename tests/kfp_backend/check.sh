#!/usr/bin/env bash
# Kubeflow Pipelines' own Go code on the project's compiled specs: the API server's upload, run
# and recurring-run path (template.New, RunWorkflow with argocompiler.Compile, ScheduledWorkflow)
# and the driver's pod for each step (initPodSpecPatch: resources; extendPodSpecPatch:
# secretAsEnv), at a released backend version.
#
#   tests/kfp_backend/check.sh KFP_SOURCE TAG SPEC_YAML [MORE_SPECS...]
#
# KFP_SOURCE: a kubeflow/pipelines source tree at TAG (2.5.0 or 2.14.0). The Go module proxy
# refuses github.com/kubeflow/pipelines, so it cannot come from there; this script never fetches
# it: it copies two test files into a copy of it and runs `go test`, whose dependencies come from
# the Go module proxy into Go's module cache (GOMODCACHE, kept between runs). Nothing of it is
# committed here.
#
# Environment: TFX_EMBEDDINGS_RESOURCES (JSON {executor label: {"limits"|"requests": {"cpu"|
# "memory": quantity}}}) and TFX_EMBEDDINGS_SECRET (the MinIO secret every step must mount) for
# the first spec; TFX_EMBEDDINGS_WORKFLOW_HAS (comma-separated texts the compiled workflow has).
set -euo pipefail
source_tree=$(cd "$1" && pwd); tag=$2; shift 2
specs=()
for spec in "$@"; do specs+=("$(cd "$(dirname "$spec")" && pwd)/$(basename "$spec")"); done
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/kfp-check-XXXXXX")
trap 'rm -rf "$work"' EXIT
cp -r "$source_tree"/. "$work"/
template_dir="$work/backend/src/apiserver/template"
driver_dir="$work/backend/src/v2/driver"
cp "$here/template_check_test.go" "$template_dir/tfx_embeddings_check_test.go"
cp "$here/driver_check_test.go" "$driver_dir/tfx_embeddings_check_test.go"
case "$tag" in
  2.5.*)  new='New(bytes)'; proxy=github.com/kubeflow/pipelines/backend/src/apiserver/config/proxy; init='initPodSpecPatch(container, &pipelinespec.ComponentSpec{}, &pipelinespec.ExecutorInput{}, 1, "p", "r", "1", "true")' ;;
  2.14.*) new='New(bytes, false, nil)'; proxy=github.com/kubeflow/pipelines/backend/src/apiserver/config/proxy; init='initPodSpecPatch(container, &pipelinespec.ComponentSpec{}, &pipelinespec.ExecutorInput{}, 1, "p", "r", "1", "true", "false")' ;;
  *) echo "check.sh: no calls known for backend $tag (2.5.x, 2.14.x)" >&2; exit 2 ;;
esac
cat > "$template_dir/tfx_embeddings_shim_test.go" <<GO
package template

import "$proxy"

func newTemplate(bytes []byte) (Template, error) { return $new }

func initProxyForTests() { proxy.InitializeConfigWithEmptyForTests() }
GO
cat > "$driver_dir/tfx_embeddings_shim_test.go" <<GO
package driver

import (
	"$proxy"
	"github.com/kubeflow/pipelines/api/v2alpha1/go/pipelinespec"
	k8score "k8s.io/api/core/v1"
)

func initProxyForTests() { proxy.InitializeConfigWithEmptyForTests() }

func podSpecPatch(container *pipelinespec.PipelineDeploymentConfig_PipelineContainerSpec) (*k8score.PodSpec, error) {
	return $init
}

func k8sResource(kind string) k8score.ResourceName { return k8score.ResourceName(kind) }
GO
cd "$work"
export GOFLAGS=-mod=mod
TFX_EMBEDDINGS_SPECS=$(IFS=,; echo "${specs[*]}") \
  go test ./backend/src/apiserver/template/ -run TestTfxEmbeddingsSpecs -count=1 -v
TFX_EMBEDDINGS_SPEC="${specs[0]}" go test ./backend/src/v2/driver/ -run TestTfxEmbeddingsPods -count=1 -v
