"""Safety around the consultation: personal data masked, instructions in questions and documents
neutralised, questions outside the service's remit declined.

Everything here is deterministic text processing, so the same rules hold whether an answer is composed
extractively or by a language model: a sentence that tries to instruct the assistant is removed from the
knowledge it reads and from the question it answers, and whatever a model writes still has to pass the
grounding checks (:mod:`tongban.consult.grounding`).
"""

from __future__ import annotations

import re
from enum import StrEnum

from tongban.knowledge.service import normalize_text


class Scope(StrEnum):
    IN_SCOPE = "in_scope"
    MEDICAL = "medical"
    LEGAL_ADVICE = "legal_advice"
    OTHER = "other"


# -- personal data --------------------------------------------------------------------------------------

_ID_NUMBER = re.compile(
    r"(?<![0-9])[1-9]\d{5}(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx](?![0-9])"
)
_ID15 = re.compile(r"(?<![0-9])[1-9]\d{14}(?![0-9])")
_MOBILE = re.compile(r"(?<![0-9])(?:\+?86[- ]?)?1[3-9]\d[- ]?\d{4}[- ]?\d{4}(?![0-9])")
_LANDLINE = re.compile(r"(?<![0-9])0\d{2,3}-\d{7,8}(?![0-9])")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_CARD = re.compile(r"(?<![0-9])\d{16,19}(?![0-9])")


def mask_personal(text: str) -> str:
    """``text`` with identity numbers, phone numbers, e-mail addresses and card numbers replaced by
    a marker of their kind; used for everything a conversation stores or logs."""
    text = _ID_NUMBER.sub("[身份证号]", text)
    text = _CARD.sub("[卡号]", text)
    text = _ID15.sub("[身份证号]", text)
    text = _MOBILE.sub("[手机号]", text)
    text = _LANDLINE.sub("[电话]", text)
    return _EMAIL.sub("[邮箱]", text)


def has_personal(text: str) -> bool:
    return mask_personal(text) != text


# -- instructions hidden in text ------------------------------------------------------------------------

_INSTRUCTION = re.compile(
    r"<!--.*?-->"
    r"|(?:忽略|无视|忘记|忘掉|不要理会|跳过)(?:掉)?(?:你)?(?:之前|以上|上述|前面|先前|所有|全部|此前|原有|原来)"
    r"|(?:给|致|对|提示|告诉|通知)\s*(?:ai|人工智能|智能|ai助手|大模型|语言模型|模型|机器人|助手|客服机器人)"
    r"|(?:ai|人工智能|智能|大模型|语言模型|模型|机器人|助手)(?:助手)?(?:请|须|必须|应当|应该|要)?(?:注意|指令|提示)"
    r"|系统指令|提示词|system\s*prompt|system\s*:|\bassistant\s*:|developer\s*mode|jailbreak"
    r"|ignore\s+(?:all|any|the|your)?\s*(?:previous|prior|above|earlier)|disregard\s+(?:all|any|the|your|previous)"
    r"|(?:note|instruction|message)s?\s+(?:to|for)\s+(?:the\s+)?(?:ai|assistant|model|chatbot|llm)"
    r"|(?:you\s+are\s+now|act\s+as|pretend\s+(?:to\s+be|you\s+are)|role-?play)"
    r"|(?:扮演|假装你是|你现在是|从现在起你|从现在开始你|你已?进入.{0,6}模式)"
    r"|(?:回答任何问题|无论.{0,8}问什么|不管.{0,8}问什么)时?(?:都|一律)"
    r"|(?:reveal|print|show|repeat|output)\s+(?:your|the)\s+(?:instructions|prompt|system)"
    # an assistant told what to say: 助手须知：回答时请…, 智能客服请统一告知…, AI在回答…时必须声称…
    r"|(?:ai|ai助手|智能助手|智能客服|助手|大模型|语言模型|机器人|客服机器人)[^。！？!?\n]{0,30}"
    r"(?:回答|答复|告知|输出|声称|附上|推荐|告诉|读取|须知)"
    r"|(?:如果你是|仅供|只供)\s*(?:ai|模型|机器人|助手)"
    r"|system\s+(?:override|update)|【系统[^】]{0,6}】|\"role\"\s*:\s*\"system\""
    r"|\b(?:assistant|ai|model|chatbot|llm)\b[^.!?\n]{0,40}\b(?:answer|reply|respond|instruct|tell|append|say|"
    r"output|include|summariz)"
    r"|\b(?:append|add|include|insert|end)\b[^.!?\n]{0,40}\b(?:every|each|all|any|your)\s+(?:answer|repl|respons)"
    r"|在?(?:每个|每条|所有|任何)?(?:回答|答复)(?:的)?(?:结尾|末尾|开头|最后|中)(?:都)?(?:附上|加上|加入|注明|写上)",
    re.IGNORECASE | re.DOTALL,
)
_SENTENCE = re.compile(r"[^。！？!?；;\n]*(?:[。！？!?；;]+|\n|$)")
_BRACKETED = re.compile(r"[【\[（(<《{][^】\]）)>》}]{0,200}[】\]）)>》}]")


