package harness

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// CreateServiceAccount creates the service account namespace/name, and
// the namespace first when it does not exist yet: a fresh API server
// answers ready before its system namespaces controller has made
// "default" (a service account created at once got 404 "namespaces
// \"default\" not found" in one CI run).
func (k *KubeAPIServer) CreateServiceAccount(t testing.TB, namespace, name string) {
	t.Helper()
	k.ensureNamespace(t, namespace)
	k.mustCreate(t, "/api/v1/namespaces/"+namespace+"/serviceaccounts", map[string]any{
		"apiVersion": "v1", "kind": "ServiceAccount",
		"metadata": map[string]any{"name": name, "namespace": namespace},
	})
	t.Logf("harness: kube-apiserver: created service account %s/%s", namespace, name)
}

// ensureNamespace creates namespace unless it exists (409 Conflict: made
// by the API server's controller, or by an earlier call).
func (k *KubeAPIServer) ensureNamespace(t testing.TB, namespace string) {
	t.Helper()
	body, err := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": namespace}})
	if err != nil {
		t.Fatal(err)
	}
	code, out, err := k.AdminRequest(http.MethodPost, "/api/v1/namespaces", body)
	if err != nil || code != http.StatusCreated && code != http.StatusConflict {
		t.Fatalf("harness: kube-apiserver POST /api/v1/namespaces (%s): %d %s %v", namespace, code, out, err)
	}
}

// DeleteServiceAccount deletes namespace/name; the API server then refuses
// the tokens it issued for it in TokenReview.
func (k *KubeAPIServer) DeleteServiceAccount(t testing.TB, namespace, name string) {
	t.Helper()
	path := "/api/v1/namespaces/" + namespace + "/serviceaccounts/" + name
	code, out, err := k.AdminRequest(http.MethodDelete, path, nil)
	if err != nil || code != http.StatusOK {
		t.Fatalf("harness: kube-apiserver DELETE %s: %d %s %v", path, code, out, err)
	}
	t.Logf("harness: kube-apiserver: deleted service account %s/%s", namespace, name)
}

// ServiceAccountToken asks the TokenRequest API for a token of
// namespace/name that lives for ttl (the API server's audience).
func (k *KubeAPIServer) ServiceAccountToken(t testing.TB, namespace, name string, ttl time.Duration) string {
	t.Helper()
	out := k.mustCreate(t, "/api/v1/namespaces/"+namespace+"/serviceaccounts/"+name+"/token", map[string]any{
		"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
		"spec": map[string]any{"expirationSeconds": int64(ttl.Seconds())},
	})
	var tr struct {
		Status struct {
			Token string `json:"token"`
		} `json:"status"`
	}
	if err := json.Unmarshal(out, &tr); err != nil || tr.Status.Token == "" {
		t.Fatalf("harness: TokenRequest for %s/%s returned no token: %v", namespace, name, err)
	}
	return tr.Status.Token
}

// BindClusterRole binds the ClusterRole role to the service account
// namespace/name, and waits until the API server applies it.
func (k *KubeAPIServer) BindClusterRole(t testing.TB, role, namespace, name string) {
	t.Helper()
	binding := fmt.Sprintf("%s-%s-%s", role, namespace, name)
	k.mustCreate(t, "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", map[string]any{
		"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
		"metadata": map[string]any{"name": binding},
		"roleRef":  map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
		"subjects": []any{map[string]any{"kind": "ServiceAccount", "name": name, "namespace": namespace}},
	})
	t.Logf("harness: kube-apiserver: bound ClusterRole %s to %s/%s", role, namespace, name)
}
