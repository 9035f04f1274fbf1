package vaultfake

import (
	"encoding/json"
	"net/http"
)

func (v *Vault) routeKV(w http.ResponseWriter, method, path string, body map[string]any) {
	sec := v.kv[path]
	switch method {
	case http.MethodGet:
		if sec == nil {
			writeErr(w, http.StatusNotFound, "")
			return
		}
		writeJSON(w, map[string]any{"data": map[string]any{
			"data":     sec.data,
			"metadata": map[string]any{"version": sec.version},
		}})
	case http.MethodPut:
		current := 0
		if sec != nil {
			current = sec.version
		}
		if opts, ok := body["options"].(map[string]any); ok {
			if cas, ok := opts["cas"].(json.Number); ok {
				n, _ := cas.Int64()
				if int(n) != current {
					writeErr(w, http.StatusBadRequest, "check-and-set parameter did not match the current version")
					return
				}
			}
		}
		data, _ := body["data"].(map[string]any)
		// Round-trip so stored data looks like what a reader decodes.
		raw, _ := json.Marshal(data)
		var stored map[string]any
		_ = json.Unmarshal(raw, &stored)
		v.kv[path] = &kvSecret{version: current + 1, data: stored}
		writeJSON(w, map[string]any{"data": map[string]any{"version": current + 1}})
	default:
		writeErr(w, http.StatusMethodNotAllowed, "unsupported operation")
	}
}

// KVData returns the stored data of a KV v2 data path, or nil.
func (v *Vault) KVData(path string) map[string]any {
	v.mu.Lock()
	defer v.mu.Unlock()
	if s := v.kv[path]; s != nil {
		return s.data
	}
	return nil
}

// PutKV writes data at a KV v2 data path, bumping its version.
func (v *Vault) PutKV(path string, data map[string]any) {
	v.mu.Lock()
	defer v.mu.Unlock()
	version := 1
	if s := v.kv[path]; s != nil {
		version = s.version + 1
	}
	raw, _ := json.Marshal(data)
	var stored map[string]any
	_ = json.Unmarshal(raw, &stored)
	v.kv[path] = &kvSecret{version: version, data: stored}
}
