#!/bin/sh
# run.sh starts the compose Kafka broker (apache/kafka image) and, because
# Kafka does not watch its keystore files, asks it to reload the SSL
# keystore and truststore whenever edgeid-helper has written a new SVID.
set -eu
conf=/etc/kafka/edgeid/server.properties
admin=/etc/kafka/edgeid/admin.properties
keystore=/var/lib/edgeid/kafka/svid/svid_combined.pem
truststore=/var/lib/edgeid/kafka/svid/bundle.pem
bin=/opt/kafka/bin

"$bin/kafka-storage.sh" format --ignore-formatted --cluster-id "$CLUSTER_ID" --config "$conf"
"$bin/kafka-server-start.sh" "$conf" &
kafka=$!
trap 'kill -TERM "$kafka" 2>/dev/null; wait "$kafka"; exit 0' TERM INT

last=$(stat -L -c %Y "$keystore")
while kill -0 "$kafka" 2>/dev/null; do
	sleep 30 &
	wait $! || true
	now=$(stat -L -c %Y "$keystore" 2>/dev/null || echo "$last")
	[ "$now" = "$last" ] && continue
	# Same locations, newer files: Kafka reloads them (the SVID rotated).
	if "$bin/kafka-configs.sh" --bootstrap-server cloud:9093 --command-config "$admin" \
		--entity-type brokers --entity-name 1 --alter \
		--add-config "listener.name.ssl.ssl.keystore.location=$keystore,listener.name.ssl.ssl.truststore.location=$truststore"; then
		last=$now
		echo "run.sh: Kafka reloaded its SVID" >&2
	fi
done
wait "$kafka"
