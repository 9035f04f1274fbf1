package daemon

// Edge-mode Kafka gateways (kafka_gateway blocks): built with the helper's
// SVID source, bound before the first Kafka file is rendered, and served
// until the helper stops.

import (
	"context"
	"fmt"
	"strings"

	"github.com/edgeid/edgeid/helper/kafkaconf"
	"github.com/edgeid/edgeid/helper/kafkagw"
)

// setupGateways builds every gateway; their metrics join the helper's.
func (d *Daemon) setupGateways() error {
	if len(d.cfg.KafkaGateways) == 0 {
		return nil
	}
	m, err := kafkagw.NewMetrics(d.metrics.reg, 0)
	if err != nil {
		return fmt.Errorf("daemon: kafka_gateway metrics: %w", err)
	}
	for _, gc := range d.cfg.KafkaGateways {
		gc.Logger, gc.Metrics = d.log, m
		g, err := kafkagw.New(gc, kafkagw.Sources{SVIDs: d.src, Bundles: d.src})
		if err != nil {
			return fmt.Errorf("daemon: %w", err)
		}
		d.gateways = append(d.gateways, g)
	}
	return nil
}

// startGateways binds every gateway's listeners; they serve until ctx
// ends. The Kafka files are rendered afterwards, naming the listener of
// the gateway the kafka block uses.
func (d *Daemon) startGateways(ctx context.Context) error {
	if len(d.gateways) == 0 {
		return nil
	}
	for _, g := range d.gateways {
		if err := g.Start(ctx); err != nil {
			return fmt.Errorf("daemon: %w", err)
		}
	}
	defer d.gatewaysUp.Store(true)
	k := d.cfg.Kafka
	if d.kafka == nil || k == nil || k.Gateway == "" {
		return nil
	}
	for i, gc := range d.cfg.KafkaGateways {
		if gc.Name != k.Gateway {
			continue
		}
		rc := d.kafkaConfig()
		rc.Settings.BootstrapServers = strings.Join(d.gateways[i].BootstrapAddrs(), ",")
		r, err := kafkaconf.NewRenderer(rc)
		if err != nil {
			return fmt.Errorf("daemon: %w", err)
		}
		d.kafka = r
		d.log.Info("Kafka client files point at the local gateway", "gateway", gc.Name, "bootstrap_servers", rc.Settings.BootstrapServers)
	}
	return nil
}

// waitGateways waits for every gateway's connections to end once ctx has.
func (d *Daemon) waitGateways(ctx context.Context) error {
	<-ctx.Done()
	for _, g := range d.gateways {
		g.Wait()
	}
	return nil
}

// GatewayAddrs returns the bootstrap addresses of the named gateway once
// it listens, else nil.
func (d *Daemon) GatewayAddrs(name string) []string {
	if !d.gatewaysUp.Load() {
		return nil
	}
	for i, gc := range d.cfg.KafkaGateways {
		if gc.Name == name {
			return d.gateways[i].BootstrapAddrs()
		}
	}
	return nil
}
