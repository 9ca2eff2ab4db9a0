"""Fan-out targets, delivery ids and records, Retry-After parsing and the retry schedule setting."""

import msgspec
import pytest

from libs.contracts.bus import events
from libs.contracts.bus.webhooks import decode_task, encode_task
from libs.contracts.http.webhooks import EndpointView
from services.webhooks import settings
from services.webhooks.deliveries import RECORD_HEADER, decode_stored, delivery_id, known_record, pending, record_header
from services.webhooks.delivery import retry_after_s
from services.webhooks.fanout import tasks_for


def _endpoint(id_: str, **fields: object) -> EndpointView:
    base: dict[str, object] = {"id": id_, "url": f"https://hooks.example/{id_}", "event_types": [],
                               "description": "", "disabled": False, "created_at": 100, "updated_at": 100}
    return EndpointView(**{**base, **fields})  # type: ignore[arg-type]


def _event(**fields: object) -> events.Event:
    base: dict[str, object] = {"id": "evt_1", "type": events.JOB_COMPLETED, "occurred_at": 200, "account_id": "acme",
                               "data": {"job_id": "job_1", "n": 1}}
    return events.Event(**{**base, **fields})  # type: ignore[arg-type]


def test_targets_and_filters() -> None:
    endpoints = {
        "acme.we_all": _endpoint("we_all"),
        "acme.we_jobs": _endpoint("we_jobs", event_types=[events.JOB_COMPLETED]),
        "acme.we_keys": _endpoint("we_keys", event_types=[events.KEY_ROTATED]),
        "acme.we_off": _endpoint("we_off", disabled=True),
        "acme.we_sub": _endpoint("we_sub", sub_account_id="sa_1"),
        "acme.we_late": _endpoint("we_late", created_at=201),
        "other.we_x": _endpoint("we_x"),
        "acmecorp.we_y": _endpoint("we_y"),
    }
    tasks = tasks_for(_event(webhook_url="https://cb.example/job", job_id="job_1"), endpoints)
    assert [(t.endpoint_id, t.job_id) for t in tasks] == [(None, "job_1"), ("we_all", None), ("we_jobs", None)]
    sub = tasks_for(_event(subaccount_id="sa_1"), endpoints)
    assert [t.endpoint_id for t in sub] == ["we_all", "we_jobs", "we_sub"]
    body = msgspec.json.decode(tasks[0].body)
    assert body == {"id": "evt_1", "type": "job.completed", "occurred_at": 200, "data": {"job_id": "job_1", "n": 1}}
    assert len({t.delivery_id for t in tasks}) == 3


def test_delivery_ids_are_stable() -> None:
    first = tasks_for(_event(), {"acme.we_all": _endpoint("we_all")})
    again = tasks_for(_event(), {"acme.we_all": _endpoint("we_all", url="https://moved.example/")})
    assert first[0].delivery_id == again[0].delivery_id == delivery_id("evt_1", "endpoint:we_all")
    assert delivery_id("evt_1", "endpoint:we_all").startswith("dlv_")
    assert delivery_id("evt_2", "endpoint:we_all") != first[0].delivery_id


def test_first_attempt_rebuilds_the_pending_record_exactly() -> None:
    (task,) = tasks_for(_event(webhook_url="https://cb.example/job", job_id="job_1"), {})
    stored = pending(task, now=1_700_000_000.123456789)
    written = msgspec.json.encode(stored)
    known = known_record(decode_task(encode_task(task)), {RECORD_HEADER: record_header(stored, 7)})
    assert known is not None and known[1] == 7
    assert msgspec.json.encode(known[0]) == written  # so a write by revision 7 changes only what it means to
    assert decode_stored(written) == known[0]
    for bad in ({}, None, {RECORD_HEADER: ""}, {RECORD_HEADER: "7"}, {RECORD_HEADER: "x 1"}, {RECORD_HEADER: "1 2 3"}):
        assert known_record(task, bad) is None  # read the record instead


@pytest.mark.parametrize(("value", "expected"), [
    ("5", 5.0), (" 120 ", 120.0), ("Wed, 21 Oct 2015 07:28:10 GMT", 10.0), ("soon", None), ("", None), (None, None),
    ("-3", None), ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0), ("\u00b2", None),
])
def test_retry_after(value: str | None, expected: float | None) -> None:
    now = 1445412480.0  # 2015-10-21 07:28:00 UTC
    assert retry_after_s(value, now) == expected


def test_schedule_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings.load().schedule == (0, 30, 120, 600, 3600, 21600)
    monkeypatch.setenv("SWITCHBOARD_WEBHOOK_RETRY_SCHEDULE", "0,0.2,0.2")
    monkeypatch.setenv("SWITCHBOARD_WEBHOOK_TIMEOUT_S", "5")
    monkeypatch.setenv("SWITCHBOARD_WEBHOOK_ACK_WAIT_S", "1")
    loaded = settings.load()
    assert loaded.schedule == (0, 0.2, 0.2) and loaded.ack_wait_s == 6
    for bad in ("", "a,b", "-1", ",".join(["1"] * 21)):
        monkeypatch.setenv("SWITCHBOARD_WEBHOOK_RETRY_SCHEDULE", bad or " , ")
        with pytest.raises(SystemExit):
            settings.load()
