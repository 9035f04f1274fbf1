package recordcrypt_test

import (
	"context"
	"sync"

	. "github.com/edgeid/edgeid/helper/kafkagw/recordcrypt"
)

// countingKMS counts every call, failed or not.
type countingKMS struct {
	KMS
	mu                  sync.Mutex
	generates, decrypts int
}

func (c *countingKMS) GenerateDataKey(ctx context.Context, ring string) (DataKey, error) {
	c.mu.Lock()
	c.generates++
	c.mu.Unlock()
	return c.KMS.GenerateDataKey(ctx, ring)
}

func (c *countingKMS) DecryptDataKey(ctx context.Context, ring string, wrapped []byte) ([]byte, error) {
	c.mu.Lock()
	c.decrypts++
	c.mu.Unlock()
	return c.KMS.DecryptDataKey(ctx, ring, wrapped)
}

func (c *countingKMS) counts() (int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.generates, c.decrypts
}
