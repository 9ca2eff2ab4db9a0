"""Spend-cap overshoot under concurrency: a sub-account with a cap hammered by N clients.

Starts NATS, the simulator, a ledger, a router and an edge, then for each mode (the edge
restarted with SWITCHBOARD_SPEND_LEASES=0, the ledger's published spend alone, then =1,
worst-case reservations on leases) and each client count, creates a sub-account with a
cap, runs N closed-loop clients on sim/pricey (0.525 cent a request) until the cap has
refused them for a second, waits for the ledger to store everything, and reports:
`overshoot` (ledger spend minus the cap, in micro-dollars and in requests), `after_cap`
(requests admitted although they started after the spend of finished requests had
reached the cap) and `unspent` (cap minus spend, when the cap held).

`python -m tools.bench.caps` (BENCH_CAPS_CENTS, default 500; BENCH_CAPS_CLIENTS "8,16").
"""

import asyncio
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp

from libs.contracts.keys import mint_key
from tools.cli.processes import ManagedProcess, free_port, start_module, start_nats, wait_http_ok

_PER_REQUEST = 5_250  # "hi" with max_tokens=2 on sim/pricey: 1 + 2 tokens at $1000/$2000 per M, + 5 %
_BODY = {"model": "sim/pricey", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
_REFUSING_S = 1.0


class _Outcome(NamedTuple):
    started: float
    ended: float
    status: int
    cost: int


class _Stack(NamedTuple):
    procs: list[ManagedProcess]
    url: str
    admin: str
    restart_edge: Callable[[bool], None]


def _start(root: Path) -> _Stack:
    logs = root / "logs"
    nats_port, sim_port, edge_port, router_health, ledger_health = (free_port() for _ in range(5))
    sim_url = f"http://127.0.0.1:{sim_port}/v1"
    procs = [start_nats(root, nats_port, logs)]
    env = {**os.environ, "SIM_PORT": str(sim_port), "SIM_LATENCY_MS": "10", "SIM_API_KEY": "bench"}
    procs.append(start_module("upstream_sim", "tools.upstream_sim", env, logs))
    wait_http_ok(f"http://127.0.0.1:{sim_port}/healthz", 20, procs[-1].popen)
    config = root / "caps.toml"
    config.write_text('[[models]]\nid = "sim/pricey"\nupstream = "gpt-sim"\ninput_per_mtok = 1000.0\n'
                      'output_per_mtok = 2000.0\n')
    admin = mint_key()
    env = {**env, "SWITCHBOARD_NATS_URL": f"nats://127.0.0.1:{nats_port}", "SWITCHBOARD_ADMIN_KEY": admin,
           "SWITCHBOARD_CONFIG": str(config), "SWITCHBOARD_DATA_DIR": str(root), "SIM_BASE_URL": sim_url,
           "SWITCHBOARD_HTTP_PORT": str(edge_port), "SWITCHBOARD_ROUTER_HEALTH_PORT": str(router_health),
           "SWITCHBOARD_LEDGER_HEALTH_PORT": str(ledger_health)}
    procs.append(start_module("ledger", "services.ledger", env, logs))
    wait_http_ok(f"http://127.0.0.1:{ledger_health}/readyz", 30, procs[-1].popen)
    procs.append(start_module("router", "services.router", env, logs))
    wait_http_ok(f"http://127.0.0.1:{router_health}/readyz", 30, procs[-1].popen)
    edge_at = len(procs)
    procs.append(start_module("edge", "services.edge", {**env, "SWITCHBOARD_SPEND_LEASES": "0"}, logs))
    wait_http_ok(f"http://127.0.0.1:{edge_port}/readyz", 30, procs[-1].popen)

    def restart_edge(leases: bool) -> None:
        procs[edge_at].stop()
        procs[edge_at] = start_module("edge", "services.edge", {**env, "SWITCHBOARD_SPEND_LEASES": str(int(leases))},
                                      logs)
        wait_http_ok(f"http://127.0.0.1:{edge_port}/readyz", 30, procs[edge_at].popen)

    return _Stack(procs, f"http://127.0.0.1:{edge_port}/v1", admin, restart_edge)


async def _run(url: str, admin: str, cap_cents: int, clients: int) -> dict[str, Any]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients + 4)) as http:
        async with http.post(f"{url}/sub-accounts", headers={"Authorization": f"Bearer {admin}"},
                             json={"name": f"bench-{clients}", "spend_cap_cents": cap_cents}) as response:
            sub = await response.json()
        headers = {"Authorization": f"Bearer {sub['key']}"}
        await asyncio.sleep(0.5)  # the key reaches the edge's mirror
        outcomes: list[_Outcome] = []
        first_402: list[float] = []

        async def client() -> None:
            while True:
                started = time.monotonic()
                if first_402 and started > first_402[0] + _REFUSING_S:
                    return
                async with http.post(f"{url}/chat/completions", headers=headers, json=_BODY) as response:
                    await response.read()
                    cost = round(float(response.headers.get("X-Cost-Cents", "0")) * 10_000)
                    outcomes.append(_Outcome(started, time.monotonic(), response.status, cost))
                if response.status == 402 and not first_402:
                    first_402.append(time.monotonic())

        began = time.monotonic()
        await asyncio.gather(*(client() for _ in range(clients)))
        seen = sum(o.cost for o in outcomes)
        spent = await _ledger_spend(http, url, admin, sub["id"], seen)
    cap = cap_cents * 10_000
    ok = sorted((o for o in outcomes if o.status == 200), key=lambda o: o.ended)
    reached_at, running = None, 0
    for outcome in ok:
        running += outcome.cost
        if running >= cap:
            reached_at = outcome.ended
            break
    last_ok = ok[-1].ended if ok else began
    return {"clients": clients, "cap_micros": cap, "spent_micros": spent,
            "overshoot_micros": max(spent - cap, 0), "overshoot_requests": round(max(spent - cap, 0) / _PER_REQUEST, 1),
            "after_cap": sum(1 for o in ok if reached_at is not None and o.started > reached_at),
            "unspent_micros": max(cap - spent, 0), "admitted": len(ok),
            "rps_until_cap": round(len(ok) / max(last_ok - began, 1e-6)),
            "first_402_after_last_200_s": round(first_402[0] - last_ok, 3) if first_402 else None,
            "statuses": sorted({o.status for o in outcomes})}


