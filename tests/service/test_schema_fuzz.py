"""Schemathesis over the OpenAPI schema of a live server: every operation, inputs generated to fit the schema
and to break it, and not one 5xx. Bounded examples per operation so the suite stays quick. (Driven with
Hypothesis directly: schemathesis' pytest plugin does not run under this pytest.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")
from conftest import LiveServer  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402

from service.settings import JobSettings, Settings  # noqa: E402

EXAMPLES = 25


@schemathesis.serializer("application/sdp")  # WHIP and WHEP offers: text, as OBS and browsers send them
def sdp_text(ctx: Any, value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


@pytest.fixture(scope="module")
def schema(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    work = Path(tmp_path_factory.mktemp("fuzz-jobs"))
    server = LiveServer(settings.model_copy(update={"connect_timeout": 2.0, "max_peers": 8}))
    server.app.state.job_settings = JobSettings(work_dir=work, min_free_bytes=0, max_queued=2)
    with server:
        yield schemathesis.openapi.from_url(f"{server.url}/openapi.json")


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_input_gets_a_server_error(schema: Any, mode: GenerationMode) -> None:
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8  # health, styles, thumbnail, dream, rtc-config, stylize, offer, jobs...
    fuzzed: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def fuzz(case: Any) -> None:
            case.call_and_validate(checks=[not_a_server_error], timeout=30)

        try:
            fuzz()
        except Unsatisfiable:  # nothing to break: an operation without parameters or body, in negative mode
            assert mode is GenerationMode.NEGATIVE
            continue
        fuzzed.append(operation.label)
    bodies = {"POST /api/stylize", "POST /api/offer", "POST /api/jobs"}  # what clients send most freely
    assert bodies <= set(fuzzed) and len(fuzzed) >= (8 if mode is GenerationMode.POSITIVE else 3), fuzzed
