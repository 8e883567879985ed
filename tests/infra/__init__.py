"""Infrastructure tests: the synthesized template, cdk-nag, cfn-lint and asl-validator."""
