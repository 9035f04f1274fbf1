package config

import (
	"strings"

	"github.com/edgeid/edgeid/helper/kafkaconf"
)

// kafka checks the kafka block and picks the files it renders. c holds the
// validated pkcs12 block and combined PEM the Java file may point at.
func (v *validator) kafka(b *kafkaBlock, c *Config) *Kafka {
	if b == nil {
		return nil
	}
	k := &Kafka{
		Settings: kafkaconf.Settings{
			BootstrapServers:                b.BootstrapServers,
			EndpointIdentificationAlgorithm: b.EndpointIdentificationAlgorithm,
			CipherSuites:                    b.CipherSuites,
		},
		Librdkafka:             kafkaconf.Output{FileName: b.LibrdkafkaFileName, Template: b.LibrdkafkaTemplate, Extra: b.LibrdkafkaProperties},
		DeepStream:             kafkaconf.Output{FileName: b.DeepStreamFileName, Template: b.DeepStreamTemplate, Extra: b.DeepStreamProperties},
		Java:                   kafkaconf.Output{FileName: b.JavaFileName, Template: b.JavaTemplate, Extra: b.JavaProperties},
		DeepStreamPartitionKey: b.DeepStreamPartitionKey,
		JavaKeystoreType:       b.JavaKeystoreType,
	}
	switch k.EndpointIdentificationAlgorithm {
	case "":
		k.EndpointIdentificationAlgorithm = "https"
	case "https", "none":
	default:
		v.errorf(b.at("endpoint_identification_algorithm"), "kafka: \"endpoint_identification_algorithm\" %q is not \"https\" or \"none\"", k.EndpointIdentificationAlgorithm)
	}
	// A template, extra properties or a setting of its own asks for a file.
	if k.Librdkafka.FileName == "" && k.Librdkafka.Template != "" {
		k.Librdkafka.FileName = DefaultLibrdkafkaFileName
	}
	if k.DeepStream.FileName == "" && (k.DeepStream.Template != "" || k.DeepStreamPartitionKey != "" || len(k.DeepStream.Extra) > 0) {
		k.DeepStream.FileName = DefaultDeepStreamFileName
	}
	if k.Java.FileName == "" && (k.Java.Template != "" || k.JavaKeystoreType != "" || len(k.Java.Extra) > 0) {
		k.Java.FileName = DefaultJavaFileName
	}
	if k.Librdkafka.FileName == "" && k.DeepStream.FileName == "" && k.Java.FileName == "" {
		// An empty kafka block renders the librdkafka file.
		k.Librdkafka.FileName = DefaultLibrdkafkaFileName
	}
	v.javaKeystore(b, k, c)
	v.kafkaGatewayOf(b, k, c)
	return k
}

// javaKeystore checks what the Java client.properties points at.
func (v *validator) javaKeystore(b *kafkaBlock, k *Kafka, c *Config) {
	switch strings.ToUpper(k.JavaKeystoreType) {
	case "", "PEM":
		k.JavaKeystoreType = "PEM"
	case "PKCS12":
		k.JavaKeystoreType = "PKCS12"
		if c.PKCS12 == nil || c.PKCS12.KeystoreFileName == "" || c.PKCS12.TruststoreFileName == "" {
			v.errorf(b.at("java_keystore_type"), "kafka: \"java_keystore_type\" = \"PKCS12\" needs a pkcs12 block with keystore_file_name and truststore_file_name")
		}
	default:
		v.errorf(b.at("java_keystore_type"), "kafka: \"java_keystore_type\" %q is not \"PEM\" or \"PKCS12\"", k.JavaKeystoreType)
	}
	if k.Java.FileName != "" && k.JavaKeystoreType == "PEM" && c.CombinedPEMFileName == "" {
		v.errorf(b.at("java_file_name", "java_keystore_type"), "kafka: a Java client.properties with \"java_keystore_type\" = \"PEM\" needs \"combined_pem_file_name\" (Java reads key and chain from one file)")
	}
}
