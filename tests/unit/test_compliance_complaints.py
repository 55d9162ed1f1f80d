"""Complaints (lifecycle, holds, SLA clocks, near-duplicate campaigns) and QA sampling."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.compliance import complaints as c
from services.compliance.complaints import (
    Campaign,
    CampaignIndex,
    ComplaintCategory,
    ComplaintStatus,
    ComplaintText,
    ContactForReview,
    InvalidTransition,
    ReviewerKind,
    ReviewOutcome,
    SamplingPolicy,
    SlaClock,
    SlaPolicy,
    StatusChange,
    find_campaigns,
    next_status,
    places_hold,
    plan_reviews,
    sample_size,
    signature,
    similarity,
    sla_state,
)

SH = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=SH)
S = ComplaintStatus

# ---------------------------------------------------------------------------------------------
# Lifecycle and holds
# ---------------------------------------------------------------------------------------------

# Written out here, not read from the module, so a change to the table has to change the test.
ALLOWED = {
    S.RECEIVED: {S.ACKNOWLEDGED, S.RESOLVED, S.REJECTED, S.WITHDRAWN},
    S.ACKNOWLEDGED: {S.INVESTIGATING, S.RESOLVED, S.REJECTED, S.WITHDRAWN},
    S.INVESTIGATING: {S.RESOLVED, S.REJECTED, S.WITHDRAWN},
    S.RESOLVED: {S.INVESTIGATING},
    S.REJECTED: {S.INVESTIGATING},
    S.WITHDRAWN: set(),
}
ALL_PAIRS = list(itertools.product(ComplaintStatus, ComplaintStatus))


@pytest.mark.parametrize(
    ("current", "target"), [p for p in ALL_PAIRS if p[1] in ALLOWED[p[0]]], ids=str
)
def test_allowed_transition(current: ComplaintStatus, target: ComplaintStatus) -> None:
    assert next_status(current, target) is target
    assert next_status(current.value, target.value) is target


@pytest.mark.parametrize(
    ("current", "target"), [p for p in ALL_PAIRS if p[1] not in ALLOWED[p[0]]], ids=str
)
def test_forbidden_transition(current: ComplaintStatus, target: ComplaintStatus) -> None:
    with pytest.raises(InvalidTransition) as raised:
        next_status(current, target)
    assert isinstance(raised.value, ValueError)
    assert (raised.value.current, raised.value.target) == (current, target)
    message = str(raised.value)
    assert f"'{current.value}'" in message
    assert f"'{target.value}'" in message


def test_transition_table_matches_the_spec() -> None:
    assert {k: set(v) for k, v in c.TRANSITIONS.items()} == ALLOWED


def test_unknown_status_is_rejected() -> None:
    with pytest.raises(ValueError, match="reopened"):
        next_status("resolved", "reopened")


@pytest.mark.parametrize(
    ("status", "holds"),
    [
        (S.RECEIVED, True),
        (S.ACKNOWLEDGED, True),
        (S.INVESTIGATING, True),
        (S.RESOLVED, False),
        (S.REJECTED, False),
        (S.WITHDRAWN, False),
    ],
)
def test_hold_by_status(status: ComplaintStatus, holds: bool) -> None:
    assert places_hold(status) is holds
    assert places_hold(status.value) is holds
    assert (status in c.OPEN_STATUSES) is holds


def test_reopening_places_the_hold_again() -> None:
    reopened = next_status(S.RESOLVED, S.INVESTIGATING)
    assert places_hold(reopened)


def test_status_history_append_and_checks() -> None:
    history = c.append_change(
        (), StatusChange(S.ACKNOWLEDGED, T0 + timedelta(minutes=5)), received_at=T0
    )
    history = c.append_change(
        history,
        StatusChange(S.INVESTIGATING, T0 + timedelta(hours=1), by="agent-7"),
        received_at=T0,
    )
    assert [h.status for h in history] == [S.ACKNOWLEDGED, S.INVESTIGATING]
    assert c.current_status(history) is S.INVESTIGATING
    assert c.current_status(()) is S.RECEIVED
    with pytest.raises(InvalidTransition):
        c.append_change(
            history, StatusChange(S.ACKNOWLEDGED, T0 + timedelta(hours=2)), received_at=T0
        )
    with pytest.raises(ValueError, match="out of order"):
        c.append_change(
            history, StatusChange(S.RESOLVED, T0 + timedelta(minutes=30)), received_at=T0
        )
    with pytest.raises(ValueError, match="out of order"):
        c.append_change((), StatusChange(S.ACKNOWLEDGED, T0 - timedelta(minutes=1)), received_at=T0)


def test_status_change_needs_an_aware_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        StatusChange(S.ACKNOWLEDGED, datetime(2026, 11, 23, 9, 0))


# ---------------------------------------------------------------------------------------------
# SLA clocks
# ---------------------------------------------------------------------------------------------


def change(status: ComplaintStatus, after: timedelta) -> StatusChange:
    return StatusChange(status, T0 + after)


def state(
    history: list[StatusChange],
    now_after: timedelta,
    category: ComplaintCategory = ComplaintCategory.OTHER,
    policy: SlaPolicy = c.DEFAULT_SLA_POLICY,
) -> c.SlaState:
    return sla_state(
        received_at=T0, category=category, history=history, policy=policy, now=T0 + now_after
    )


H, M, D = timedelta(hours=1), timedelta(minutes=1), timedelta(days=1)


def test_acknowledged_at_1h59_meets_the_first_response_clock() -> None:
    s = state([change(S.ACKNOWLEDGED, H + 59 * M)], now_after=3 * H)
    assert s.first_response_due == T0 + 2 * H
    assert s.first_response_at == T0 + H + 59 * M
    assert s.first_response_met is True
    assert s.first_response_remaining is None
    assert s.breached == ()


def test_acknowledged_at_2h01_breaches_the_first_response_clock() -> None:
    s = state([change(S.ACKNOWLEDGED, 2 * H + M)], now_after=3 * H)
    assert s.first_response_met is False
    assert s.breached == (SlaClock.FIRST_RESPONSE,)


def test_acknowledged_exactly_at_due_is_met() -> None:
    assert state([change(S.ACKNOWLEDGED, 2 * H)], now_after=2 * H).first_response_met is True


def test_pending_before_due_is_not_breached() -> None:
    s = state([], now_after=H + 30 * M)
    assert s.status is S.RECEIVED
    assert s.first_response_at is None
    assert s.first_response_met is None
    assert s.first_response_remaining == 30 * M
    assert s.breached == ()
    # at the due instant itself it is still not late
    assert state([], now_after=2 * H).first_response_met is None


def test_pending_after_due_is_breached() -> None:
    s = state([], now_after=2 * H + M)
    assert s.first_response_met is False
    assert s.first_response_remaining == -M
    assert s.breached == (SlaClock.FIRST_RESPONSE,)


def test_a_direct_decision_is_the_first_response() -> None:
    s = state([change(S.REJECTED, 30 * M)], now_after=H)
    assert s.first_response_at == T0 + 30 * M
    assert s.resolution_met is True
    assert not places_hold(s.status)


@pytest.mark.parametrize(
    ("category", "days"),
    [
        (ComplaintCategory.HARASSMENT, 5),
        (ComplaintCategory.THIRD_PARTY_CONTACT, 5),
        (ComplaintCategory.PRIVACY, 15),
        (ComplaintCategory.NOT_MY_DEBT, 15),
        (ComplaintCategory.WRONG_AMOUNT, 15),
        (ComplaintCategory.OTHER, 15),
    ],
)
def test_resolution_met_and_breached_per_category(category: ComplaintCategory, days: int) -> None:
    target = days * D
    ack = change(S.ACKNOWLEDGED, 10 * M)
    on_time = state([ack, change(S.RESOLVED, target - M)], now_after=target + D, category=category)
    assert on_time.resolution_due == T0 + target
    assert on_time.resolved_at == T0 + target - M
    assert on_time.resolution_met is True
    assert on_time.breached == ()

    late = state([ack, change(S.RESOLVED, target + M)], now_after=target + D, category=category)
    assert late.resolution_met is False
    assert late.breached == (SlaClock.RESOLUTION,)

    still_open = state([ack], now_after=target - H, category=category)
    assert still_open.resolution_met is None
    assert still_open.resolution_remaining == H
    overdue = state([ack], now_after=target + H, category=category)
    assert overdue.resolution_met is False
    assert overdue.resolution_remaining == -H
    assert overdue.breached == (SlaClock.RESOLUTION,)


def test_both_clocks_can_be_breached() -> None:
    s = state([], now_after=20 * D)
    assert s.breached == (SlaClock.FIRST_RESPONSE, SlaClock.RESOLUTION)


def test_reopening_keeps_the_resolution_clock_from_receipt() -> None:
    category = ComplaintCategory.HARASSMENT  # due after 5 days
    history = [
        change(S.ACKNOWLEDGED, 30 * M),
        change(S.RESOLVED, 3 * D),
        change(S.INVESTIGATING, 4 * D),  # reopened before the due time
    ]
    reopened = state(history, now_after=4 * D + H, category=category)
    assert reopened.status is S.INVESTIGATING
    assert places_hold(reopened.status)
    assert reopened.resolved_at is None
    assert reopened.resolution_met is None
    assert reopened.resolution_remaining == D - H
    assert reopened.first_response_at == T0 + 30 * M  # the first response stays

    decided_again = state([*history, change(S.RESOLVED, 4 * D + 2 * H)], 6 * D, category)
    assert decided_again.resolution_met is True
    assert decided_again.resolved_at == T0 + 4 * D + 2 * H

    overdue = state(history, now_after=6 * D, category=category)
    assert overdue.resolution_met is False

    late_decision = state([*history, change(S.REJECTED, 7 * D)], 8 * D, category)
    assert late_decision.resolution_met is False
    assert late_decision.resolved_at == T0 + 7 * D


def test_withdrawal_stops_the_clocks() -> None:
    early = state([change(S.WITHDRAWN, H)], now_after=30 * D)
    assert early.first_response_met is None
    assert early.resolution_met is None
    assert early.first_response_remaining is None
    assert early.resolution_remaining is None
    assert early.breached == ()
    assert not places_hold(early.status)

    after_breach = state([change(S.WITHDRAWN, 3 * H)], now_after=30 * D)
    assert after_breach.first_response_met is False
    assert after_breach.breached == (SlaClock.FIRST_RESPONSE,)

    answered = state([change(S.ACKNOWLEDGED, H), change(S.WITHDRAWN, 20 * D)], now_after=30 * D)
    assert answered.first_response_met is True
    assert answered.resolution_met is False  # it had run past 15 days before the withdrawal


def test_custom_policy() -> None:
    policy = SlaPolicy(
        first_response=timedelta(hours=1), resolution={ComplaintCategory.HARASSMENT: 2 * D}
    )
    assert policy.resolution_target(ComplaintCategory.HARASSMENT) == 2 * D
    assert policy.resolution_target("privacy") == 15 * D  # unnamed categories keep the default
    s = state(
        [change(S.ACKNOWLEDGED, 90 * M)],
        now_after=3 * D,
        category=ComplaintCategory.HARASSMENT,
        policy=policy,
    )
    assert s.first_response_due == T0 + H
    assert s.resolution_due == T0 + 2 * D
    assert s.breached == (SlaClock.FIRST_RESPONSE, SlaClock.RESOLUTION)
    assert policy == SlaPolicy(first_response=H, resolution={"harassment": 2 * D})  # type: ignore[dict-item]
    assert hash(policy) == hash(SlaPolicy(first_response=H))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"first_response": timedelta(0)},
        {"resolution": {ComplaintCategory.PRIVACY: -D}},
        {"resolution": {"no_such_category": D}},
    ],
)
def test_invalid_policy(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        SlaPolicy(**kwargs)  # type: ignore[arg-type]


def test_default_targets_cover_every_category() -> None:
    assert set(c.DEFAULT_RESOLUTION_TARGETS) == set(ComplaintCategory)
    assert c.DEFAULT_SLA_POLICY.first_response == 2 * H


def test_naive_datetimes_are_rejected() -> None:
    naive = datetime(2026, 11, 23, 9, 0)
    with pytest.raises(ValueError, match="timezone-aware"):
        sla_state(received_at=naive, category="other", history=[], now=T0)
    with pytest.raises(ValueError, match="timezone-aware"):
        sla_state(received_at=T0, category="other", history=[], now=naive)


def test_inconsistent_history_is_rejected() -> None:
    with pytest.raises(ValueError, match="before receipt"):
        state([], now_after=-M)
    with pytest.raises(ValueError, match="after now"):
        state([change(S.ACKNOWLEDGED, 2 * H)], now_after=H)
    with pytest.raises(InvalidTransition):
        state([change(S.INVESTIGATING, H)], now_after=2 * H)
    with pytest.raises(ValueError, match="out of order"):
        state([change(S.ACKNOWLEDGED, 2 * H), change(S.RESOLVED, H)], now_after=3 * H)


def test_leading_received_entry_and_mixed_zones() -> None:
    history = [
        StatusChange(S.RECEIVED, T0),
        StatusChange(S.ACKNOWLEDGED, (T0 + H).astimezone(UTC)),
    ]
    s = sla_state(received_at=T0, category="privacy", history=history, now=T0 + 2 * H)
    assert s.first_response_met is True
    assert s.status is S.ACKNOWLEDGED


@settings(max_examples=200, deadline=None)
@given(minutes=st.integers(min_value=0, max_value=600), wait=st.integers(0, 600))
def test_first_response_met_iff_within_two_hours(minutes: int, wait: int) -> None:
    s = state([change(S.ACKNOWLEDGED, minutes * M)], now_after=(minutes + wait) * M)
    assert s.first_response_met is (minutes <= 120)
    assert (SlaClock.FIRST_RESPONSE in s.breached) is (minutes > 120)


@settings(max_examples=200, deadline=None)
@given(minutes=st.integers(min_value=0, max_value=30 * 24 * 60))
def test_pending_clock_is_breached_iff_past_due(minutes: int) -> None:
    s = state([change(S.ACKNOWLEDGED, 0 * M)], now_after=minutes * M)
    due = T0 + 15 * D
    assert s.resolution_remaining == due - (T0 + minutes * M)
    assert (s.resolution_met is False) is (T0 + minutes * M > due)
    assert s.resolution_met is not True


# ---------------------------------------------------------------------------------------------
# Near-duplicate campaigns
# ---------------------------------------------------------------------------------------------

ZH_TEMPLATE = (
    "本人张伟，身份证号码尾号1234，于2023年3月在贵平台借款5000元，后因疫情失业，目前确实无力偿还。"
    "近期贵司催收人员每天多次拨打我的电话，并联系我的父母、同事和朋友，言语中带有威胁和侮辱，"
    "严重影响了我和家人的正常生活。根据《个人信息保护法》和相关监管规定，催收不得骚扰与债务无关的"
    "第三人，请贵司立即停止上述行为，删除违规收集的通讯录信息，并在七日内给予书面答复。"
    "如不处理，本人将向金融监管部门和中国人民银行投诉。"
)
ZH_NAMES = ["王芳", "李娜", "刘洋", "陈静", "杨磊", "赵敏", "黄勇", "周杰"]
ZH_NAMES += ["吴霞", "徐明", "孙丽", "马超", "朱红", "胡军", "郭强", "欧阳娜娜"]
ZH_INSERTS = ["真的", "他们", "非常", "实在", "一直", "多次"]

ZH_UNRELATED = [
    "我从来没有在贵平台注册或借款，上个月突然收到逾期短信，怀疑有人冒用我的身份信息，"
    "请核实借款合同上的签名和银行卡，在查清之前停止向我催收，我已经向派出所报案。",
    "账单金额不对，我在十月已经通过银行转账还了三千元，但系统没有入账，现在催收员按原来的金额"
    "每天打电话，请核对流水后重新出具账单。",
    "催收员在电话里辱骂我，说要到我单位去找领导，还说会让我坐牢，这种说法是否属实？"
    "请调取录音核查并给出处理结果。",
    "贵司的催收人员把我欠款的事情告诉了我的邻居和房东，导致我被要求搬家，这是泄露个人隐私，"
    "要求道歉并赔偿损失。",
    "我申请的分期还款方案已经获批，但是本月仍然收到全额还款的催收函，请说明原因并撤回催收函。",
    "你们的应用程序读取了我的通讯录和位置信息，我从未同意过，请删除这些数据并告知已经向谁提供过。",
]

EN_TEMPLATE = (
    "I am writing to formally dispute the debt your agency claims I owe. I do not recognise this "
    "account and I have never signed any agreement with the original creditor. Your collectors "
    "have called me several times a day, including at my workplace, and contacted my neighbours "
    "about the debt. This is harassment and a breach of my privacy. Please stop all contact, send "
    "me written validation of the debt, and confirm within 14 days that you removed my details."
)
EN_UNRELATED = [
    "The amount on my statement is wrong. I paid 300 pounds in March by bank transfer and it has "
    "not been credited, so the balance you are chasing is too high. Please correct it.",
    "Your agent was rude to my mother on the phone and told her about my debt. She has nothing to "
    "do with this account. I want an apology and an explanation of how you got her number.",
    "I agreed a payment plan of 50 a month in September and have kept every payment, yet I keep "
    "receiving letters demanding the full balance. Please update your records.",
    "I am being treated for cancer and cannot work. I asked for breathing space twice and nobody "
    "called me back. Please put my account on hold while I am in hospital.",
]


def zh_variant(rng: random.Random, name: str) -> str:
    text = ZH_TEMPLATE.replace("张伟", name).replace("5000", str(rng.randint(1000, 20000)))
    for _ in range(rng.randint(1, 3)):
        at = rng.randrange(len(text))
        text = text[:at] + rng.choice(ZH_INSERTS) + text[at:]
    if rng.random() < 0.5:
        text = text.replace("，", ", ")
    if rng.random() < 0.5:
        text = text.replace("。", "！")
    return text


def en_variant(rng: random.Random, i: int) -> str:
    text = EN_TEMPLATE.replace("14 days", f"{rng.choice([7, 10, 14, 21])} days")
    if i % 2:
        text = text.replace("your agency", "Lowell Financial").replace("recognise", "recognize")
    if i % 3 == 0:
        text = text.upper().replace(". ", ".\n\n")
    if i % 4 == 1:
        text = text.replace("several", "many")
    return text


def received(i: int) -> datetime:
    return T0 + i * 7 * M


def zh_campaign(count: int = 30, seed: int = 1) -> list[ComplaintText]:
    rng = random.Random(seed)
    return [
        ComplaintText(
            f"zh-{i}", f"debtor-{i}", zh_variant(rng, ZH_NAMES[i % len(ZH_NAMES)]), received(i)
        )
        for i in range(count)
    ]


def unrelated_items() -> list[ComplaintText]:
    texts = ZH_UNRELATED + EN_UNRELATED
    return [
        ComplaintText(f"u-{i}", f"other-{i}", text, received(100 + i))
        for i, text in enumerate(texts)
    ]


def test_chinese_campaign_with_small_edits_is_found() -> None:
    items = zh_campaign(30)
    assert len({i.text for i in items}) == 30  # all edited differently
    campaigns = find_campaigns(items + unrelated_items())
    assert len(campaigns) == 1
    found = campaigns[0]
    assert set(found.complaint_ids) == {i.complaint_id for i in items}
    assert found.debtor_count == 30
    assert found.debtor_ids == tuple(sorted(f"debtor-{i}" for i in range(30)))
    assert found.representative_id == "zh-0"
    assert found.representative_text == items[0].text
    assert found.first_received_at == received(0)
    assert found.last_received_at == received(29)
    assert found.complaint_ids[0] == "zh-0"


def test_unrelated_complaints_are_not_a_campaign() -> None:
    assert find_campaigns(unrelated_items(), min_debtors=2) == []
    index = CampaignIndex()
    for item in unrelated_items():
        index.add(
            item.complaint_id,
            signature(item.text),
            debtor_id=item.debtor_id,
            received_at=item.received_at,
        )
    assert all(len(index.cluster(i.complaint_id).complaint_ids) == 1 for i in unrelated_items())


def test_one_debtor_sending_copies_is_not_a_campaign() -> None:
    rng = random.Random(3)
    copies = [
        ComplaintText(f"dup-{i}", "debtor-same", zh_variant(rng, "王芳"), received(i))
        for i in range(10)
    ]
    assert find_campaigns(copies) == []
    assert find_campaigns(copies, min_debtors=2) == []
    # ... though the texts do cluster
    index = CampaignIndex()
    for item in copies:
        index.add(
            item.complaint_id,
            signature(item.text),
            debtor_id="debtor-same",
            received_at=item.received_at,
        )
    cluster = index.cluster("dup-0")
    assert len(cluster.complaint_ids) == 10
    assert cluster.debtor_count == 1


def test_min_debtors_is_respected() -> None:
    items = zh_campaign(4)
    assert find_campaigns(items) == []
    assert len(find_campaigns(items, min_debtors=4)) == 1
    assert find_campaigns(items, min_debtors=5) == []
    with pytest.raises(ValueError, match="at least 2"):
        find_campaigns(items, min_debtors=1)


def test_english_campaign_is_found() -> None:
    rng = random.Random(5)
    items = [
        ComplaintText(f"en-{i}", f"debtor-{i}", en_variant(rng, i), received(i)) for i in range(12)
    ]
    campaigns = find_campaigns(items + unrelated_items())
    assert [set(x.complaint_ids) for x in campaigns] == [{i.complaint_id for i in items}]
    assert campaigns[0].debtor_count == 12


def test_two_campaigns_stay_apart() -> None:
    rng = random.Random(8)
    en = [
        ComplaintText(f"en-{i}", f"debtor-en-{i}", en_variant(rng, i), received(i))
        for i in range(6)
    ]
    campaigns = find_campaigns(zh_campaign(8) + en)
    assert [x.debtor_count for x in campaigns] == [8, 6]
    assert all(cid.startswith("zh-") for cid in campaigns[0].complaint_ids)
    assert all(cid.startswith("en-") for cid in campaigns[1].complaint_ids)


def test_short_texts_never_form_a_campaign() -> None:
    items = [ComplaintText(f"s-{i}", f"d-{i}", "不是我的债！", received(i)) for i in range(20)]
    assert signature("不是我的债！") == ()
    assert find_campaigns(items) == []
    assert len(find_campaigns(items, min_chars=1)) == 1


def test_campaigns_do_not_depend_on_input_order() -> None:
    items = zh_campaign(12) + unrelated_items()
    expected = find_campaigns(items)
    for seed in range(3):
        shuffled = items[:]
        random.Random(seed).shuffle(shuffled)
        assert find_campaigns(shuffled) == expected


def test_signature_shape_and_determinism() -> None:
    sig = signature(ZH_TEMPLATE)
    assert len(sig) == c.NUM_PERM
    assert all(isinstance(v, int) and 0 <= v < 2**32 for v in sig)
    assert signature(ZH_TEMPLATE) == sig
    # the one-text and many-text paths agree
    norms = [c.normalise_text(t) for t in (EN_TEMPLATE, ZH_TEMPLATE, "x", ZH_TEMPLATE)]
    assert c._signatures(norms, c.MIN_CHARS) == [signature(EN_TEMPLATE), sig, (), sig]
    # a text longer than a whole work chunk, alone and among others
    long_text = " ".join(f"{EN_TEMPLATE} part {word}" for word in EN_TEMPLATE.split()[:60])
    assert len(c.normalise_text(long_text)) > c._CHUNK_SHINGLES
    long_sig = signature(long_text)
    assert len(long_sig) == c.NUM_PERM
    norms = [c.normalise_text(t) for t in (ZH_TEMPLATE, long_text, EN_TEMPLATE)]
    assert c._signatures(norms, c.MIN_CHARS) == [sig, long_sig, signature(EN_TEMPLATE)]


def test_signature_is_the_same_in_another_process() -> None:
    # A different PYTHONHASHSEED would change anything built on hash(); stored signatures must
    # stay comparable across processes and restarts.
    script = (
        "from services.compliance.complaints import signature; import sys; "
        "print(signature(sys.argv[1]))"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script, ZH_TEMPLATE],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": ""},
            cwd=str(Path(__file__).resolve().parents[2]),
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert outputs == {str(signature(ZH_TEMPLATE))}


PINNED_PREFIX = (118385635, 202475829, 72715652)


def test_signature_scheme_is_pinned() -> None:
    # If this changes, stored signatures are no longer comparable: bump SIGNATURE_SCHEME.
    assert signature("I am writing to formally dispute this debt")[:3] == PINNED_PREFIX


def test_normalisation() -> None:
    assert c.normalise_text("ＡＢＣ，　Hello World! 5,000元") == "abchelloworld0元"
    assert c.normalise_text("借款 2023年3月") == "借款0年0月"
    assert signature(ZH_TEMPLATE) == signature(
        ZH_TEMPLATE.replace("，", " , ").replace("。", "...")
    )
    assert signature(EN_TEMPLATE) == signature(EN_TEMPLATE.upper())


def exact_jaccard(a: str, b: str, width: int) -> float:
    na, nb = c.normalise_text(a), c.normalise_text(b)
    sa = {na[i : i + width] for i in range(len(na) - width + 1)}
    sb = {nb[i : i + width] for i in range(len(nb) - width + 1)}
    return len(sa & sb) / len(sa | sb)


def test_similarity_estimates_jaccard() -> None:
    rng = random.Random(11)
    cut = ZH_TEMPLATE[: len(ZH_TEMPLATE) // 2]
    pairs = [(ZH_TEMPLATE, zh_variant(rng, name)) for name in ZH_NAMES[:6]]
    pairs += [
        (ZH_TEMPLATE, cut),
        (ZH_TEMPLATE, ZH_UNRELATED[2]),
        (ZH_UNRELATED[0], ZH_UNRELATED[1]),
    ]
    for a, b in pairs:
        exact = exact_jaccard(a, b, c.CJK_SHINGLE)
        # 128 values: standard error <= 0.045, so 0.15 is over 3 standard errors
        assert abs(similarity(signature(a), signature(b)) - exact) < 0.15, (a, b, exact)
    en = exact_jaccard(EN_TEMPLATE, EN_UNRELATED[0], c.OTHER_SHINGLE)
    assert abs(similarity(signature(EN_TEMPLATE), signature(EN_UNRELATED[0])) - en) < 0.15


def test_similarity_edges() -> None:
    sig = signature(EN_TEMPLATE)
    assert similarity(sig, sig) == 1.0
    assert similarity(sig, ()) == 0.0
    assert similarity((), ()) == 0.0
    with pytest.raises(ValueError, match="different lengths"):
        similarity(sig, sig[:64])


_PUNCT = st.sampled_from([" ", "，", "。", ",", ".", "!", "\n", "\t", "、", "《", "》", "-", "　"])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(ZH_TEMPLATE)), _PUNCT), max_size=25))
def test_whitespace_and_punctuation_never_change_the_signature(
    inserts: list[tuple[int, str]],
) -> None:
    text = ZH_TEMPLATE
    for at, mark in sorted(inserts, reverse=True):
        text = text[:at] + mark + text[at:]
    assert signature(text) == signature(ZH_TEMPLATE)


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=0, max_size=120), st.text(min_size=0, max_size=120))
def test_similarity_is_symmetric_and_bounded(a: str, b: str) -> None:
    sa, sb = signature(a, min_chars=1), signature(b, min_chars=1)
    assert similarity(sa, sb) == similarity(sb, sa)
    assert 0.0 <= similarity(sa, sb) <= 1.0
    if sa:
        assert similarity(sa, sa) == 1.0


def test_incremental_index_matches_batch_and_answers_queries() -> None:
    items = zh_campaign(10) + unrelated_items()
    index = CampaignIndex()
    for item in items:
        index.add(
            item.complaint_id,
            signature(item.text),
            debtor_id=item.debtor_id,
            received_at=item.received_at,
            text=item.text,
        )
    assert len(index) == len(items)
    assert "zh-3" in index
    assert "nope" not in index
    assert index.campaigns() == find_campaigns(items)

    newcomer = signature(zh_variant(random.Random(99), "郭强"))
    matches = index.query(newcomer)
    brute_force = {
        i.complaint_id for i in items if similarity(newcomer, signature(i.text)) >= index.threshold
    }
    assert {m.complaint_id for m in matches} == brute_force
    assert len(brute_force) >= 5
    assert brute_force <= {f"zh-{i}" for i in range(10)}
    assert [m.similarity for m in matches] == sorted((m.similarity for m in matches), reverse=True)
    assert all(m.similarity >= index.threshold for m in matches)
    assert len(index.query(newcomer, limit=3)) == 3
    probe = signature(EN_UNRELATED[3] + " and more words here")
    expected = similarity(probe, signature(EN_UNRELATED[3]))
    assert index.query(probe) == [c.Match("u-9", "other-9", expected)]
    assert index.query(()) == []

    index.add("zh-new", newcomer, debtor_id="debtor-new", received_at=received(200))
    assert index.cluster("zh-new").debtor_count == 11


def test_index_rejects_bad_input() -> None:
    index = CampaignIndex()
    sig = signature(ZH_TEMPLATE)
    index.add("a", sig, debtor_id="d", received_at=T0)
    with pytest.raises(ValueError, match="already"):
        index.add("a", sig, debtor_id="d", received_at=T0)
    with pytest.raises(ValueError, match="128"):
        index.add("b", sig[:10], debtor_id="d", received_at=T0)
    with pytest.raises(ValueError, match="timezone-aware"):
        index.add("c", sig, debtor_id="d", received_at=datetime(2026, 1, 1))
    with pytest.raises(KeyError):
        index.cluster("zzz")
    for bad in (0.0, 1.5, -0.2):
        with pytest.raises(ValueError, match="threshold"):
            CampaignIndex(threshold=bad)


def test_threshold_changes_what_counts_as_the_same() -> None:
    base = zh_campaign(6)
    # heavier rewrites: the last third of the text is replaced in half of them
    rewritten = [
        ComplaintText(
            x.complaint_id,
            x.debtor_id,
            x.text[: len(x.text) * 2 // 3] + ZH_UNRELATED[i],
            x.received_at,
        )
        if i % 2
        else x
        for i, x in enumerate(base)
    ]
    strict = find_campaigns(rewritten, threshold=0.95, min_debtors=2)
    loose = find_campaigns(rewritten, threshold=0.4, min_debtors=2)
    assert max((x.debtor_count for x in strict), default=0) < 6
    assert [x.debtor_count for x in loose] == [6]


# ---------------------------------------------------------------------------------------------
# QA sampling
# ---------------------------------------------------------------------------------------------

SALT = b"qa-sampling-test-salt-0001"
MONDAY = datetime(2026, 11, 23, 10, 0, tzinfo=SH)  # ISO week 2026-W48


def contacts_for(
    supervisor: str | None, count: int, start: datetime, prefix: str
) -> list[ContactForReview]:
    return [
        ContactForReview(f"{prefix}-{i}", start + i * 5 * M, supervisor, f"agent-{i % 3}", "call")
        for i in range(count)
    ]


def sample_population() -> list[ContactForReview]:
    return (
        contacts_for("sup-a", 23, MONDAY, "a48")
        + contacts_for("sup-a", 7, MONDAY + 7 * D, "a49")  # 2026-W49, still November
        + contacts_for("sup-b", 10, MONDAY, "b48")
        + contacts_for(None, 5, MONDAY, "n48")
        + contacts_for("sup-b", 11, datetime(2026, 12, 1, 9, tzinfo=SH), "b-dec")  # W49, December
    )


def by_group(plan: list[c.ReviewAssignment]) -> dict[tuple[str, str, str | None], int]:
    counts: dict[tuple[str, str, str | None], int] = {}
    for a in plan:
        key = (a.reviewer_kind.value, a.period, a.supervisor)
        counts[key] = counts.get(key, 0) + 1
    return counts


def test_sample_counts_per_supervisor_week_and_per_month() -> None:
    plan = plan_reviews(sample_population(), salt=SALT)
    assert by_group(plan) == {
        ("supervisor", "2026-W48", "sup-a"): 5,  # ceil(0.2 * 23)
        ("supervisor", "2026-W49", "sup-a"): 2,  # ceil(0.2 * 7)
        ("supervisor", "2026-W48", "sup-b"): 2,  # ceil(0.2 * 10)
        ("supervisor", "2026-W49", "sup-b"): 3,  # ceil(0.2 * 11)
        ("qa", "2026-11", None): 5,  # ceil(0.1 * 45)
        ("qa", "2026-12", None): 2,  # ceil(0.1 * 11)
    }
    ids = {x.contact_id for x in sample_population()}
    assert all(a.contact_id in ids for a in plan)
    supervised = [a for a in plan if a.reviewer_kind is ReviewerKind.SUPERVISOR]
    assert not any(a.contact_id.startswith("n48") for a in supervised)
    assert len({(a.reviewer_kind, a.contact_id) for a in plan}) == len(plan)


def test_sample_is_the_lowest_keyed_hashes() -> None:
    population = contacts_for("sup-a", 23, MONDAY, "a48")
    plan = plan_reviews(population, salt=SALT)
    chosen = {a.contact_id for a in plan if a.reviewer_kind is ReviewerKind.SUPERVISOR}

    def rank(contact_id: str) -> bytes:
        return hmac.new(SALT, b"supervisor\x00" + contact_id.encode(), hashlib.sha256).digest()

    expected = sorted((x.contact_id for x in population), key=rank)[:5]
    assert chosen == set(expected)

    # QA draws with its own key, independently of the supervisors' sample
    def qa_rank(contact_id: str) -> bytes:
        return hmac.new(SALT, b"qa\x00" + contact_id.encode(), hashlib.sha256).digest()

    qa_chosen = {a.contact_id for a in plan if a.reviewer_kind is ReviewerKind.QA}
    assert qa_chosen == set(sorted((x.contact_id for x in population), key=qa_rank)[:3])


@pytest.mark.parametrize(
    ("rate", "population", "expected"),
    [
        (0.07, 100, 7),
        (0.1, 30, 3),
        (0.2, 5, 1),
        (0.2, 6, 2),
        (0.2, 0, 0),
        (0.0, 50, 0),
        (1.0, 7, 7),
        (0.1, 1, 1),
    ],
)
def test_sample_size_is_an_exact_ceiling(rate: float, population: int, expected: int) -> None:
    assert sample_size(rate, population) == expected


def test_plan_is_deterministic_and_order_free() -> None:
    population = sample_population()
    plan = plan_reviews(population, salt=SALT)
    shuffled = population[:]
    random.Random(4).shuffle(shuffled)
    assert plan_reviews(shuffled, salt=SALT) == plan
    assert plan_reviews(iter(population), salt=SALT) == plan


def test_salt_changes_the_selection() -> None:
    population = contacts_for("sup-a", 200, MONDAY, "x")
    a = {x.contact_id for x in plan_reviews(population, salt=SALT)}
    b = {x.contact_id for x in plan_reviews(population, salt=SALT + b"!")}
    assert a != b


def test_adding_a_contact_keeps_earlier_choices() -> None:
    population = contacts_for("sup-a", 40, MONDAY, "a")
    before = {(x.reviewer_kind, x.contact_id) for x in plan_reviews(population, salt=SALT)}
    late = ContactForReview("a-late", MONDAY + 2 * D, "sup-a", "agent-1", "sms")
    after = {(x.reviewer_kind, x.contact_id) for x in plan_reviews([*population, late], salt=SALT)}
    # ceil(0.2 * 41) = 9 > 8 and ceil(0.1 * 41) = 5 > 4: both samples only grow
    assert before <= after
    assert len(after) == len(before) + 2


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(min_value=0, max_value=60),
    new_offset=st.integers(min_value=0, max_value=6 * 24 * 60),
    rate=st.sampled_from([0.05, 0.1, 0.2, 0.33, 0.5]),
)
def test_one_more_contact_moves_at_most_one_choice(size: int, new_offset: int, rate: float) -> None:
    policy = SamplingPolicy(supervisor_rate=rate, qa_rate=rate)
    population = contacts_for("sup-a", size, MONDAY, "p")
    extra = ContactForReview("p-new", MONDAY + new_offset * M, "sup-a", None, "call")
    before = {
        (x.reviewer_kind, x.contact_id) for x in plan_reviews(population, policy=policy, salt=SALT)
    }
    after = {
        (x.reviewer_kind, x.contact_id)
        for x in plan_reviews([*population, extra], policy=policy, salt=SALT)
    }
    for kind in ReviewerKind:
        lost = {cid for k, cid in before - after if k is kind}
        assert len(lost) <= 1


def test_rates_zero_and_one() -> None:
    population = sample_population()
    assert plan_reviews(population, policy=SamplingPolicy(0.0, 0.0), salt=SALT) == []
    everything = plan_reviews(population, policy=SamplingPolicy(1.0, 1.0), salt=SALT)
    supervised = {x.contact_id for x in population if x.supervisor is not None}
    assert {
        a.contact_id for a in everything if a.reviewer_kind is ReviewerKind.SUPERVISOR
    } == supervised
    assert {a.contact_id for a in everything if a.reviewer_kind is ReviewerKind.QA} == {
        x.contact_id for x in population
    }


def test_periods_are_cut_in_the_given_zone() -> None:
    sunday_evening_utc = datetime(2026, 11, 29, 17, 0, tzinfo=UTC)  # Monday 01:00 in Shanghai
    assert c.week_label(sunday_evening_utc) == "2026-W49"
    assert c.week_label(sunday_evening_utc, UTC) == "2026-W48"
    assert c.week_label(datetime(2027, 1, 1, 12, tzinfo=SH)) == "2026-W53"
    assert c.month_label(datetime(2026, 11, 30, 17, 0, tzinfo=UTC)) == "2026-12"
    assert c.month_label(datetime(2026, 11, 30, 17, 0, tzinfo=UTC), UTC) == "2026-11"
    contact = ContactForReview("z", sunday_evening_utc, "sup", None, "call")
    every = SamplingPolicy(1.0, 1.0)
    assert {a.period for a in plan_reviews([contact], policy=every, salt=SALT)} == {
        "2026-W49",
        "2026-11",
    }
    assert {a.period for a in plan_reviews([contact], policy=every, salt=SALT, zone=UTC)} == {
        "2026-W48",
        "2026-11",
    }


def test_sampling_input_checks() -> None:
    population = sample_population()
    with pytest.raises(ValueError, match="salt"):
        plan_reviews(population, salt=b"short")
    with pytest.raises(ValueError, match="twice"):
        plan_reviews([population[0], population[0]], salt=SALT)
    with pytest.raises(ValueError, match="timezone-aware"):
        ContactForReview("x", datetime(2026, 11, 23, 10), "s", None, "call")
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError):
            SamplingPolicy(supervisor_rate=bad)
    with pytest.raises(TypeError):
        SamplingPolicy(qa_rate=True)


def test_review_outcome_validation_and_evidence() -> None:
    at = datetime(2026, 11, 30, 15, 0, tzinfo=SH)
    ok = ReviewOutcome("a48-1", "sup-a", 92, True, (), at)
    assert ok.evidence() == {
        "contact_id": "a48-1",
        "reviewer": "sup-a",
        "score": 92,
        "passed": True,
        "findings": [],
        "reviewed_at": "2026-11-30T15:00:00+08:00",
    }
    failed = ReviewOutcome("a48-2", "qa-1", 40, False, ("identity not confirmed", "threat"), at)
    assert failed.evidence()["findings"] == ["identity not confirmed", "threat"]
    bad: list[tuple[dict[str, object], type[Exception]]] = [
        ({"score": 101}, ValueError),
        ({"score": -1}, ValueError),
        ({"score": True}, TypeError),
        ({"score": 50.5}, TypeError),
        ({"passed": False, "findings": ()}, ValueError),
        ({"findings": ["a list"]}, TypeError),
        ({"findings": ("",)}, ValueError),
        ({"reviewer": " "}, ValueError),
        ({"reviewed_at": datetime(2026, 11, 30, 15, 0)}, ValueError),
        ({"passed": 1}, TypeError),
    ]
    base: dict[str, object] = {
        "contact_id": "a48-1",
        "reviewer": "sup-a",
        "score": 80,
        "passed": True,
        "findings": (),
        "reviewed_at": at,
    }
    for change_, error in bad:
        with pytest.raises(error):
            ReviewOutcome(**{**base, **change_})  # type: ignore[arg-type]


def test_campaign_is_a_plain_value() -> None:
    found = find_campaigns(zh_campaign(5))[0]
    assert isinstance(found, Campaign)
    assert found == find_campaigns(zh_campaign(5))[0]
