package secretsfake

import (
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

func TestAnswersWhatWasSetAndRecordsRequests(t *testing.T) {
	f := New(&secretsmanager.GetSecretValueOutput{SecretString: aws.String("one")}, nil)
	out, err := f.GetSecretValue(t.Context(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("a")})
	if err != nil || aws.ToString(out.SecretString) != "one" {
		t.Fatalf("%v %v", out, err)
	}
	down := errors.New("connection refused")
	f.Set(nil, down)
	if out, err := f.GetSecretValue(t.Context(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("b"), VersionStage: aws.String("AWSPENDING")}); !errors.Is(err, down) || out != nil {
		t.Fatalf("%v %v", out, err)
	}
	in := f.Inputs()
	if len(in) != 2 || aws.ToString(in[0].SecretId) != "a" || aws.ToString(in[1].VersionStage) != "AWSPENDING" {
		t.Fatalf("inputs %+v", in)
	}
}
