package autoscale

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/applicationautoscaling"
	aastypes "github.com/aws/aws-sdk-go-v2/service/applicationautoscaling/types"
)

// fakeScaling is one ECS service's scalable target, if registered.
type fakeScaling struct {
	registered bool
	min, max   int32
	registers  int
	err        error
}

func (f *fakeScaling) DescribeScalableTargets(_ context.Context, in *applicationautoscaling.DescribeScalableTargetsInput, _ ...func(*applicationautoscaling.Options)) (*applicationautoscaling.DescribeScalableTargetsOutput, error) {
	if in.ServiceNamespace != aastypes.ServiceNamespaceEcs || in.ScalableDimension != aastypes.ScalableDimensionECSServiceDesiredCount {
		return nil, errors.New("fake: wrong namespace or dimension")
	}
	out := &applicationautoscaling.DescribeScalableTargetsOutput{}
	if f.registered {
		out.ScalableTargets = []aastypes.ScalableTarget{{ResourceId: aws.String(in.ResourceIds[0]), MinCapacity: aws.Int32(f.min), MaxCapacity: aws.Int32(f.max)}}
	}
	return out, nil
}

func (f *fakeScaling) RegisterScalableTarget(_ context.Context, in *applicationautoscaling.RegisterScalableTargetInput, _ ...func(*applicationautoscaling.Options)) (*applicationautoscaling.RegisterScalableTargetOutput, error) {
	f.registers++
	if f.err != nil {
		return nil, f.err
	}
	if aws.ToString(in.ResourceId) != "service/c/s" || in.ScalableDimension != aastypes.ScalableDimensionECSServiceDesiredCount {
		return nil, errors.New("fake: wrong target")
	}
	f.registered, f.min, f.max = true, aws.ToInt32(in.MinCapacity), aws.ToInt32(in.MaxCapacity)
	return &applicationautoscaling.RegisterScalableTargetOutput{}, nil
}

func TestFollowShards(t *testing.T) {
	cases := []struct {
		name                  string
		f                     fakeScaling
		want                  int
		wantMin, wantMax      int32
		wantBefore, registers int
		wantErr               bool
	}{
		{"raise the maximum, keep the minimum", fakeScaling{registered: true, min: 2, max: 4}, 8, 2, 8, 4, 1, false},
		{"already there: no call", fakeScaling{registered: true, min: 2, max: 8}, 8, 2, 8, 8, 0, false},
		{"lower the maximum below the minimum: minimum follows", fakeScaling{registered: true, min: 6, max: 8}, 4, 4, 4, 8, 1, false},
		{"no target yet: registered from the minimum workers", fakeScaling{}, 3, 2, 3, 0, 1, false},
		{"refused", fakeScaling{registered: true, min: 2, max: 4, err: errors.New("AccessDeniedException")}, 8, 2, 4, 4, 1, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.f
			before, err := followShards(t.Context(), &f, "service/c/s", 2, tc.want)
			if (err != nil) != tc.wantErr || before != tc.wantBefore || f.registers != tc.registers || f.min != tc.wantMin || f.max != tc.wantMax {
				t.Fatalf("before %d, err %v, %d registers, target %d..%d; want before %d, err %v, %d registers, %d..%d",
					before, err, f.registers, f.min, f.max, tc.wantBefore, tc.wantErr, tc.registers, tc.wantMin, tc.wantMax)
			}
		})
	}
}

func TestWorkers(t *testing.T) {
	p := WorkerPolicy{ShardsPerWorker: 4, MinWorkers: 2, MaxWorkers: 6}
	for _, tc := range []struct{ open, want int }{{1, 2}, {8, 2}, {9, 3}, {16, 4}, {17, 5}, {32, 6}, {100, 6}} {
		if got := p.Workers(tc.open); got != tc.want {
			t.Errorf("Workers(%d) = %d, want %d", tc.open, got, tc.want)
		}
	}
}
