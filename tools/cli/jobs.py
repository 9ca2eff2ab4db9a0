"""`switchboard jobs get|cancel|wait`: async jobs (video, music, 3D, chat with a webhook)."""

import argparse

import msgspec

from libs.contracts.http.inference_answers import ChatCompletion
from libs.contracts.http.jobs import TERMINAL, GenerationResult, Job
from tools.cli.context import Context
from tools.cli.exit_codes import FAILED, OK
from tools.cli.gateway import parse, segment
from tools.cli.output import print_raw_json, status_text, table, usd, when
from tools.cli.waiting import Progressed, wait_until


def _result_rows(job: Job) -> list[tuple[str, object]]:
    if job.result is None:
        return []
    try:
        generated = msgspec.convert(job.result, GenerationResult)
    except msgspec.ValidationError:
        pass
    else:
        rows: list[tuple[str, object]] = [("cost", usd(generated.cost_micros))]
        rows += [(f"file {f.filename}", f"{f.content_type}, {f.bytes:,} bytes, {f.url}") for f in generated.files]
        return rows
    try:
        completion = msgspec.convert(job.result, ChatCompletion)
    except msgspec.ValidationError:
        return [("result", msgspec.json.encode(job.result).decode())]
    texts = [c.message.content for c in completion.choices if isinstance(c.message.content, str)]
    return [("answer", "\n".join(texts))]


def show_job(ctx: Context, job: Job) -> None:
    rows: list[tuple[str, object]] = [
        ("id", job.id), ("status", status_text(job.status)), ("modality", job.modality), ("model", job.model),
        ("progress", None if job.progress is None else f"{job.progress:g}%"), ("created", when(job.created_at)),
        ("updated", when(job.updated_at)), ("tag", job.tag), ("sub-account", job.sub_account_id),
        ("webhook", job.webhook_url), ("result url", job.result_url), *_result_rows(job)]
    if job.error is not None:
        rows.append(("error", f"{job.error.code}: {job.error.message}"))
    shown = table(("field", "value"), [row for row in rows if row[1] is not None])
    shown.show_header = False
    ctx.out.print(shown)


def _print(ctx: Context, raw: bytes, job: Job) -> None:
    if ctx.json:
        print_raw_json(raw)
    else:
        show_job(ctx, job)


def run_jobs(ctx: Context) -> int:
    args, gateway = ctx.args, ctx.gateway()
    path = f"/jobs/{segment(args.id)}"
    if args.action == "cancel":
        raw = gateway.request("DELETE", path)
        _print(ctx, raw, parse(raw, Job))
        return OK
    if args.action == "get":
        raw = gateway.request("GET", path)
        _print(ctx, raw, parse(raw, Job))
        return OK

    def fetch() -> tuple[bytes, Job]:
        raw = gateway.request("GET", path)
        return raw, parse(raw, Job)

    def progress(answer: tuple[bytes, Job]) -> Progressed:
        job = answer[1]
        return Progressed(job.status, job.progress or 0.0, None if job.progress is None else 100.0)

    raw, job = wait_until(fetch, lambda answer: answer[1].status in TERMINAL, progress, f"job {args.id}", ctx.err,
                          args.timeout, args.interval)
    _print(ctx, raw, job)
    if job.status != "completed":
        reason = f": {job.error.message}" if job.error else ""
        ctx.note(f"job {job.id} {job.status}{reason}", style="red")
        return FAILED
    return OK


def wait_options(parser: argparse.ArgumentParser, default_timeout_s: float) -> None:
    parser.add_argument("--timeout", type=float, default=default_timeout_s, metavar="S",
                        help=f"give up waiting after S seconds, exit 4 (default {default_timeout_s:g}; 0: never)")
    parser.add_argument("--interval", type=float, default=0.5, metavar="S", help="seconds between polls")


def register(commands: "argparse._SubParsersAction[argparse.ArgumentParser]",
             common: argparse.ArgumentParser) -> None:
    jobs = commands.add_parser("jobs", help="async jobs: get, cancel, wait",
                               description="Async jobs (video, music, 3D generations; chat with webhook_url).")
    jobs.set_defaults(run=run_jobs)
    actions = jobs.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("get", parents=[common], help="show a job").add_argument("id", metavar="JOB_ID")
    actions.add_parser("cancel", parents=[common], help="cancel a job").add_argument("id", metavar="JOB_ID")
    wait = actions.add_parser("wait", parents=[common],
                              help="wait for a job to finish, with its progress; exit 1 if it failed")
    wait.add_argument("id", metavar="JOB_ID")
    wait_options(wait, 600)
