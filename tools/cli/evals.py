"""`switchboard eval create|get` (candidate models scored on a dataset) and `switchboard replay
create|get` (a past request re-run on another model, compared)."""

import argparse
from pathlib import Path
from typing import get_args

import msgspec
from rich.text import Text

from libs.contracts.http.evals import EvalCreate, EvalItem, EvalView, Metric, Scorer, ScorerType
from libs.contracts.http.replays import ReplayCreate, ReplaySide, ReplayView
from tools.cli.context import Context
from tools.cli.exit_codes import FAILED, OK, USAGE, CliError
from tools.cli.gateway import parse, segment
from tools.cli.jobs import wait_options
from tools.cli.output import ms, print_raw_json, status_text, table, usd, when
from tools.cli.waiting import Progressed, wait_until

_decode_item = msgspec.json.Decoder(EvalItem).decode
_EVAL_DONE = ("completed", "failed")


def _dataset(path: Path) -> list[EvalItem]:
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise CliError(USAGE, f"cannot read {path}: {exc.strerror or exc}") from exc
    items = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            items.append(_decode_item(line))
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise CliError(USAGE, f"{path} line {number}: not a dataset item ({exc})") from exc
    return items


def show_eval(ctx: Context, view: EvalView) -> None:
    ctx.out.print(Text.assemble(f"eval {view.id} · {view.name} · metric {view.metric} · {view.dataset_size} items · ",
                                status_text(view.status), f" · created {when(view.created)}"))
    rows = [(("★ " if r.model == view.winner_model else "") + r.model,
             "-" if r.score is None else f"{r.score:.3f}", r.requests, r.errors, usd(r.cost_micros),
             ms(r.p50_latency_ms), ms(r.p95_latency_ms)) for r in view.results]
    if rows:
        ctx.out.print(table(("model", "score", "requests", "errors", "cost", "p50", "p95"), rows,
                            numeric=("score", "requests", "errors", "cost", "p50", "p95")))
    if view.winner_model:
        ctx.out.print(f"winner: {view.winner_model} (route to it with model \"eval:{view.id}\")", markup=False)
    if view.error:
        ctx.out.print(f"error: {view.error}", style="red", markup=False)


def run_eval(ctx: Context) -> int:
    args, gateway = ctx.args, ctx.gateway()
    if args.action == "create":
        if (args.dataset is None) == (args.dataset_file_id is None):
            raise CliError(USAGE, "give the dataset as --dataset FILE.jsonl or --dataset-file-id ID (one of them)")
        body = EvalCreate(name=args.name, candidate_models=args.model, metric=args.metric,
                          dataset=_dataset(Path(args.dataset)) if args.dataset else [],
                          dataset_file_id=args.dataset_file_id,
                          scorer=Scorer(type=args.scorer, pattern=args.pattern) if args.scorer else None)
        raw = gateway.request("POST", "/evals", body=body)
    else:
        raw = gateway.request("GET", f"/evals/{segment(args.id)}")
    view = parse(raw, EvalView)
    if getattr(args, "wait", False) and view.status not in _EVAL_DONE:

        def fetch() -> tuple[bytes, EvalView]:
            answer = gateway.request("GET", f"/evals/{segment(view.id)}")
            return answer, parse(answer, EvalView)

        raw, view = wait_until(fetch, lambda a: a[1].status in _EVAL_DONE,
                               lambda a: Progressed(a[1].status, len(a[1].items), None), f"eval {view.id}",
                               ctx.err, args.timeout, args.interval)
    if ctx.json:
        print_raw_json(raw)
    else:
        show_eval(ctx, view)
    return FAILED if view.status == "failed" else OK


def _side(side: ReplaySide | None) -> list[object]:
    if side is None:
        return ["-"] * 6
    return [side.model, side.status, f"{side.input_units:,} / {side.output_units:,}", usd(side.cost_micros),
            ms(side.latency_ms), side.error or side.output]


def show_replay(ctx: Context, view: ReplayView) -> None:
    ctx.out.print(Text.assemble(f"replay {view.id} of request {view.source_request_id} on {view.target_model} · ",
                                status_text(view.status)))
    ctx.out.print(table(("", "model", "status", "tokens in / out", "cost", "latency", "output"),
                        [["source", *_side(view.source)], ["target", *_side(view.target)]],
                        numeric=("status", "cost", "latency")))
    if view.diff is not None:
        diff = view.diff
        ratio = "-" if diff.cost_ratio is None else f"{diff.cost_ratio:.3g}x"
        ctx.out.print(f"cost {diff.cost_delta_cents:+.4f}¢ ({ratio}) · latency {diff.latency_delta_ms:+.0f} ms · "
                      f"output {'identical' if diff.output_identical else f'{diff.output_similarity:.0%} similar'}",
                      markup=False)
        if diff.output_diff:
            ctx.out.print(diff.output_diff, markup=False)
    if view.error:
        ctx.out.print(f"error: {view.error}", style="red", markup=False)


def run_replay(ctx: Context) -> int:
    args, gateway = ctx.args, ctx.gateway()
    if args.action == "create":
        body = ReplayCreate(source_request_id=args.request_id, target_model=args.model, shadow=args.shadow)
        raw = gateway.request("POST", "/replays", body=body)
    else:
        raw = gateway.request("GET", f"/replays/{segment(args.id)}")
    view = parse(raw, ReplayView)
    if ctx.json:
        print_raw_json(raw)
    else:
        show_replay(ctx, view)
    return FAILED if view.status == "failed" else OK


def register(commands: "argparse._SubParsersAction[argparse.ArgumentParser]",
             common: argparse.ArgumentParser) -> None:
    evals = commands.add_parser("eval", help="run candidate models over a dataset and pick a winner",
                                description="Evals: score candidate models on your dataset by quality, cost "
                                            "or speed; `model: \"eval:<id>\"` then routes to the winner.")
    evals.set_defaults(run=run_eval)
    actions = evals.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", parents=[common], help="start an eval")
    create.add_argument("--name", required=True)
    create.add_argument("--model", action="append", required=True, metavar="MODEL",
                        help="a candidate model; repeat for each")
    create.add_argument("--metric", choices=get_args(Metric), default="quality")
    create.add_argument("--dataset", metavar="FILE", help="JSONL, one {input | messages, expected} per line")
    create.add_argument("--dataset-file-id", metavar="FILE_ID", help="an uploaded dataset file instead")
    create.add_argument("--scorer", choices=get_args(ScorerType), help="how answers are judged (default exact)")
    create.add_argument("--pattern", help="the regex scorer's pattern")
    create.add_argument("--wait", action="store_true", help="wait until it has finished")
    wait_options(create, 600)
    actions.add_parser("get", parents=[common], help="show an eval's results").add_argument("id", metavar="EVAL_ID")

    replays = commands.add_parser("replay", help="re-run a past request on another model and compare",
                                  description="Replays: the same request on another model, cost, latency and "
                                              "output compared.")
    replays.set_defaults(run=run_replay)
    actions = replays.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", parents=[common], help="replay a request (its X-Request-Id)")
    create.add_argument("request_id", metavar="REQUEST_ID")
    create.add_argument("--model", required=True, help="the model to run it on")
    create.add_argument("--shadow", action="store_true", help="run in the background; poll with `replay get`")
    actions.add_parser("get", parents=[common], help="show a replay").add_argument("id", metavar="REPLAY_ID")