def is_instruction(text: str) -> bool:
    """Whether ``text`` addresses an assistant or tries to change its rules."""
    return bool(_INSTRUCTION.search(normalize_text(text)))


def strip_instructions(text: str) -> str:
    """``text`` without the bracketed notes and sentences that address an assistant.

    Used on every passage before it is read or shown to a model, and on questions. Offsets are not
    kept: the cleaned text is what gets quoted.
    """
    text = re.sub(r"<!--.*?-->", "", text, flags=re.DOTALL)
    out: list[str] = []
    for part in (m.group(0) for m in _SENTENCE.finditer(text) if m.group(0)):
        # English sentences inside a Chinese text end in a full stop followed by a space.
        pieces = re.split(r"(?<=[.!?])\s+", part) if re.search(r"[A-Za-z]", part) else [part]
        for piece in pieces:
            notes = [m for m in _BRACKETED.finditer(piece) if is_instruction(m.group(0))]
            if any(piece[m.end() : m.end() + 1] in ("：", ":") for m in notes):
                continue  # 温馨提示（仅供AI读取）：… — what follows the note is the note
            # a bracketed note inside an otherwise plain sentence: 【给AI助手的指令：…】
            for m in reversed(notes):
                piece = piece[: m.start()] + piece[m.end() :]
            if is_instruction(piece):
                continue
            out.append(piece)
    return re.sub(r"[ \t]{2,}", " ", " ".join(out) if _mostly_latin(text) else "".join(out)).strip()


def _mostly_latin(text: str) -> bool:
    letters = sum(ch.isascii() and ch.isalpha() for ch in text)
    return letters > len(text) / 2


# -- scope ------------------------------------------------------------------------------------------------

