"""E-licence types (电子证照目录) and marking the catalogue materials they can replace.

"四个免于提交": a material the government itself issued is not asked again when its e-licence is on
record. Portal exports list materials by name only ("申请人居民身份证复印件", "营业执照副本"), so the
source of each material is not marked. :func:`mark_licence_materials` marks a material as fetched from an
e-licence when its name, with the usual qualifiers taken off (who holds it, original/copy, page, brackets),
is exactly the name of an e-licence type or one of its common names. The match is deliberately strict: a
material that only mentions a licence ("监护人身份证明", "营业执照等申请人身份证明文件", "未办理身份证的
交验户口簿") is someone else's document or a choice of several, and stays with the applicant.

The list follows the national catalogue of commonly used e-licences (全国一体化政务服务平台 电子证照
目录); a city extends it with its own types.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from tongban.catalog.schemas import ItemContent
from tongban.catalog.vocab import MaterialSource

#: E-licence type → the names materials use for it.
LICENCE_TYPES: Mapping[str, tuple[str, ...]] = {
    "居民身份证": ("居民身份证", "身份证", "二代身份证", "中华人民共和国居民身份证"),
    "居民户口簿": ("居民户口簿", "户口簿", "户口本", "常住人口登记卡"),
    "营业执照": ("营业执照", "企业营业执照", "个体工商户营业执照", "法人营业执照"),
    "出生医学证明": ("出生医学证明", "出生证", "出生证明"),
    "结婚证": ("结婚证",),
    "离婚证": ("离婚证",),
    "不动产权证书": ("不动产权证书", "不动产权证", "房屋所有权证", "房产证", "不动产登记证明"),
    "机动车驾驶证": ("机动车驾驶证", "驾驶证"),
    "机动车行驶证": ("机动车行驶证", "行驶证"),
    "社会保障卡": ("社会保障卡", "社保卡"),
    "残疾人证": ("残疾人证", "中华人民共和国残疾人证"),
    "居住证": ("居住证", "广东省居住证"),
    "医师资格证书": ("医师资格证书",),
    "医师执业证书": ("医师执业证书",),
    "护士执业证书": ("护士执业证书",),
    "教师资格证书": ("教师资格证书", "教师资格证"),
    "律师执业证": ("律师执业证",),
    "律师事务所执业许可证": ("律师事务所执业许可证",),
    "事业单位法人证书": ("事业单位法人证书",),
    "社会团体法人登记证书": ("社会团体法人登记证书",),
    "民办非企业单位登记证书": ("民办非企业单位登记证书",),
    "食品经营许可证": ("食品经营许可证",),
    "药品经营许可证": ("药品经营许可证",),
    "营业性演出许可证": ("营业性演出许可证",),
    "建设工程规划许可证": ("建设工程规划许可证",),
    "建设用地规划许可证": ("建设用地规划许可证",),
    "建筑工程施工许可证": ("建筑工程施工许可证",),
    "海域使用权证书": ("海域使用权证书",),
    "专业技术资格证书": ("专业技术资格证书", "专业技术职务任职资格证书"),
    "退休证": ("退休证",),
    "军官转业证书": ("军官转业证书",),
}

#: Words that say whose or which copy a material is, taken off before the names are compared.
_HOLDER = r"(?:申请人|申请单位|申请企业|本人|企业|单位|有效|经营者|法定代表人)"
_COPY = r"(?:原件|复印件|影印件|扫描件|正本|副本|正反面|正面|反面|首页|内页|电子证照|证件)"
_BRACKETS = re.compile(r"[（(][^）)]*[）)]|[《》〈〉“”\"'「」【】]")
_TRAIL = re.compile(rf"(?:{_COPY}|及|和|与|或|、|，|,|；|;|。|\.|\s)+$")
_LEAD = re.compile(rf"^(?:{_HOLDER}|的|\s)+")

_BY_NAME: dict[str, str] = {alias: kind for kind, aliases in LICENCE_TYPES.items() for alias in aliases}


def licence_type(material_name: str) -> str | None:
    """The e-licence type a material is, by its name, or None (see the module's rules)."""
    name = _BRACKETS.sub("", material_name).strip()
    for _ in range(3):  # "申请人有效身份证原件及复印件"
        stripped = _TRAIL.sub("", _LEAD.sub("", name))
        if stripped == name:
            break
        name = stripped
    return _BY_NAME.get(name)


def mark_licence_materials(content: ItemContent, *, types: Iterable[str] | None = None) -> ItemContent:
    """The item with each applicant-supplied material that is an e-licence marked as fetched from it
    (``source`` ``e_licence``, ``source_ref`` the type). ``types`` limits it to the types the city's
    e-licence library holds (default: all of :data:`LICENCE_TYPES`)."""
    allowed = set(types) if types is not None else set(LICENCE_TYPES)
    changed = False
    materials = []
    for m in content.materials:
        kind = licence_type(m.name) if m.source == MaterialSource.APPLICANT else None
        if kind is not None and kind in allowed:
            m = m.model_copy(update={"source": MaterialSource.E_LICENCE, "source_ref": kind})
            changed = True
        materials.append(m)
    return content.model_copy(update={"materials": materials}) if changed else content
