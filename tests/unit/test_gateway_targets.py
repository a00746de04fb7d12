"""Which ledger states can serve, and which answer why not (waking, not ready, failed)."""

import pytest

from shared.backends.base import ScoringTarget
from shared.gateway import targets
from shared.ledger import ModelRecord

TARGET = ScoringTarget(uri="http://127.0.0.1:1/score", headers={"Authorization": "Bearer k"})


@pytest.fixture(autouse=True)
def resolver():
    seen: list[str] = []

    def resolve(record: ModelRecord) -> ScoringTarget:
        seen.append(record.endpoint_name)
        return TARGET

    targets.set_resolver(resolve)
    yield seen
    targets.set_resolver(None)


def record(**fields) -> ModelRecord:
    base = {"model": "m", "state": "live", "desired_version": "2", "live_version": "2", "endpoint_name": "at-m"}
    return ModelRecord(**{**base, **fields})


def test_a_live_model_resolves_its_endpoint(resolver):
    route = targets.route_for(record(), "m")
    assert route.servable and route.target is TARGET
    assert resolver == ["at-m"]


@pytest.mark.parametrize(
    ("fields", "state", "waking"),
    [
        ({"state": "sleeping", "endpoint_name": "", "slept_at": "2026-11-27T10:00:00Z"}, "sleeping", False),
        (
            {"state": "deploying", "slept_at": "2026-11-27T10:00:00Z", "sleep_reason": "woken by request at ..."},
            "deploying",
            True,
        ),
        ({"state": "deploying", "live_version": "", "endpoint_name": ""}, "deploying", False),
        ({"state": "new", "live_version": "", "endpoint_name": ""}, "new", False),
        ({"state": "failed", "live_version": "", "endpoint_name": ""}, "failed", False),
        ({"state": "live", "endpoint_name": ""}, "live", False),
    ],
)
def test_states_that_cannot_serve_never_resolve_a_target(resolver, fields, state, waking):
    route = targets.route_for(record(**fields), "m")
    assert not route.servable and route.exists
    assert (route.state, route.waking) == (state, waking)
    assert resolver == []


def test_an_unknown_model_does_not_exist():
    assert not targets.route_for(None, "m").exists
