"""/dashboard in headless Chromium (Debian's, driven by Playwright): after a short run of real
traffic, an admin key and a sub-account key sign in, and every chart must hold what the report
endpoints answer for the same range, drawn (coloured pixels on its canvas), and a sub-account key
must see only its own traffic. Screenshots go to the test's tmp dir; with
SWITCHBOARD_DASHBOARD_SCREENSHOT=docs/dashboard.png the admin view is also written there."""

import os
import shutil
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.integration.api import call, create_sub_account
from tests.integration.cluster import Cluster, eventually

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT_ENV = "SWITCHBOARD_DASHBOARD_SCREENSHOT"
VIEWPORT = {"width": 1400, "height": 1000}
CHARTS = ("spend-by-tag", "requests-by-tag", "spend-by-sub-account", "requests-by-sub-account", "top-models",
          "error-rate", "latency", "provider-health")
BUCKET_MS = {"hour": 3_600_000, "day": 86_400_000}
ADMIN_TAGS = ("search", "support-bot")
SUB_TAG = "acme-assistant"

# Every chart's data as the page holds it, read from the Chart.js instances themselves.
DRAWN_JS = """() => Object.fromEntries([...document.querySelectorAll("canvas")].map((canvas) => {
  const chart = Chart.getChart(canvas);
  return [canvas.id, chart && {
    labels: chart.data.labels,
    datasets: chart.data.datasets.map((d) => ({label: d.label, group: d.group === undefined ? null : d.group,
      other: Boolean(d.other), groups: d.groups || [], data: d.data, colour: d.backgroundColor})),
  }];
}))"""

# How many pixels inside the plot area (not the legend, which shows each series' colour too) are
# exactly `rgb`: a bar or point in that colour was drawn.
PIXELS_JS = """([id, rgb]) => {
  const canvas = document.getElementById(id);
  const chart = Chart.getChart(canvas);
  const area = chart.chartArea;
  const ratio = chart.currentDevicePixelRatio;
  const pixels = canvas.getContext("2d").getImageData(area.left * ratio, area.top * ratio,
    (area.right - area.left) * ratio, (area.bottom - area.top) * ratio).data;
  let count = 0;
  for (let i = 0; i < pixels.length; i += 4) {
    if (pixels[i] === rgb[0] && pixels[i + 1] === rgb[1] && pixels[i + 2] === rgb[2] && pixels[i + 3] === 255) count++;
  }
  return count;
}"""


class Traffic:
    def __init__(self, sub: dict[str, Any], admin_ids: list[str], sub_ids: list[str]) -> None:
        self.sub = sub
        self.admin_ids = admin_ids
        self.sub_ids = sub_ids


def _chat(client: openai.OpenAI, model: str, tag: str | None, **kwargs: Any) -> str:
    headers = {"x-aig-tag": tag} if tag else {}
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "How do I reset my password?"}], extra_headers=headers,
        **kwargs)
    return raw.headers["X-Request-Id"]


