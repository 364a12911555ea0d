package infra

import (
	"fmt"
	"io"
	"sort"

	"github.com/aws/aws-cdk-go/awscdk/v2/cxapi"
)

// StackID starts every stack name: KinesisEventsPipeline-<stage> (Config.StackName).
const StackID = "KinesisEventsPipeline"

// FeatureFlags are the CDK feature flags the app sets, so `go run .`, the
// tests and the cdk CLI synthesise the same template (cdk.json holds only
// the app command).
var FeatureFlags = map[string]any{
	// Grant S3 server access logging through the bucket policy rather than
	// the log-delivery ACL, which BucketOwnerEnforced buckets reject.
	"@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy": true,
	// Merge and deduplicate IAM statements.
	"@aws-cdk/aws-iam:minimizePolicies": true,
}

// ReportSynthErrors prints the error annotations (unsuppressed cdk-nag
// errors among them) of every stack in the assembly and returns how many
// errors and warnings it found.
func ReportSynthErrors(asm cxapi.CloudAssembly, w io.Writer) (errs, warnings int) {
	for _, st := range *asm.Stacks() {
		for _, m := range *st.Messages() {
			switch m.Level {
			case cxapi.SynthesisMessageLevel_ERROR:
				errs++
				fmt.Fprintf(w, "error  %s: %v\n", *m.Id, m.Entry.Data)
			case cxapi.SynthesisMessageLevel_WARNING:
				warnings++
				fmt.Fprintf(w, "warning %s: %v\n", *m.Id, m.Entry.Data)
			}
		}
	}
	return errs, warnings
}

// ResourceCounts returns, per stack in the assembly, how many resources of
// each CloudFormation type its template has.
func ResourceCounts(asm cxapi.CloudAssembly) map[string]map[string]int {
	out := map[string]map[string]int{}
	for _, st := range *asm.Stacks() {
		counts := map[string]int{}
		tpl, _ := st.Template().(map[string]any)
		res, _ := tpl["Resources"].(map[string]any)
		for _, r := range res {
			if typ, ok := r.(map[string]any)["Type"].(string); ok {
				counts[typ]++
			}
		}
		out[*st.StackName()] = counts
	}
	return out
}

// PrintResourceCounts writes ResourceCounts as a table, largest first.
func PrintResourceCounts(asm cxapi.CloudAssembly, w io.Writer) {
	for stack, counts := range ResourceCounts(asm) {
		types := make([]string, 0, len(counts))
		total := 0
		for t, n := range counts {
			types = append(types, t)
			total += n
		}
		sort.Slice(types, func(i, j int) bool {
			if counts[types[i]] != counts[types[j]] {
				return counts[types[i]] > counts[types[j]]
			}
			return types[i] < types[j]
		})
		fmt.Fprintf(w, "%s: %d resources\n", stack, total)
		for _, t := range types {
			fmt.Fprintf(w, "  %4d  %s\n", counts[t], t)
		}
	}
}
