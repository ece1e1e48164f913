"""Closed vocabularies of intake: profile kinds, data keys with their type and class, sources, purposes."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ProfileKind(StrEnum):
    PERSON = "person"
    ENTERPRISE = "enterprise"


class DataSource(StrEnum):
    """Where a datum came from, weakest first: an applicant's word is overridden by verified sources."""

    APPLICANT = "applicant"
    OFFICER = "officer"
    SHARED_DATA = "shared_data"
    E_LICENCE = "e_licence"


#: Sources that verify a value: the applicant cannot overwrite what one of these recorded.
VERIFIED_SOURCES = frozenset({DataSource.OFFICER, DataSource.SHARED_DATA, DataSource.E_LICENCE})


class Classification(StrEnum):
    """Personal-data classes (GB/T 35273): who may see a value unmasked."""

    PUBLIC = "public"
    PERSONAL = "personal"
    SENSITIVE = "sensitive"


class Purpose(StrEnum):
    """Purposes a profile holder consents to, one at a time (PIPL art. 14: specific and informed)."""

    PREFILL = "prefill"
    EXEMPT = "exempt"
    POLICY_MATCH = "policy_match"


PURPOSE_TEXT: dict[Purpose, tuple[str, str]] = {
    Purpose.PREFILL: ("用档案信息预填申请表", "Prefill application forms from my profile"),
    Purpose.EXEMPT: (
        "以电子证照和共享数据代替提交材料",
        "Use my e-licences and shared data instead of asking me for documents",
    ),
    Purpose.POLICY_MATCH: (
        "用档案信息匹配可享受的政策",
        "Match my profile against policies I may benefit from",
    ),
}


@dataclass(frozen=True)
class DataKey:
    key: str
    kind: ProfileKind
    #: ``text``, ``id_number``, ``credit_code``, ``mobile``, ``email``, ``date``, ``choice``, ``money``.
    type: str
    classification: Classification
    label: str
    label_en: str
    choices: tuple[str, ...] = ()


_P, _E = ProfileKind.PERSON, ProfileKind.ENTERPRISE
_PUB, _PER, _SEN = Classification.PUBLIC, Classification.PERSONAL, Classification.SENSITIVE

DATA_KEYS: dict[str, DataKey] = {
    k.key: k
    for k in (
        DataKey("person.name", _P, "text", _PER, "姓名", "Name"),
        DataKey("person.id_number", _P, "id_number", _SEN, "公民身份号码", "ID number"),
        DataKey("person.sex", _P, "choice", _PER, "性别", "Sex", ("male", "female")),
        DataKey("person.birth_date", _P, "date", _PER, "出生日期", "Date of birth"),
        DataKey("person.ethnicity", _P, "text", _SEN, "民族", "Ethnicity"),
        DataKey("person.mobile", _P, "mobile", _PER, "手机号码", "Mobile number"),
        DataKey("person.email", _P, "email", _PER, "电子邮箱", "Email"),
        DataKey("person.address", _P, "text", _PER, "联系地址", "Address"),
        DataKey("person.household_address", _P, "text", _PER, "户籍地址", "Registered household address"),
        DataKey("person.household_head", _P, "text", _PER, "户主姓名", "Head of household"),
        DataKey(
            "person.marital_status",
            _P,
            "choice",
            _SEN,
            "婚姻状况",
            "Marital status",
            ("unmarried", "married", "divorced", "widowed"),
        ),
        DataKey("person.education", _P, "text", _PER, "学历", "Education"),
        DataKey("person.employer", _P, "text", _PER, "工作单位", "Employer"),
        DataKey("enterprise.name", _E, "text", _PUB, "企业名称", "Enterprise name"),
        DataKey(
            "enterprise.credit_code",
            _E,
            "credit_code",
            _PUB,
            "统一社会信用代码",
            "Unified social credit code",
        ),
        DataKey("enterprise.legal_representative", _E, "text", _PUB, "法定代表人", "Legal representative"),
        DataKey("enterprise.entity_type", _E, "text", _PUB, "市场主体类型", "Type of entity"),
        DataKey("enterprise.registered_address", _E, "text", _PUB, "住所", "Registered address"),
        DataKey("enterprise.registered_capital_fen", _E, "money", _PUB, "注册资本", "Registered capital"),
        DataKey("enterprise.established_on", _E, "date", _PUB, "成立日期", "Date of establishment"),
        DataKey("enterprise.industry_code", _E, "text", _PUB, "行业代码", "Industry code (GB/T 4754)"),
        DataKey("enterprise.business_scope", _E, "text", _PUB, "经营范围", "Business scope"),
        DataKey("enterprise.contact_name", _E, "text", _PER, "联系人", "Contact person"),
        DataKey("enterprise.contact_mobile", _E, "mobile", _PER, "联系人手机号码", "Contact mobile number"),
        DataKey("enterprise.employees", _E, "integer", _PUB, "从业人数", "Employees"),
    )
}
