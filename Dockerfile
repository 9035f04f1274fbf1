# edgeid's own image: every edgeid program (edgeid, edgeid-helper, the four
# SPIRE plugins, the DeepStream stand-in) plus SPIRE v1.13.3 and kcat, all
# under /opt/edgeid/bin, the path `edgeid render` writes into configs
# (render.InstalledBinaries). docker-compose.yml builds and uses it.
#
#   docker build -t edgeid/edgeid:dev .

# --- edgeid's programs, built from this repository -------------------------
FROM golang:1.26.0-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Static binaries: the runtime image has no Go toolchain and no libc
# requirement. The plugin checksums are computed from these very files when
# the compose `render` service runs `edgeid render --plugin-dir /opt/edgeid/bin`.
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/ \
      ./orchestrator/cmd/edgeid \
      ./helper/cmd/edgeid-helper \
      ./plugins/cmd/... \
      ./test/standin/deepstream-test5-app

# --- SPIRE, from the official images of the pinned release -----------------
FROM ghcr.io/spiffe/spire-server:1.13.3 AS spire-server
FROM ghcr.io/spiffe/spire-agent:1.13.3 AS spire-agent

# --- runtime ---------------------------------------------------------------
FROM debian:12.12-slim
# kcat: the Kafka client of the stand-in pipeline and of smoke tests;
# openssl: the compose setup plays KubeEdge's CA; age: encrypts Vault's
# unseal share; ca-certificates for external endpoints.
RUN apt-get update \
 && apt-get install -y --no-install-recommends kcat openssl age ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/ /opt/edgeid/bin/
COPY --from=spire-server /opt/spire/bin/spire-server /opt/edgeid/bin/spire-server
COPY --from=spire-agent /opt/spire/bin/spire-agent /opt/edgeid/bin/spire-agent
# The compose topology and the sample configs it refers to, so the image
# renders without bind mounts too.
COPY conf/ /etc/edgeid/conf/
COPY deploy/compose/ /etc/edgeid/deploy/compose/
# The Kafka broker's helper runs as uid 1000 (the apache/kafka image's user)
# so that Kafka can read the key it writes; an empty named volume mounted
# here takes this owner.
RUN mkdir -p /var/lib/edgeid/kafka && chown 1000:1000 /var/lib/edgeid/kafka
ENV PATH=/opt/edgeid/bin:$PATH
ENTRYPOINT []
CMD ["edgeid", "help"]