async def _ledger_spend(http: aiohttp.ClientSession, url: str, admin: str, sub_id: str, seen: int) -> int:
    """The sub-account's stored cost once it has everything the clients saw, and a moment more."""
    headers = {"Authorization": f"Bearer {admin}"}
    deadline = time.monotonic() + 15
    total = 0
    while time.monotonic() < deadline:
        async with http.get(f"{url}/sub-accounts/{sub_id}/usage", headers=headers) as response:
            total = (await response.json())["total"]["cost_micros"]
        if total >= seen:
            await asyncio.sleep(1.0)
            async with http.get(f"{url}/sub-accounts/{sub_id}/usage", headers=headers) as response:
                return (await response.json())["total"]["cost_micros"]
        await asyncio.sleep(0.2)
    return total


def measure(root: Path, cap_cents: int = 500, clients: tuple[int, ...] = (8, 16)) -> dict[str, list[dict[str, Any]]]:
    """{"leases off": [...], "leases on": [...]}, one row per client count."""
    root.mkdir(parents=True, exist_ok=True)
    stack = _start(root)
    results: dict[str, list[dict[str, Any]]] = {}
    try:
        for leases in (False, True):
            stack.restart_edge(leases)
            results["leases on" if leases else "leases off"] = [
                asyncio.run(_run(stack.url, stack.admin, cap_cents, n)) for n in clients]
    finally:
        for proc in reversed(stack.procs):
            proc.stop()
    return results


def lines(results: dict[str, list[dict[str, Any]]]) -> list[str]:
    out = []
    for mode, rows in results.items():
        for r in rows:
            out.append(f"  {mode:<10} {r['clients']:>2} clients, {r['rps_until_cap']:>4} rps: overshoot "
                       f"{r['overshoot_micros']:>7} micro$ ({r['overshoot_requests']:>5} requests), "
                       f"{r['after_cap']:>3} admitted after the cap, unspent {r['unspent_micros']:>6} micro$, "
                       f"first 402 {r['first_402_after_last_200_s']} s after the last 200")
    return out


def main() -> None:
    cap_cents = int(os.environ.get("BENCH_CAPS_CENTS", "500"))
    clients = tuple(int(c) for c in os.environ.get("BENCH_CAPS_CLIENTS", "8,16").split(",") if c)
    results = measure(Path(tempfile.mkdtemp(prefix="switchboard-caps-")), cap_cents, clients)
    print(json.dumps(results, indent=2))
    print(f"spend cap of {cap_cents} cents, sim/pricey at {_PER_REQUEST} micro$ a request:")
    print("\n".join(lines(results)))


if __name__ == "__main__":
    main()
