"""Unit tests of the worker's Lambda code: fast, offline, against local fakes over real HTTP."""

import os

# Set before any worker module is imported (pytest imports this package before its conftest):
# Powertools reads these at import time and boto3 when it builds a client. Tests never need AWS.
for _name, _value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_DISABLED": "true",
    "POWERTOOLS_SERVICE_NAME": "codepipeline-travis-worker",
}.items():
    os.environ.setdefault(_name, _value)
