"""The design study rewrites its own table, never the notes written under it since."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.bench.design import write_study


def test_the_study_replaces_its_table_and_keeps_the_notes(tmp_path: Path) -> None:
    out = tmp_path / "study.md"
    out.write_text("# Realtime tier design study\n\nold date\n\n| old | table |\n\n## Notes\n\nkept, word for word\n")
    write_study(out, "new date", "| new | table |", None)
    text = out.read_text()
    assert "new date" in text and "| new | table |" in text
    assert "old" not in text
    assert text.endswith("## Notes\n\nkept, word for word\n")
    with pytest.raises(SystemExit, match="exists"):
        write_study(out, "date", "| t |", tmp_path / "grid.md")


def test_a_new_study_file_gets_the_notes_of_the_code(tmp_path: Path) -> None:
    out = tmp_path / "new" / "study.md"
    write_study(out, "a date", "| t |", None)
    assert "| t |" in out.read_text() and "What the profile" in out.read_text()
