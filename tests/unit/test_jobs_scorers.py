"""Tests for services/jobs/scorers.py: how an eval scores one answer."""

from typing import Any

import msgspec
import pytest

from libs.contracts.http.evals import EvalItem, Scorer
from services.jobs.scorers import (
    DEFAULT_CRITERIA,
    ScorerError,
    ScoreTimeout,
    compile_scorer,
    json_of,
    judge_request,
    normalise,
    parse_judgement,
    question_of,
    score,
    validate_scorer,
)

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


def item(expected: str | None = None, text: str = "q") -> EvalItem:
    return EvalItem(input=text, expected=expected)


# --- exact / contains ---------------------------------------------------------------------------


def test_normalise() -> None:
    assert normalise("  Hello \n\t World  ") == "hello world"
    assert normalise("  Hello \n\t World  ", case_sensitive=True) == "Hello World"
    assert normalise("Stra\u00dfe") == normalise("STRASSE")  # casefold, not lower
    assert normalise("cafe\u0301") == normalise("caf\u00e9")  # NFC


@pytest.mark.parametrize(
    ("expected", "output", "case_sensitive", "want"),
    [
        ("Paris", "Paris", False, 1.0),
        ("Paris", "  paris \n", False, 1.0),
        ("New York City", "new   york\tcity", False, 1.0),
        ("Paris", "paris", True, 0.0),
        ("Paris", " Paris ", True, 1.0),
        ("Paris", "Paris.", False, 0.0),
        ("Paris", "It is Paris", False, 0.0),
    ],
)
def test_exact(expected: str, output: str, case_sensitive: bool, want: float) -> None:
    scorer = Scorer(type="exact", case_sensitive=case_sensitive)
    assert score(scorer, item(expected), output) == want


@pytest.mark.parametrize(
    ("expected", "output", "case_sensitive", "want"),
    [
        ("Paris", "The capital is PARIS.", False, 1.0),
        ("new york", "It is New\n York, of course", False, 1.0),
        ("Paris", "The capital is PARIS.", True, 0.0),
        ("Paris", "The capital is Paris.", True, 1.0),
        ("Paris", "Lyon", False, 0.0),
    ],
)
def test_contains(expected: str, output: str, case_sensitive: bool, want: float) -> None:
    scorer = Scorer(type="contains", case_sensitive=case_sensitive)
    assert score(scorer, item(expected), output) == want


def test_missing_expected_scores_zero() -> None:
    assert compile_scorer(Scorer(type="exact")).score(item(None), "") == 0.0


# --- regex --------------------------------------------------------------------------------------


def test_regex() -> None:
    compiled = compile_scorer(Scorer(type="regex", pattern=r"\b4[02]\b"))
    assert compiled.score(item(), "The answer is 42.") == 1.0
    assert compiled.score(item(), "It is 420") == 0.0
    insensitive = compile_scorer(Scorer(type="regex", pattern="^yes"))
    assert insensitive.score(item(), "YES, indeed") == 1.0
    sensitive = compile_scorer(Scorer(type="regex", pattern="^yes", case_sensitive=True))
    assert sensitive.score(item(), "YES, indeed") == 0.0
    assert sensitive.score(item(), "yes, indeed") == 1.0
    # The pattern searches the raw output: no normalisation.
    assert compile_scorer(Scorer(type="regex", pattern="a  b")).score(item(), "a  b") == 1.0


# --- json_schema --------------------------------------------------------------------------------


def test_json_schema_scores() -> None:
    compiled = compile_scorer(Scorer(type="json_schema", json_schema=PERSON))
    assert compiled.score(item(), '{"name": "Ada", "age": 36}') == 1.0
    assert compiled.score(item(), '  \n{"name": "Ada", "age": 36}\n') == 1.0
    assert compiled.score(item(), '```json\n{"name": "Ada", "age": 36}\n```') == 1.0
    assert compiled.score(item(), '```\n{"name": "Ada", "age": 36}\n```') == 1.0
    assert compiled.score(item(), '\n```JSON\r\n{"name": "Ada",\n "age": 36}\r\n```  ') == 1.0
    # Schema violations.
    assert compiled.score(item(), '{"name": "Ada"}') == 0.0
    assert compiled.score(item(), '{"name": "Ada", "age": -1}') == 0.0
    assert compiled.score(item(), '{"name": "Ada", "age": 36, "extra": true}') == 0.0
    assert compiled.score(item(), "[1, 2]") == 0.0
    # Not JSON at all, or not only JSON.
    assert compiled.score(item(), "Ada, 36") == 0.0
    assert compiled.score(item(), '{"name": "Ada", "age": 36') == 0.0
    assert compiled.score(item(), 'Here you go: {"name": "Ada", "age": 36}') == 0.0
    assert compiled.score(item(), 'Sure!\n```json\n{"name": "Ada", "age": 36}\n```') == 0.0
    assert compiled.score(item(), "") == 0.0
    assert compiled.score(item(), "1e999") == 0.0  # out of range: a ValidationError, not a DecodeError
    assert compiled.score(item(), "[" * 5000 + "]" * 5000) == 0.0  # too deep: RecursionError


