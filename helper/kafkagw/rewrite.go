package kafkagw

import (
	"net"
	"strconv"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// gatewayAddr maps a broker's advertised address to the gateway listener
// standing in for it, creating the listener on first sight.
func (s *session) gatewayAddr(host string, port int32) (string, int32, error) {
	l, err := s.g.listenerFor(net.JoinHostPort(host, strconv.Itoa(int(port))))
	if err != nil {
		return "", 0, err
	}
	return s.g.cfg.AdvertisedHost, int32(l.port), nil
}

func (s *session) rewriteMetadata(r *kmsg.MetadataResponse) error {
	for i := range r.Brokers {
		b := &r.Brokers[i]
		h, p, err := s.gatewayAddr(b.Host, b.Port)
		if err != nil {
			return err
		}
		b.Host, b.Port = h, p
	}
	return nil
}

func (s *session) rewriteCoordinator(resp kmsg.Response) error {
	r := resp.(*kmsg.FindCoordinatorResponse)
	if r.Version < 4 {
		if r.ErrorCode != 0 || r.NodeID < 0 {
			return nil
		}
		h, p, err := s.gatewayAddr(r.Host, r.Port)
		if err != nil {
			return err
		}
		r.Host, r.Port = h, p
		return nil
	}
	for i := range r.Coordinators {
		c := &r.Coordinators[i]
		if c.ErrorCode != 0 || c.NodeID < 0 {
			continue
		}
		h, p, err := s.gatewayAddr(c.Host, c.Port)
		if err != nil {
			return err
		}
		c.Host, c.Port = h, p
	}
	return nil
}

func (s *session) rewriteCluster(r *kmsg.DescribeClusterResponse) error {
	for i := range r.Brokers {
		b := &r.Brokers[i]
		h, p, err := s.gatewayAddr(b.Host, b.Port)
		if err != nil {
			return err
		}
		b.Host, b.Port = h, p
	}
	return nil
}
