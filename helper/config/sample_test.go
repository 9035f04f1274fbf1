package config

import "testing"

// TestSampleConfig keeps conf/helper.conf loadable.
func TestSampleConfig(t *testing.T) {
	c, warns, err := Load("../../conf/helper.conf", Options{Getenv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Tunnels) != 1 || c.Kafka == nil || c.PKCS12 == nil || !c.HoldUntilSVID {
		t.Fatalf("sample not fully loaded: %+v", c)
	}
	for _, w := range warns {
		t.Errorf("sample has a warning: %s", w)
	}
}
