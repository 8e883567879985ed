"""Cold import time of each Lambda handler module, compared with `import boto3`.

A handler's cold import is what its cold start imports: the handler module and, for handlers
that serve a build provider, the provider its first invocation imports (`first_call_modules`).
Every sample is a fresh interpreter started the way Lambda starts one: isolated (`-I -S`: no
PYTHON* variables, no site-packages, no user site), with an explicit `sys.path` of the function
code (`lambdas/`, as /var/task), then the layer's packages (as /opt/python), then the runtime's
packages (boto3 and its dependency closure, as the runtime's own site-packages). The baseline
`import boto3` sees the runtime's packages only, so a layer that shadows one of boto3's
dependencies pays for it in the handlers' time instead of inflating the baseline. The environment
is a fixed, Lambda-like one, not the caller's, so variables such as POWERTOOLS_TRACE_DISABLED in
`make bench` cannot change what is imported.

Method: the probe reads the process's CPU time (`time.process_time_ns()`) right before and after
`__import__(name)` and prints the difference: the work of the import, module execution included
(what Lambda's init phase does), with the interpreter start left out exactly. Compared on this
2-core machine (21-25 interleaved rounds of boto3 and the steps handler; spread = IQR / median of
the per-round ratio): wall time of `python -c 'import X'` minus that of `python -c pass` spread
0.23 (two noisy process timings, exit teardown included), `-X importtime` 0.22 (its per-module
bookkeeping grows with the tree), wall time around the import inside the probe 0.14 - but with two
busy loops beside it, that wall time spread 0.42 and its median ratio rose from 1.53 to 1.83 (time
spent waiting for a core), while CPU time spread 0.15 at a median of 1.58. Lambda pays wall time,
but in a sandbox of its own, where waiting for a core is no part of an import. `-X importtime` is
still the tool to see *where* the time goes: `breakdown()` / `--breakdown` uses it.

Bytecode: /var/task and /opt are read-only and the assets carry no `__pycache__` (a pyc made here
would be for another Python anyway), so function and layer code is compiled from source at every
cold start, while the runtime's boto3 is compiled already. So the probes run with `-B` on a
pyc-free copy of the function code and the (pyc-free) layer, and boto3 keeps its pycs.
`cached_bytecode=True` shows what precompiled function and layer code would give instead.

On a small, busy machine: the rounds interleave (each round takes one sample of boto3 and of every
handler, in a rotating order), a warm-up round is discarded (disk cache), and the median is
reported. The ratio is the median of the per-round ratios handler / boto3: samples taken a
fraction of a second apart share the machine's load, so their ratio drifts less than the ratio of
two medians taken over the whole run.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LAMBDAS = ROOT / "lambdas"
HANDLERS_PACKAGE = "worker.handlers"
BASELINE = "boto3"
# What the Lambda Python runtime brings besides the standard library: boto3 and its closure.
RUNTIME_DISTRIBUTION = "boto3"
LAMBDA_ENV = {
    "AWS_LAMBDA_FUNCTION_NAME": "importtime",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
    "AWS_EXECUTION_ENV": "AWS_Lambda_python",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_SERVICE_NAME": "importtime",
    "POWERTOOLS_METRICS_NAMESPACE": "importtime",
    "LANG": "C.UTF-8",
}
# Runs in the probe interpreter: path setup first, then only the timed import.
# `__import__` rather than importlib.import_module: it takes the C import path that the `import`
# statement takes, the only one `-X importtime` reports (import_module's own module is missing).
_PROBE = """\
import sys, time
sys.path[:0] = {path!r}
started = time.process_time_ns()
for name in {modules!r}:
    __import__(name)
