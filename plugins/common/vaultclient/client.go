package vaultclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/edgeid/edgeid/internal/vaultconn"
	"github.com/hashicorp/go-hclog"
	vaultapi "github.com/hashicorp/vault/api"
	"golang.org/x/sync/singleflight"
)

// Defaults applied by New when a Config field is zero.
const (
	DefaultTimeout = 10 * time.Second
	DefaultRetries = 2
)

// Config holds every setting of a Client. Nothing is read from the
// environment.
type Config struct {
	// Address is the Vault address, for example https://vault:8200. Required.
	Address string
	// Namespace is the Vault Enterprise namespace, empty for none.
	Namespace string
	// CACertPath is a PEM file of CA certificates to verify Vault's server
	// certificate; the system roots are used when empty.
	CACertPath string
	// InsecureSkipVerify disables verification of Vault's server
	// certificate. For tests only.
	InsecureSkipVerify bool
	// ClientCertPath and ClientKeyPath name a TLS client certificate and its
	// key (PEM), presented on every connection. CertAuth needs them.
	ClientCertPath string
	ClientKeyPath  string
	// Timeout bounds each attempt of each call, login included.
	// DefaultTimeout when zero.
	Timeout time.Duration
	// Retries is how many times a call that failed transiently is retried.
	// DefaultRetries when zero; negative for none.
	Retries int
	// Auth is the authentication method. Required.
	Auth Auth
	// Logger receives token lifecycle events. Optional.
	Logger hclog.Logger
}

// Client is a logged-in Vault client that keeps its token alive. Create it
// with Dial and stop it with Close.
type Client struct {
	api     *vaultapi.Client
	auth    Auth
	log     hclog.Logger
	timeout time.Duration
	retries int

	logins   singleflight.Group
	loggedIn chan *vaultapi.Secret // hands each new login to the lifecycle goroutine

	cancel    context.CancelFunc
	done      chan struct{}
	rotating  chan struct{} // closed when the secret ID rotation stops; nil without it
	closeOnce sync.Once

	// hooks replaced by tests
	backoffBase time.Duration
	backoffMax  time.Duration
}

// Dial builds a client, logs in (bounded by ctx and Config.Timeout) and
// starts the goroutine that renews the token and logs in again before it
// ends. That goroutine runs until Close.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	c, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	secret, err := c.login(ctx)
	if err != nil {
		return nil, err
	}
	lifeCtx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	if a, ok := c.auth.(*AppRoleAuth); ok && a.RotateSecretID {
		c.rotating = make(chan struct{})
		go func() {
			defer close(c.rotating)
			c.rotateSecretIDs(lifeCtx, a)
		}()
	}
	go c.lifecycle(lifeCtx, secret)
	return c, nil
}

func newClient(cfg Config) (*Client, error) {
	if cfg.Address == "" {
		return nil, errors.New("vaultclient: address is required")
	}
	if cfg.Auth == nil {
		return nil, errors.New("vaultclient: an auth method is required")
	}
	if _, ok := cfg.Auth.(*CertAuth); ok && cfg.ClientCertPath == "" && cfg.ClientKeyPath == "" {
		return nil, errors.New("vaultclient: cert auth needs a client certificate and key")
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	retries := cfg.Retries
	switch {
	case retries == 0:
		retries = DefaultRetries
	case retries < 0:
		retries = 0
	}

	api, err := vaultconn.NewClient(vaultconn.Config{
		Address:            cfg.Address,
		CACertFile:         cfg.CACertPath,
		InsecureSkipVerify: cfg.InsecureSkipVerify,
		ClientCertFile:     cfg.ClientCertPath,
		ClientKeyFile:      cfg.ClientKeyPath,
		Namespace:          cfg.Namespace,
		// Each attempt is bounded by timeout through its context, and
		// retries are ours, see do.
	})
	if err != nil {
		return nil, fmt.Errorf("vaultclient: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Client{
		api:         api,
		auth:        cfg.Auth,
		log:         log,
		timeout:     timeout,
		retries:     retries,
		loggedIn:    make(chan *vaultapi.Secret, 1),
		done:        make(chan struct{}),
		backoffBase: 250 * time.Millisecond,
		backoffMax:  30 * time.Second,
	}, nil
}

// Close stops token renewal. It does not revoke the token: a SPIRE server
// restarting would otherwise need a new login at once. Close is idempotent.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		if c.cancel != nil {
			c.cancel()
			<-c.done
			if c.rotating != nil {
				<-c.rotating
			}
		}
	})
	return nil
}

// Method names the authentication method in use.
func (c *Client) Method() string { return Method(c.auth) }

