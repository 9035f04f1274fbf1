package kafkagw

import (
	"github.com/edgeid/edgeid/helper/kafkagw/policy"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Coordinator key types.
const (
	coordinatorGroup int8 = 0
	coordinatorTxn   int8 = 1
)

// findCoordinator: DESCRIBE on the group or transactional id; a denied
// key gets GROUP_AUTHORIZATION_FAILED or
// TRANSACTIONAL_ID_AUTHORIZATION_FAILED. Coordinator addresses are
// rewritten.
func (s *session) findCoordinator(r *kmsg.FindCoordinatorRequest) action {
	check := func(key string) (bool, int16) {
		switch r.CoordinatorType {
		case coordinatorGroup:
			return s.allowed(policy.GroupResource(key), policy.Describe), groupDenied
		case coordinatorTxn:
			return s.allowed(policy.TransactionalIDResource(key), policy.Describe), txnDenied
		}
		return s.g.cfg.Mode == ModeEdge, clusterDeny
	}
	if r.Version < 4 {
		if ok, code := check(r.CoordinatorKey); !ok {
			resp := kmsg.NewPtrFindCoordinatorResponse()
			resp.ErrorCode, resp.NodeID = code, -1
			return action{local: resp}
		}
		return action{fix: s.rewriteCoordinator}
	}
	var keep []string
	var denied []kmsg.FindCoordinatorResponseCoordinator
	for _, k := range r.CoordinatorKeys {
		if ok, code := check(k); ok {
			keep = append(keep, k)
		} else {
			c := kmsg.NewFindCoordinatorResponseCoordinator()
			c.Key, c.ErrorCode, c.NodeID = k, code, -1
			denied = append(denied, c)
		}
	}
	merge := func(resp kmsg.Response) error {
		fr := resp.(*kmsg.FindCoordinatorResponse)
		fr.Coordinators = append(fr.Coordinators, denied...)
		return s.rewriteCoordinator(fr)
	}
	if len(keep) == 0 {
		resp := kmsg.NewPtrFindCoordinatorResponse()
		resp.Coordinators = denied
		return action{local: resp}
	}
	r.CoordinatorKeys = keep
	return action{modified: len(denied) > 0, fix: merge}
}

// groupMembership: JoinGroup, SyncGroup, Heartbeat and LeaveGroup need
// READ on the group; a denial is GROUP_AUTHORIZATION_FAILED.
func (s *session) groupMembership(req kmsg.Request) action {
	var group string
	var resp kmsg.Response
	switch r := req.(type) {
	case *kmsg.JoinGroupRequest:
		group = r.Group
		jr := kmsg.NewPtrJoinGroupResponse()
		jr.ErrorCode, jr.Generation = groupDenied, -1
		resp = jr
	case *kmsg.SyncGroupRequest:
		group = r.Group
		sr := kmsg.NewPtrSyncGroupResponse()
		sr.ErrorCode = groupDenied
		resp = sr
	case *kmsg.HeartbeatRequest:
		group = r.Group
		hr := kmsg.NewPtrHeartbeatResponse()
		hr.ErrorCode = groupDenied
		resp = hr
	case *kmsg.LeaveGroupRequest:
		group = r.Group
		lr := kmsg.NewPtrLeaveGroupResponse()
		lr.ErrorCode = groupDenied
		resp = lr
	}
	if s.allowed(policy.GroupResource(group), policy.Read) {
		return action{}
	}
	return action{local: resp}
}

// offsetCommit: READ on the group (else every partition gets
// GROUP_AUTHORIZATION_FAILED) and READ per topic (else
// TOPIC_AUTHORIZATION_FAILED for that topic).
func (s *session) offsetCommit(r *kmsg.OffsetCommitRequest) action {
	groupOK := s.allowed(policy.GroupResource(r.Group), policy.Read)
	var keep, denied []kmsg.OffsetCommitRequestTopic
	for _, t := range r.Topics {
		if groupOK && s.allowed(policy.TopicResource(t.Topic), policy.Read) {
			keep = append(keep, t)
		} else {
			denied = append(denied, t)
		}
	}
	if len(denied) == 0 {
		return action{}
	}
	code := topicDenied
	if !groupOK {
		code = groupDenied
	}
	r.Topics = keep
	return cutDenied(action{}, len(keep), kmsg.NewPtrOffsetCommitResponse, func(or *kmsg.OffsetCommitResponse) {
		for _, t := range denied {
			rt := kmsg.NewOffsetCommitResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetCommitResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, code
				rt.Partitions = append(rt.Partitions, rp)
			}
			or.Topics = append(or.Topics, rt)
		}
	})
}

// offsetFetch (v0-7): DESCRIBE on the group (else
// GROUP_AUTHORIZATION_FAILED) and DESCRIBE per topic (denied requested
// topics get TOPIC_AUTHORIZATION_FAILED; in an all-topics answer they
// are left out).
func (s *session) offsetFetch(r *kmsg.OffsetFetchRequest) action {
	if !s.allowed(policy.GroupResource(r.Group), policy.Describe) {
		resp := kmsg.NewPtrOffsetFetchResponse()
		resp.ErrorCode = groupDenied
		for _, t := range r.Topics {
			rt := kmsg.NewOffsetFetchResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetFetchResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p, groupDenied
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return action{local: resp}
	}
	var denied []kmsg.OffsetFetchRequestTopic
	if r.Topics != nil {
		keep := r.Topics[:0:0]
		for _, t := range r.Topics {
			if s.allowed(policy.TopicResource(t.Topic), policy.Describe) {
				keep = append(keep, t)
			} else {
				denied = append(denied, t)
			}
		}
		r.Topics = keep
	}
	fix := func(resp kmsg.Response) error {
		or := resp.(*kmsg.OffsetFetchResponse)
		kept := or.Topics[:0]
		for _, t := range or.Topics {
			if s.allowed(policy.TopicResource(t.Topic), policy.Describe) {
				kept = append(kept, t)
			}
		}
		or.Topics = kept
		for _, t := range denied {
			rt := kmsg.NewOffsetFetchResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetFetchResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p, topicDenied
				rt.Partitions = append(rt.Partitions, rp)
			}
			or.Topics = append(or.Topics, rt)
		}
		return nil
	}
	if r.Topics != nil && len(r.Topics) == 0 && len(denied) > 0 {
		resp := kmsg.NewPtrOffsetFetchResponse()
		_ = fix(resp)
		return action{local: resp}
	}
	return action{modified: len(denied) > 0, fix: fix}
}

// initProducerID: WRITE on the transactional id, or IDEMPOTENT_WRITE on
// the cluster for an idempotent producer without one.
func (s *session) initProducerID(r *kmsg.InitProducerIDRequest) action {
	resp := kmsg.NewPtrInitProducerIDResponse()
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if r.TransactionalID != nil {
		if s.allowed(policy.TransactionalIDResource(*r.TransactionalID), policy.Write) {
			return action{}
		}
		resp.ErrorCode = txnDenied
		return action{local: resp}
	}
	if s.allowed(policy.ClusterResource(), policy.IdempotentWrite) {
		return action{}
	}
	resp.ErrorCode = clusterDeny
	return action{local: resp}
}
