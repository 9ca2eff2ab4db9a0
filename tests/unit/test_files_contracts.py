"""libs/contracts/files.py and the retention sweep's mtime parsing."""

import pytest

from libs.contracts import files
from libs.contracts.files import FileRecord
from libs.contracts.ids import valid_id
from services.jobs.retention import mtime_of


@pytest.mark.parametrize(("raw", "shown"), [
    ("report.jsonl", "report.jsonl"), ("../../etc/passwd", "passwd"), ("C:\\Users\\me\\a.txt", "a.txt"),
    ("bad\r\nname\x00.txt", "badname.txt"), ("", "file"), (None, "file"), ("dir/", "file"), ("日本.txt", "日本.txt"),
])
def test_display_name(raw: str | None, shown: str) -> None:
    assert files.display_name(raw) == shown


def test_display_name_is_bounded() -> None:
    assert len(files.display_name("a" * 10_000)) == files.MAX_DISPLAY_NAME


@pytest.mark.parametrize("bad", ["à", "a.b", "*", ">", "a b", "x" * 65, ""])
def test_invalid_ids(bad: str) -> None:
    assert not valid_id(bad)


@pytest.mark.parametrize(("name", "ok"), [("output.mp4", True), ("a-b_c.glb", True), ("..", False),
                                          (".hidden", False), ("a..b", False), ("a/b", False), ("é", False)])
def test_valid_filename(name: str, ok: bool) -> None:
    assert files.valid_filename(name) is ok


def test_visibility() -> None:
    record = FileRecord(id="file-1", account_id="root", subaccount_id="sa_a", filename="f", purpose="batch",
                        bytes=1, created_at=0, object_name="files/root/file-1")
    assert files.visible_to(record, "root", None)
    assert files.visible_to(record, "root", "sa_a")
    assert not files.visible_to(record, "root", "sa_b")
    assert not files.visible_to(record, "other", None)


def test_mtime_of() -> None:
    assert mtime_of("2024-01-01T00:00:00.123456789Z") == pytest.approx(1704067200.123456)
    assert mtime_of("2024-01-01T00:00:00+00:00") == 1704067200.0
    assert mtime_of("2024-01-01T00:00:00.5Z") == 1704067200.5
    assert mtime_of("") is None and mtime_of(None) is None and mtime_of("yesterday") is None
