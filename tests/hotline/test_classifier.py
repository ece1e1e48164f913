"""The hotline ticket classifier on small tickets written for these tests, with a fast fake embedder."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from tongban.hotline.classifier import (
    ClassifierError,
    LabelledText,
    TaxonomyPath,
    TicketModel,
    load_taxonomy_jsonl,
    parse_path,
    path_str,
    train,
)


class FakeEmbedder:
    """Deterministic stand-in for e5: the normalised sum of one fixed random vector per character pair,
    so texts that share words are close. Counts what it is asked."""

    name = "fake-bigram-256"
    dim = 256

    def __init__(self) -> None:
        self.passage_texts: list[str] = []
        self.query_texts: list[str] = []

    @staticmethod
    def _vector(text: str) -> npt.NDArray[np.float32]:
        total = np.zeros(FakeEmbedder.dim, dtype=np.float64)
        grams = [text[i : i + 2] for i in range(len(text) - 1)] or [text]
        for gram in grams:
            seed = int.from_bytes(hashlib.sha256(gram.encode("utf-8")).digest()[:8], "little")
            total += np.random.default_rng(seed).standard_normal(FakeEmbedder.dim)
        norm = np.linalg.norm(total)
        return (total / norm if norm else total).astype(np.float32)

    def passages(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.passage_texts.extend(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.vstack([self._vector(t) for t in texts])

    def query(self, text: str) -> npt.NDArray[np.float32]:
        self.query_texts.append(text)
        return self._vector("查询" + text)


TAXONOMY = [
    TaxonomyPath("交通出行", "公交线路", "站点设置"),
    TaxonomyPath("交通出行", "道路设施", "路面破损"),
    TaxonomyPath("交通出行", "其他", "其他"),
    TaxonomyPath("教育", "学校管理", "入学报名"),
    TaxonomyPath("教育", "学校管理", "校车安全"),
    TaxonomyPath("环境", "噪音污染", "施工噪音"),
    TaxonomyPath("环境", "大气污染", "餐饮油烟"),
    TaxonomyPath("医疗", "医院管理", "挂号排队"),  # a category no test ticket has
]


def ticket(i: str, subject: str, body: str, category: str) -> LabelledText:
    return LabelledText(id=i, subject=subject, body=body, category=category)


TICKETS = [
    ticket(
        "t1", "公交站点太远", "我们小区附近没有公交站点，希望增设一个公交站台，方便居民出行。", "交通出行"
    ),
    ticket("t2", "路面破损严重", "东环路路面破损，坑洼很多，车辆经过颠簸，请尽快修补路面。", "交通出行"),
    ticket("t3", "公交线路调整", "128路公交线路调整后绕远，等车时间太长，请恢复原来的公交线路。", "交通出行"),
    ticket("t4", "道路坑洼", "北二路道路坑洼积水，电动车经常摔倒，请修补道路。", "交通出行"),
    ticket(
        "e1", "孩子入学报名", "孩子今年上小学，入学报名需要哪些材料，学校说户口不在片区不能报名。", "教育"
    ),
    ticket("e2", "校车超载", "学校校车每天超载接送学生，校车安全没有保障，请教育局检查。", "教育"),
    ticket("e3", "学校乱收费", "学校开学收取资料费和补课费，家长负担重，请教育部门查处学校。", "教育"),
    ticket("e4", "幼儿园入园难", "公办幼儿园学位不够，孩子报名没有抽中，请增加学位。", "教育"),
    ticket("v1", "夜间施工噪音", "工地夜间施工噪音很大，凌晨还在打桩，居民无法睡觉，请查处噪音。", "环境"),
    ticket("v2", "餐饮油烟扰民", "楼下餐馆油烟直排，油烟味熏得不敢开窗，请环保部门处理油烟。", "环境"),
    ticket("v3", "工厂排放废气", "化工厂晚上偷排废气，气味刺鼻，空气污染严重，请检查排放。", "环境"),
    ticket("v4", "广场舞噪音", "公园广场舞音响噪音太大，每天晚上吵到十点，请管理噪音。", "环境"),
]


def by_id(model: TicketModel) -> dict[str, str]:
    return {i: model.classes[c] for i, c in zip(model.train_ids, model._train_class, strict=True)}


@pytest.fixture
def embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture
def model(embedder: FakeEmbedder) -> TicketModel:
    return train(TICKETS, TAXONOMY, embedder=embedder)


# -- paths and the taxonomy file -------------------------------------------------------------------------


def test_path_strings_round_trip() -> None:
    path = TaxonomyPath("城镇建设", "物业管理", "维修基金")
    assert path_str(path) == "城镇建设/物业管理/维修基金" == str(path)
    assert parse_path(" 城镇建设 / 物业管理/维修基金 ") == path
    for bad in ("城镇建设", "城镇建设/物业管理", "a//c", "a/b/c/d"):
        with pytest.raises(ValueError, match="level1/level2/level3"):
            parse_path(bad)


def test_taxonomy_file_is_read_once_per_path_and_bad_lines_are_named(tmp_path: Path) -> None:
    good = tmp_path / "taxonomy.jsonl"
    rows: list[dict[str, object]] = [{"level1": "教育", "level2": "学校管理", "level3": "入学报名"}] * 2
    rows.append({"level1": "环境", "level2": "噪音污染", "level3": "施工噪音", "extra": 1})
    good.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n\n", encoding="utf-8")
    assert load_taxonomy_jsonl(good) == [
        TaxonomyPath("教育", "学校管理", "入学报名"),
        TaxonomyPath("环境", "噪音污染", "施工噪音"),
    ]
    for line, message in (
        ('{"level1": "教育", "level2": "学校"', "line 2: not JSON"),
        ('["教育"]', "line 2: not a JSON object"),
        ('{"level1": "教育", "level2": "学校"}', "line 2: level3 is missing"),
        ('{"level1": "教育", "level2": " ", "level3": "x"}', "line 2: level2 is missing or empty"),
        ('{"level1": "教/育", "level2": "学校", "level3": "x"}', "line 2: level1 contains '/'"),
    ):
        bad = tmp_path / "bad.jsonl"
        bad.write_text(json.dumps(rows[0], ensure_ascii=False) + "\n" + line + "\n", encoding="utf-8")
        with pytest.raises(ClassifierError, match=message):
            load_taxonomy_jsonl(bad)
    with pytest.raises(ClassifierError, match="cannot read"):
        load_taxonomy_jsonl(tmp_path / "absent.jsonl")


# -- training and suggestions ----------------------------------------------------------------------------


def test_suggests_the_category_a_path_inside_it_and_ranked_alternatives(model: TicketModel) -> None:
    assert model.classes == ("交通出行", "教育", "环境")
    cases = {
        "交通出行": ("公交站点设置不合理", "新开的公交线路站点离小区太远，希望调整公交站点。"),
        "教育": ("入学报名材料", "孩子明年入学，学校报名要提交什么材料？"),
        "环境": ("工地噪音扰民", "附近工地晚上施工噪音扰民，希望管一管施工噪音。"),
    }
    for category, (subject, body) in cases.items():
        s = model.suggest(subject, body, k=2)
        assert s.category == category
        assert s.path is not None
        assert s.path.level1 == category
        assert len(s.alternatives) == 2
        assert s.alternatives[0] == (s.category, s.confidence)
        assert s.alternatives[0][1] >= s.alternatives[1][1]
        assert 0 < s.confidence <= 1
    # every category, probabilities summing to one; k beyond the categories is capped
    everything = model.suggest(*cases["教育"], k=10).alternatives
    assert sorted(c for c, _ in everything) == list(model.classes)
    assert sum(p for _, p in everything) == pytest.approx(1.0)


def test_explanation_names_paths_keywords_and_similar_training_tickets(model: TicketModel) -> None:
    s = model.suggest("夜间施工噪音", "工地夜里施工噪音太吵，打桩声音很大。")
    assert s.category == "环境"
    assert s.path == TaxonomyPath("环境", "噪音污染", "施工噪音")
    e = s.explanation
    assert e.paths
    assert e.paths[0].path == s.path
    assert [m.cosine for m in e.paths] == sorted((m.cosine for m in e.paths), reverse=True)
    # taxonomy keywords of the suggested category first, with their counts in subject and body
    assert e.keywords[0].category == "环境"
    assert {(h.keyword, h.count) for h in e.keywords} >= {("噪音", 2), ("施工", 2)}
    # the nearest training tickets are the noise complaints
    assert e.similar[0].id in {"v1", "v4"}
    assert e.similar[0].category == "环境"
    assert [t.cosine for t in e.similar] == sorted((t.cosine for t in e.similar), reverse=True)
    as_dict = s.as_dict()
    assert as_dict["path"] == "环境/噪音污染/施工噪音"
    assert as_dict["explanation"]["keywords"][0]["category"] == "环境"


def test_keywords_come_from_level_2_and_3_names_without_other(model: TicketModel) -> None:
    words = dict(zip(model.classes, model.keywords, strict=True))
    # jieba's words of the names: 公交线路 and 道路设施 stay whole, 站点设置 and 路面破损 split
    assert set(words["交通出行"]) == {"公交线路", "站点", "设置", "道路设施", "路面", "破损"}
    assert "其他" not in words["交通出行"]
    assert all(len(w) >= 2 for ws in model.keywords for w in ws)
    assert "挂号" not in {w for ws in model.keywords for w in ws}  # 医疗 is not a trained category
    texts = {p.text for p in model.prototypes}
    assert "交通出行：公交线路，站点设置" in texts
    assert "交通出行：其他" in texts  # a trailing ，其他 is dropped
    assert not any(t.startswith("医疗") for t in texts)


def test_any_label_set_trains_including_two_labels_and_a_single_example(embedder: FakeEmbedder) -> None:
    rows = [
        ticket("a1", "供暖不热", "小区暖气片不热，室温只有十五度，请热力公司检修供暖。", "供热"),
        ticket("a2", "暖气漏水", "家里暖气管道漏水，供暖季前请派人维修暖气。", "供热"),
        ticket("a3", "供暖费用", "供暖费收费标准是多少，暖气不热能否退费。", "供热"),
        ticket("b1", "流浪狗伤人", "小区里流浪狗很多，昨天咬伤了小孩，请收容流浪狗。", "动物管理"),
    ]
    model = train(rows, [], embedder=embedder)
    assert model.classes == ("供热", "动物管理")
    assert model.class_counts == {"供热": 3, "动物管理": 1}
    dog = model.suggest("流浪狗太多", "街上流浪狗成群，晚上出门害怕被流浪狗咬。")
    assert dog.category == "动物管理"
    heat = model.suggest("暖气不热", "暖气片一直不热，供暖公司不来修。")
    assert heat.category == "供热"
    assert sum(p for _, p in heat.alternatives) == pytest.approx(1.0)  # the binary fit, as a softmax
    # more categories and more rows: retraining just works
    bigger = train([*rows, *TICKETS], TAXONOMY, embedder=embedder)
    assert bigger.classes == ("交通出行", "供热", "动物管理", "教育", "环境")
    assert bigger.suggest("暖气不热", "暖气片一直不热，供暖公司不来修。").category == "供热"


def test_empty_taxonomy_falls_back_to_the_category_names(embedder: FakeEmbedder) -> None:
    model = train(TICKETS, [], embedder=embedder)
    assert [(p.path, p.text) for p in model.prototypes] == [(None, c) for c in model.classes]
    assert model.keywords == ((), (), ())
    s = model.suggest("校车安全", "学校的校车太旧了，校车安全让家长担心。")
    assert s.category == "教育"
    assert s.path is None
    assert s.explanation.paths == ()
    assert s.explanation.keywords == ()
    assert s.explanation.similar[0].category == "教育"


def test_a_category_missing_from_the_taxonomy_uses_its_name(embedder: FakeEmbedder) -> None:
    partial = [p for p in TAXONOMY if p.level1 != "环境"]
    model = train(TICKETS, partial, embedder=embedder)
    assert [p.text for p in model.prototypes if p.path is None] == ["环境"]
    assert model.describe()["taxonomy_paths"] == 5
    s = model.suggest("餐馆油烟", "楼下餐馆油烟直排，油烟太呛。")
    assert s.category == "环境"
    assert s.path is None
    other = model.suggest("路面破损", "主干道路面破损，坑洼很多。")
    assert other.path == TaxonomyPath("交通出行", "道路设施", "路面破损")


def test_full_path_labels_train_at_level_1_and_their_paths_are_suggested(embedder: FakeEmbedder) -> None:
    rows = [
        ticket(
            t.id,
            t.subject,
            t.body,
            {
                "t2": "交通出行/道路设施/井盖缺失",
                "t4": "交通出行/道路设施/井盖缺失",
                "v2": "环境/大气污染/餐饮油烟",
            }.get(t.id, t.category),
        )
        for t in TICKETS
    ]
    model = train(rows, [], embedder=embedder)
    assert model.classes == ("交通出行", "教育", "环境")
    assert [path_str(p) for p in model.paths_seen] == ["交通出行/道路设施/井盖缺失", "环境/大气污染/餐饮油烟"]
    road = model.suggest("道路坑洼", "路面坑洼破损，井盖也缺失了。")
    assert road.category == "交通出行"
    assert road.path == TaxonomyPath("交通出行", "道路设施", "井盖缺失")  # learnt from the labels
    assert set(model.keywords[0]) == {"井盖", "缺失", "道路设施"}
    school = model.suggest("学校乱收费", "学校收取补课费。")
    assert school.category == "教育"
    assert school.path is None
    # with the taxonomy, paths seen in training that it lacks are still candidates, once each
    with_taxonomy = train(rows, TAXONOMY, embedder=embedder)
    assert (
        sum(p.path == TaxonomyPath("交通出行", "道路设施", "井盖缺失") for p in with_taxonomy.prototypes) == 1
    )
    assert sum(p.path == TaxonomyPath("环境", "大气污染", "餐饮油烟") for p in with_taxonomy.prototypes) == 1


def test_training_refuses_what_it_cannot_learn(embedder: FakeEmbedder) -> None:
    with pytest.raises(ClassifierError, match="no training tickets"):
        train([], TAXONOMY, embedder=embedder)
    with pytest.raises(ClassifierError, match="at least two categories"):
        train([t for t in TICKETS if t.category == "教育"], TAXONOMY, embedder=embedder)
    with pytest.raises(ClassifierError, match="empty category"):
        train([*TICKETS, ticket("x", "标题", "正文", " /a/b")], TAXONOMY, embedder=embedder)


def test_each_text_is_embedded_once_and_suggesting_never_embeds_the_taxonomy() -> None:
    embedder = FakeEmbedder()
    duplicated = [*TICKETS, ticket("t1-again", TICKETS[0].subject, TICKETS[0].body, "交通出行")]
    model = train(duplicated, TAXONOMY, embedder=embedder)
    assert len(embedder.passage_texts) == len(set(embedder.passage_texts)) == 2 * len(TICKETS)
    assert len(embedder.query_texts) == len(set(embedder.query_texts)) == 7  # 医疗 left out
    embedder.passage_texts.clear()
    embedder.query_texts.clear()
    pairs = [("校车安全", "校车超载。"), ("公交站点", "公交站点太远。"), ("校车安全", "校车超载。")]
    many = model.suggest_many(pairs)
    assert embedder.query_texts == []
    assert len(embedder.passage_texts) == 4  # two distinct tickets, body and subject each
    assert [s.as_dict() for s in many] == [model.suggest(s, b).as_dict() for s, b in pairs]
    assert model.suggest_many([]) == []


def test_body_is_cut_to_its_first_characters_unless_told_otherwise() -> None:
    long_body = "这是一段很长的投诉内容。" * 40
    rows = [*TICKETS, ticket("long", "长投诉", long_body, "环境")]
    short = FakeEmbedder()
    train(rows, [], embedder=short)
    assert "长投诉。" + long_body[:200] in short.passage_texts
    whole = FakeEmbedder()
    assert train(rows, [], embedder=whole, body_chars=0).body_chars == 0
    assert "长投诉。" + long_body in whole.passage_texts


# -- persistence -----------------------------------------------------------------------------------------


def test_model_bytes_round_trip_to_identical_suggestions(model: TicketModel, embedder: FakeEmbedder) -> None:
    data = model.to_bytes()
    assert data[:2] == b"PK"  # a zip of .npy arrays (np.load with allow_pickle=False reads it)
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        assert "coef" in npz.files
        assert "meta" in npz.files
    loaded = TicketModel.from_bytes(data, embedder=FakeEmbedder())
    assert loaded.to_bytes() == data
    assert loaded.describe() == model.describe()
    pairs = [("夜间施工噪音", "工地夜里施工。"), ("入学报名", "孩子入学报名。"), ("路面坑洼", "道路破损。")]
    assert [s.as_dict() for s in loaded.suggest_many(pairs, k=3)] == [
        s.as_dict() for s in model.suggest_many(pairs, k=3)
    ]
    again = train(TICKETS, TAXONOMY, embedder=FakeEmbedder())
    assert again.to_bytes() == data  # deterministic: the same input, the same model


def test_foreign_or_damaged_bytes_are_refused(model: TicketModel) -> None:
    class OtherEmbedder(FakeEmbedder):
        name = "another-model"

    with pytest.raises(ClassifierError, match="trained with the embedder 'fake-bigram-256'"):
        TicketModel.from_bytes(model.to_bytes(), embedder=OtherEmbedder())
    with pytest.raises(ClassifierError, match="not a hotline classifier model"):
        TicketModel.from_bytes(b"not a model", embedder=FakeEmbedder())
    with pytest.raises(ClassifierError, match="not a hotline classifier model"):
        TicketModel.from_bytes(model.to_bytes()[:200], embedder=FakeEmbedder())
