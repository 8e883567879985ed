"""CDK infrastructure: the reusable worker construct and the stack that deploys it."""