@pytest.fixture(scope="module")
def traffic(gateway: Cluster) -> Traffic:
    """A short run: tagged chat calls by the account and by one sub-account, one of them failing."""
    sub = create_sub_account(gateway, name="Acme Corp")
    admin, customer = gateway.client(), gateway.client(key=sub["key"])
    admin_ids = [_chat(admin, "sim/gpt-sim", ADMIN_TAGS[i % 2]) for i in range(5)]
    admin_ids.append(_chat(admin, "sim/pricey", ADMIN_TAGS[1], max_tokens=3))
    admin_ids.append(admin.embeddings.with_raw_response.create(
        model="sim/embed-sim", input=["hello"]).headers["X-Request-Id"])
    sub_ids = [_chat(customer, "sim/gpt-sim", SUB_TAG) for _ in range(3)]
    with pytest.raises(openai.APIStatusError) as failed:
        _chat(customer, "sim/gpt-sim+status=500", SUB_TAG)  # the simulator answers 500: a metered error
    sub_ids.append(failed.value.response.headers["X-Request-Id"])

    def recorded() -> bool:
        found = call(gateway, "GET", "/usage/recent", params={"limit": 100}).json()["data"]
        return set(admin_ids + sub_ids) <= {g["id"] for g in found}

    assert eventually(recorded, 15)
    return Traffic(sub, admin_ids, sub_ids)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # `make test` installs Debian's chromium first; a developer's apt may still be at it.
    deadline = time.monotonic() + 60
    while not CHROMIUM.exists() and time.monotonic() < deadline:
        time.sleep(1)
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make browser` installs Debian's chromium")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield chromium
        chromium.close()


class Session:
    """One browser tab on /dashboard, recording what the page asked for and what went wrong."""

    def __init__(self, browser: Browser, gateway: Cluster) -> None:
        self.context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
        self.page: Page = self.context.new_page()
        self.page.set_default_timeout(15_000)
        self.requests: list[tuple[str, str | None]] = []
        self.problems: list[str] = []
        self.page.on("request", lambda r: self.requests.append((r.url, r.headers.get("authorization"))))
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        # A refused response (the 403 a sub-account key gets for the names list) is logged as
        # "Failed to load resource"; anything else on the console (a CSP refusal) is a problem.
        self.page.on("console", lambda m: m.type == "error" and "Failed to load resource" not in m.text
                     and self.problems.append(m.text))
        self.origin = gateway.base_url.removesuffix("/v1")

    def sign_in(self, key: str) -> None:
        self.page.goto(f"{self.origin}/dashboard")
        self.page.fill("#key", key)
        self.page.click("button[type=submit]")
        self.page.wait_for_selector("body[data-state=ready]")

    def refresh(self) -> None:
        loads = int(self.page.evaluate("document.body.dataset.loads"))
        self.page.click("#refresh")
        # A selector, not wait_for_function: the page's CSP forbids evaluating strings.
        self.page.wait_for_selector(f"body[data-loads='{loads + 1}'][data-state=ready]")

    def drawn(self) -> dict[str, Any]:
        return self.page.evaluate(DRAWN_JS)

    def range(self) -> dict[str, Any]:
        data = self.page.evaluate("({...document.body.dataset})")
        return {"from": data["from"], "to": data["to"], "bucket": data["bucket"]}

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def session(browser: Browser, gateway: Cluster) -> Iterator[Session]:
    s = Session(browser, gateway)
    yield s
    s.close()


def _ms(iso: str) -> int:
    return round(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def _starts(span: dict[str, Any]) -> list[int]:
    return list(range(int(span["from"]) * 1000, int(span["to"]) * 1000, BUCKET_MS[span["bucket"]]))


def _cells(report: dict[str, Any], starts: list[int], metric: str) -> dict[str | None, list[float]]:
    """Per group, the metric per bucket, as the report answers it."""
    cells: dict[str | None, list[float]] = {}
    for row in report["data"]:
        values = cells.setdefault(row["group"], [0.0] * len(starts))
        value = row["cost_micros"] / 1e6 if metric == "cost" else row["requests"]
        values[starts.index(_ms(row["bucket_start"]))] += value
    return cells


def _check_grouped(drawn: dict[str, Any], report: dict[str, Any], starts: list[int], metric: str) -> set[str | None]:
    """Every dataset is its group's series (or the sum of the groups it lumps as "other"), and
    together they cover every group of the report; returns the groups."""
    cells = _cells(report, starts, metric)
    covered: set[str | None] = set()
    for dataset in drawn["datasets"]:
        groups = dataset["groups"] if dataset["other"] else [dataset["group"]]
        expected = [sum(cells[group][i] for group in groups) for i in range(len(starts))]
        assert dataset["data"] == pytest.approx(expected), dataset["label"]
        covered |= set(groups)
    assert covered == set(cells)
    return covered


def _rgb(colour: str) -> list[int]:
    return [int(colour[i:i + 2], 16) for i in (1, 3, 5)]


def _check_page(s: Session, gateway: Cluster, key: str) -> dict[str, Any]:
    """The page's charts, KPIs and table against the report endpoints for the range it drew."""
    span = s.range()
    starts = _starts(span)
    window = {"from": span["from"], "to": span["to"]}

    def get(path: str, **params: Any) -> dict[str, Any]:
        response = call(gateway, "GET", path, key, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    drawn = s.drawn()
    assert set(CHARTS) <= set(drawn) and all(drawn[chart] for chart in CHARTS)
    assert len(drawn["spend-by-tag"]["labels"]) == len(starts)
    by_tag = get("/usage/by-tag", **window, bucket=span["bucket"])
    by_sub = get("/usage/by-sub-account", **window, bucket=span["bucket"])
    tags = _check_grouped(drawn["spend-by-tag"], by_tag, starts, "cost")
    assert _check_grouped(drawn["requests-by-tag"], by_tag, starts, "requests") == tags
    subs = _check_grouped(drawn["spend-by-sub-account"], by_sub, starts, "cost")
    assert _check_grouped(drawn["requests-by-sub-account"], by_sub, starts, "requests") == subs

    models = {row["group"]: row["cost_micros"] / 1e6 for row in get("/usage", **window, group_by="model")["data"]}
    top = drawn["top-models"]["datasets"][0]["data"]
    assert top == sorted(models.values(), reverse=True)[:10]
    assert all(models[label] == value for label, value in zip(drawn["top-models"]["labels"], top, strict=True))

    over_time = {_ms(row["bucket_start"]): row for row in get("/usage", **window, bucket=span["bucket"])["data"]}
    error_rate, = drawn["error-rate"]["datasets"]
    p50, p95 = drawn["latency"]["datasets"]
    for i, start in enumerate(starts):
        row = over_time.get(start)
        assert error_rate["data"][i] == (None if row is None else pytest.approx(100 * row["errors"] / row["requests"]))
        assert p50["data"][i] == (None if row is None else row["p50_latency_ms"])
        assert p95["data"][i] == (None if row is None else row["p95_latency_ms"])

    health = get("/health/providers")["data"]
    assert [label.split(" (")[0] for label in drawn["provider-health"]["labels"]] == [d["deployment"] for d in health]
    assert drawn["provider-health"]["datasets"][0]["data"] == [round(d["success_rate"] * 1000) / 10 for d in health]

    summary = get("/usage", **window)
    assert s.page.text_content("#kpi-requests") == str(summary["total"]["requests"])
    recent = get("/usage/recent", **window, limit=25)["data"]
    rows = s.page.eval_on_selector_all("#recent tbody tr", "rows => rows.map(r => r.dataset.id)")
    assert rows == [g["id"] for g in recent]

    # Drawn, not just configured: the bars of each grouped chart's first series are on its canvas.
    for chart in CHARTS[:5]:
        colour = drawn[chart]["datasets"][0]["colour"]
        assert s.page.evaluate(PIXELS_JS, [chart, _rgb(colour)]) > 20, chart
    for chart, colour in (("error-rate", error_rate["colour"]), ("latency", p95["colour"])):
        assert s.page.evaluate(PIXELS_JS, [chart, _rgb(colour)]) > 5, chart
    return {"tags": tags, "subs": subs, "requests": summary["total"]["requests"], "recent": rows}


def _settled(s: Session, check: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """`check()`, once more after a refresh if the ledger stored more usage in between (late usage
    of earlier tests' jobs on the shared gateway)."""
    for _ in range(3):
        try:
            return check()
        except AssertionError:
            s.refresh()
    return check()


def test_admin_sees_every_chart_drawn_from_the_reports(gateway: Cluster, traffic: Traffic, session: Session,
                                                       tmp_path: Path) -> None:
    session.sign_in(gateway.admin_key)
    seen = _settled(session, lambda: _check_page(session, gateway, gateway.admin_key))
    assert set(ADMIN_TAGS) | {SUB_TAG} <= seen["tags"]
    assert {traffic.sub["id"], None} <= seen["subs"]
    assert set(traffic.sub_ids) <= set(seen["recent"])
    assert session.page.text_content("#who").startswith("account key")
    labels = [d["label"] for d in session.drawn()["spend-by-sub-account"]["datasets"]]
    assert f"Acme Corp · {traffic.sub['id']}" in labels or any(label.startswith("other") for label in labels)
    shot = tmp_path / "dashboard-admin.png"
    session.page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get(SCREENSHOT_ENV):
        shutil.copyfile(shot, os.environ[SCREENSHOT_ENV])
    # The key went only into the Authorization header of the page's own API calls, never a URL.
    assert not any(gateway.admin_key in url for url, _ in session.requests)
    api_calls = [(url, auth) for url, auth in session.requests if "/v1/" in url]
    assert api_calls and all(auth == f"Bearer {gateway.admin_key}" for _, auth in api_calls)
    assert all(url.startswith(session.origin) for url, _ in session.requests if not url.startswith("data:"))
    assert session.problems == []


def test_a_sub_account_key_sees_only_its_own(gateway: Cluster, traffic: Traffic, session: Session,
                                             tmp_path: Path) -> None:
    key, sub_id = traffic.sub["key"], traffic.sub["id"]
    session.sign_in(key)
    seen = _settled(session, lambda: _check_page(session, gateway, key))
    assert seen["subs"] == {sub_id}
    assert seen["tags"] == {SUB_TAG}
    assert seen["requests"] == len(traffic.sub_ids)
    assert set(seen["recent"]) == set(traffic.sub_ids)
    assert session.page.text_content("#who") == f"sub-account {sub_id}"
    assert session.page.text_content("#kpi-errors") == "25.0%"  # 1 of its 4 requests failed
    span = session.range()
    admin_total = call(gateway, "GET", "/usage", params={"from": span["from"], "to": span["to"]}).json()["total"]
    assert admin_total["requests"] > seen["requests"]
    session.page.screenshot(path=str(tmp_path / "dashboard-sub-account.png"), full_page=True)
    assert session.problems == []


def test_a_refused_key_and_signing_out(gateway: Cluster, session: Session) -> None:
    page = session.page
    page.goto(f"{session.origin}/dashboard")
    page.fill("#key", "sk-aig-not-a-key")
    page.click("button[type=submit]")
    page.wait_for_selector("body[data-state=signed-out] #sign-in-error:has-text('refused')")
    assert page.evaluate("sessionStorage.length") == 0
    session.sign_in(gateway.admin_key)
    assert page.evaluate("Object.values(sessionStorage)") == [gateway.admin_key]
    page.reload()  # the key outlives a reload of the tab (session storage), so no second sign-in
    page.wait_for_selector("body[data-state=ready]")
    page.click("#sign-out")
    assert page.evaluate("sessionStorage.length") == 0
    assert page.is_visible("#sign-in") and not page.is_visible("#board")


def test_page_and_files_are_served_with_their_headers(gateway: Cluster) -> None:
    origin = gateway.base_url.removesuffix("/v1")
    page = httpx.get(f"{origin}/dashboard", timeout=15)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "connect-src 'self'" in policy and "unsafe-inline" not in policy
    assert page.headers["X-Frame-Options"] == "DENY" and "sk-aig" not in page.text.replace("sk-aig-...", "")
    moved = httpx.get(f"{origin}/dashboard/", timeout=15)
    assert moved.status_code == 308 and moved.headers["Location"] == "/dashboard"
    chart = httpx.get(f"{origin}/dashboard/static/vendor/chart.umd.min.js", timeout=15)
    assert chart.status_code == 200 and chart.headers["Content-Type"].startswith("text/javascript")
    assert chart.text.startswith("/*!\n * Chart.js v4") and chart.headers["X-Content-Type-Options"] == "nosniff"
    licence = httpx.get(f"{origin}/dashboard/static/vendor/chart.js.LICENSE.md", timeout=15)
    assert licence.status_code == 200 and "MIT License" in licence.text


@pytest.mark.parametrize("name", ["nope.js", "%2e%2e/routes.py", "..%2froutes.py", "%2e%2e/__init__.py", "index.html",
                                  "vendor", "à", "a.b", "*", ">", "x" * 300])
def test_unknown_dashboard_files_are_404s(gateway: Cluster, name: str) -> None:
    origin = gateway.base_url.removesuffix("/v1")
    response = httpx.get(f"{origin}/dashboard/static/{name}", timeout=15)
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == 404 and error["type"] == "invalid_request_error"
    assert "def " not in response.text  # no source file leaked


def test_the_reports_it_added_are_scoped_to_the_key(gateway: Cluster, traffic: Traffic) -> None:
    sub_key = traffic.sub["key"]
    recent = call(gateway, "GET", "/usage/recent", sub_key, params={"limit": 100}).json()
    assert recent["object"] == "list" and {g["id"] for g in recent["data"]} == set(traffic.sub_ids)
    created = [g["created"] for g in recent["data"]]
    assert created == sorted(created, reverse=True)
    failed = next(g for g in recent["data"] if g["status"] >= 400)
    assert failed["cost"]["total_micros"] == 0 and failed["tag"] == SUB_TAG
    assert len(call(gateway, "GET", "/usage/recent", params={"limit": 3}).json()["data"]) == 3
    month_total = call(gateway, "GET", "/usage").json()["total"]["requests"]
    assert len(call(gateway, "GET", "/usage/recent").json()["data"]) == min(20, month_total)  # the default page
    own = call(gateway, "GET", "/usage", sub_key, params={"group_by": "model"}).json()
    assert {row["group"] for row in own["data"]} == {"sim/gpt-sim", "sim/gpt-sim+status=500"}
    assert own["total"]["requests"] == len(traffic.sub_ids) and own["total"]["errors"] == 1
    whole = call(gateway, "GET", "/usage", params={"group_by": "model"}).json()
    assert {"sim/pricey", "sim/embed-sim"} <= {row["group"] for row in whole["data"]}
    # A month with no traffic is an empty page, not an error.
    assert call(gateway, "GET", "/usage/recent", params={"month": "2001-01"}).json()["data"] == []


@pytest.mark.parametrize(("path", "params", "param"), [
    ("/usage", {"group_by": "sub_account"}, "group_by"),
    ("/usage", {"group_by": "à"}, "group_by"),
    ("/usage", {"bucket": "week"}, "bucket"),
    ("/usage", {"month": "2026-13"}, "month"),
    ("/usage/recent", {"limit": "0"}, "limit"),
    ("/usage/recent", {"limit": "101"}, "limit"),
    ("/usage/recent", {"limit": "-1"}, "limit"),
    ("/usage/recent", {"limit": "2.5"}, "limit"),
    ("/usage/recent", {"limit": "ten"}, "limit"),
    ("/usage/recent", {"limit": "٣"}, "limit"),  # a digit, but not an ASCII one
    ("/usage/recent", {"limit": "9" * 300}, "limit"),
    ("/usage/recent", {"from": "yesterday"}, "from"),
    ("/usage/recent", {"from": "1700000000", "to": "1600000000"}, "from"),
])
def test_bad_report_parameters_are_400s(gateway: Cluster, path: str, params: dict[str, str], param: str) -> None:
    response = call(gateway, "GET", path, params=params)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error" and len(error["message"]) < 300


@pytest.mark.parametrize("path", ["/usage", "/usage/recent"])
def test_reports_need_a_valid_key(gateway: Cluster, path: str) -> None:
    assert httpx.get(f"{gateway.base_url}{path}", timeout=15).status_code == 401
    assert call(gateway, "GET", path, key="sk-aig-wrong").status_code == 401