// login runs one login (shared by concurrent callers), installs the token
// and hands the new secret to the lifecycle goroutine.
func (c *Client) login(ctx context.Context) (*vaultapi.Secret, error) {
	ch := c.logins.DoChan("login", func() (any, error) {
		// The login outlives a caller that gives up: others may share it.
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
		defer cancel()
		secret, err := c.auth.Login(lctx, c.api)
		if err != nil {
			return nil, err
		}
		c.api.SetToken(secret.Auth.ClientToken)
		c.log.Info("Logged in to Vault", "auth_method", c.Method(),
			"ttl", (time.Duration(secret.Auth.LeaseDuration) * time.Second).String(),
			"renewable", secret.Auth.Renewable)
		// Keep only the newest secret for the lifecycle goroutine.
		select {
		case <-c.loggedIn:
		default:
		}
		c.loggedIn <- secret
		return secret, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*vaultapi.Secret), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("vaultclient: login: %w", ctx.Err())
	}
}

// lifecycle keeps the token alive until ctx ends.
func (c *Client) lifecycle(ctx context.Context, first *vaultapi.Secret) {
	defer close(c.done)
	// Dial's own login already queued first; drain it.
	select {
	case <-c.loggedIn:
	default:
	}
	secret := first
	for {
		next, ok := c.watch(ctx, secret)
		if !ok {
			return
		}
		secret = next
	}
}

// watch follows one token until it must be replaced, and returns its
// replacement. It returns false when ctx ends.
func (c *Client) watch(ctx context.Context, secret *vaultapi.Secret) (*vaultapi.Secret, bool) {
	auth := secret.Auth
	ttl := time.Duration(auth.LeaseDuration) * time.Second

	var doneCh <-chan error
	var renewCh <-chan *vaultapi.RenewOutput
	var deadline <-chan time.Time
	switch {
	case auth.Renewable && ttl > 0:
		w, err := c.api.NewLifetimeWatcher(&vaultapi.LifetimeWatcherInput{
			Secret:        secret,
			RenewBehavior: vaultapi.RenewBehaviorErrorOnErrors,
		})
		if err != nil {
			c.log.Error("Cannot watch the Vault token; it will not be renewed", "error", err)
			break
		}
		go w.Start()
		defer w.Stop()
		doneCh, renewCh = w.DoneCh(), w.RenewCh()
	case ttl > 0:
		// Not renewable: log in again at two thirds of the TTL.
		t := time.NewTimer(ttl * 2 / 3)
		defer t.Stop()
		deadline = t.C
	}

	for {
		select {
		case <-ctx.Done():
			return nil, false
		case s := <-c.loggedIn:
			// Someone logged in (a call saw 403); follow the new token.
			return s, true
		case r := <-renewCh:
			if r != nil && r.Secret != nil && r.Secret.Auth != nil {
				c.log.Debug("Renewed Vault token", "ttl", (time.Duration(r.Secret.Auth.LeaseDuration) * time.Second).String())
			}
		case err := <-doneCh:
			if !canLogin(c.auth) {
				return c.rewatchStaticToken(ctx, err)
			}
			if err != nil {
				c.log.Warn("Vault token renewal failed; logging in again", "auth_method", c.Method(), "error", err)
			} else {
				c.log.Info("Vault token is near the end of its life; logging in again", "auth_method", c.Method())
			}
			return c.reloginUntilDone(ctx)
		case <-deadline:
			if !canLogin(c.auth) {
				return c.rewatchStaticToken(ctx, nil)
			}
			c.log.Info("Vault token is not renewable and two thirds of its TTL have passed; logging in again", "auth_method", c.Method())
			return c.reloginUntilDone(ctx)
		}
	}
}

// rewatchStaticToken handles the end of renewal for a static token, which
// cannot log in again. When renewal failed (Vault unreachable, say), it
// looks the token up again with backoff and returns it to be watched anew.
// When the token simply reached the end of its life, it logs an error and
// waits for Close: only the operator can supply a new token.
func (c *Client) rewatchStaticToken(ctx context.Context, renewalErr error) (*vaultapi.Secret, bool) {
	if renewalErr == nil {
		c.log.Error("The Vault token is near the end of its life and token auth cannot log in again; give the plugin a new token (or use another auth method)")
		<-ctx.Done()
		return nil, false
	}
	c.log.Warn("Vault token renewal failed; will look the token up again and resume renewal", "error", renewalErr)
	for attempt := 1; ; attempt++ {
		select {
		case <-ctx.Done():
			return nil, false
		case <-time.After(c.backoff(attempt)):
		}
		s, err := c.login(ctx) // lookup-self of the same token
		if err == nil {
			select {
			case <-c.loggedIn:
			default:
			}
			return s, true
		}
		c.log.Warn("Vault token lookup failed; will retry", "error", err)
	}
}

