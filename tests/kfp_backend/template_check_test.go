// Copied into a kubeflow/pipelines source tree (backend/src/apiserver/template) by check.sh: the
// API server's own upload, run and recurring-run path on the project's compiled specs.
package template

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/kubeflow/pipelines/backend/src/apiserver/model"
	"github.com/kubeflow/pipelines/backend/src/common/util"
)

func TestTfxEmbeddingsSpecs(t *testing.T) {
	initProxyForTests()
	for _, path := range strings.Split(os.Getenv("TFX_EMBEDDINGS_SPECS"), ",") {
		bytes, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		tmpl, err := newTemplate(bytes) // The upload: template.New, as the API server parses it.
		if err != nil {
			t.Fatalf("%s: upload refused: %v", path, err)
		}
		spec := model.PipelineSpec{PipelineSpecManifest: string(bytes), RuntimeConfig: model.RuntimeConfig{
			Parameters: "{}", PipelineRoot: "minio://mlpipeline/v2/artifacts"}}
		run := &model.Run{DisplayName: "check", Namespace: "kubeflow", PipelineSpec: spec}
		workflow, err := tmpl.RunWorkflow(run, RunWorkflowOptions{RunId: "run-1", RunAt: 1})
		if err != nil {
			t.Fatalf("%s: run refused: %v", path, err)
		}
		text, err := json.Marshal(workflow)
		if err != nil {
			t.Fatal(err)
		}
		job := &model.Job{K8SName: "nightly", Enabled: true, MaxConcurrency: 1, PipelineSpec: spec,
			Trigger: model.Trigger{CronSchedule: model.CronSchedule{Cron: util.StringPointer("0 0 2 * * *")}}}
		if _, err := tmpl.ScheduledWorkflow(job); err != nil {
			t.Fatalf("%s: recurring run refused: %v", path, err)
		}
		for _, want := range strings.Split(os.Getenv("TFX_EMBEDDINGS_WORKFLOW_HAS"), ",") {
			if want != "" && !strings.Contains(string(text), want) {
				t.Errorf("%s: the compiled workflow has no %s", path, want)
			}
		}
		t.Logf("%s: upload, run (an Argo Workflow of %d bytes) and recurring run accepted", path,
			len(text))
	}
}
