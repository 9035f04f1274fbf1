//go:build !race

// Package racecheck tells tests whether the race detector is on: it makes
// sync.Pool drop items at random, so allocation counts of pooled paths
// mean nothing under it, and tests skip those checks.
package racecheck

// Enabled reports a build with the race detector.
const Enabled = false
