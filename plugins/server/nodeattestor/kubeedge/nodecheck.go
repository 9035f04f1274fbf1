package kubeedge

import (
	"context"
	"errors"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// checkNode requires that the Node exists, carries the edge label with the
// configured value and is not being deleted. It returns the node_label and
// node_uid selectors.
//
// It fails closed. The one exception is an outage (unreachableError): then
// the node's last successful check stands in for a new one while it is at
// most node_check_max_staleness old. A definite "no" (404,
// deletionTimestamp, wrong label) refuses at once and forgets that check.
func (st *state) checkNode(ctx context.Context, name string, now func() time.Time) ([]string, error) {
	cfg := st.config
	ctx, cancel := context.WithTimeout(ctx, cfg.kubeTimeout)
	defer cancel()
	n, err := st.kube.GetNode(ctx, name)
	switch {
	case errors.Is(err, errNodeNotFound):
		st.nodeChecks.drop(name)
		return nil, status.Errorf(codes.PermissionDenied, "kubernetes node %q does not exist", name)
	case err != nil && isUnreachable(err):
		return st.lastGoodCheck(name, err, now())
	case err != nil:
		return nil, status.Errorf(codes.Unavailable, "unable to check kubernetes node %q: %v", name, err)
	case n.Metadata.DeletionTimestamp != nil:
		st.nodeChecks.drop(name)
		return nil, status.Errorf(codes.PermissionDenied, "kubernetes node %q is being deleted", name)
	}
	value, ok := n.Metadata.Labels[cfg.edgeNodeLabel]
	if !ok {
		st.nodeChecks.drop(name)
		return nil, status.Errorf(codes.PermissionDenied, "kubernetes node %q lacks the edge label %q", name, cfg.edgeNodeLabel)
	}
	if value != cfg.edgeNodeLabelValue {
		st.nodeChecks.drop(name)
		return nil, status.Errorf(codes.PermissionDenied, "kubernetes node %q has edge label %q=%q, want %q", name, cfg.edgeNodeLabel, value, cfg.edgeNodeLabelValue)
	}
	keys := make([]string, 0, len(n.Metadata.Labels))
	for k := range n.Metadata.Labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]string, 0, len(keys)+1)
	for _, k := range keys {
		out = append(out, "node_label:"+k+":"+n.Metadata.Labels[k])
	}
	if n.Metadata.UID != "" {
		out = append(out, "node_uid:"+n.Metadata.UID)
	}
	st.nodeChecks.put(name, nodeCheck{uid: n.Metadata.UID, selectors: out, at: now()})
	return out, nil
}

// lastGoodCheck decides an attestation while the API server cannot be
// reached (apiErr): it succeeds, with the selectors of the node's last
// successful check, if that check is at most node_check_max_staleness old,
// and fails closed (Unavailable) otherwise.
func (st *state) lastGoodCheck(name string, apiErr error, now time.Time) ([]string, error) {
	last, ok := st.nodeChecks.get(name)
	if !ok {
		return nil, status.Errorf(codes.Unavailable, "unable to check kubernetes node %q: %v", name, apiErr)
	}
	maxAge := st.config.maxStaleness
	age := now.Sub(last.at)
	if age > maxAge || age < 0 {
		return nil, status.Errorf(codes.Unavailable, "unable to check kubernetes node %q: %v; its last successful check, at %s (%s ago), is older than node_check_max_staleness %s",
			name, apiErr, last.at.UTC().Format(time.RFC3339), age.Round(time.Second), maxAge)
	}
	st.logger.Warn("Kubernetes API server unreachable; node attested on its last successful Node check", "node_name", name, "node_uid", last.uid,
		"checked_at", last.at.UTC().Format(time.RFC3339), "age", age.Round(time.Second).String(), "node_check_max_staleness", maxAge.String(), "error", apiErr.Error())
	return slices.Clone(last.selectors), nil
}
