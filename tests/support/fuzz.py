"""Schemathesis over a running service's OpenAPI document: every operation, bounded cases.

The service runs in the test's event loop (``tests.support.services``); schemathesis is
synchronous (``requests``), so a whole run goes to a worker thread (``asyncio.to_thread``)
while the loop keeps serving. Failures are collected per operation and returned, so one run
shows all of them, with what each operation answered.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, CheckContext, GenerationMode, Response
from schemathesis.auths import AuthContext, set_on_generated_case
from schemathesis.checks import CheckFunction, not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.schemas import APIOperation, BaseSchema
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

Operation = APIOperation[Any, Any, Any, Any]
AnyCase = Case[Any]

#: Every answer: no 5xx, and the status, content type, headers and body are documented.
CONFORMANCE: tuple[CheckFunction, ...] = (
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
)


def rejects_invalid_data(ctx: CheckContext, response: Response, case: AnyCase) -> bool | None:
    """schemathesis' ``negative_data_rejection`` (invalid input gets a 4xx), but for one
    documented exception: the Tracking API's ``/v1/batch`` validates each member on its own
    (Segment's contract), so a batch whose invalid parts are members is a ``200`` that lists
    them in ``rejected``. A batch with no member listed there still has to be rejected."""
    if (
        case.operation.method.upper() == "POST"
        and case.operation.path == "/v1/batch"
        and response.status_code == 200
        and _batch_rejections(response) >= 1
    ):
        return None
    return negative_data_rejection(ctx, response, case)


def _batch_rejections(response: Response) -> int:
    try:
        body = response.json()
    except ValueError:
        return 0
    rejected = body.get("rejected") if isinstance(body, dict) else None
    return len(rejected) if isinstance(rejected, list) else 0


#: Invalid input: the conformance checks, and it is rejected.
REJECTION: tuple[CheckFunction, ...] = (*CONFORMANCE, rejects_invalid_data)


@dataclass
class FuzzReport:
    operations: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    #: operations with nothing to make invalid (no parameters, no body: /healthz, say)
    nothing_to_negate: list[str] = field(default_factory=list)
    #: operation → status code → how many answers had it
    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    seconds: float = 0.0

    def tally(self) -> str:
        return "\n".join(
            f"{op}: {dict(sorted(counts.items()))}" for op, counts in self.statuses.items()
        )

    def summary(self) -> str:
        return "\n\n".join(f"== {op}\n{text}" for op, text in self.failures.items())


def _excerpt(exc: BaseException, limit: int = 2000) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= limit else text[:limit] + f"... ({len(text) - limit} more)"


def _load(
    base_url: str, auth: Mapping[str, Mapping[str, str]], *, drop_credentials: bool = True
) -> BaseSchema:
    """The document the running service serves. ``auth`` holds credentials per security
    scheme of the document (``{"HTTPBearer": {"bearer": ...}}``): schemathesis sends them
    where the document asks for them. With ``drop_credentials``, some invalid cases leave
    them out (a 401); without, every case has them, so its invalid part is the data."""
    config = schemathesis.Config.from_dict(
        {
            "auth": {"openapi": dict(auth)},
            "generation": {"with-security-parameters": drop_credentials},
        }
    )
    return schemathesis.openapi.from_url(f"{base_url}/openapi.json", config=config)


def _operations(schema: BaseSchema) -> list[Operation]:
    """Every operation, deletions last: the others find the known resources still there."""
    operations: list[Operation] = []
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):
            raise result.err()  # the document itself is broken
        operations.append(result.ok())
    return sorted(operations, key=lambda operation: operation.method.upper() == "DELETE")


Runner = Callable[[Operation, Callable[[AnyCase], None]], None]


class _NothingToNegate(Exception):
    """An operation without parameters or body (/healthz, say) has no invalid cases."""


def _run_all(
    schema: BaseSchema, base_url: str, checks: Iterable[CheckFunction], run: Runner
) -> FuzzReport:
    """Call and check each case ``run`` feeds it, operation by operation."""
    started = time.monotonic()
    report = FuzzReport()
    checks = list(checks)
    with requests.Session() as session:
        for operation in _operations(schema):
            report.operations.append(operation.label)
            statuses = report.statuses.setdefault(operation.label, Counter())

            def call(case: AnyCase, statuses: Counter[int] = statuses) -> None:
                response = case.call(base_url=base_url, session=session, timeout=30)
                statuses[response.status_code] += 1
                case.validate_response(response, checks=checks)

            try:
                run(operation, call)
            except _NothingToNegate:
                report.nothing_to_negate.append(operation.label)
            except (Exception, BaseExceptionGroup) as exc:  # schemathesis' FailureGroup
                report.failures[operation.label] = _excerpt(exc)
    report.seconds = time.monotonic() - started
    return report


def _strategy(
    operation: Operation, mode: GenerationMode, known: Mapping[str, str]
) -> st.SearchStrategy[AnyCase]:
    """Cases of ``operation``; when ``known`` names every path parameter, half of them
    address those existing resources (random ids alone would only ever find 404s)."""
    generated = operation.as_strategy(generation_mode=mode)
    names = {parameter.name for parameter in operation.path_parameters}
    if not names or not names <= known.keys():
        return generated
    existing = operation.as_strategy(
        generation_mode=mode, path_parameters={name: known[name] for name in names}
    )
    return st.one_of(existing, generated)


def fuzz(
    base_url: str,
    *,
    auth: Mapping[str, Mapping[str, str]],
    mode: GenerationMode,
    max_examples: int,
    checks: Iterable[CheckFunction],
    known: Mapping[str, str] | None = None,
) -> FuzzReport:
    """Generated cases (hypothesis, derandomized: the same cases every run), valid or
    invalid as ``mode`` says, ``max_examples`` per operation. ``known`` maps path parameter
    names to ids of resources that exist (``{"key": "a-rule"}``). Blocking: run it in a
    thread."""

    def run(operation: Operation, call: Callable[[AnyCase], None]) -> None:
        @given(case=_strategy(operation, mode, known or {}))
        @settings(
            max_examples=max_examples,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
            report_multiple_bugs=False,
        )
        def test(case: AnyCase) -> None:
            call(case)

        try:
            test()
        except Unsatisfiable:
            if mode is GenerationMode.POSITIVE:
                raise  # a document whose valid inputs cannot be generated is broken
            raise _NothingToNegate from None

    # Invalid generated cases keep their credentials: left to itself, schemathesis spends most
    # of them on leaving the token out; the boundary cases have one such case per operation.
    schema = _load(base_url, auth, drop_credentials=False)
    return _run_all(schema, base_url, checks, run)


def _spread(cases: list[AnyCase], most: int) -> Iterator[AnyCase]:
    """At most ``most`` of ``cases``, evenly spread over the list (it is grouped by kind)."""
    step = max(1, -(-len(cases) // most))
    return iter(cases[::step][:most])


def boundaries(
    base_url: str,
    *,
    auth: Mapping[str, Mapping[str, str]],
    per_operation: int,
    checks: Iterable[CheckFunction],
) -> FuzzReport:
    """schemathesis' coverage phase: deterministic cases at the edges of the document (the
    longest string, the largest number, a NUL, a required field missing, a wrong type, an
    undocumented method), valid and invalid, at most ``per_operation`` per operation.
    Blocking: run it in a thread."""
    schema = _load(base_url, auth)

    def run(operation: Operation, call: Callable[[AnyCase], None]) -> None:
        cases = list(
            schema.iter_coverage_cases(
                operation,
                generation_modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                generation_config=schema.config.generation_for(operation=operation),
            )
        )
        failures: list[str] = []
        for case in _spread(cases, per_operation):
            set_on_generated_case(case, AuthContext(operation=operation, app=None), None)
            try:
                call(case)
            except (Exception, BaseExceptionGroup) as exc:  # schemathesis' FailureGroup
                failures.append(_excerpt(exc, limit=1200))
        if failures:
            shown = "\n\n".join(failures[:3])
            raise AssertionError(f"{len(failures)} boundary case(s) failed, first ones:\n{shown}")

    return _run_all(schema, base_url, checks, run)
