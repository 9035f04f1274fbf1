package policy

import (
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// ResourceType is a Kafka resource type.
type ResourceType int8

// Resource types, with Kafka's ACL codes.
const (
	Topic           = ResourceType(kmsg.ACLResourceTypeTopic)
	Group           = ResourceType(kmsg.ACLResourceTypeGroup)
	Cluster         = ResourceType(kmsg.ACLResourceTypeCluster)
	TransactionalID = ResourceType(kmsg.ACLResourceTypeTransactionalId)
)

// ClusterName is the name of the one cluster resource, as in Kafka.
const ClusterName = "kafka-cluster"

var typeNames = map[ResourceType]string{
	Topic: "topic", Group: "group", Cluster: "cluster", TransactionalID: "transactional_id",
}

func (t ResourceType) String() string {
	if s, ok := typeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("resource_type(%d)", int8(t))
}

// Operation is a Kafka ACL operation.
type Operation int8

// Operations, with Kafka's ACL codes.
const (
	All             = Operation(kmsg.ACLOperationAll)
	Read            = Operation(kmsg.ACLOperationRead)
	Write           = Operation(kmsg.ACLOperationWrite)
	Create          = Operation(kmsg.ACLOperationCreate)
	Delete          = Operation(kmsg.ACLOperationDelete)
	Alter           = Operation(kmsg.ACLOperationAlter)
	Describe        = Operation(kmsg.ACLOperationDescribe)
	ClusterAction   = Operation(kmsg.ACLOperationClusterAction)
	DescribeConfigs = Operation(kmsg.ACLOperationDescribeConfigs)
	AlterConfigs    = Operation(kmsg.ACLOperationAlterConfigs)
	IdempotentWrite = Operation(kmsg.ACLOperationIdempotentWrite)
)

var opNames = map[Operation]string{
	All: "ALL", Read: "READ", Write: "WRITE", Create: "CREATE", Delete: "DELETE",
	Alter: "ALTER", Describe: "DESCRIBE", ClusterAction: "CLUSTER_ACTION",
	DescribeConfigs: "DESCRIBE_CONFIGS", AlterConfigs: "ALTER_CONFIGS",
	IdempotentWrite: "IDEMPOTENT_WRITE",
}

func (o Operation) String() string {
	if s, ok := opNames[o]; ok {
		return s
	}
	return fmt.Sprintf("OPERATION(%d)", int8(o))
}

// ParseOperation reads an operation name such as "WRITE" (any case).
func ParseOperation(s string) (Operation, error) {
	u := strings.ToUpper(s)
	for o, n := range opNames {
		if n == u {
			return o, nil
		}
	}
	return 0, fmt.Errorf("unknown operation %q", s)
}

// implies reports whether an allow rule for granted also allows asked.
func implies(granted, asked Operation) bool {
	if granted == asked || granted == All {
		return true
	}
	switch asked {
	case Describe:
		return granted == Read || granted == Write || granted == Delete || granted == Alter
	case DescribeConfigs:
		return granted == AlterConfigs
	}
	return false
}

// Resource is one Kafka resource.
type Resource struct {
	Type ResourceType
	Name string
}

// TopicResource, GroupResource and ClusterResource name a resource.
func TopicResource(name string) Resource { return Resource{Topic, name} }

// GroupResource is the consumer group name.
func GroupResource(name string) Resource { return Resource{Group, name} }

// ClusterResource is the cluster.
func ClusterResource() Resource { return Resource{Cluster, ClusterName} }

// TransactionalIDResource is a transactional id.
func TransactionalIDResource(name string) Resource { return Resource{TransactionalID, name} }

func (r Resource) String() string { return r.Type.String() + ":" + r.Name }

// Decision is the outcome of Decide.
type Decision struct {
	Allowed bool
	// Reason says which step decided: "deny_rule", "allow_rule",
	// "no_matching_allow" or "no_acl".
	Reason string
}
