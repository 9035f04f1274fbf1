// Package compose checks docker-compose.yml without a Docker engine: the
// file loads and validates with compose-go (the library docker compose
// itself uses), every image is pinned, and every service runs exactly what
// `edgeid render` writes for its host, reading the rendered files through
// the volumes the render service writes them into.
package compose
