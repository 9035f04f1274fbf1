package kafkagw

import (
	"github.com/edgeid/edgeid/helper/kafkagw/policy"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var (
	topicDenied = kerr.TopicAuthorizationFailed.Code
	groupDenied = kerr.GroupAuthorizationFailed.Code
	clusterDeny = kerr.ClusterAuthorizationFailed.Code
	txnDenied   = kerr.TransactionalIDAuthorizationFailed.Code
)

// produce: WRITE per topic (and WRITE on the transactional id, if any).
// Denied topics are cut from the request and answered with
// TOPIC_AUTHORIZATION_FAILED; the rest go through.
func (s *session) produce(r *kmsg.ProduceRequest) action {
	code := topicDenied
	txnOK := r.TransactionID == nil || s.allowed(policy.TransactionalIDResource(*r.TransactionID), policy.Write)
	if !txnOK {
		code = txnDenied
	}
	var keep, denied []kmsg.ProduceRequestTopic
	for _, t := range r.Topics {
		if txnOK && s.allowed(policy.TopicResource(t.Topic), policy.Write) {
			keep = append(keep, t)
		} else {
			denied = append(denied, t)
		}
	}
	a := action{noResponse: r.Acks == 0}
	if len(denied) == 0 {
		return a
	}
	r.Topics = keep
	return cutDenied(a, len(keep), kmsg.NewPtrProduceResponse, func(pr *kmsg.ProduceResponse) {
		for _, t := range denied {
			pr.Topics = append(pr.Topics, produceError(t, code))
		}
	})
}

// produceError is the response topic of a produce request topic whose
// every partition failed with code.
func produceError(t kmsg.ProduceRequestTopic, code int16) kmsg.ProduceResponseTopic {
	rt := kmsg.NewProduceResponseTopic()
	rt.Topic = t.Topic
	for _, p := range t.Partitions {
		rp := kmsg.NewProduceResponseTopicPartition()
		rp.Partition, rp.ErrorCode = p.Partition, code
		rt.Partitions = append(rt.Partitions, rp)
	}
	return rt
}

// fetch: READ per topic; a follower fetch needs CLUSTER_ACTION. Denied
// topics are cut and answered with TOPIC_AUTHORIZATION_FAILED. With a
// fetch session the broker may answer for topics the request omits, so
// then every response topic is checked again.
func (s *session) fetch(r *kmsg.FetchRequest) action {
	if r.ReplicaID >= 0 || r.ReplicaState.ID >= 0 {
		if !s.allowed(policy.ClusterResource(), policy.ClusterAction) {
			resp := kmsg.NewPtrFetchResponse()
			resp.ErrorCode = clusterDeny
			return action{local: resp}
		}
	}
	var keep, denied []kmsg.FetchRequestTopic
	for _, t := range r.Topics {
		if s.allowed(policy.TopicResource(t.Topic), policy.Read) {
			keep = append(keep, t)
		} else {
			denied = append(denied, t)
		}
	}
	session := r.SessionID != 0 || r.SessionEpoch != -1
	if len(denied) == 0 && !session {
		return action{}
	}
	fix := func(resp kmsg.Response) error {
		fr := resp.(*kmsg.FetchResponse)
		kept := fr.Topics[:0]
		for _, t := range fr.Topics {
			if s.allowed(policy.TopicResource(t.Topic), policy.Read) {
				kept = append(kept, t)
			}
		}
		fr.Topics = kept
		for _, t := range denied {
			rt := kmsg.NewFetchResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewFetchResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, topicDenied
				rt.Partitions = append(rt.Partitions, rp)
			}
			fr.Topics = append(fr.Topics, rt)
		}
		return nil
	}
	if len(keep) == 0 && !session {
		resp := kmsg.NewPtrFetchResponse()
		_ = fix(resp)
		return action{local: resp}
	}
	r.Topics = keep
	return action{modified: len(denied) > 0, fix: fix}
}

// listOffsets: DESCRIBE per topic.
func (s *session) listOffsets(r *kmsg.ListOffsetsRequest) action {
	var keep, denied []kmsg.ListOffsetsRequestTopic
	for _, t := range r.Topics {
		if s.allowed(policy.TopicResource(t.Topic), policy.Describe) {
			keep = append(keep, t)
		} else {
			denied = append(denied, t)
		}
	}
	if len(denied) == 0 {
		return action{}
	}
	r.Topics = keep
	return cutDenied(action{}, len(keep), kmsg.NewPtrListOffsetsResponse, func(lr *kmsg.ListOffsetsResponse) {
		for _, t := range denied {
			rt := kmsg.NewListOffsetsResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewListOffsetsResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, topicDenied
				rt.Partitions = append(rt.Partitions, rp)
			}
			lr.Topics = append(lr.Topics, rt)
		}
	})
}

// metadata: DESCRIBE per topic. Requested topics the actor may not
// describe are cut and answered with TOPIC_AUTHORIZATION_FAILED; in an
// all-topics answer they are left out silently, as Kafka does. Auto
// creation is turned off unless CREATE is allowed on every requested
// topic (or the cluster). Broker addresses are rewritten.
func (s *session) metadata(r *kmsg.MetadataRequest) action {
	if s.g.cfg.Mode == ModeEdge {
		return action{fix: func(resp kmsg.Response) error { return s.rewriteMetadata(resp.(*kmsg.MetadataResponse)) }}
	}
	var denied []string
	modified := false
	if r.Topics != nil {
		keep := r.Topics[:0:0]
		for _, t := range r.Topics {
			if t.Topic != nil && s.allowed(policy.TopicResource(*t.Topic), policy.Describe) {
				keep = append(keep, t)
				continue
			}
			modified = true
			if t.Topic != nil {
				denied = append(denied, *t.Topic)
			}
		}
		r.Topics = keep
		if r.AllowAutoTopicCreation && s.g.cfg.Mode == ModeCloud && !s.mayCreate(keep) {
			r.AllowAutoTopicCreation = false
			modified = true
		}
	}
	pol := s.pol // the fix runs on the upstream reader, after later requests are planned
	fix := func(resp kmsg.Response) error {
		mr := resp.(*kmsg.MetadataResponse)
		kept := mr.Topics[:0]
		for _, t := range mr.Topics {
			if t.Topic != nil && s.allowedUnder(pol, policy.TopicResource(*t.Topic), policy.Describe) {
				kept = append(kept, t)
			}
		}
		mr.Topics = kept
		for _, name := range denied {
			rt := kmsg.NewMetadataResponseTopic()
			rt.Topic, rt.ErrorCode = kmsg.StringPtr(name), topicDenied
			mr.Topics = append(mr.Topics, rt)
		}
		return s.rewriteMetadata(mr)
	}
	return action{modified: modified, fix: fix}
}

// mayCreate checks CREATE without counting or logging: a Metadata
// request asking for auto creation is not itself a denial.
func (s *session) mayCreate(topics []kmsg.MetadataRequestTopic) bool {
	if s.pol.Decide(s.actor, policy.ClusterResource(), policy.Create).Allowed {
		return true
	}
	for _, t := range topics {
		if t.Topic == nil || !s.pol.Decide(s.actor, policy.TopicResource(*t.Topic), policy.Create).Allowed {
			return false
		}
	}
	return true
}
