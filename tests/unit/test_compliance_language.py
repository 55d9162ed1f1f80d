"""Prohibited-language and call-step checks: every category in both languages, evasion by
spacing, punctuation, zero-width characters, full-width and traditional forms, exact spans,
negations, polite scripts that must stay clean, and the transcript step checks."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opencc_purepy import OpenCC

from services.compliance.language import (
    DEFAULT_PHRASES,
    DEFAULT_STEPS,
    CallStep,
    Category,
    LanguageHit,
    Phrase,
    PhraseList,
    Turn,
    check_template,
    check_transcript,
    load_steps,
    normalize,
    scan,
)


def assert_spans(text: str, hits: list[LanguageHit]) -> None:
    for hit in hits:
        assert text[hit.start : hit.end] == hit.matched
        assert hit.matched.strip() == hit.matched


def ids(hits: list[LanguageHit]) -> list[str]:
    return [h.phrase_id for h in hits]


# --- every category in each language --------------------------------------------------------

CATEGORY_SAMPLES = [
    ("zh", Category.THREAT, "你再不还钱，我就找人打断你的腿。", "打断你的腿", "CN-CONDUCT"),
    ("zh", Category.INTIMIDATION, "我们知道你住在哪，你跑不掉的。", "知道你住在哪", "CN-CONDUCT"),
    ("zh", Category.INSULT, "你这个老赖，欠钱不还。", "老赖", "CN-CONDUCT"),
    ("zh", Category.IMPERSONATION, "喂，我们是公安局经侦大队的。", "我们是公安局", "CN-CONDUCT"),
    (
        "zh",
        Category.FALSE_LEGAL_CLAIM,
        "你已经被起诉了，赶紧还钱。",
        "你已经被起诉了",
        "CN-CONDUCT",
    ),
    (
        "zh",
        Category.THIRD_PARTY_DISCLOSURE,
        "今天不还，我们就告诉你的单位。",
        "告诉你的单位",
        "CN-THIRD-PARTY",
    ),
    (
        "en",
        Category.THREAT,
        "Pay today or we will break your legs.",
        "break your legs",
        "LANG-THREAT",
    ),
    (
        "en",
        Category.INTIMIDATION,
        "We know where you live, John.",
        "We know where you live",
        "LANG-INTIMIDATION",
    ),
    ("en", Category.INSULT, "Listen, you deadbeat, pay up.", "deadbeat", "LANG-INSULT"),
    (
        "en",
        Category.IMPERSONATION,
        "Hello, this is the police calling about your account.",
        "this is the police",
        "LANG-IMPERSONATION",
    ),
    (
        "en",
        Category.FALSE_LEGAL_CLAIM,
        "If you do not pay today you will go to jail.",
        "go to jail",
        "LANG-FALSE-LEGAL",
    ),
    (
        "en",
        Category.THIRD_PARTY_DISCLOSURE,
        "Pay now or we'll tell your employer about this.",
        "tell your employer",
        "LANG-THIRD-PARTY",
    ),
]


@pytest.mark.parametrize(
    ("language", "category", "text", "matched", "rule_id"),
    CATEGORY_SAMPLES,
    ids=[f"{s[0]}-{s[1].value}" for s in CATEGORY_SAMPLES],
)
def test_each_category_in_each_language(
    language: str, category: Category, text: str, matched: str, rule_id: str
) -> None:
    hits = scan(text)
    assert_spans(text, hits)
    found = [h for h in hits if h.matched == matched]
    assert found, hits
    hit = found[0]
    assert hit.category is category
    assert hit.rule_id == rule_id
    assert hit.phrase_id.startswith(f"{language}-")
    assert hit.start == text.index(matched)


def test_default_list_is_rich_in_every_category_and_language() -> None:
    counts = Counter((p.language, p.category) for p in DEFAULT_PHRASES)
    for language in ("zh", "en"):
        for category in Category:
            assert counts[(language, category)] >= 8, (language, category)
    assert len({p.id for p in DEFAULT_PHRASES}) == len(DEFAULT_PHRASES)
    assert DEFAULT_PHRASES.version


def test_every_default_phrase_matches_its_own_text() -> None:
    for phrase in DEFAULT_PHRASES:
        text = phrase.text.removesuffix("*")
        hits = scan(text)
        assert phrase.id in ids(hits), phrase
        assert_spans(text, hits)


# --- evasion ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "phrase_id", "matched"),
    [
        ("打 断-你的*腿", "zh-threat-001", "打 断-你的*腿"),
        ("打斷你的腿", "zh-threat-001", "打斷你的腿"),
        (
            "打\u200b断\u200c你\u200d的\ufeff腿",
            "zh-threat-001",
            "打\u200b断\u200c你\u200d的\ufeff腿",
        ),
        ("打断你腿", "zh-threat-001", "打断你腿"),
        ("我們是法院的人", "zh-impersonation-007", "我們是法院"),
        ("告訴您的單位", "zh-disclosure-001", "告訴您的單位"),
        ("你這個騙子", "zh-insult-001", "騙子"),
        ("不還錢就讓你坐牢", "zh-legal-001", "坐牢"),
        ("Y O U will go to J.A.I.L", "en-legal-001", "go to J.A.I.L"),
        ("ＧＯ　ＴＯ　ＪＡＩＬ", "en-legal-001", "ＧＯ　ＴＯ　ＪＡＩＬ"),
        ("We'll TeLL YoUr EmPlOyEr", "en-disclosure-001", "TeLL YoUr EmPlOyEr"),
        (
            "you are a l\u200bo\u200bs\u200be\u200br",
            "en-insult-002",
            "l\u200bo\u200bs\u200be\u200br",
        ),
        ("what a L0S3R", "en-insult-002", "L0S3R"),
        ("you fat d-e-a-d-b-e-a-t!", "en-insult-001", "d-e-a-d-b-e-a-t"),
        ("a warrant for your ARREST", "en-legal-006", "warrant for your ARREST"),
        ("THIS IS THE POLICE", "en-impersonation-001", "THIS IS THE POLICE"),
    ],
)
def test_evasive_spellings_still_match(text: str, phrase_id: str, matched: str) -> None:
    hits = scan(text)
    assert_spans(text, hits)
    assert [(h.phrase_id, h.matched) for h in hits if h.phrase_id == phrase_id] == [
        (phrase_id, matched)
    ]


def test_spans_are_offsets_in_the_original_text() -> None:
    text = "Hi. Y O U will go to J.A.I.L!\n好的，打 斷-你的*腿。"
    hits = scan(text)
    assert [(h.phrase_id, h.start, h.end) for h in hits] == [
        ("en-legal-001", 15, 28),
        ("zh-threat-001", 33, 41),
    ]
    assert [h.matched for h in hits] == ["go to J.A.I.L", "打 斷-你的*腿"]


def test_hits_are_ordered_by_start_and_repeat_per_occurrence() -> None:
    text = "你这个废物。我们知道你住在哪。你这个废物！"
    hits = scan(text)
    assert [h.start for h in hits] == sorted(h.start for h in hits)
    assert ids(hits) == ["zh-insult-002", "zh-intimidation-002", "zh-insult-002"]
    assert hits[0].start == 3
    assert hits[2].start == text.rindex("废物")


def test_normalize_folds_width_case_script_and_separators() -> None:
    assert normalize("ＡＢＣ ｄｅｆ") == "abcdef"
    assert normalize("打斷 你-的腿！") == "打断你腿"
    assert normalize("您好\u200b，Ｗｏｒｌｄ") == "你好world"
    assert normalize("café") == normalize("cafe\u0301") == "cafe"


def test_word_boundaries_for_latin_phrases() -> None:
    # Whole words only, unless the phrase ends with "*".
    assert scan("We are closer to a solution.") == []
    assert scan("Your issue is resolved, thank you.") == []
    assert ids(scan("Losers like you never pay.")) == ["en-insult-002"]
    assert ids(scan("That was idiotic.")) == ["en-insult-003"]
    assert scan("It won't hurt your credit score.") == []
    # A Chinese character next to an English word is a boundary.
    assert ids(scan("你就是个loser")) == ["en-insult-002"]


@settings(max_examples=300, deadline=None)
@given(
    phrase=st.sampled_from(DEFAULT_PHRASES.phrases),
    data=st.data(),
)
def test_separators_between_characters_never_hide_a_phrase(
    phrase: Phrase, data: st.DataObject
) -> None:
    separators = st.sampled_from(
        ["", "", " ", "  ", "-", "*", ".", "_", "·", "，", "\u3000", "\u200b", "\u2060", "🙂", "\t"]
    )
    chars = list(phrase.text.removesuffix("*"))
    text = chars[0] + "".join(data.draw(separators) + ch for ch in chars[1:])
    if data.draw(st.booleans()):
        text = text.upper()
    framed = f"好的 {text} 。"
    hits = scan(framed)
    assert_spans(framed, hits)
    mine = [h for h in hits if h.phrase_id == phrase.id]
    assert mine, (framed, hits)
    assert mine[0].matched == text


def test_every_chinese_phrase_matches_in_traditional_characters() -> None:
    s2t = OpenCC("s2t")
    for phrase in DEFAULT_PHRASES.for_language("zh"):
        traditional = s2t.convert(phrase.text)
        hits = scan(traditional)
        assert phrase.id in ids(hits), (phrase, traditional)
    assert s2t.convert("告诉你的单位") != "告诉你的单位"


# --- negations (`unless`) --------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "我们不会告诉您的单位和同事。",
        "欠款不还也不会坐牢，请放心。",
        "我们绝不会上门找你。",
        "请谨防骗子冒充我司工作人员。",
        "We will not tell your employer.",
        "You won't go to jail over a consumer debt.",
        "You will not be arrested.",
        "Nobody will call your boss.",
    ],
)
def test_negation_cancels_the_hit(text: str) -> None:
    assert scan(text) == []


@pytest.mark.parametrize(
    ("text", "phrase_id"),
    [
        # Negation in another clause.
        ("我们不会放过你，告诉你的单位。", "zh-disclosure-001"),
        ("We won't wait any longer, we will tell your employer.", "en-disclosure-001"),
        # Negation too far before the phrase.
        ("你不会想让我们告诉你的单位吧", "zh-disclosure-001"),
        ("We will not hesitate to have you arrested.", "en-legal-004"),
        # Negation after the phrase.
        ("告诉你的单位？那可不会客气。", "zh-disclosure-001"),
        # A negation of one phrase leaves another, real threat alone.
        ("我们不会告诉你的单位。但是不还钱就坐牢！", "zh-legal-001"),
        ("You won't go to jail, you deadbeat.", "en-insult-001"),
    ],
)
def test_negation_does_not_hide_a_real_threat(text: str, phrase_id: str) -> None:
    hits = scan(text)
    assert phrase_id in ids(hits)
    assert_spans(text, hits)


def test_negation_only_cancels_its_own_occurrence() -> None:
    text = "我们不会告诉你的单位，下次就告诉你的单位。"
    hits = scan(text)
    assert ids(hits) == ["zh-disclosure-001"]
    assert hits[0].start == text.rindex("告诉你的单位")


# --- polite scripts stay clean ---------------------------------------------------------------

POLITE_ZH = [
    "您好，请问是张伟先生本人吗？我是平安普惠委托的催收专员，工号1024。为了保护您的隐私，"
    "麻烦您确认一下身份证后四位。您在我司的借款目前逾期30天，逾期金额为3,250元。我们理解"
    "您可能遇到了困难，可以为您申请分期还款或者制定还款计划。如果您对欠款有异议，可以拨打"
    "官方客服热线提出，我们会暂停催收并核实。我们不会向您的家人、同事或单位透露您的欠款信息。"
    "请注意谨防骗子冒充我司工作人员，只通过官方渠道还款。逾期可能会影响您的个人征信记录。"
    "感谢您的配合，祝您生活愉快。",
    "【XX银行】尊敬的客户，您尾号8888的信用卡本期账单已逾期，应还金额1,520.00元。请于3日内"
    "通过手机银行还款，如有困难可致电95555协商分期还款方案。如已还款请忽略。",
    "李女士您好，这里是XX消费金融的客服专员。先跟您核实一下身份，请问您是李华女士本人吗？"
    "好的，谢谢。您的贷款目前有2期未还，合计欠款4,800元。了解到您最近失业了，我们可以帮您"
    "申请减免部分利息，或者延期还款三个月。您看哪个方案比较合适？我们不会上门，也不会联系"
    "您的通讯录。",
    "王先生，感谢您今天接听电话。根据您的情况，我们建议每月还款500元，共12期。您也可以先还"
    "一部分，剩余部分我们再协商。如需帮助，请拨打我司官方客服电话。",
]

POLITE_EN = [
    "Hello, may I speak with John Smith? Thank you. Before we go on, can you confirm your date "
    "of birth? My name is Sarah and I'm calling from Acme Recovery Services. This is an attempt "
    "to collect a debt, and any information obtained will be used for that purpose. This "
    "communication is from a debt collector. Our records show you owe $1,240.00 on your "
    "Northwind credit card account, which is 90 days past due. We understand things can be "
    "difficult. We can set up a payment plan, for example monthly installments of $100, or "
    "discuss a settlement. If you dispute this debt, you have the right to request verification. "
    "We will not discuss this debt with your employer or family. You can ask us to stop calling "
    "at any time.",
    "Dear {first_name}, we are writing about your account ending in {last4}. The amount due is "
    "{amount}. If you are experiencing financial hardship, please contact us to discuss an "
    "installment plan that fits your budget. We are a debt collector. This is an attempt to "
    "collect a debt. Any information obtained will be used for that purpose.",
    "Hi, this is Mark from Northwind Card Services returning your call. I understand you lost "
    "your job last month; I'm sorry to hear that. We can pause payments for 60 days under our "
    "hardship program, then restart at a reduced monthly payment. Would that work for you? "
    "Please call us back at your convenience between 9am and 8pm.",
    "Thanks for confirming your identity. Your outstanding balance is $3,400. If paying in full "
    "isn't possible, we can settle the account for $2,000 paid over six months. It won't hurt "
    "you to think it over; the offer stays open until the 30th.",
]


@pytest.mark.parametrize("text", POLITE_ZH + POLITE_EN)
def test_polite_scripts_have_no_hits(text: str) -> None:
    assert scan(text) == []


@pytest.mark.parametrize("text", [POLITE_ZH[0], POLITE_ZH[2], POLITE_EN[0], POLITE_EN[1]])
def test_polite_templates_pass_the_template_check(text: str) -> None:
    review = check_template(text)
    assert review.ok, review
    assert review.phrase_list_version == DEFAULT_PHRASES.version


def test_template_without_identification_or_with_threat_fails() -> None:
    anonymous = check_template("Your account is overdue. Call us.")
    assert not anonymous.identified
    assert not anonymous.ok
    assert check_template("Your account is overdue.", identification=()).ok
    threatening = check_template("We are a debt collector. Pay or you will go to jail.")
    assert threatening.identified
    assert ids(list(threatening.hits)) == ["en-legal-001"]
    assert not threatening.ok


# --- transcripts -----------------------------------------------------------------------------

GOOD_CALL_ZH = [
    Turn("agent", "您好，请问是张伟先生本人吗？"),
    Turn("debtor", "是我，什么事？"),
    Turn("agent", "我是XX消费金融的客服专员。您的借款已逾期，欠款3,250元。"),
    Turn("debtor", "我最近手头紧，你们这帮骗子！"),
    Turn("agent", "理解您的困难，我们可以为您制定还款计划，分6期还款。"),
]

GOOD_CALL_EN = [
    Turn("agent", "Hello, am I speaking with John Smith?"),
    Turn("debtor", "Yeah, who's this? You people are idiots."),
    Turn("agent", "This is Sarah from Acme Recovery, a debt collector. You owe $1,240."),
    Turn("other", "[hold music]"),
    Turn("agent", "We can set up a payment plan that fits your budget."),
]


@pytest.mark.parametrize("turns", [GOOD_CALL_ZH, GOOD_CALL_EN], ids=["zh", "en"])
def test_good_call_covers_every_step_in_order(turns: list[Turn]) -> None:
    review = check_transcript(turns)
    assert review.ok, review
    assert [(f.step_id, f.turn) for f in review.steps_found] == [
        ("identity_confirmed", 0),
        ("debt_stated", 2),
        ("plan_offered", 4),
    ]
    for finding in review.steps_found:
        assert turns[finding.turn].text[finding.start : finding.end] == finding.matched
    # The debtor's insults are not the agent's violations.
    assert review.hits == ()


@pytest.mark.parametrize("step_id", [s.id for s in DEFAULT_STEPS])
@pytest.mark.parametrize("turns", [GOOD_CALL_ZH, GOOD_CALL_EN], ids=["zh", "en"])
def test_each_missing_step_is_reported(turns: list[Turn], step_id: str) -> None:
    turn_of = {f.step_id: f.turn for f in check_transcript(turns).steps_found}
    without = [
        t if i != turn_of[step_id] else Turn("agent", "好的。Okay.") for i, t in enumerate(turns)
    ]
    review = check_transcript(without)
    assert review.steps_missing == (step_id,)
    assert step_id not in {f.step_id for f in review.steps_found}
    assert not review.ok


def test_debt_stated_before_identity_is_an_ordering_problem() -> None:
    turns = [
        Turn("agent", "您好，您在我司的欠款已经逾期两个月了。"),
        Turn("debtor", "你找谁？"),
        Turn("agent", "请问是张伟先生本人吗？"),
        Turn("agent", "我们可以给您办理分期。"),
    ]
    review = check_transcript(turns)
    assert review.steps_missing == ()
    [problem] = review.ordering_problems
    assert problem.step_id == "debt_stated"
    assert problem.requires == "identity_confirmed"
    assert problem.turn == 0
    assert problem.required_turn == 2
    assert problem.rule_id == "CN-THIRD-PARTY"
    assert not review.ok


def test_identity_question_and_debt_in_one_turn_is_too_early() -> None:
    turns = [
        Turn("agent", "Am I speaking with Jane Doe? You owe $500 and we offer a payment plan.")
    ]
    [problem] = check_transcript(turns).ordering_problems
    assert (problem.turn, problem.required_turn) == (0, 0)


def test_debt_without_any_identity_check_is_missing_and_out_of_order() -> None:
    turns = [Turn("agent", "You owe $500. We can offer an installment plan.")]
    review = check_transcript(turns)
    assert review.steps_missing == ("identity_confirmed",)
    [problem] = review.ordering_problems
    assert problem.required_turn is None


def test_transcript_hits_carry_the_turn_and_offsets_within_it() -> None:
    turns = [
        Turn("agent", "请问是张伟本人吗？"),
        Turn("debtor", "不还你能怎样？我就是老赖。"),
        Turn("agent", "你的欠款再不还，我们就告诉你的单位，让你坐牢！"),
    ]
    review = check_transcript(turns)
    assert [(h.turn, h.phrase_id) for h in review.hits] == [
        (2, "zh-disclosure-001"),
        (2, "zh-legal-001"),
    ]
    for hit in review.hits:
        assert turns[2].text[hit.start : hit.end] == hit.matched


def test_language_restricts_phrases_and_steps() -> None:
    turns = [
        Turn("agent", "请问是张伟本人吗？ Am I speaking with Zhang Wei?"),
        Turn("agent", "你的欠款是500元。You owe 500. 你这个废物, you loser."),
        Turn("agent", "可以分期。We offer a payment plan."),
    ]
    zh = check_transcript(turns, language="zh")
    en = check_transcript(turns, language="en")
    assert [h.phrase_id for h in zh.hits] == ["zh-insult-002"]
    assert [h.phrase_id for h in en.hits] == ["en-insult-002"]
    assert zh.steps_found[0].matched == "本人吗"
    assert en.steps_found[0].matched == "Am I speaking with"
    assert [h.phrase_id for h in check_transcript(turns).hits] == ["zh-insult-002", "en-insult-002"]


def test_custom_steps_from_json() -> None:
    steps = load_steps(
        [
            {"id": "greeting", "name": "Greeting", "en": ["good morning"]},
            {"id": "recording", "name": "Recording notice", "en": ["this call is recorded"]},
            {
                "id": "mini_miranda",
                "name": "Mini-Miranda",
                "en": ["attempt to collect a debt"],
                "after": ["greeting"],
                "order_rule_id": "US-MINI-MIRANDA",
            },
        ]
    )
    turns = [
        Turn("agent", "This is an attempt to collect a debt."),
        Turn("agent", "Good morning!"),
    ]
    review = check_transcript(turns, steps=steps)
    assert review.steps_missing == ("recording",)
    [problem] = review.ordering_problems
    assert (problem.step_id, problem.rule_id, problem.turn) == (
        "mini_miranda",
        "US-MINI-MIRANDA",
        0,
    )
    with pytest.raises(ValueError, match="unknown step"):
        load_steps([{"id": "a", "en": ["x"], "after": ["nope"]}])
    with pytest.raises(ValueError, match="at least one phrase"):
        CallStep(id="empty", name="Empty")


# --- custom phrase lists ---------------------------------------------------------------------

CUSTOM_PHRASES: list[dict[str, Any]] = [
    {
        "id": "acme-001",
        "category": "intimidation",
        "text": "final warning",
        "language": "en",
        "severity": "minor",
    },
    {
        "id": "acme-002",
        "category": "third_party_disclosure",
        "text": "call your mother",
        "language": "en",
        "severity": "critical",
        "unless": ["not"],
        "rule_id": "ACME-7",
    },
    {
        "id": "acme-003",
        "category": "insult",
        "text": "穷光蛋",
        "language": "zh",
        "severity": "major",
    },
]
CUSTOM: dict[str, Any] = {
    "version": "acme-2025-03",
    "unless_window": {"en": 2},
    "phrases": CUSTOM_PHRASES,
}


def test_custom_phrase_list_from_json() -> None:
    plist = PhraseList.from_json(json.loads(json.dumps(CUSTOM)))
    assert plist.version == "acme-2025-03"
    assert len(plist) == 3
    text = "FINAL  WARNING: we will call your mother. 你个窮光蛋。We will break your legs."
    hits = scan(text, plist)
    assert_spans(text, hits)
    assert [(h.phrase_id, h.rule_id, h.severity) for h in hits] == [
        ("acme-001", "LANG-INTIMIDATION", "minor"),
        ("acme-002", "ACME-7", "critical"),
        ("acme-003", "CN-CONDUCT", "major"),
    ]
    # The custom window (2 characters) is narrower than the default 8: "not ever" is too far.
    assert scan("we will not call your mother", plist) == []
    assert ids(scan("we will not ever call your mother", plist)) == ["acme-002"]


def test_phrase_list_round_trips_and_accepts_a_bare_list() -> None:
    plist = PhraseList.from_json(CUSTOM)
    again = PhraseList.from_json(plist.to_json())
    assert again.phrases == plist.phrases
    assert again.unless_window == plist.unless_window
    bare = PhraseList.from_json(CUSTOM_PHRASES, version="v2")
    assert bare.version == "v2"
    assert bare.phrases == plist.phrases
    assert PhraseList.from_json(DEFAULT_PHRASES.to_json()).phrases == DEFAULT_PHRASES.phrases


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"phrases": []}, "version"),
        ([], "version"),
        ({"version": "v", "phrases": "nope"}, "list of phrases"),
        ({"version": "v", "phrases": [{"id": "x"}]}, "missing"),
        (
            {"version": "v", "phrases": [{**CUSTOM_PHRASES[0], "category": "rudeness"}]},
            "unknown category",
        ),
        (
            {"version": "v", "phrases": [{**CUSTOM_PHRASES[0], "severity": "huge"}]},
            "severity",
        ),
        (
            {"version": "v", "phrases": [{**CUSTOM_PHRASES[0], "language": "fr"}]},
            "language",
        ),
        ({"version": "v", "phrases": [{**CUSTOM_PHRASES[0], "text": "!!!"}]}, "no letters"),
        ({"version": "v", "phrases": [CUSTOM_PHRASES[0]] * 2}, "duplicate"),
        # Passes the cheap check but normalises to nothing (的 is ignored): caught at load.
        ({"version": "v", "phrases": [{**CUSTOM_PHRASES[0], "text": "的的"}]}, "no letters"),
        ({"version": "v", "phrases": [{**CUSTOM_PHRASES[0], "colour": "red"}]}, "unknown keys"),
    ],
)
def test_bad_phrase_lists_are_rejected(data: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PhraseList.from_json(data)


def test_phrase_accepts_a_category_string() -> None:
    phrase = Phrase(
        id="x-1",
        category="insult",  # type: ignore[arg-type]
        text="numpty",
        language="en",
        severity="minor",
    )
    assert phrase.category is Category.INSULT
    assert ids(scan("you numpty", PhraseList([phrase], version="t"))) == ["x-1"]
    with pytest.raises(ValueError, match="unknown category"):
        Phrase(id="x-2", category="rude", text="numpty", language="en", severity="minor")  # type: ignore[arg-type]


def test_for_language_keeps_version_and_filters() -> None:
    zh = DEFAULT_PHRASES.for_language("zh")
    assert zh.version == DEFAULT_PHRASES.version
    assert {p.language for p in zh} == {"zh"}
    assert len(zh) + len(DEFAULT_PHRASES.for_language("en")) == len(DEFAULT_PHRASES)
    assert DEFAULT_PHRASES.for_language("zh") is zh
    assert scan("you will go to jail", zh) == []
