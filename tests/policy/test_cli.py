"""The policy commands against a migrated database of the test's backend."""

from __future__ import annotations

import json
from pathlib import Path

from tests.test_cli import cli_env, tongban
from tongban.policy import demo

__all__ = ["cli_env"]

RULES = Path(demo.__file__).parent / "data" / "rules"


def test_policy_commands(cli_env: dict[str, str], tmp_path: Path) -> None:
    shipped = sorted(str(p) for p in RULES.glob("*.yaml"))
    done = tongban(cli_env, "policy", "check", *shipped)
    assert done.returncode == 0, done.stderr
    assert "5 items" in done.stdout
    assert "0 failed" in done.stdout
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        (RULES / "person-benefits.yaml")
        .read_text(encoding="utf-8")
        .replace("amount_fen: 50000", "amount_fen: 50001"),
        encoding="utf-8",
    )
    done = tongban(cli_env, "policy", "check", str(RULES / "variables.yaml"), str(broken))
    assert done.returncode == 1
    assert "elderly-allowance, case 'ninety-two'" in done.stderr
    assert tongban(cli_env, "policy", "check", str(tmp_path / "none.yaml")).returncode == 2

    texts = tmp_path / "texts.jsonl"
    body = (
        "第一条 本市户籍年满八十周岁的老年人按月领取高龄津贴。"
        "第二条 津贴由民政部门依据户籍信息自动发放，无需申请。"
    )
    rows = [
        {"docid": "a", "text": body},
        {"docid": "b", "text": "（转发）" + body},
        {"docid": "c", "text": "共享单车停放管理办法：规范停放秩序，运营企业负责调度。"},
    ]
    texts.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    done = tongban(cli_env, "policy", "overlap", "--jsonl", str(texts))
    assert done.returncode == 0, done.stderr
    found = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert [(f["a"], f["b"], f["kind"]) for f in found] == [("a", "b", "duplicate")]

    assert tongban(cli_env, "policy", "push").returncode == 2  # not migrated yet
    assert tongban(cli_env, "db", "upgrade").returncode == 0
    done = tongban(cli_env, "policy", "push")
    assert done.returncode == 0, done.stderr
    assert "0 pushes made" in done.stdout
    done = tongban(
        cli_env,
        "policy",
        "snapshot",
        "synthetic",
        "drill",
        "--persons",
        "500",
        "--enterprises",
        "50",
        "--as-of",
        "2026-03-01",
    )
    assert done.returncode == 0, done.stderr
    assert "'person': 500" in done.stdout
    again = tongban(cli_env, "policy", "snapshot", "synthetic", "drill", "--persons", "5")
    assert again.returncode == 2
    assert "exists already" in again.stderr
    done = tongban(cli_env, "policy", "run", "person", "drill")
    assert done.returncode == 2
    assert "no variables are defined yet" in done.stderr
