// Package secretsmgr is an event.KeySource backed by AWS Secrets Manager: the secret holds the signing
// key set in the key-file format (event.ParseKeys), as the deploy stack creates it. It lives apart from
// package event so that producers importing event do not pull in the AWS SDK.
//
// Every Keys call reads the secret's current version (AWSCURRENT unless configured otherwise); callers
// reload periodically (event.Reload) so a key added to or retired in the secret takes effect without a
// redeploy. Errors name the secret and the failure, never the secret's value. A Source is safe for
// concurrent use.
package secretsmgr

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/kinesis-events/pipeline/event"
)

// Client is the one Secrets Manager call a Source makes; *secretsmanager.Client implements it.
type Client interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// Config names the secret.
type Config struct {
	// SecretID is the secret's ARN or name. Required.
	SecretID string
	// VersionStage selects the version to read; default "AWSCURRENT".
	VersionStage string
}

// Validate reports a missing secret id.
func (c Config) Validate() error {
	if c.SecretID == "" {
		return errors.New("secretsmgr: SecretID is required")
	}
	return nil
}

// Source reads the signing keys from one secret.
type Source struct {
	client Client
	cfg    Config
}

// New returns a Source reading cfg.SecretID through client.
func New(client Client, cfg Config) (*Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if client == nil {
		return nil, errors.New("secretsmgr: client is required")
	}
	if cfg.VersionStage == "" {
		cfg.VersionStage = "AWSCURRENT"
	}
	return &Source{client: client, cfg: cfg}, nil
}

// ErrNoValue is returned by Source.Keys when the secret version holds neither a string nor binary
// value.
var ErrNoValue = errors.New("secret has no value")

// Keys implements event.KeySource: it reads the secret and parses it as the key-file format. A
// string value is used as is; a binary value is taken as the same JSON.
func (s *Source) Keys(ctx context.Context) ([]event.Key, error) {
	out, err := s.client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{
		SecretId:     aws.String(s.cfg.SecretID),
		VersionStage: aws.String(s.cfg.VersionStage),
	})
	if err != nil {
		return nil, fmt.Errorf("signing keys from secret %s: %s: %w", s.cfg.SecretID, classify(err), err)
	}
	var b []byte
	switch {
	case out.SecretString != nil:
		b = []byte(*out.SecretString)
	case len(out.SecretBinary) > 0:
		b = out.SecretBinary
	default:
		return nil, fmt.Errorf("signing keys from secret %s: %w", s.cfg.SecretID, ErrNoValue)
	}
	keys, err := event.ParseKeys(b)
	if err != nil {
		return nil, fmt.Errorf("signing keys from secret %s: %w", s.cfg.SecretID, err)
	}
	return keys, nil
}

// classify names the usual failures so an operator knows what to fix.
func classify(err error) string {
	var (
		notFound *types.ResourceNotFoundException
		decrypt  *types.DecryptionFailure
		invalid  *types.InvalidRequestException
		param    *types.InvalidParameterException
	)
	switch {
	case errors.As(err, &notFound):
		return "secret or version not found"
	case errors.As(err, &decrypt):
		return "cannot decrypt the secret (KMS key policy?)"
	case errors.As(err, &invalid):
		return "invalid request (secret deleted or scheduled for deletion?)"
	case errors.As(err, &param):
		return "invalid parameter"
	}
	return "GetSecretValue failed"
}

// NewClient returns a Secrets Manager client configured the SDK's usual way (AWS_REGION, the default
// credential chain, AWS_ENDPOINT_URL_SECRETS_MANAGER for a local endpoint), with every HTTP request
// bounded by timeout.
func NewClient(ctx context.Context, region string, timeout time.Duration) (*secretsmanager.Client, error) {
	opts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(awshttp.NewBuildableClient().WithTimeout(timeout)),
	}
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS config: %w", err)
	}
	if cfg.Region == "" {
		return nil, errors.New("no AWS region: set AWS_REGION")
	}
	cfg.RetryMaxAttempts = 3
	cfg.RetryMode = aws.RetryModeStandard
	return secretsmanager.NewFromConfig(cfg), nil
}
