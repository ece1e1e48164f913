"""The hotline commands run against a migrated database of the test's backend (subprocesses)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.test_cli import cli_env, tongban

__all__ = ["cli_env"]


def test_hotline_commands(cli_env: dict[str, str], tmp_path: Path) -> None:
    assert tongban(cli_env, "db", "upgrade").returncode == 0
    taxonomy = tmp_path / "taxonomy.jsonl"
    taxonomy.write_text(
        "\n".join(
            json.dumps({"level1": a, "level2": b, "level3": c}, ensure_ascii=False)
            for a, b, c in (("城乡建设", "供水", "停水"), ("环境保护", "噪声污染", "施工噪音"))
        )
        + "\n",
        encoding="utf-8",
    )
    done = tongban(cli_env, "hotline", "import-taxonomy", str(taxonomy))
    assert done.returncode == 0, done.stderr
    assert "2 taxonomy paths loaded" in done.stdout
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1, "body": "停水", "category": "城乡建设"}\nnot json\n', encoding="utf-8")
    done = tongban(cli_env, "hotline", "import-examples", str(bad))
    assert done.returncode == 2
    assert "bad.jsonl:2" in done.stderr
    done = tongban(cli_env, "hotline", "deadlines")
    assert done.returncode == 0, done.stderr
    assert "0 warned, 0 escalated" in done.stdout
    done = tongban(cli_env, "hotline", "train", "--if-due")
    assert done.returncode == 0, done.stderr
    done = tongban(cli_env, "hotline", "generate", "--count", "3000", "--days", "120", "--seed", "3")
    assert done.returncode == 0, done.stderr
    assert "3000 synthetic tickets added" in done.stdout
    for kind in ("hotspots", "index"):
        done = tongban(cli_env, "hotline", kind)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["kind"] == kind
    done = tongban(cli_env, "hotline", "index", "--period", "2026-13")
    assert done.returncode == 2
