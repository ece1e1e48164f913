"""Controlled vocabularies of the national service-guide standard, with their zh-Hans and English labels.

Stored values are stable codes; labels are for display. Imports map the portals' Chinese terms to codes.
"""

from __future__ import annotations

from enum import StrEnum


class ItemType(StrEnum):
    ADMINISTRATIVE_LICENCE = "administrative_licence"
    ADMINISTRATIVE_PAYMENT = "administrative_payment"
    ADMINISTRATIVE_CONFIRMATION = "administrative_confirmation"
    ADMINISTRATIVE_REWARD = "administrative_reward"
    ADMINISTRATIVE_RULING = "administrative_ruling"
    ADMINISTRATIVE_LEVY = "administrative_levy"
    ADMINISTRATIVE_PENALTY = "administrative_penalty"
    ADMINISTRATIVE_COERCION = "administrative_coercion"
    ADMINISTRATIVE_INSPECTION = "administrative_inspection"
    ADMINISTRATIVE_FILING = "administrative_filing"
    OTHER_POWER = "other_power"
    PUBLIC_SERVICE = "public_service"


class Level(StrEnum):
    NATIONAL = "national"
    PROVINCIAL = "provincial"
    MUNICIPAL = "municipal"
    DISTRICT = "district"
    TOWNSHIP = "township"


class Audience(StrEnum):
    NATURAL_PERSON = "natural_person"
    LEGAL_PERSON = "legal_person"


