// Command deploy is the CDK app of the pipeline: `go run .` (what `make synth`
// and cdk.json run) synthesises the stack into CDK_OUTDIR (default cdk.out)
// with cdk-nag's AwsSolutions checks and exits non-zero on any error.
package main

import (
	"fmt"
	"os"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/kinesis-events/pipeline/deploy/infra"
)

func main() {
	os.Exit(run())
}

func run() int {
	defer jsii.Close()
	app := awscdk.NewApp(&awscdk.AppProps{Context: &infra.FeatureFlags})
	cfg, err := infra.ConfigFromContext(func(key string) any { return app.Node().TryGetContext(jsii.String(key)) })
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	props := &awscdk.StackProps{}
	// Set by the cdk CLI from the caller's credentials; absent for `go run .`,
	// which then synthesises an environment-agnostic template.
	if account, region := os.Getenv("CDK_DEFAULT_ACCOUNT"), os.Getenv("CDK_DEFAULT_REGION"); account != "" && region != "" {
		props.Env = &awscdk.Environment{Account: jsii.String(account), Region: jsii.String(region)}
	}
	if _, err := infra.NewPipeline(app, cfg.StackName(), props, cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	infra.CheckWithNag(app)
	asm := app.Synth(nil)
	infra.PrintResourceCounts(asm, os.Stderr)
	errs, warnings := infra.ReportSynthErrors(asm, os.Stderr)
	fmt.Fprintf(os.Stderr, "synth: %s, %d error(s), %d warning(s)\n", *asm.Directory(), errs, warnings)
	if errs > 0 {
		return 1
	}
	return 0
}