def test_json_schema_formats_refs_and_drafts() -> None:
    email = compile_scorer(Scorer(type="json_schema", json_schema={"type": "string", "format": "email"}))
    assert email.score(item(), '"ada@example.com"') == 1.0
    assert email.score(item(), '"not an email"') == 0.0
    with_ref = {"$defs": {"n": {"type": "integer"}}, "type": "array", "items": {"$ref": "#/$defs/n"}}
    refs = compile_scorer(Scorer(type="json_schema", json_schema=with_ref))
    assert refs.score(item(), "[1, 2]") == 1.0
    assert refs.score(item(), '[1, "2"]') == 0.0
    draft4 = {"$schema": "http://json-schema.org/draft-04/schema#", "type": "integer", "maximum": 3,
              "exclusiveMaximum": True}
    compiled = compile_scorer(Scorer(type="json_schema", json_schema=draft4))
    assert compiled.score(item(), "2") == 1.0
    assert compiled.score(item(), "3") == 0.0


def test_json_of() -> None:
    assert json_of(' ```json\n{"a": 1}\n``` ') == {"a": 1}
    assert json_of("[1]") == [1]
    with pytest.raises(msgspec.DecodeError):
        json_of("```python\nprint(1)\n```")


# --- validate_scorer ----------------------------------------------------------------------------


def error_of(scorer: Scorer, dataset: list[EvalItem] | None = None) -> ScorerError:
    with pytest.raises(ScorerError) as info:
        validate_scorer(scorer, dataset if dataset is not None else [item("x")])
    return info.value


def test_validate_accepts_usable_scorers() -> None:
    dataset = [item("a"), item("b")]
    for scorer in (
        Scorer(),
        Scorer(type="contains"),
        Scorer(type="regex", pattern="a+"),
        Scorer(type="json_schema", json_schema=PERSON),
        Scorer(type="judge", model="gpt-judge"),
    ):
        validate_scorer(scorer, dataset)
    # Judge and regex need no `expected`.
    validate_scorer(Scorer(type="judge", model="m"), [item(None)])
    validate_scorer(Scorer(type="regex", pattern="x"), [item(None)])


@pytest.mark.parametrize("kind", ["exact", "contains"])
def test_validate_expected(kind: Any) -> None:
    err = error_of(Scorer(type=kind), [item("a"), item("b"), item(None)])
    assert err.param == "dataset" and "dataset[2]" in err.message and kind in err.message
    assert str(err) == err.message
    err = error_of(Scorer(type=kind), [item("  ")])
    assert err.param == "dataset" and "dataset[0]" in err.message


def test_validate_regex() -> None:
    err = error_of(Scorer(type="regex"))
    assert err.param == "scorer.pattern"
    err = error_of(Scorer(type="regex", pattern="(unclosed"))
    assert err.param == "scorer.pattern" and "regular expression" in err.message
    with pytest.raises(ScorerError):
        compile_scorer(Scorer(type="regex", pattern="[z-a]"))


def test_validate_json_schema() -> None:
    assert error_of(Scorer(type="json_schema")).param == "scorer.json_schema"
    err = error_of(Scorer(type="json_schema", json_schema={"type": "nope"}))
    assert err.param == "scorer.json_schema" and "not a valid JSON Schema" in err.message
    err = error_of(Scorer(type="json_schema", json_schema={"properties": {"a": {"$ref": "#/$defs/missing"}}}))
    assert err.param == "scorer.json_schema" and "#/$defs/missing" in err.message
    err = error_of(Scorer(type="json_schema", json_schema={"$ref": "https://example.com/schema.json"}))
    assert err.param == "scorer.json_schema"
    assert error_of(Scorer(type="json_schema", json_schema={"$schema": 5})).param == "scorer.json_schema"
    # A "$ref" inside data keywords is a value, not a reference.
    validate_scorer(Scorer(type="json_schema", json_schema={"const": {"$ref": "#/nowhere"}}), [item()])


def test_validate_judge() -> None:
    assert error_of(Scorer(type="judge")).param == "scorer.model"
    assert error_of(Scorer(type="judge", model=" ")).param == "scorer.model"


def test_judge_does_not_score_alone() -> None:
    compiled = compile_scorer(Scorer(type="judge", model="m"))
    assert compiled.type == "judge" and compiled.scorer.model == "m"
    with pytest.raises(ValueError, match="judge"):
        compiled.score(item("x"), "x")
    with pytest.raises(ValueError):
        score(Scorer(type="judge", model="m"), item("x"), "x")