print(time.process_time_ns() - started)
"""
# What a handler's first invocation imports lazily, still inside its cold start: a handler that
# serves a build provider imports it (worker.handlers.entry.provider_for) and Powertools'
# parameters to read the worker's token secret (providers/travis/token.py); the webhook receiver
# imports the Travis client to read the public key. The probe imports them with the handler.
FIRST_CALL_IMPORTS = (
    (
        ("provider_for(", "provider_named("),
        ("worker.providers.travis.provider", "aws_lambda_powertools.utilities.parameters"),
    ),
    (("handle_webhook(",), ("worker.providers.travis.client",)),
)
CALLGRIND = ("valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null")
_COLLECTED = re.compile(r"Collected : (\d+)")
_IMPORTTIME_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)$")


def discover_handlers(lambdas: Path = LAMBDAS) -> list[str]:
    """One module per Lambda function: every `worker/handlers/*.py` but private ones."""
    folder = lambdas.joinpath(*HANDLERS_PACKAGE.split("."))
    return [f"{HANDLERS_PACKAGE}.{p.stem}" for p in sorted(folder.glob("*.py")) if p.stem[0] != "_"]


def first_call_modules(module: str, lambdas: Path = LAMBDAS) -> tuple[str, ...]:
    """What a cold start of `module` imports: the module, and what its first invocation imports
    lazily (the build provider, for handlers that call one)."""
    source = lambdas.joinpath(*module.split(".")).with_suffix(".py")
    text = source.read_text(encoding="utf-8") if source.is_file() else ""
    lazy = [
        name
        for markers, modules in FIRST_CALL_IMPORTS
        if any(marker in text for marker in markers)
        for name in modules
    ]
    return (module, *lazy)


def distribution_closure(name: str) -> list[importlib.metadata.Distribution]:
    """`name` and what it requires, transitively, as installed here (extras left out)."""
    found: dict[str, importlib.metadata.Distribution] = {}
    todo = [(name, False)]
    while todo:
        wanted, conditional = todo.pop()
        key = re.sub(r"[-_.]+", "-", wanted).lower()
        if key in found:
            continue
        try:
            found[key] = dist = importlib.metadata.distribution(key)
        except importlib.metadata.PackageNotFoundError:
            if conditional:  # e.g. `; python_version < "3.10"`: not for this interpreter
                continue
            raise
        for requirement in dist.requires or []:
            marker = requirement.partition(";")[2]
            match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
            if match and "extra ==" not in marker:
                todo.append((match.group(0), bool(marker.strip())))
    return list(found.values())


def top_level_entries(dist: importlib.metadata.Distribution) -> set[Path]:
    """The importable packages and modules a distribution installed (absolute paths)."""
    entries: set[Path] = set()
    for file in dist.files or []:
        top = file.parts[0]
        if top in {"..", "__pycache__", "bin"} or top.endswith((".dist-info", ".data", ".pth")):
            continue
        entries.add(Path(str(dist.locate_file(top))))
    return entries


@contextmanager
def runtime_site(distribution: str = RUNTIME_DISTRIBUTION) -> Iterator[Path]:
    """A folder holding only `distribution`'s closure (links into this environment)."""
    with tempfile.TemporaryDirectory(prefix="runtime-") as folder:
        site = Path(folder)
        for dist in distribution_closure(distribution):
            for entry in top_level_entries(dist):
                (site / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
        yield site


def host_layer() -> Path:
    """The project's layer built for this machine (cached), so that compiled parts load here."""
    import platform

    from stacks.dependency_layer import REQUIREMENTS, build_layer  # starts jsii: only when asked

    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    return build_layer(REQUIREMENTS, f"manylinux2014_{platform.machine()}", version) / "python"


class Probe:
    """Fresh interpreters: a handler sees function code, layer and runtime; boto3 the runtime."""

    def __init__(
        self, task: Path, layer: Path, runtime: Path, *, cached_bytecode: bool, pycache: Path
    ) -> None:
        self.task = task
        self.handler_path = [str(task), str(layer), str(runtime)]
        self.baseline_path = [str(runtime)]
        # Without cached bytecode, -B keeps the pyc-free code pyc-free (boto3 keeps its pycs);
        # with it, a private pycache prefix holds every pyc, so nothing is written to the sources.
        self.flags = ["-X", f"pycache_prefix={pycache}"] if cached_bytecode else ["-B"]
        self.env = LAMBDA_ENV | {"PATH": os.environ.get("PATH", os.defpath)}

    def run(
        self, module: str, *options: str, prefix: Sequence[str] = ()
    ) -> subprocess.CompletedProcess[str]:
        """Import `module` in a fresh interpreter; RuntimeError with its traceback if it fails.
        `module` "" imports nothing (the interpreter's start and the path setup only); `prefix`
        runs the interpreter under another program (valgrind)."""
        modules: tuple[str, ...]
        if module == BASELINE:
            path, modules = self.baseline_path, (module,)
        elif not module:
            path, modules = self.handler_path, ()
        else:
            path, modules = self.handler_path, first_call_modules(module, self.task)
        completed = subprocess.run(  # noqa: S603 - this interpreter, fixed code
            [
                *prefix,
                sys.executable,
                "-I",
                "-S",
                *self.flags,
                *options,
                "-c",
                _PROBE.format(path=path, modules=modules),
            ],
            capture_output=True,
            text=True,
            env=self.env,
            check=False,
        )
        if completed.returncode != 0:
            raise RuntimeError(f"importing {module} failed:\n{completed.stderr.strip()}")
        return completed

    def milliseconds(self, module: str) -> float:
        return int(self.run(module).stdout.split()[-1]) / 1e6

    def instructions(self, module: str) -> int:
        """Machine instructions the interpreter executes, counted by callgrind (the same on
        every run, however busy the machine)."""
        completed = self.run(module, prefix=CALLGRIND)
        found = _COLLECTED.search(completed.stderr)
        if found is None:
            raise RuntimeError(f"callgrind counted nothing for {module or 'the empty probe'}")
        return int(found.group(1))

    def importtime(self, module: str) -> list[tuple[str, int, int, int]]:
        """(module, self µs, cumulative µs, depth) of each import `-X importtime` reports."""
        rows = []
        for line in self.run(module, "-X", "importtime").stderr.splitlines():
            match = _IMPORTTIME_LINE.match(line)
            if match:
                own, cumulative, indent, name = match.groups()
                rows.append((name, int(own), int(cumulative), len(indent) // 2))
        return rows


@contextmanager
def probe(
    layer: Path | None = None, lambdas: Path = LAMBDAS, *, cached_bytecode: bool = False
) -> Iterator[Probe]:
    """A `Probe` on a pyc-free copy of `lambdas` (what the function asset holds), the layer's
    packages folder (default: the project's layer built for this machine) and boto3's closure."""
    layer = host_layer() if layer is None else layer
    with (
        tempfile.TemporaryDirectory(prefix="task-") as task,
        runtime_site() as runtime,
        tempfile.TemporaryDirectory(prefix="pycache-") as pycache,
    ):
        code = Path(task) / "task"
        shutil.copytree(lambdas, code, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        yield Probe(code, layer, runtime, cached_bytecode=cached_bytecode, pycache=Path(pycache))


def measure(
    modules: Sequence[str] | None = None,
    *,
    runs: int = 15,
    warmup: int = 1,
    layer: Path | None = None,
    lambdas: Path = LAMBDAS,
    cached_bytecode: bool = False,
) -> dict[str, Any]:
    """Median cold import (CPU ms) of `import boto3` and of each module, and each module's ratio.

    `layer` is the folder of the layer's packages (what /opt/python holds); by default the
    project's layer built for this machine. `modules` defaults to every handler module.
    """
    if runs < 1:
        raise ValueError("runs must be at least 1")
    handlers = list(modules) if modules else discover_handlers(lambdas)
    order = [BASELINE, *handlers]
    samples: dict[str, list[float]] = {name: [] for name in order}
    ratios: dict[str, list[float]] = {name: [] for name in handlers}
    with probe(layer, lambdas, cached_bytecode=cached_bytecode) as prober:
        for round_number in range(warmup + runs):
            shift = round_number % len(order)  # rotate: no module always runs first or last
            taken = {name: prober.milliseconds(name) for name in order[shift:] + order[:shift]}
            if round_number < warmup:
                continue
            for name, ms in taken.items():
                samples[name].append(ms)
            for name in handlers:
                ratios[name].append(taken[name] / taken[BASELINE])
    bytecode = "cached pycs" if cached_bytecode else "function and layer code from source (-B)"
    return {
        "method": f"CPU time of __import__ in a fresh `python -I -S`, {bytecode}",
        "runs": runs,
        "boto3_ms": round(statistics.median(samples[BASELINE]), 1),
        "handlers": {
            name: {
                "ms": round(statistics.median(samples[name]), 1),
                "ratio": round(statistics.median(ratios[name]), 2),
            }
            for name in handlers
        },
    }


def breakdown(
    module: str,
    *,
    top: int = 15,
    layer: Path | None = None,
    lambdas: Path = LAMBDAS,
    cached_bytecode: bool = False,
) -> list[dict[str, Any]]:
    """Where one cold import goes: the `top` imports by cumulative time, per `-X importtime`.

    Cumulative time is charged to the first importer, so read the tree, not only the list: a
    module shared with boto3 appears under whichever imported it first.
    """
    with probe(layer, lambdas, cached_bytecode=cached_bytecode) as prober:
        prober.importtime(module)  # warm-up: disk cache
        rows = prober.importtime(module)
    rows.sort(key=lambda row: row[2], reverse=True)
    return [
        {"module": name, "self_ms": own / 1000, "cumulative_ms": cumulative / 1000, "depth": depth}
        for name, own, cumulative, depth in rows[:top]
    ]


def measure_instructions(
    modules: Sequence[str] | None = None,
    *,
    layer: Path | None = None,
    lambdas: Path = LAMBDAS,
    cached_bytecode: bool = False,
    workers: int = 2,
) -> dict[str, Any]:
    """Instructions of each cold import over those of `import boto3` (callgrind), less the
    interpreter's own start: one run each, as the count does not vary with the machine's load.

    With `cached_bytecode`, a first plain run of each writes the pycs the counted run reads.
    """
    handlers = list(modules) if modules else discover_handlers(lambdas)
    names = ["", BASELINE, *handlers]
    with probe(layer, lambdas, cached_bytecode=cached_bytecode) as prober:

        def count(name: str) -> int:
            if cached_bytecode:
                prober.run(name)
            return prober.instructions(name)

        with ThreadPoolExecutor(max(1, workers)) as pool:
            counted = dict(zip(names, pool.map(count, names), strict=True))
    start = counted[""]
    baseline = counted[BASELINE] - start
    bytecode = "cached pycs" if cached_bytecode else "function and layer code from source (-B)"
    return {
        "method": f"instructions (callgrind) of a fresh `python -I -S`, less its start, {bytecode}",
        "boto3_instructions": baseline,
        "handlers": {
            name: {
                "instructions": counted[name] - start,
                "ratio": round((counted[name] - start) / baseline, 2),
            }
            for name in handlers
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("modules", nargs="*", help="handler modules (default: worker/handlers/*)")
    parser.add_argument("--runs", type=int, default=15, help="samples per module (median)")
    parser.add_argument("--warmup", type=int, default=1, help="rounds discarded first")
    parser.add_argument("--layer", type=Path, help="the layer's packages (default: build it)")
    parser.add_argument("--lambdas", type=Path, default=LAMBDAS, help="function code folder")
    parser.add_argument(
        "--cached-bytecode", action="store_true", help="let function and layer code use pycs"
    )
    parser.add_argument(
        "--breakdown", type=int, metavar="TOP", help="instead: the TOP imports of each module"
    )
    parser.add_argument(
        "--instructions", action="store_true", help="instead: instruction counts (callgrind)"
    )
    args = parser.parse_args(argv)
    options: dict[str, Any] = {
        "layer": args.layer,
        "lambdas": args.lambdas,
        "cached_bytecode": args.cached_bytecode,
    }
    result: dict[str, Any]
    if args.instructions:
        result = measure_instructions(args.modules, **options)
    elif args.breakdown:
        modules = args.modules or discover_handlers(args.lambdas)
        result = {name: breakdown(name, top=args.breakdown, **options) for name in modules}
    else:
        result = measure(args.modules, runs=args.runs, warmup=args.warmup, **options)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
