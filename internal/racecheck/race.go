//go:build race

package racecheck

// Enabled reports a build with the race detector.
const Enabled = true