// reloginUntilDone logs in, retrying with backoff, until it succeeds or ctx
// ends.
func (c *Client) reloginUntilDone(ctx context.Context) (*vaultapi.Secret, bool) {
	for attempt := 0; ; attempt++ {
		s, err := c.login(ctx)
		if err == nil {
			// login queued s on loggedIn too; drain it.
			select {
			case <-c.loggedIn:
			default:
			}
			return s, true
		}
		wait := c.backoff(attempt)
		c.log.Warn("Vault login failed; will retry", "auth_method", c.Method(), "error", err, "retry_in", wait.String())
		select {
		case <-ctx.Done():
			return nil, false
		case <-time.After(wait):
		}
	}
}

func (c *Client) backoff(attempt int) time.Duration {
	d := c.backoffBase
	for i := 0; i < attempt && d < c.backoffMax; i++ {
		d *= 2
	}
	return min(d, c.backoffMax)
}

// Read reads path (GET). A path that does not exist gives (nil, nil).
func (c *Client) Read(ctx context.Context, path string) (*vaultapi.Secret, error) {
	return c.do(ctx, "read "+path, func(ctx context.Context) (*vaultapi.Secret, error) {
		return c.api.Logical().ReadWithContext(ctx, path)
	})
}

// Write writes data to path (PUT/POST).
func (c *Client) Write(ctx context.Context, path string, data map[string]any) (*vaultapi.Secret, error) {
	return c.do(ctx, "write "+path, func(ctx context.Context) (*vaultapi.Secret, error) {
		return c.api.Logical().WriteWithContext(ctx, path, data)
	})
}

// List lists path (LIST). A path with nothing under it gives (nil, nil).
func (c *Client) List(ctx context.Context, path string) (*vaultapi.Secret, error) {
	return c.do(ctx, "list "+path, func(ctx context.Context) (*vaultapi.Secret, error) {
		return c.api.Logical().ListWithContext(ctx, path)
	})
}

// CapabilitiesSelf returns the current token's capabilities on path
// (sys/capabilities-self), for example ["read", "update"] or ["deny"].
func (c *Client) CapabilitiesSelf(ctx context.Context, path string) ([]string, error) {
	var caps []string
	_, err := c.do(ctx, "capabilities of "+path, func(ctx context.Context) (*vaultapi.Secret, error) {
		var err error
		caps, err = c.api.Sys().CapabilitiesSelfWithContext(ctx, path)
		return nil, err
	})
	return caps, err
}

// do runs call with a per-attempt timeout, retries transient failures with
// backoff, and after a 403 logs in again once (when the method can) and
// retries.
func (c *Client) do(ctx context.Context, what string, call func(context.Context) (*vaultapi.Secret, error)) (*vaultapi.Secret, error) {
	relogged := false
	var lastErr error
	for attempt := 0; attempt <= c.retries; attempt++ {
		if attempt > 0 {
			wait := min(c.backoffBase<<(attempt-1), 2*time.Second)
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("vaultclient: %s: %w (last error: %v)", what, ctx.Err(), lastErr)
			case <-time.After(wait):
			}
		}
		actx, cancel := context.WithTimeout(ctx, c.timeout)
		s, err := call(actx)
		cancel()
		if err == nil {
			return s, nil
		}
		lastErr = err
		switch {
		case StatusCode(err) == http.StatusForbidden && !relogged && canLogin(c.auth):
			relogged = true
			c.log.Info("Vault denied a request; logging in again in case the token was revoked", "request", what)
			if _, lerr := c.login(ctx); lerr != nil {
				return nil, fmt.Errorf("vaultclient: %s: %w (login again: %v)", what, err, lerr)
			}
			attempt-- // the re-login retry is free
		case Transient(err) && ctx.Err() == nil:
			c.log.Debug("Vault request failed; will retry", "request", what, "error", err)
		default:
			return nil, fmt.Errorf("vaultclient: %s: %w", what, err)
		}
	}
	return nil, fmt.Errorf("vaultclient: %s: %w", what, lastErr)
}

// StatusCode returns the HTTP status of a Vault error response, or 0 when err
// is not one.
func StatusCode(err error) int {
	var re *vaultapi.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

// Transient reports whether err may go away on retry: a network error, a
// timeout, a sealed or standby Vault (5xx), or rate limiting (429, 412).
func Transient(err error) bool {
	if err == nil {
		return false
	}
	switch code := StatusCode(err); {
	case code >= 500, code == http.StatusTooManyRequests, code == http.StatusPreconditionFailed:
		return true
	case code != 0:
		return false
	}
	return !errors.Is(err, context.Canceled)
}

// Sealed reports whether err says Vault is sealed.
func Sealed(err error) bool {
	return StatusCode(err) == http.StatusServiceUnavailable || strings.Contains(fmt.Sprint(err), "Vault is sealed")
}
