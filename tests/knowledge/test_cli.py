"""``tongban knowledge …`` and ``tongban eval retrieval``, run as real processes against a real database."""

from __future__ import annotations

import json
from pathlib import Path

from tests.test_cli import _jsonl, cli_env, tongban

__all__ = ["cli_env"]  # the fixture, re-exported for pytest

POLICIES = [
    {"docid": "p-card", "text": "社会保障卡遗失后，可持居民身份证到合作银行网点办理挂失和补领，当场制卡。"},
    {"docid": "p-fund", "text": "职工购买自住住房、租房可以申请提取住房公积金，提交购房合同或租赁备案证明。"},
    {"docid": "p-dog", "text": "养犬人应当在取得犬只免疫证明后三十日内办理犬只登记，领取犬牌。"},
    {
        "docid": "p-visa",
        "text": "外国人需要延长签证停留期的，应当在停留期届满七日前向公安机关出入境管理机构申请。",
    },
]


def test_ingest_verify_and_rebuild(cli_env: dict[str, str], tmp_path: Path) -> None:
    assert tongban(cli_env, "db", "upgrade").returncode == 0
    folder = tmp_path / "kb"
    folder.mkdir()
    _jsonl(folder / "faq.jsonl", [{"id": r["docid"], "text": r["text"], "kind": "faq"} for r in POLICIES])
    (folder / "guide.md").write_text("# 居住证办理\n\n## 材料\n\n居民身份证、居住证明。\n", encoding="utf-8")
    (folder / ".hidden.md").write_text("# 不应导入\n\n内容\n", encoding="utf-8")
    first = tongban(cli_env, "knowledge", "ingest", str(folder), "--department", "市政务服务数据管理局")
    assert first.returncode == 0, first.stderr
    assert "5 created" in first.stdout
    assert "passages embedded" in first.stdout
    again = tongban(cli_env, "knowledge", "ingest", str(folder), "--department", "市政务服务数据管理局")
    assert "5 unchanged" in again.stdout
    assert "0 passages embedded" in again.stdout  # the cache answers for unchanged text
    verified = tongban(cli_env, "knowledge", "index", "verify")
    assert verified.returncode == 0, verified.stderr
    report = json.loads(verified.stdout)
    assert report["entries"] == 5
    assert report["indexed_entries"] == 5
    assert report["missing_vectors"] == 0
    changed = tongban(
        cli_env, "knowledge", "ingest", str(folder / "guide.md"), "--department", "市行政服务中心"
    )
    assert "1 updated" in changed.stdout  # the owner changed: a new version
    rebuilt = tongban(cli_env, "knowledge", "index", "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "5 entries re-derived" in rebuilt.stdout


def test_ingest_reports_bad_input_and_stores_nothing(cli_env: dict[str, str], tmp_path: Path) -> None:
    assert tongban(cli_env, "db", "upgrade").returncode == 0
    bad = _jsonl(tmp_path / "bad.jsonl", [{"id": "ok", "text": "正文"}, '{"id": "broken", "text": '])
    result = tongban(cli_env, "knowledge", "ingest", str(bad), "--no-embed")
    assert result.returncode == 1
    assert "line 2" in result.stderr
    assert "nothing from" in result.stderr
    missing = tongban(cli_env, "knowledge", "ingest", str(tmp_path / "nope.pdf"))
    assert missing.returncode == 2
    verified = json.loads(tongban(cli_env, "knowledge", "index", "verify").stdout)
    assert verified["entries"] == 0


def test_eval_retrieval_prints_metrics_and_the_baseline(cli_env: dict[str, str], tmp_path: Path) -> None:
    docs = _jsonl(tmp_path / "docs.jsonl", list(POLICIES))
    questions = _jsonl(
        tmp_path / "q.jsonl",
        [
            {"id": "1", "question": "社保卡丢了怎么补办？", "docid": "p-card"},
            {"id": "2", "question": "租房能提取公积金吗", "docid": "p-fund", "answer": "租房"},
            {"id": "3", "question": "How do I extend my visa?", "docid": "p-visa"},
        ],
    )
    result = tongban(
        cli_env, "eval", "retrieval", "--docs", str(docs), "--questions", str(questions), "--json"
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["documents"] == 4
    assert report["system"]["questions"] == 3
    assert report["system"]["recall@5"] == 1.0
    assert report["system"]["recall@1"] >= 2 / 3
    assert 0 < report["system"]["latency_p50_ms"] <= report["system"]["latency_p95_ms"]
    assert report["baseline"]["name"] == "BM25 over jieba words"
    assert report["baseline"]["recall@1"] < 1.0  # no synonyms, no English: the peer misses something
    table = tongban(cli_env, "eval", "retrieval", "--docs", str(docs), "--questions", str(questions))
    assert "Recall@1" in table.stdout
    assert "MRR@10" in table.stdout
    broken = _jsonl(tmp_path / "broken.jsonl", [{"question": "缺少文档编号"}])
    failed = tongban(cli_env, "eval", "retrieval", "--docs", str(docs), "--questions", str(broken))
    assert failed.returncode == 2
    assert "line 1" in failed.stderr
