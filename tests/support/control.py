"""A control actor that lets a test drive a site living in another process.

The test asks ``"<site>/ctl"`` to call a function of that process with its Site as the
first argument: ``{"call": "zfs:register_receiver", "args": [...], "kwargs": {...}}``.
A keyword value ``{"$recorder": "done"}`` becomes a callback recording its arguments,
read back with ``{"events": "done"}``. ``{"start": ...}`` (same fields as "call") runs
the call on a thread and returns a job id; ``{"job": id}`` says how it went.
"""

from __future__ import annotations

import dataclasses
import importlib
import threading
import traceback
import uuid
from typing import Any

import actors


def plain(value: Any) -> Any:
    """Turn results (dataclasses, named tuples, paths, errors) into msgpack-able values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple) and hasattr(value, "_asdict"):
        return {k: plain(v) for k, v in value._asdict().items()}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    if isinstance(value, BaseException):
        return {"error": type(value).__name__, "text": str(value),
                "site": getattr(value, "site", "")}
    if value is None or isinstance(value, (str, int, float, bool, bytes)):
        return value
    return str(value)


def _resolve(spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    target: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        target = getattr(target, part)
    return target


class Control(actors.Actor):
    """Calls functions in this process on a test's behalf; see the module docstring."""

    def __init__(self) -> None:
        super().__init__()
        self.events: dict[str, list[Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}

    def _recorder(self, name: str) -> Any:
        log = self.events.setdefault(name, [])

        def record(*args: Any, **kwargs: Any) -> None:
            log.append(plain(list(args) + ([kwargs] if kwargs else [])))
        return record

    def _prepare(self, message: dict[str, Any]) -> tuple[Any, list[Any], dict[str, Any]]:
        kwargs = {}
        for key, value in message.get("kwargs", {}).items():
            if isinstance(value, dict) and "$recorder" in value:
                value = self._recorder(value["$recorder"])
            kwargs[key] = value
        return _resolve(message.get("call") or message["start"]), message.get("args", []), kwargs

    def _run_job(self, job: dict[str, Any], func: Any, args: list[Any],
                 kwargs: dict[str, Any]) -> None:
        try:
            job["result"] = plain(func(self.site, *args, **kwargs))
            job["state"] = "done"
        except Exception as err:
            job["result"] = plain(err)
            job["trace"] = traceback.format_exc()
            job["state"] = "failed"

    def on_receive(self, message: Any) -> Any:
        if "events" in message:
            return list(self.events.get(message["events"], []))
        if "job" in message:
            job = self.jobs[message["job"]]
            if job["state"] != "running":  # read once it ended: forget it
                del self.jobs[message["job"]]
            return dict(job)
        func, args, kwargs = self._prepare(message)
        if "start" in message:
            job_id = uuid.uuid4().hex
            job: dict[str, Any] = {"state": "running"}
            self.jobs[job_id] = job
            threading.Thread(target=self._run_job, args=(job, func, args, kwargs),
                             daemon=True).start()
            return job_id
        return plain(func(self.site, *args, **kwargs))
