# Rendered by edgeid from the topology; edit the topology, not this file.
# Kafka gateway policy (see helper/kafkagw/README.md).
# A site's pipeline may write only its own topics; a wrong-site publish is
# refused with TOPIC_AUTHORIZATION_FAILED.
allow_if_no_acl = false

allow "spiffe://example.org/edge/site-a/deepstream/cam-pipeline publish" {
  actors     = ["spiffe://example.org/edge/site-a/deepstream/cam-pipeline"]
  resources  = ["topic:detections"]
  operations = ["WRITE", "DESCRIBE"]
}

allow "spiffe://example.org/edge/site-a/deepstream/cam-pipeline subscribe" {
  actors     = ["spiffe://example.org/edge/site-a/deepstream/cam-pipeline"]
  resources  = ["topic:commands", "topic:config-updates", "group:site-a.deepstream_cam-pipeline"]
  operations = ["READ", "DESCRIBE"]
}

allow "spiffe://example.org/edge/site-b/deepstream/cam-pipeline publish" {
  actors     = ["spiffe://example.org/edge/site-b/deepstream/cam-pipeline"]
  resources  = ["topic:site-b.detections"]
  operations = ["WRITE", "DESCRIBE"]
}

allow "spiffe://example.org/edge/site-b/deepstream/cam-pipeline subscribe" {
  actors     = ["spiffe://example.org/edge/site-b/deepstream/cam-pipeline"]
  resources  = ["topic:commands", "topic:config-updates", "group:site-b.deepstream_cam-pipeline"]
  operations = ["READ", "DESCRIBE"]
}

allow "cloud consumer" {
  actors     = ["spiffe://example.org/cloud/kafka"]
  resources  = ["topic:detections", "topic:site-b.detections"]
  operations = ["READ", "DESCRIBE"]
}
