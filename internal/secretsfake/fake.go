package secretsfake

import (
	"context"
	"sync"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// Fake answers GetSecretValue with what Set stored last.
type Fake struct {
	mu     sync.Mutex
	value  *secretsmanager.GetSecretValueOutput
	err    error
	inputs []secretsmanager.GetSecretValueInput
}

// New returns a fake that answers value and err until Set changes them.
func New(value *secretsmanager.GetSecretValueOutput, err error) *Fake {
	return &Fake{value: value, err: err}
}

// GetSecretValue records the request and answers the current value and error.
func (f *Fake) GetSecretValue(_ context.Context, in *secretsmanager.GetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inputs = append(f.inputs, *in)
	return f.value, f.err
}

// Set changes the answer of later calls.
func (f *Fake) Set(value *secretsmanager.GetSecretValueOutput, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.value, f.err = value, err
}

// Inputs returns every request received, in order.
func (f *Fake) Inputs() []secretsmanager.GetSecretValueInput {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]secretsmanager.GetSecretValueInput(nil), f.inputs...)
}
