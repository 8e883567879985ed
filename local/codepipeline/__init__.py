"""Emulator of CodePipeline's job-worker API (and the calls around it) for tests and local runs.

Neither moto nor LocalStack implements PollForJobs and friends, so this package serves them on
127.0.0.1 to an unmodified boto3 client. One module per concept:

* ``model``      validation against the installed botocore model, ``ApiError``
* ``records``    what is remembered: pipelines, executions, action runs, jobs, results, calls
* ``jobs``       the job state machine: the five job-worker operations
* ``executions`` StopPipelineExecution, ListActionExecutions, pipeline update and delete
* ``events``     EventBridge "CodePipeline Action Execution State Change" events
* ``artifacts``  artifact locations, temporary credentials, moto S3 helpers
* ``timing``     the one clock every timeout, delay and timestamp is read from
* ``wire``       awsJson1_1 and Smithy RPC v2 CBOR, and the HTTP server
* ``service``    the API front: faults, latency, the call log, dispatch
* ``emulator``   ``CodePipelineEmulator``: the facade with the admin API
* ``cli``        ``python -m local.codepipeline``
"""

from .artifacts import StoredArtifact
from .cli import main
from .emulator import CodePipelineEmulator
from .events import EVENT_DETAIL_TYPE, EVENT_SOURCE, action_execution_event
from .executions import SECRET_MASK, CanceledListStatus, ListOrder, SecretMode
from .jobs import (
    MAX_BATCH_SIZE,
    OUTPUT_VARIABLES_MAX_BYTES,
    AbandonedResultMode,
    AcknowledgeFinishedMode,
    ReacknowledgeMode,
)
from .model import ApiError, validate_input
from .records import (
    FINISHED_JOB_STATES,
    ActionListener,
    ActionRun,
    ActionState,
    CallRecord,
    EventListener,
    Job,
    JobResult,
    NonceMode,
    Pipeline,
    PipelineExecution,
)
from .service import OPERATIONS
from .timing import Timing, VirtualClockLike
from .wire import CBOR_PATH_PREFIX, CORAL_NAMESPACES, MODEL_NAMESPACE, TARGET_PREFIX

__all__ = [
    "CBOR_PATH_PREFIX",
    "CORAL_NAMESPACES",
    "EVENT_DETAIL_TYPE",
    "EVENT_SOURCE",
    "FINISHED_JOB_STATES",
    "MAX_BATCH_SIZE",
    "MODEL_NAMESPACE",
    "OPERATIONS",
    "OUTPUT_VARIABLES_MAX_BYTES",
    "SECRET_MASK",
    "TARGET_PREFIX",
    "AbandonedResultMode",
    "AcknowledgeFinishedMode",
    "ActionListener",
    "ActionRun",
    "ActionState",
    "ApiError",
    "CallRecord",
    "CanceledListStatus",
    "CodePipelineEmulator",
    "EventListener",
    "Job",
    "JobResult",
    "ListOrder",
    "NonceMode",
    "Pipeline",
    "PipelineExecution",
    "ReacknowledgeMode",
    "SecretMode",
    "StoredArtifact",
    "Timing",
    "VirtualClockLike",
    "action_execution_event",
    "main",
    "validate_input",
]
