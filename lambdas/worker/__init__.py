"""CodePipeline custom-action worker: domain code shared by the poller and the steps."""
