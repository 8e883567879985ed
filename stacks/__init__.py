"""CDK infrastructure: the reusable worker construct and the stack that deploys it.

Installed from the wheel (`make package`) this package is `codepipeline_travis_worker`:

    from codepipeline_travis_worker import TravisBuildAction, TravisWorker, WorkerConfig

The names are imported on first use, so importing one module (say `config`) does not load the
whole construct library.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import ConfigError, WorkerConfig
    from .pipeline_action import TravisBuildAction, action_category
    from .worker import TravisWorker, lambda_code_dir
    from .worker_stack import TravisWorkerStack

_EXPORTS = {
    "ConfigError": "config",
    "TravisBuildAction": "pipeline_action",
    "TravisWorker": "worker",
    "TravisWorkerStack": "worker_stack",
    "WorkerConfig": "config",
    "action_category": "pipeline_action",
    "lambda_code_dir": "worker",
}

__all__ = [
    "ConfigError",
    "TravisBuildAction",
    "TravisWorker",
    "TravisWorkerStack",
    "WorkerConfig",
    "action_category",
    "lambda_code_dir",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
