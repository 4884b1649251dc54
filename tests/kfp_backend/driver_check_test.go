// Copied into a kubeflow/pipelines source tree (backend/src/v2/driver) by check.sh: what the
// driver makes of each step of a compiled spec, its pod's resources (initPodSpecPatch) and its
// kfp-kubernetes settings (extendPodSpecPatch: secretAsEnv).
package driver

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/kubeflow/pipelines/api/v2alpha1/go/pipelinespec"
	"github.com/kubeflow/pipelines/kubernetes_platform/go/kubernetesplatform"
	"google.golang.org/protobuf/encoding/protojson"
	k8sres "k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"
)

func TestTfxEmbeddingsPods(t *testing.T) {
	initProxyForTests()
	text, err := os.ReadFile(os.Getenv("TFX_EMBEDDINGS_SPEC"))
	if err != nil {
		t.Fatal(err)
	}
	documents := strings.Split(string(text), "\n---\n")
	specJSON, err := yaml.YAMLToJSON([]byte(documents[0]))
	if err != nil {
		t.Fatal(err)
	}
	spec := &pipelinespec.PipelineSpec{}
	if err := protojson.Unmarshal(specJSON, spec); err != nil {
		t.Fatal(err)
	}
	deploymentJSON, _ := protojson.Marshal(spec.GetDeploymentSpec())
	deployment := &pipelinespec.PipelineDeploymentConfig{}
	if err := protojson.Unmarshal(deploymentJSON, deployment); err != nil {
		t.Fatal(err)
	}
	platform := &pipelinespec.PlatformSpec{}
	if len(documents) > 1 {
		platformJSON, _ := yaml.YAMLToJSON([]byte(documents[1]))
		if err := protojson.Unmarshal(platformJSON, platform); err != nil {
			t.Fatal(err)
		}
	}
	// {executor label: {"limits"|"requests": {"cpu"|"memory": quantity}}} expected.
	expected := map[string]map[string]map[string]string{}
	if err := json.Unmarshal([]byte(os.Getenv("TFX_EMBEDDINGS_RESOURCES")), &expected); err != nil {
		t.Fatal(err)
	}
	secret := os.Getenv("TFX_EMBEDDINGS_SECRET")
	for label, executor := range deployment.GetExecutors() {
		container := executor.GetContainer()
		if container == nil {
			continue
		}
		pod, err := podSpecPatch(container)
		if err != nil {
			t.Fatalf("%s: %v", label, err)
		}
		resources := pod.Containers[0].Resources
		for which, kinds := range expected[label] {
			found := resources.Limits
			if which == "requests" {
				found = resources.Requests
			}
			for kind, quantity := range kinds {
				want := k8sres.MustParse(quantity)
				got, ok := found[k8sResource(kind)]
				if !ok || got.Cmp(want) != 0 {
					t.Errorf("%s: %s %s: got %v, want %s", label, which, kind, got.String(), quantity)
				}
			}
		}
		config := &kubernetesplatform.KubernetesExecutorConfig{}
		if single, ok := platform.GetPlatforms()["kubernetes"]; ok {
			if raw, ok := single.GetDeploymentSpec().GetExecutors()[label]; ok {
				rawJSON, _ := protojson.Marshal(raw)
				if err := protojson.Unmarshal(rawJSON, config); err != nil {
					t.Fatalf("%s: %v", label, err)
				}
			}
		}
		if err := extendPodSpecPatch(context.Background(), pod, Options{KubernetesExecutorConfig: config},
			nil, nil, nil, nil); err != nil {
			t.Fatalf("%s: %v", label, err)
		}
		fromSecret := map[string]string{}
		for _, env := range pod.Containers[0].Env {
			if env.ValueFrom != nil && env.ValueFrom.SecretKeyRef != nil {
				fromSecret[env.Name] = env.ValueFrom.SecretKeyRef.Name + "/" + env.ValueFrom.SecretKeyRef.Key
			}
		}
		if secret != "" && (fromSecret["KFP_MINIO_ACCESS_KEY"] != secret+"/accesskey" ||
			fromSecret["KFP_MINIO_SECRET_KEY"] != secret+"/secretkey") {
			t.Errorf("%s: the pod's variables from secrets: %v", label, fromSecret)
		}
		t.Logf("%s: limits %v, requests %v, from secrets %v", label, resources.Limits,
			resources.Requests, fromSecret)
	}
}
