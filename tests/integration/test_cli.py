"""The `switchboard` CLI as people run it: a subprocess against the test gateway, configured by
`login` or the environment, checked by what it prints and the exit code it ends with."""

import hashlib
import hmac
import json
import os
import selectors
import signal
import stat
import subprocess
import sys
import time
import tomllib
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.integration.api import call, create_sub_account, generation
from tests.integration.cluster import Cluster, eventually
from tools.cli.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
CHAT = "/v1/chat/completions"


@pytest.fixture
def env(gateway: Cluster, tmp_path: Path) -> dict[str, str]:
    """A user with the gateway in the environment and a config dir of their own."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    return {**clean, "XDG_CONFIG_HOME": str(tmp_path / "config"), "COLUMNS": "200",
            "SWITCHBOARD_URL": gateway.base_url, "SWITCHBOARD_API_KEY": gateway.admin_key}


def cli(env: dict[str, str], *args: str, stdin: str | None = None, timeout_s: float = 30
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tools.cli", *args], env=env, cwd=ROOT, input=stdin,
                          capture_output=True, text=True, timeout=timeout_s)


def ok_json(env: dict[str, str], *args: str) -> Any:
    done = cli(env, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def spawn(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "tools.cli", *args], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def read_until(proc: subprocess.Popen[bytes], stream: str, needle: bytes, timeout_s: float = 15) -> bytes:
    """What the process wrote on `stream` until `needle` appeared (unbuffered, as a person sees it)."""
    pipe = getattr(proc, stream)
    seen = b""
    with selectors.DefaultSelector() as selector:
        selector.register(pipe, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout_s
        while needle not in seen:
            left = deadline - time.monotonic()
            assert left > 0 and selector.select(left), f"no {needle!r} on {stream}; got {seen!r}"
            chunk = os.read(pipe.fileno(), 4096)
            assert chunk, f"{stream} closed before {needle!r}; got {seen!r}"
            seen += chunk
    return seen


def test_login_keeps_url_and_key_in_a_0600_file_that_later_commands_use(gateway: Cluster, env: dict[str, str],
                                                                        tmp_path: Path) -> None:
    bare = {k: v for k, v in env.items() if k not in ("SWITCHBOARD_URL", "SWITCHBOARD_API_KEY")}
    config = tmp_path / "config" / "switchboard" / "config.toml"
    refused = cli(bare, "login", "--url", gateway.base_url, "--key", "sk-aig-wrong")
    assert refused.returncode == 1 and "Invalid API key" in refused.stderr and not config.exists()
    # The key on stdin, as a script would pass it; the URL without /v1.
    done = cli(bare, "login", "--url", gateway.base_url.removesuffix("/v1"), stdin=gateway.admin_key + "\n")
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(config.stat().st_mode) == 0o600 and stat.S_IMODE(config.parent.stat().st_mode) == 0o700
    assert tomllib.loads(config.read_text()) == {"url": gateway.base_url, "api_key": gateway.admin_key}
    models = ok_json(bare, "models")
    assert "sim/gpt-sim" in {m["id"] for m in models["data"]}
    # A flag still wins over the stored key.
    assert cli(bare, "models", "--key", "sk-aig-wrong").returncode == 1
    assert cli(bare, "logout").returncode == 0 and not config.exists()
    missing = cli(bare, "models")
    assert missing.returncode == 3 and "switchboard login" in missing.stderr


def test_call_streams_the_answer_as_it_is_generated(env: dict[str, str]) -> None:
    # Paced at 4 pieces a second: the first words are on the terminal while the rest is generated.
    proc = spawn(env, "call", "sim/gpt-sim+tps=4", "one two three four five six")
    try:
        first = read_until(proc, "stdout", b"Echo:")
        assert proc.poll() is None, "the answer arrived whole, not streamed"
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert (first + out).decode() == "Echo: one two three four five six\n"
    assert b"sim/gpt-sim+tps=4 via sim" in err and b"request " in err


def test_call_json_prints_the_whole_response_and_reads_the_prompt_from_stdin(env: dict[str, str]) -> None:
    done = cli(env, "call", "sim/gpt-sim", "-", "--json", "--system", "be brief", stdin="from stdin\n")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["object"] == "chat.completion" and answer["choices"][0]["message"]["content"] == "Echo: from stdin"
    assert answer["meta"]["model"] == "sim/gpt-sim" and answer["meta"]["cost"]["total_micros"] > 0
    # A stream that breaks off: what arrived is kept on screen, the gateway's error said, exit 1.
    broken = cli(env, "call", "sim/gpt-sim+die_after=2", "a b c d e f")
    assert broken.returncode == 1 and broken.stdout.startswith("Echo: a") and "broke off" in broken.stderr


def test_models_json_parses_and_filters(env: dict[str, str]) -> None:
    everything = ok_json(env, "models")["data"]
    assert len(everything) > 5 and all({"id", "modality", "provider"} <= set(m) for m in everything)
    embeddings = ok_json(env, "models", "--modality", "embedding")["data"]
    assert embeddings and {m["modality"] for m in embeddings} == {"embedding"}
    assert [m["id"] for m in ok_json(env, "models", "--search", "PRICEY sim")["data"]] == ["sim/pricey"]
    table = cli(env, "models", "--search", "pricey")
    assert table.returncode == 0 and "sim/pricey" in table.stdout and "$1,000" in table.stdout
    bad = cli(env, "models", "--modality", "smell")
    assert bad.returncode == 1 and "Unknown modality 'smell'" in bad.stderr


def test_sub_accounts_create_list_update_rotate_delete(gateway: Cluster, env: dict[str, str]) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    created = ok_json(env, "sub-accounts", "create", "--name", name, "--spend-cap-cents", "500",
                      "--default-tag", "acme", "--rate-limit-rpm", "60")
    sub_id, first_key = created["id"], created["key"]
    assert first_key.startswith("sk-aig-") and created["default_tag"] == "acme"
    assert sub_id in {s["id"] for s in ok_json(env, "sub-accounts", "list")["data"]}
    listed = cli(env, "sub-accounts", "list")
    assert listed.returncode == 0 and name in listed.stdout and sub_id in listed.stdout
    updated = ok_json(env, "sub-accounts", "update", sub_id, "--spend-cap-cents", "900", "--clear", "rate_limit_rpm")
    assert (updated["spend_cap_cents"], updated["rate_limit_rpm"], updated["default_tag"]) == (900, None, "acme")
    nothing = cli(env, "sub-accounts", "update", sub_id)
    assert nothing.returncode == 2 and "nothing to update" in nothing.stderr
    rotated = ok_json(env, "sub-accounts", "rotate-key", sub_id)
    assert rotated["key"].startswith("sk-aig-") and rotated["key"] != first_key
    assert eventually(lambda: call(gateway, "GET", "/models", first_key).status_code == 401)
    assert call(gateway, "GET", "/models", rotated["key"]).status_code == 200
    shown = cli(env, "sub-accounts", "rotate-key", sub_id)  # the table way: the new key is printed once
    assert shown.returncode == 0 and "sk-aig-" in shown.stdout and "shown once" in shown.stderr
    assert cli(env, "sub-accounts", "delete", sub_id).returncode == 0
    gone = cli(env, "sub-accounts", "get", sub_id)
    assert gone.returncode == 1 and sub_id in gone.stderr


def test_odd_ids_get_the_gateways_not_found(env: dict[str, str]) -> None:
    # (The edge's own handling of `a.b`, `*`, `>` is tested with the tail stream below.)
    for command in (("sub-accounts", "get", "à"), ("jobs", "cancel", "x" * 300), ("batches", "get", "a/../b")):
        done = cli(env, *command)
        assert done.returncode == 1 and "No " in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_keys_create_list_delete(gateway: Cluster, env: dict[str, str]) -> None:
    key = ok_json(env, "keys", "create", "--name", "ci-reader", "--scope", "read-usage")
    assert key["scopes"] == ["read-usage"] and key["key"].startswith("sk-aig-")
    assert key["id"] in {k["id"] for k in ok_json(env, "keys", "list")["data"]}
    # That key cannot manage: the gateway's 403 message, exit 1.
    refused = cli({**env, "SWITCHBOARD_API_KEY": key["key"]}, "keys", "list")
    assert refused.returncode == 1 and "lacks the 'admin' scope" in refused.stderr
    assert cli(env, "keys", "delete", key["id"]).returncode == 0
    assert key["id"] not in {k["id"] for k in ok_json(env, "keys", "list")["data"]}
    assert eventually(lambda: call(gateway, "GET", "/usage/by-tag", key["key"]).status_code == 401)


def test_usage_by_tag_shows_a_tagged_call(gateway: Cluster, env: dict[str, str]) -> None:
    tag = f"cli-{uuid.uuid4().hex[:8]}"
    made = cli(env, "call", "sim/gpt-sim", "count me", "--tag", tag)
    assert made.returncode == 0, made.stderr
    generation(gateway, made.stderr.split("request ")[-1].strip())  # the ledger has it (eventually consistent)
    report = ok_json(env, "usage", "by-tag")
    (found,) = [r for r in report["data"] if r["group"] == tag]
    assert found["requests"] == 1 and found["cost_micros"] > 0
    table = cli(env, "usage", "by-tag", "--month", time.strftime("%Y-%m", time.gmtime()))
    assert table.returncode == 0 and tag in table.stdout and "total" in table.stdout
    by_sub = cli(env, "usage", "by-sub-account", "--bucket", "day")
    assert by_sub.returncode == 0 and "requests" in by_sub.stdout
    bad = cli(env, "usage", "by-tag", "--month", "2026-13")
    assert bad.returncode == 1 and "'month' must look like" in bad.stderr


def test_jobs_wait_follows_a_video_job_to_its_result(gateway: Cluster, env: dict[str, str]) -> None:
    job_id = call(gateway, "POST", "/videos/generations",
                  json={"prompt": "a cat", "model": "sim/video-sim+job_s=1+progress", "duration": 4}).json()["id"]
    done = cli(env, "jobs", "wait", job_id, "--json", "--interval", "0.2")
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert job["id"] == job_id and job["status"] == "completed" and job["result"]["files"][0]["bytes"] > 0
    shown = cli(env, "jobs", "get", job_id)
    assert shown.returncode == 0 and "completed" in shown.stdout and "video/mp4" in shown.stdout


def test_jobs_wait_exit_codes_for_a_failed_and_a_slow_job(gateway: Cluster, env: dict[str, str]) -> None:
    failing = call(gateway, "POST", "/videos/generations",
                   json={"prompt": "x", "model": "sim/video-sim+fail", "duration": 4}).json()["id"]
    failed = cli(env, "jobs", "wait", failing, "--interval", "0.2")
    assert failed.returncode == 1 and "failed" in failed.stdout
    slow = call(gateway, "POST", "/videos/generations",
                json={"prompt": "x", "model": "sim/video-sim+job_s=60", "duration": 4}).json()["id"]
    waited = cli(env, "jobs", "wait", slow, "--timeout", "0.5", "--interval", "0.2")
    assert waited.returncode == 4 and "had not finished" in waited.stderr
    cancelled = ok_json(env, "jobs", "cancel", slow)
    assert cancelled["id"] == slow and cancelled["status"] == "cancelled"


def test_batches_create_from_a_jsonl_file_and_wait(env: dict[str, str], tmp_path: Path) -> None:
    lines = [{"custom_id": f"q{i}", "method": "POST", "url": CHAT,
              "body": {"model": "sim/gpt-sim", "messages": [{"role": "user", "content": f"question {i}"}]}}
             for i in range(4)]
    source = tmp_path / "requests.jsonl"
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    done = cli(env, "batches", "create", str(source), "--wait", "--json", "--interval", "0.2",
               "--metadata", "project=cli")
    assert done.returncode == 0, done.stderr
    batch = json.loads(done.stdout)
    assert batch["status"] == "completed" and batch["endpoint"] == CHAT and batch["metadata"] == {"project": "cli"}
    assert (batch["request_counts"]["total"], batch["request_counts"]["completed"]) == (4, 4)
    assert "uploaded requests.jsonl" in done.stderr
    shown = cli(env, "batches", "get", batch["id"])
    assert shown.returncode == 0 and "4 completed" in shown.stdout and batch["output_file_id"] in shown.stdout
    missing = cli(env, "batches", "create", str(tmp_path / "absent.jsonl"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    unknown = cli(env, "batches", "cancel", "batch_nope")
    assert unknown.returncode == 1 and "batch_nope" in unknown.stderr


def test_eval_and_replay(gateway: Cluster, env: dict[str, str], tmp_path: Path) -> None:
    dataset = tmp_path / "dataset.jsonl"
    dataset.write_text('{"input": "a b c", "expected": "Echo: a b c"}\n{"input": "d", "expected": "Echo: d"}\n')
    done = cli(env, "eval", "create", "--name", "cli eval", "--model", "openai/gpt-sim", "--model",
               "openai/gpt-sim+truncate=2", "--dataset", str(dataset), "--wait", "--json", "--interval", "0.2")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "completed" and result["winner_model"] == "openai/gpt-sim"
    shown = cli(env, "eval", "get", result["id"])
    assert shown.returncode == 0 and f"eval:{result['id']}" in shown.stdout
    source = gateway.client().chat.completions.with_raw_response.create(
        model="sim/pricey", messages=[{"role": "user", "content": "replay me"}]).headers["X-Request-Id"]
    generation(gateway, source)
    replay = ok_json(env, "replay", "create", source, "--model", "sim/gpt-sim")
    assert replay["status"] == "completed" and replay["diff"]["output_identical"] is True
    again = cli(env, "replay", "get", replay["id"])
    assert again.returncode == 0 and "identical" in again.stdout and "sim/pricey" in again.stdout


def test_tail_shows_requests_made_while_it_runs(gateway: Cluster, env: dict[str, str]) -> None:
    sub = create_sub_account(gateway, name="tailed", spend_cap_cents=10_000)
    whole = spawn(env, "tail", "--json")
    only_sub = spawn(env, "tail", "--sub-account", sub["id"], "--count", "1")
    try:
        for proc in (whole, only_sub):
            read_until(proc, "stderr", b"tailing requests")  # subscribed: nothing from now on is missed
        root = gateway.client().chat.completions.with_raw_response.create(
            model="sim/gpt-sim", messages=[{"role": "user", "content": "tail me"}], extra_headers={"x-aig-tag": "tl"})
        mine = gateway.client(key=sub["key"]).chat.completions.with_raw_response.create(
            model="sim/pricey", messages=[{"role": "user", "content": "and me"}])
        root_id, mine_id = root.headers["X-Request-Id"], mine.headers["X-Request-Id"]
        # Other tests' background work may show up too: look for these two.
        lines = b""
        while not (root_id.encode() in lines and mine_id.encode() in lines and lines.endswith(b"\n")):
            lines += read_until(whole, "stdout", b"\n")
        seen = {g["id"]: g for g in map(json.loads, lines.decode().splitlines())}
        assert (seen[root_id]["model"], seen[root_id]["status"], seen[root_id]["tag"]) == ("sim/gpt-sim", 200, "tl")
        assert seen[root_id]["sub_account_id"] is None and seen[root_id]["usage"]["output_units"] > 0
        assert seen[root_id]["timing"]["total_latency_ms"] > 0
        assert seen[mine_id]["sub_account_id"] == sub["id"] and seen[mine_id]["cost"]["total_micros"] > 0
        out, err = only_sub.communicate(timeout=15)
        assert only_sub.returncode == 0, err
        (line,) = [x for x in out.decode().splitlines()[1:] if x.strip()]  # below the header line
        assert mine_id in line and "sim/pricey" in line and sub["id"] in line and "200" in line
    finally:
        whole.kill()
        only_sub.kill()
        whole.wait(10)
        only_sub.wait(10)


def test_tail_refuses_non_admin_keys_and_unknown_sub_accounts(gateway: Cluster, env: dict[str, str]) -> None:
    sub = create_sub_account(gateway, name="not-admin")
    refused = cli({**env, "SWITCHBOARD_API_KEY": sub["key"]}, "tail")
    assert refused.returncode == 1 and "lacks the 'admin' scope" in refused.stderr
    unknown = cli(env, "tail", "--sub-account", "sa_nope")
    assert unknown.returncode == 1 and "No sub-account with id 'sa_nope'" in unknown.stderr
    # The stream itself: OpenAI-shaped refusals, never a stream, for every odd id and key.
    for key, params, status in ((sub["key"], {}, 403), ("sk-aig-wrong", {}, 401), (None, {"sub_account": "à"}, 404),
                                (None, {"sub_account": "a.b"}, 404), (None, {"sub_account": "*"}, 404),
                                (None, {"sub_account": ">"}, 404), (None, {"sub_account": "x" * 300}, 404)):
        answer = call(gateway, "GET", "/requests/tail", key, params=params)
        assert answer.status_code == status and answer.json()["error"]["code"] == status, answer.text
        assert answer.headers["content-type"].startswith("application/json")


def test_a_tail_that_goes_away_is_cleaned_up_at_the_edge(gateway: Cluster, env: dict[str, str]) -> None:
    def logged(event: str) -> list[dict[str, Any]]:
        lines = (gateway.log_dir / "edge-0.log").read_text(errors="replace").splitlines()
        return [json.loads(line) for line in lines if f'"event":"{event}"' in line.replace(" ", "")]

    proc = spawn(env, "tail")
    try:
        read_until(proc, "stderr", b"tailing requests")
        opened = len(logged("tail_opened"))
    finally:
        proc.send_signal(signal.SIGKILL)  # no goodbye: the connection just drops
        proc.wait(10)
    # The edge notices, drops the subscription and says so: every tail it opened is closed again.
    assert eventually(lambda: len(logged("tail_closed")) == opened, 10)
    assert logged("tail_closed")[-1]["reason"] == "client_gone"


def test_verify_webhook_valid_and_invalid(env: dict[str, str], tmp_path: Path) -> None:
    secret = "whsec_" + "k" * 32
    body = tmp_path / "body.json"
    body.write_bytes(b'{"type":"job.completed","data":{"id":"job_1"}}')
    stamp = str(int(time.time()))
    signature = hmac.new(secret.encode(), stamp.encode() + b"." + body.read_bytes(), hashlib.sha256).hexdigest()
    header = f"t={stamp},v1={signature}"
    valid = cli(env, "verify-webhook", "--secret", secret, "--body", str(body), "--signature", header)
    assert valid.returncode == 0 and valid.stdout.strip() == "valid"
    tampered = cli(env, "verify-webhook", "--secret", secret, "--body", "-", "--signature", header, "--json",
                   stdin='{"type":"job.completed","data":{"id":"job_2"}}')
    assert tampered.returncode == 1 and json.loads(tampered.stdout) == {"valid": False}
    by_env = cli({**env, "SWITCHBOARD_WEBHOOK_SECRET": secret}, "verify-webhook", "--body", str(body),
                 "--signature", header)
    assert by_env.returncode == 0
    old = f"t={int(stamp) - 3600},v1={signature}"
    assert cli(env, "verify-webhook", "--secret", secret, "--body", str(body), "--signature", old).returncode == 1
    assert cli(env, "verify-webhook", "--body", str(body), "--signature", header).returncode == 2


def test_exit_codes_for_a_wrong_key_no_gateway_and_bad_usage(env: dict[str, str]) -> None:
    wrong = cli({**env, "SWITCHBOARD_API_KEY": "sk-aig-wrong"}, "sub-accounts", "list")
    assert wrong.returncode == 1 and "Invalid API key" in wrong.stderr
    wrong_json = cli(env, "models", "--key", "sk-aig-wrong", "--json")
    assert wrong_json.returncode == 1 and json.loads(wrong_json.stdout)["error"]["code"] == 401
    unreachable = cli({**env, "SWITCHBOARD_URL": f"http://127.0.0.1:{free_port()}/v1"}, "models")
    assert unreachable.returncode == 3 and "cannot reach the gateway" in unreachable.stderr
    assert cli(env, "no-such-command").returncode == 2
    assert cli(env, "models", "--url", "ftp://example/v1").returncode == 2
    # Options before the command work too.
    assert cli(env, "--key", "sk-aig-wrong", "models").returncode == 1
