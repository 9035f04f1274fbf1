package kafkagw

import (
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/edgeid/edgeid/helper/kafkagw/policy"
	"github.com/edgeid/edgeid/helper/kafkagw/wire"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// plan is what to do with one request: an exchange owed a response (nil
// when none is, as for Produce with acks=0) and the frame parts to send
// upstream (nil when answered locally).
type plan struct {
	ex      *exchange
	forward [][]byte
}

// fixFunc edits a parsed upstream response before it goes to the client.
type fixFunc func(kmsg.Response) error

// cutDenied is the action of a request some of whose parts were cut out
// (denied, or refused by the encryption filter), on top of a: answer
// adds their errors to a response of the request's kind. With kept == 0
// parts left the gateway answers alone (or drops the request, if the
// client wants no response); otherwise the edited request goes on and
// answer completes the broker's response, after a's own fix.
func cutDenied[R kmsg.Response](a action, kept int, newResp func() R, answer func(R)) action {
	fix := chainFix(a.fix, func(resp kmsg.Response) error { answer(resp.(R)); return nil })
	if kept == 0 {
		if a.noResponse {
			return action{drop: true}
		}
		resp := newResp()
		_ = fix(resp)
		return action{local: resp}
	}
	a.modified, a.fix = true, fix
	return a
}

// chainFix runs first (if any), then second.
func chainFix(first, second fixFunc) fixFunc {
	if first == nil {
		return second
	}
	return func(resp kmsg.Response) error {
		if err := first(resp); err != nil {
			return err
		}
		return second(resp)
	}
}

// action is an authorizer's verdict on one parsed request.
type action struct {
	// local answers the request without forwarding it.
	local kmsg.Response
	// drop forwards nothing and answers nothing (acks=0, all denied).
	drop bool
	// modified means the request was edited and must be re-encoded.
	modified bool
	fix      fixFunc
	// noResponse: the broker sends no response (acks=0).
	noResponse bool
	// refuse closes the connection.
	refuse bool
}

// plan decodes a request frame and decides its fate. An error closes the
// connection: a malformed frame, or a request the gateway does not
// support (as a Kafka broker does for requests it cannot parse).
func (s *session) plan(frame []byte) (plan, error) {
	h, known, err := wire.ParseRequestHeader(frame)
	if err != nil {
		return plan{}, err
	}
	ex := newExchange(h)
	if !known {
		return plan{}, fmt.Errorf("unknown API key %d", h.Key)
	}
	if h.Key == apiVersionsKey && h.Version > s.g.versions[apiVersionsKey] {
		// Kafka answers an ApiVersions it cannot parse with a v0
		// UNSUPPORTED_VERSION response listing what it supports.
		resp := kmsg.NewPtrApiVersionsResponse()
		resp.ErrorCode = unsupportedVersion
		resp.ApiKeys = s.advertised()
		return s.answer(ex, h, resp, 0), nil
	}
	if s.g.cfg.Mode == ModeCloud && (h.Key == saslHandshakeKey || h.Key == saslAuthenticateKey) {
		return s.refuseSASL(ex, h)
	}
	if max, ok := s.g.versions[h.Key]; !ok || h.Version < 0 || h.Version > max {
		return plan{}, fmt.Errorf("unsupported request %s v%d", ex.api, h.Version)
	}
	if s.g.cfg.Mode == ModeEdge && !edgeParsed[h.Key] && (s.g.crypt == nil || h.Key != fetchKey) {
		return plan{ex: ex, forward: s.parts(len(frame), frame)}, nil
	}
	_, req, err := wire.ParseRequest(frame)
	if err != nil {
		return plan{}, err
	}
	s.pol = s.g.policy.Load()
	a := s.authorize(req)
	if s.g.crypt != nil && !a.refuse && !a.drop && a.local == nil {
		a = s.cryptFilter(req, a)
	}
	switch {
	case a.refuse:
		return plan{}, fmt.Errorf("refused request %s v%d", ex.api, h.Version)
	case a.drop:
		return plan{}, nil
	case a.local != nil:
		return s.answer(ex, h, a.local, h.Version), nil
	}
	ex.fix = a.fix
	p := plan{ex: ex, forward: s.parts(len(frame), frame)}
	if a.modified {
		p.forward = s.reencode(req, frame[:h.Len], len(frame))
	}
	if a.noResponse {
		p.ex = nil
	}
	return p, nil
}

// reencode returns the parts of an edited request: its header as read,
// then the body encoded anew into the connection's scratch (sent before
// the next request is planned). A Produce request's records are referred
// to rather than copied into the body: sealed, they are already in the
// connection's scratch.
func (s *session) reencode(req kmsg.Request, header []byte, frameLen int) [][]byte {
	if pr, ok := req.(*kmsg.ProduceRequest); ok {
		fwd := append(s.scratch.fwd[:0], s.prefix[:], header)
		if fwd, body, ok := wire.ProduceParts(fwd, keepScratch(s.scratch.body), pr); ok {
			s.scratch.fwd, s.scratch.body = fwd, body
			n := 0
			for _, part := range fwd[1:] {
				n += len(part)
			}
			binary.BigEndian.PutUint32(s.prefix[:], uint32(n))
			return fwd
		}
	}
	// Sealing makes a Produce request longer; a quarter more is room for
	// 1 KiB records' headers without growing while encoding.
	body := req.AppendTo(slices.Grow(keepScratch(s.scratch.body), frameLen+frameLen/4))
	s.scratch.body = body
	return s.parts(len(header)+len(body), header, body)
}

// answer completes ex locally with resp encoded at version.
func (s *session) answer(ex *exchange, h wire.RequestHeader, resp kmsg.Response, version int16) plan {
	resp.SetVersion(version)
	out := binary.BigEndian.AppendUint32(nil, uint32(h.CorrelationID))
	if version == h.Version && wire.FlexibleResponseHeader(h.Key, h.Flexible) {
		out = append(out, 0) // empty tag section
	}
	ex.done <- result{frame: resp.AppendTo(out)}
	return plan{ex: ex}
}

// refuseSASL answers SASL requests locally: the client's identity is its
// SVID, and the gateway never relays credentials.
func (s *session) refuseSASL(ex *exchange, h wire.RequestHeader) (plan, error) {
	if h.Version > kmsg.RequestForKey(h.Key).MaxVersion() {
		return plan{}, fmt.Errorf("unsupported request %s v%d", ex.api, h.Version)
	}
	s.log.Warn("Refused SASL request; the client's SPIFFE ID is its identity", "api", ex.api)
	if h.Key == saslHandshakeKey {
		resp := kmsg.NewPtrSASLHandshakeResponse()
		resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
		return s.answer(ex, h, resp, h.Version), nil
	}
	resp := kmsg.NewPtrSASLAuthenticateResponse()
	resp.ErrorCode = kerr.IllegalSaslState.Code
	return s.answer(ex, h, resp, h.Version), nil
}

func (s *session) advertised() []kmsg.ApiVersionsResponseApiKey {
	var keys []kmsg.ApiVersionsResponseApiKey
	for k, v := range s.g.versions {
		keys = append(keys, kmsg.ApiVersionsResponseApiKey{ApiKey: k, MaxVersion: v})
	}
	return keys
}

// parts returns the size prefix n and then the frame parts, in the
// session's scratch space: valid until the next request is planned (the
// reader goroutine sends them before it reads the next).
func (s *session) parts(n int, frame ...[]byte) [][]byte {
	binary.BigEndian.PutUint32(s.prefix[:], uint32(n))
	s.fwd[0] = s.prefix[:]
	return append(s.fwd[:1], frame...)
}

// allowed decides one (resource, operation) for the session's actor under
// the policy in force for the request being planned, counting and logging
// denials. Edge mode does not authorize. (A response fix runs on the
// upstream reader while later requests are planned: it uses allowedUnder
// with the policy its request was planned under.)
func (s *session) allowed(res policy.Resource, op policy.Operation) bool {
	return s.allowedUnder(s.pol, res, op)
}

// allowedUnder is allowed under pol.
func (s *session) allowedUnder(pol *policy.Set, res policy.Resource, op policy.Operation) bool {
	if s.g.cfg.Mode == ModeEdge {
		return true
	}
	d := pol.Decide(s.actor, res, op)
	s.g.cfg.Metrics.decision(d, res, op, s.actor)
	if !d.Allowed && s.g.denials.shouldLog(s.actor, res, op, time.Now()) {
		s.log.Warn("Denied request", "resource", res.String(), "operation", op.String(), "reason", d.Reason)
	}
	return d.Allowed
}

// authorize dispatches a parsed request to its authorizer.
func (s *session) authorize(req kmsg.Request) action {
	switch r := req.(type) {
	case *kmsg.ApiVersionsRequest:
		return action{fix: s.fixApiVersions}
	case *kmsg.MetadataRequest:
		return s.metadata(r)
	case *kmsg.ProduceRequest:
		return s.produce(r)
	case *kmsg.FetchRequest:
		return s.fetch(r)
	case *kmsg.ListOffsetsRequest:
		return s.listOffsets(r)
	case *kmsg.FindCoordinatorRequest:
		return s.findCoordinator(r)
	case *kmsg.JoinGroupRequest, *kmsg.SyncGroupRequest, *kmsg.HeartbeatRequest, *kmsg.LeaveGroupRequest:
		return s.groupMembership(r)
	case *kmsg.OffsetCommitRequest:
		return s.offsetCommit(r)
	case *kmsg.OffsetFetchRequest:
		return s.offsetFetch(r)
	case *kmsg.InitProducerIDRequest:
		return s.initProducerID(r)
	case *kmsg.DescribeClusterRequest:
		return s.describeCluster(r)
	case *kmsg.CreateTopicsRequest:
		return s.createTopics(r)
	case *kmsg.DeleteTopicsRequest:
		return s.deleteTopics(r)
	case *kmsg.DescribeACLsRequest, *kmsg.CreateACLsRequest, *kmsg.DeleteACLsRequest:
		return s.acls(r)
	}
	// Unreachable: the version table admits only the requests above.
	return action{refuse: true}
}

func (s *session) fixApiVersions(r kmsg.Response) error {
	resp := r.(*kmsg.ApiVersionsResponse)
	resp.ApiKeys = intersectVersions(resp.ApiKeys, s.g.versions)
	return nil
}
