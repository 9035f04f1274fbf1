package kafkagw

import (
	"github.com/edgeid/edgeid/helper/kafkagw/policy"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// describeCluster: DESCRIBE on the cluster (else
// CLUSTER_AUTHORIZATION_FAILED); broker addresses are rewritten.
func (s *session) describeCluster(_ *kmsg.DescribeClusterRequest) action {
	if !s.allowed(policy.ClusterResource(), policy.Describe) {
		resp := kmsg.NewPtrDescribeClusterResponse()
		resp.ErrorCode = clusterDeny
		return action{local: resp}
	}
	return action{fix: func(resp kmsg.Response) error {
		return s.rewriteCluster(resp.(*kmsg.DescribeClusterResponse))
	}}
}

// createTopics: CREATE on the cluster, or on each topic; denied topics
// get TOPIC_AUTHORIZATION_FAILED.
func (s *session) createTopics(r *kmsg.CreateTopicsRequest) action {
	if s.allowed(policy.ClusterResource(), policy.Create) {
		return action{}
	}
	var keep []kmsg.CreateTopicsRequestTopic
	var denied []string
	for _, t := range r.Topics {
		if s.allowed(policy.TopicResource(t.Topic), policy.Create) {
			keep = append(keep, t)
		} else {
			denied = append(denied, t.Topic)
		}
	}
	if len(denied) == 0 {
		return action{}
	}
	r.Topics = keep
	return cutDenied(action{}, len(keep), kmsg.NewPtrCreateTopicsResponse, func(cr *kmsg.CreateTopicsResponse) {
		for _, name := range denied {
			rt := kmsg.NewCreateTopicsResponseTopic()
			rt.Topic, rt.ErrorCode = name, topicDenied
			rt.ErrorMessage = kmsg.StringPtr("denied by the edgeid gateway policy")
			cr.Topics = append(cr.Topics, rt)
		}
	})
}

// deleteTopics (v0-5): DELETE per topic; denied topics get
// TOPIC_AUTHORIZATION_FAILED.
func (s *session) deleteTopics(r *kmsg.DeleteTopicsRequest) action {
	var keep, denied []string
	for _, name := range r.TopicNames {
		if s.allowed(policy.TopicResource(name), policy.Delete) {
			keep = append(keep, name)
		} else {
			denied = append(denied, name)
		}
	}
	if len(denied) == 0 {
		return action{}
	}
	r.TopicNames = keep
	return cutDenied(action{}, len(keep), kmsg.NewPtrDeleteTopicsResponse, func(dr *kmsg.DeleteTopicsResponse) {
		for _, name := range denied {
			rt := kmsg.NewDeleteTopicsResponseTopic()
			rt.Topic, rt.ErrorCode = kmsg.StringPtr(name), topicDenied
			dr.Topics = append(dr.Topics, rt)
		}
	})
}

// acls: DescribeAcls needs DESCRIBE on the cluster, CreateAcls and
// DeleteAcls ALTER; a denial is CLUSTER_AUTHORIZATION_FAILED.
func (s *session) acls(req kmsg.Request) action {
	switch r := req.(type) {
	case *kmsg.DescribeACLsRequest:
		if s.allowed(policy.ClusterResource(), policy.Describe) {
			return action{}
		}
		resp := kmsg.NewPtrDescribeACLsResponse()
		resp.ErrorCode = clusterDeny
		return action{local: resp}
	case *kmsg.CreateACLsRequest:
		if s.allowed(policy.ClusterResource(), policy.Alter) {
			return action{}
		}
		resp := kmsg.NewPtrCreateACLsResponse()
		for range r.Creations {
			res := kmsg.NewCreateACLsResponseResult()
			res.ErrorCode = clusterDeny
			resp.Results = append(resp.Results, res)
		}
		return action{local: resp}
	case *kmsg.DeleteACLsRequest:
		if s.allowed(policy.ClusterResource(), policy.Alter) {
			return action{}
		}
		resp := kmsg.NewPtrDeleteACLsResponse()
		for range r.Filters {
			res := kmsg.NewDeleteACLsResponseResult()
			res.ErrorCode = clusterDeny
			resp.Results = append(resp.Results, res)
		}
		return action{local: resp}
	}
	return action{refuse: true}
}
