package autoscale

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/applicationautoscaling"
	aastypes "github.com/aws/aws-sdk-go-v2/service/applicationautoscaling/types"
)

// ScalingAPI is the part of Application Auto Scaling the autoscaler uses to let the ECS service's
// task maximum follow the raw stream. *applicationautoscaling.Client implements it.
type ScalingAPI interface {
	DescribeScalableTargets(ctx context.Context, in *applicationautoscaling.DescribeScalableTargetsInput, optFns ...func(*applicationautoscaling.Options)) (*applicationautoscaling.DescribeScalableTargetsOutput, error)
	RegisterScalableTarget(ctx context.Context, in *applicationautoscaling.RegisterScalableTargetInput, optFns ...func(*applicationautoscaling.Options)) (*applicationautoscaling.RegisterScalableTargetOutput, error)
}

// followShards sets the maximum of the ECS service's scalable target (ecs:service:DesiredCount)
// to maxTasks, when it is not that already. The minimum is kept, lowered to maxTasks if it was
// above. A service without a scalable target gets one, from minWorkers to maxTasks. It returns the maximum
// before (0 when there was no target).
func followShards(ctx context.Context, api ScalingAPI, resourceID string, minWorkers, maxTasks int) (int, error) {
	out, err := api.DescribeScalableTargets(ctx, &applicationautoscaling.DescribeScalableTargetsInput{
		ServiceNamespace: aastypes.ServiceNamespaceEcs, ScalableDimension: aastypes.ScalableDimensionECSServiceDesiredCount,
		ResourceIds: []string{resourceID},
	})
	if err != nil {
		return 0, fmt.Errorf("describe scalable target %s: %w", resourceID, err)
	}
	before, lo := 0, minWorkers
	for _, t := range out.ScalableTargets {
		if aws.ToString(t.ResourceId) == resourceID {
			before, lo = int(aws.ToInt32(t.MaxCapacity)), int(aws.ToInt32(t.MinCapacity))
		}
	}
	if before == maxTasks {
		return before, nil
	}
	_, err = api.RegisterScalableTarget(ctx, &applicationautoscaling.RegisterScalableTargetInput{
		ServiceNamespace: aastypes.ServiceNamespaceEcs, ScalableDimension: aastypes.ScalableDimensionECSServiceDesiredCount,
		ResourceId: aws.String(resourceID), MinCapacity: aws.Int32(int32(min(lo, maxTasks))), MaxCapacity: aws.Int32(int32(maxTasks)),
	})
	if err != nil {
		return before, fmt.Errorf("register scalable target %s with maximum %d: %w", resourceID, maxTasks, err)
	}
	return before, nil
}
