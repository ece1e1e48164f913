"""Marking materials that are e-licences: strict name matches only, never someone else's document."""

from __future__ import annotations

import pytest

from tests.factories import item
from tongban.catalog.licences import licence_type, mark_licence_materials
from tongban.catalog.vocab import MaterialSource


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("居民身份证", "居民身份证"),
        ("申请人身份证复印件", "居民身份证"),
        ("申请人有效身份证原件及复印件", "居民身份证"),
        ("《医师资格证书》", "医师资格证书"),
        ("营业执照副本（复印件加盖公章）", "营业执照"),
        ("户口本", "居民户口簿"),
        ("广东省居住证", "居住证"),
        # Someone else's, a choice of several, or only mentioning a licence: left to the applicant.
        ("身份证明", None),
        ("监护人身份证明", None),
        ("工伤职工身份证", None),
        ("营业执照等申请人身份证明文件", None),
        ("企业营业执照或法人证书", None),
        ("申请人未满16周岁未办理身份证的交验户口簿", None),
        ("营业执照申请书", None),
    ],
)
def test_licence_types_by_material_name(name: str, expected: str | None) -> None:
    assert licence_type(name) == expected


def test_marking_changes_applicant_materials_only_and_respects_the_library() -> None:
    content = item(
        materials=[
            {"name": "申请人身份证复印件"},
            {"name": "营业执照副本"},
            {"name": "户口簿", "source": "shared_data", "source_ref": "户籍信息"},
            {"name": "申请表"},
        ]
    )
    marked = mark_licence_materials(content)
    sources = [(m.source, m.source_ref) for m in marked.materials]
    assert sources == [
        (MaterialSource.E_LICENCE, "居民身份证"),
        (MaterialSource.E_LICENCE, "营业执照"),
        (MaterialSource.SHARED_DATA, "户籍信息"),
        (MaterialSource.APPLICANT, None),
    ]
    only_ids = mark_licence_materials(content, types=["居民身份证"])
    assert [m.source for m in only_ids.materials][:2] == [MaterialSource.E_LICENCE, MaterialSource.APPLICANT]
    plain = item(materials=[{"name": "申请表"}])
    assert mark_licence_materials(plain) is plain
