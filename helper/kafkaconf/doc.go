// Package kafkaconf renders Kafka client configurations that point at the
// files edgeid-helper writes:
//
//   - a librdkafka properties file (kcat -F, and any librdkafka client);
//   - a DeepStream cfg_kafka.txt whose [message-broker] proto-cfg stays
//     under DeepStream's 1024-character limit (it holds file paths only);
//   - a Java client.properties with ssl.keystore.type PEM or PKCS12.
//
// librdkafka loads certificates once per client and never reloads them, so
// a rotation needs a client restart (edgeid-helper's on_rotate = "restart")
// or a local tunnel that owns the TLS (edgeid-helper's tunnel blocks).
//
// ssl.endpoint.identification.algorithm is a setting: "https" (librdkafka's
// default since 2.0) verifies that the broker certificate names the broker
// host, which needs DNS SANs on the broker SVID; "none" skips the host-name
// check but still verifies the chain against the trust bundle, which is what
// a broker that advertises an IP address (such as franz-go's kfake) needs.
//
// A user template (Go text/template) replaces the built-in layout; it gets a
// TemplateData.
package kafkaconf