# --- the judge ----------------------------------------------------------------------------------


class Message(msgspec.Struct):
    role: str
    content: str


class JsonSchemaFormat(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    schema: dict[str, Any]
    strict: bool


class ResponseFormat(msgspec.Struct, forbid_unknown_fields=True):
    type: str
    json_schema: JsonSchemaFormat


class JudgeBody(msgspec.Struct, forbid_unknown_fields=True):
    model: str
    messages: list[Message]
    temperature: float
    response_format: ResponseFormat


def decode_judge(body: bytes) -> JudgeBody:
    return msgspec.json.decode(body, type=JudgeBody)


def test_judge_request_shape() -> None:
    scorer = Scorer(type="judge", model="gpt-judge")
    raw = judge_request(scorer, item(None, "What is 2+2?"), "It is 4.")
    assert isinstance(raw, bytes)
    body = decode_judge(raw)
    assert body.model == "gpt-judge" and body.temperature == 0
    assert body.response_format.type == "json_schema"
    assert body.response_format.json_schema.name == "grade" and body.response_format.json_schema.strict is True
    assert body.response_format.json_schema.schema == {
        "type": "object",
        "properties": {"score": {"type": "integer", "minimum": 0, "maximum": 10}, "reason": {"type": "string"}},
        "required": ["score", "reason"],
        "additionalProperties": False,
    }
    system, user = body.messages
    assert system.role == "system" and "grade" in system.content.lower()
    assert user.role == "user"
    assert DEFAULT_CRITERIA in user.content
    assert "<question>\nWhat is 2+2?\n</question>" in user.content
    assert "<candidate_answer>\nIt is 4.\n</candidate_answer>" in user.content
    assert "reference" not in user.content


def test_judge_request_reference_criteria_and_messages() -> None:
    scorer = Scorer(type="judge", model="m", criteria="Be terse.")
    conversation = EvalItem(
        messages=[
            {"role": "system", "content": "You are a bot"},
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "first answer"},
            {"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "image_url"},
                                         {"type": "text", "text": "question"}]},
        ],
        expected="the reference",
    )
    user = decode_judge(judge_request(scorer, conversation, "cand")).messages[1].content
    assert "Criteria: Be terse." in user and DEFAULT_CRITERIA not in user
    assert "<question>\nsecond\nquestion\n</question>" in user
    assert "<reference_answer>\nthe reference\n</reference_answer>" in user
    assert user.index("<reference_answer>") < user.index("<candidate_answer>")
    with pytest.raises(ScorerError):
        judge_request(Scorer(type="judge"), conversation, "x")


def test_question_of() -> None:
    assert question_of(EvalItem(input="hi")) == "hi"
    assert question_of(EvalItem(messages=[{"role": "assistant", "content": "x"}])) == ""
    assert question_of(EvalItem()) == ""


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ('{"score": 7, "reason": "ok"}', 0.7),
        ('{"score": 10, "reason": "perfect"}', 1.0),
        ('{"score": 0, "reason": "wrong"}', 0.0),
        ('{"score": 15, "reason": "over"}', 1.0),
        ('{"score": -3, "reason": "under"}', 0.0),
        ('{"score": 7.5}', 0.75),
        ('{"score": "8"}', 0.8),
        ('```json\n{"score": 6, "reason": "fine"}\n```', 0.6),
        ('Here is my grade: {"score": 9, "reason": "good"}', 0.9),
        ("Score: 8", 0.8),
        ("**Score**: 4/10 because it is vague", 0.4),
        ("I would rate this answer 3 out of 5.", 0.6),
        ("Graded 9.", 0.9),
        ("On a scale of 0-10, the score is 6.", 0.6),
        ("Score (0 to 10): 2", 0.2),
        ("The answer deserves 7/10.", 0.7),
        ("Score: 85. Actually, final score: 9", 0.9),
    ],
)
def test_parse_judgement(text: str, want: float) -> None:
    got = parse_judgement(text)
    assert got is not None and got == pytest.approx(want)


@pytest.mark.parametrize(
    "text",
    ["", "garbage", "{}", '{"score": null}', '{"score": true}', '{"score": "high"}', "[7]", "score: high",
     "Score: 85", "The answer has 3 parts.", "accurate, 5 points"],
)
def test_parse_judgement_unusable(text: str) -> None:
    assert parse_judgement(text) is None


def test_a_backtracking_regex_gives_up_instead_of_stalling_the_replica() -> None:
    compiled = compile_scorer(Scorer(type="regex", pattern=r"(x+x+)+y"))
    with pytest.raises(ScoreTimeout, match="regex scorer gave up"):
        compiled.score(item(), "x" * 5000)
    assert compiled.score(item(), "xxy") == 1.0  # the same pattern still scores normal answers