class Channel(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class MaterialSource(StrEnum):
    APPLICANT = "applicant"  # the applicant provides it
    E_LICENCE = "e_licence"  # fetched from the electronic licence library (电子证照)
    SHARED_DATA = "shared_data"  # fetched from a department's shared data (数据共享)
    EXEMPT = "exempt"  # not needed (告知承诺 / 免提交)


class MaterialForm(StrEnum):
    ORIGINAL = "original"
    COPY = "copy"
    ORIGINAL_AND_COPY = "original_and_copy"
    ELECTRONIC = "electronic"


class LimitUnit(StrEnum):
    WORKING_DAY = "working_day"
    CALENDAR_DAY = "calendar_day"


class Status(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    WITHDRAWN = "withdrawn"


class VersionState(StrEnum):
    DRAFT = "draft"
    IN_REVIEW = "in_review"
    REJECTED = "rejected"
    PUBLISHED = "published"
    SUPERSEDED = "superseded"


# (zh-Hans, en) labels. zh labels are the standard's own terms.
LABELS: dict[str, tuple[str, str]] = {
    ItemType.ADMINISTRATIVE_LICENCE: ("行政许可", "Administrative licensing"),
    ItemType.ADMINISTRATIVE_PAYMENT: ("行政给付", "Administrative payment"),
    ItemType.ADMINISTRATIVE_CONFIRMATION: ("行政确认", "Administrative confirmation"),
    ItemType.ADMINISTRATIVE_REWARD: ("行政奖励", "Administrative reward"),
    ItemType.ADMINISTRATIVE_RULING: ("行政裁决", "Administrative ruling"),
    ItemType.ADMINISTRATIVE_LEVY: ("行政征收", "Administrative levy"),
    ItemType.ADMINISTRATIVE_PENALTY: ("行政处罚", "Administrative penalty"),
    ItemType.ADMINISTRATIVE_COERCION: ("行政强制", "Administrative enforcement"),
    ItemType.ADMINISTRATIVE_INSPECTION: ("行政检查", "Administrative inspection"),
    ItemType.ADMINISTRATIVE_FILING: ("行政备案", "Administrative filing"),
    ItemType.OTHER_POWER: ("其他行政权力", "Other administrative power"),
    ItemType.PUBLIC_SERVICE: ("公共服务", "Public service"),
    Level.NATIONAL: ("国家级", "National"),
    Level.PROVINCIAL: ("省级", "Provincial"),
    Level.MUNICIPAL: ("市级", "Municipal"),
    Level.DISTRICT: ("区县级", "District / county"),
    Level.TOWNSHIP: ("乡镇（街道）级", "Township / sub-district"),
    Audience.NATURAL_PERSON: ("个人", "Individuals"),
    Audience.LEGAL_PERSON: ("法人和组织", "Businesses and organisations"),
    Channel.ONLINE: ("网上办理", "Online"),
    Channel.OFFLINE: ("窗口办理", "In person"),
    MaterialSource.APPLICANT: ("申请人提供", "Provided by the applicant"),
    MaterialSource.E_LICENCE: ("电子证照调取", "Fetched from e-licences"),
    MaterialSource.SHARED_DATA: ("共享数据获取", "Fetched from shared data"),
    MaterialSource.EXEMPT: ("免于提交", "Not required"),
    MaterialForm.ORIGINAL: ("原件", "Original"),
    MaterialForm.COPY: ("复印件", "Copy"),
    MaterialForm.ORIGINAL_AND_COPY: ("原件及复印件", "Original and copy"),
    MaterialForm.ELECTRONIC: ("电子版", "Electronic"),
    LimitUnit.WORKING_DAY: ("个工作日", "working days"),
    LimitUnit.CALENDAR_DAY: ("个自然日", "calendar days"),
    Status.DRAFT: ("草稿", "Draft"),
    Status.PUBLISHED: ("已发布", "Published"),
    Status.WITHDRAWN: ("已撤回", "Withdrawn"),
    VersionState.DRAFT: ("草稿", "Draft"),
    VersionState.IN_REVIEW: ("待审核", "In review"),
    VersionState.REJECTED: ("已退回", "Returned"),
    VersionState.PUBLISHED: ("已发布", "Published"),
    VersionState.SUPERSEDED: ("已被取代", "Superseded"),
}

#: English names of common themes (life events and enterprise stages); others show in Chinese.
THEME_LABELS_EN: dict[str, str] = {
    "其他": "Other",
    "文化体育": "Culture and sports",
    "职业资格": "Professional qualifications",
    "交通出行": "Transport",
    "规划建设": "Planning and construction",
    "出境入境": "Exit and entry",
    "人才": "Talent",
    "教育科研": "Education and research",
    "找工作": "Finding a job",
    "司法公证": "Justice and notarisation",
    "社会保障（社会保险、社会救助）": "Social security (insurance, assistance)",
    "纳税": "Taxes",
    "创业": "Starting a business",
    "就业创业": "Employment and entrepreneurship",
    "公用事业": "Utilities",
    "证件办理": "Certificates and IDs",
    "环保绿化": "Environment and greening",
    "医疗卫生": "Health care",
    "外国人": "Foreigners",
    "港澳台侨": "Hong Kong, Macao, Taiwan and overseas Chinese",
    "民族宗教": "Ethnic and religious affairs",
    "设立变更": "Setting up and changing a business",
    "高校毕业生": "University graduates",
    "农民": "Farmers",
    "城市综合执法": "Urban management",
    "社会救助": "Social assistance",
    "升学": "School admission",
    "准营准办": "Operating permits",
    "户籍办理": "Household registration",
    "残疾人": "People with disabilities",
    "生育收养": "Birth and adoption",
    "生小孩": "Having a baby",
    "抵押质押": "Mortgages and pledges",
    "公共安全": "Public safety",
    "退休": "Retirement",
    "儿童青少年": "Children and youth",
    "妇女": "Women",
    "婚姻登记": "Marriage registration",
    "失业": "Unemployment",
    "涉农补贴": "Agricultural subsidies",
    "住房": "Housing",
    "养老": "Elderly care",
    "就医": "Seeing a doctor",
    "办理证照": "Licences and permits",
    "注销": "Closing a business",
}


def label(code: str, lang: str) -> str:
    zh, en = LABELS.get(code, (code, code))
    return en if lang == "en" else zh


def theme_label(theme: str, lang: str) -> str:
    if lang == "en":
        return THEME_LABELS_EN.get(theme, theme)
    return theme


# Portal terms (zh) -> codes, used by importers.
ITEM_TYPE_BY_ZH = {v[0]: ItemType(k) for k, v in LABELS.items() if k in set(ItemType)}
LEVEL_BY_ZH: dict[str, Level] = {
    "国家级": Level.NATIONAL,
    "省级": Level.PROVINCIAL,
    "市级": Level.MUNICIPAL,
    "区级": Level.DISTRICT,
    "县级": Level.DISTRICT,
    "区县级": Level.DISTRICT,
    "乡镇级": Level.TOWNSHIP,
    "街道级": Level.TOWNSHIP,
    "乡镇（街道）级": Level.TOWNSHIP,
}