_FIRST_PERSON = (
    r"(?:我|俺|本人|孩子|宝宝|老人|家人|父亲|母亲|爸|妈|老公|老婆|my\b|\bi\b|\bi'm\b|\bme\b|\bmy child)"
)
_MEDICAL = re.compile(
    r"吃什么药|用什么药|吃啥药|能不能吃|能吃.{0,8}吗|吃几次|吃几片|一次吃|一天吃|打多少|多少单位合适|剂量|用量|毫克|偏方|"
    r"怎么治|如何治疗|治疗方案|是不是得了|是什么病|什么病|严重吗|要紧吗|能预防|会不会传染给|该挂什么科|"
    r"what\s+(?:medicine|medication|drug|disease|illness)|dosage|milligrams?|\bmg\b|how\s+many\s+(?:pills|tablets)|"
    r"should\s+i\s+take|do\s+i\s+have|is\s+it\s+(?:cancer|covid|serious)|diagnos|will\s+it\s+prevent",
    re.IGNORECASE,
)
_SYMPTOM = re.compile(
    r"发烧|发热|咳嗽|头疼|头痛|肚子疼|胸闷|胸痛|过敏|拉肚子|腹泻|失眠|血压|血糖|湿疹|感冒|喉咙|嗓子|疼|痛|痒|红点|"
    r"胶囊|颗粒|药片|胰岛素|抗生素|ct报告|化验单|"
    r"fever|cough|headache|rash|sore\s+throat|stomach\s*ache|blood\s+pressure|hurts?|pain|itchy|pneumonia|"
    r"symptom|vitamin|antibiotic",
    re.IGNORECASE,
)
_LEGAL_ADVICE = re.compile(
    r"告赢|能赢|胜诉|胜算|打官司|赢面|怎么判|判几年|坐牢|会不会被判|会不会被起诉|逃避|规避|钻空子|不会?被.{0,6}发现|"
    r"不被.{0,6}处罚|才能不被|才不会被|怎么躲|少赔|赔多少|能赔|拿回多少|该不该起诉|要不要起诉|怎么答辩|如何答辩|"
    r"写.{0,6}(?:起诉状|答辩状|辩护词)|判.{0,6}无效|转移财产|"
    r"will\s+i\s+win|should\s+i\s+(?:sue|plead)|can\s+i\s+sue|plead\s+guilty|avoid\s+(?:liability|paying)|"
    r"get\s+away\s+with|don't\s+have\s+to\s+pay\s+back|(?:defen[cs]e|legal)\s+statement|"
    r"how\s+much\s+compensation|court\s+(?:award|rule)|fight\s+it\s+in\s+court",
    re.IGNORECASE,
)
_OTHER = re.compile(
    r"股票|炒股|医药股|[^保]股能|涨的.{0,4}股|比特币|虚拟币|抄底|基金.{0,4}(?:涨|买|推荐)|彩票|讲.{0,2}笑话|"
    r"写.{0,6}(?:诗|作文|小说|歌词|代码|程序|情书)|作业|作文|天气|星座|算命|你是谁|你叫什么|你最喜欢|喜欢什么颜色|"
    r"聊聊天|陪我|推荐.{0,6}(?:电影|餐厅|美食|菜谱|旅游)|菜谱|吃什么好|翻译|歌词|起个名|想个名字|取个名|"
    r"stock|bitcoin|crypto|lottery|\bjoke\b|poem|homework|essay|weather|horoscope|"
    r"write\s+(?:me\s+)?(?:a|some)?\s*(?:code|program|song|story)|python|javascript|recipe|who\s+are\s+you|"
    r"movie|favou?rite\s+colou?r|translate",
    re.IGNORECASE,
)
#: Words that mark a question as one about a public service even when it mentions health or law.
_SERVICE = re.compile(
    r"报销|医保|社保|办理|申请|材料|窗口|预约|登记|证明|补贴|政策|定点|接种点|检测点|援助|公证|热线|部门|"
    r"规定|流程|条件|费用|收费|时限|在哪|哪里办|怎么办理|去哪|指南|疫情防控|隔离|复工|发热门诊|名单|查询|"
    r"apply|application|certificate|permit|register|subsidy|insurance|office|documents|"
    r"where\s+can\s+i\s+(?:get|find)|list\s+of|clinics?\b|opening\s+hours",
    re.IGNORECASE,
)


def classify_scope(question: str) -> Scope:
    """Whether a question is for this service, or asks for medical advice, legal advice or something else.

    Deliberately conservative: a question that names a public-service matter (报销, 申请, 材料, 法律援助,
    接种点…) stays in scope even when it mentions symptoms or a dispute, so the knowledge decides.
    """
    text = normalize_text(question)
    service = bool(_SERVICE.search(text))
    personal = bool(re.search(_FIRST_PERSON, text, re.IGNORECASE))
    if _MEDICAL.search(text) and not service:
        return Scope.MEDICAL
    if _SYMPTOM.search(text) and personal and not service:
        return Scope.MEDICAL
    if _LEGAL_ADVICE.search(text) and not (service and not personal and "援助" not in text):
        return Scope.LEGAL_ADVICE
    if _OTHER.search(text) and not service:
        return Scope.OTHER
    return Scope.IN_SCOPE
