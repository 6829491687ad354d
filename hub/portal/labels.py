"""Page labels in Chinese and English. The member picks with ?lang=; the choice is kept in a cookie."""

from __future__ import annotations

from collections.abc import Callable

from hub.auth.scopes import PARTNER_SCOPES

LANGUAGES = ("zh", "en")

LABELS: dict[str, dict[str, str]] = {
    "title": {"zh": "会员中心", "en": "Member portal"},
    "sign_in": {"zh": "登录", "en": "Sign in"},
    "sign_out": {"zh": "退出", "en": "Sign out"},
    "phone": {"zh": "手机号", "en": "Phone number"},
    "send_code": {"zh": "发送验证码", "en": "Send code"},
    "code": {"zh": "验证码", "en": "One-time code"},
    "code_sent": {
        "zh": "如果该号码是会员，验证码已发送。",
        "en": "If this number belongs to a member, a code is on its way.",
    },
    "sms_failed": {"zh": "验证码发送失败，请稍后再试。", "en": "The code could not be sent; try again in a moment."},
    "invalid_code": {"zh": "验证码错误或已过期。", "en": "The code is wrong or has expired."},
    "rate_limited": {"zh": "请求过于频繁，请15分钟后再试。", "en": "Too many attempts; try again in 15 minutes."},
    "invalid_phone": {"zh": "手机号无效。", "en": "That is not a valid phone number."},
    "home": {"zh": "首页", "en": "Home"},
    "points": {"zh": "积分", "en": "Points"},
    "available": {"zh": "可用", "en": "Available"},
    "pending": {"zh": "待生效", "en": "Pending"},
    "held": {"zh": "冻结", "en": "Held"},
    "lifetime": {"zh": "累计获得", "en": "Earned in total"},
    "tier": {"zh": "会员等级", "en": "Tier"},
    "profiling": {"zh": "商家对您的到店分析", "en": "How partners' analytics see you"},
    "profiling_explained": {
        "zh": "您同意了“读取统计分析”的商家，会根据您在该商家的购买记录估计您仍常来光顾的可能性，并把会员分组"
        "（如“忠实”“可能流失”），用于回访或优惠。撤回该项同意后，分析结果会立即删除。",
        "en": "A partner you allowed analytics estimates, from your purchases there, how likely you are to still be "
        "its customer, and places you in a group (such as loyal or at risk) to decide on follow-ups or offers. "
        "Withdraw that permission and the results are deleted at once.",
    },
    "p_alive": {"zh": "仍常光顾的可能性", "en": "Likelihood you still shop there"},
    "segment": {"zh": "分组", "en": "Group"},
    "scored_at": {"zh": "分析时间", "en": "Analysed on"},
    "champions": {"zh": "核心会员", "en": "Champions"},
    "loyal": {"zh": "忠实会员", "en": "Loyal"},
    "cannot_lose": {"zh": "重要挽留", "en": "Cannot lose"},
    "at_risk": {"zh": "可能流失", "en": "At risk"},
    "new": {"zh": "新会员", "en": "New"},
    "promising": {"zh": "潜力会员", "en": "Promising"},
    "needs_attention": {"zh": "需要关注", "en": "Needs attention"},
    "hibernating": {"zh": "沉睡", "en": "Hibernating"},
    "lost": {"zh": "已流失", "en": "Lost"},
    "discount": {"zh": "折扣", "en": "Discount (price ×)"},
    "points_multiplier": {"zh": "积分倍数", "en": "Points"},
    "birthday_gift": {"zh": "生日礼", "en": "birthday gift"},
    "free_health_check": {"zh": "免费体检", "en": "free health check"},
    "priority_purchase": {"zh": "优先购买", "en": "priority purchase"},
    "growth": {"zh": "成长值（近期消费）", "en": "Growth value (qualifying spend in the window)"},
    "to_next": {"zh": "距离", "en": "to reach"},
    "to_keep": {"zh": "保级还需", "en": "to keep this level"},
    "partners": {"zh": "合作方与授权", "en": "Partners and consents"},
    "partner": {"zh": "合作方", "en": "Partner"},
    "status": {"zh": "状态", "en": "Status"},
    "permissions": {"zh": "授权内容", "en": "Permissions"},
    "purposes": {"zh": "用途", "en": "Purposes"},
    "expires": {"zh": "到期", "en": "Expires"},
    "never": {"zh": "不过期", "en": "never"},
    "revoke": {"zh": "撤回授权", "en": "Revoke"},
    "narrow": {"zh": "只保留勾选项", "en": "Keep only the ticked"},
    "requests": {"zh": "待处理的授权请求", "en": "Consent requests"},
    "no_requests": {"zh": "没有待处理的请求。", "en": "No requests waiting."},
    "approve": {"zh": "同意", "en": "Approve"},
    "reject": {"zh": "拒绝", "en": "Reject"},
    "access_log": {"zh": "访问记录", "en": "Access log"},
    "access_log_intro": {
        "zh": "谁在什么时候、依据哪项授权读取了您的哪些数据。",
        "en": "Who read what, when, under which consent.",
    },
    "when": {"zh": "时间", "en": "When"},
    "consent": {"zh": "授权编号", "en": "Consent"},
    "data": {"zh": "数据", "en": "Data"},
    "no_access": {"zh": "还没有访问记录。", "en": "No one has read your data yet."},
    "export": {"zh": "导出我的数据", "en": "Export my data"},
    "export_intro": {
        "zh": "下载您在本平台的全部数据（JSON 格式）。",
        "en": "Download everything the hub holds about you as one JSON file.",
    },
    "erase": {"zh": "注销账户", "en": "Erase my account"},
    "erase_intro": {
        "zh": "删除您的姓名、手机号和生日，撤回所有授权，合作方将无法再访问您的数据。"
        "积分流水金额保留用于结算。此操作不可撤销。",
        "en": "Removes your name, phone and birthday, withdraws every consent and cuts off every partner. Points "
        "amounts stay for settlement between partners. This cannot be undone.",
    },
    "erase_confirm": {"zh": "我确认注销", "en": "I understand, erase my account"},
    "erased": {"zh": "您的账户已注销。", "en": "Your account has been erased."},
    "authorize_title": {"zh": "授权请求", "en": "Authorisation request"},
    "authorize_intro": {
        "zh": "以下应用请求代表您访问数据。取消勾选您不愿分享的内容。",
        "en": "This app asks to act for you. Untick anything you do not want to share.",
    },
    "allow": {"zh": "允许", "en": "Allow"},
    "deny": {"zh": "拒绝", "en": "Deny"},
    "error": {"zh": "出错了", "en": "Something went wrong"},
    "saved": {"zh": "已保存。", "en": "Saved."},
    "how": {"zh": "方式", "en": "How"},
    "read": {"zh": "查询", "en": "read through the API"},
    "webhook": {"zh": "推送通知", "en": "sent by webhook:"},
    "claims": {"zh": "待确认的会员关联", "en": "Memberships waiting for you to link"},
    "claim_intro": {
        "zh": "以下合作方用您的手机号登记了会员。若是您本人，关联后积分、消费和等级将合并到您的账户；否则请拒绝。",
        "en": "These partners enrolled someone under your phone number. If it was you, linking moves its points, "
        "purchases and tier growth into your membership; if not, refuse it.",
    },
    "enrolled_on": {"zh": "登记于", "en": "enrolled on"},
    "link": {"zh": "关联到我的账户", "en": "Link to my membership"},
    "not_me": {"zh": "不是我", "en": "This was not me"},
    "merges": {"zh": "已合并的会员记录", "en": "Records merged into yours"},
    "merged_by": {"zh": "方式", "en": "how"},
    "sms_code": {"zh": "短信验证码", "en": "code sent to the phone"},
    "portal": {"zh": "会员中心确认", "en": "approved in the portal"},
    "merge_other": {"zh": "合并我的另一个会员记录", "en": "Merge another record of mine"},
    "merge_intro": {
        "zh": "如果您用另一个手机号注册过，输入该号码，我们会向它发送验证码，确认后该记录将合并到本账户。",
        "en": "If you have a membership under another phone number, enter it: a code goes to that phone, and once "
        "you enter it that record is merged into this one.",
    },
    "merged": {"zh": "记录已合并。", "en": "The records were merged."},
    "locked": {
        "zh": "有人多次输入错误的验证码，您的手机号的验证码曾被锁定一小时。若不是您本人，请留意。",
        "en": "Someone entered wrong codes for your phone number many times, so its codes were locked for an "
        "hour. If that was not you, take care.",
    },
    "phone_locked": {
        "zh": "错误次数过多，该号码的验证码已锁定一小时。",
        "en": "Too many wrong codes: codes for this number are locked for an hour.",
    },
    "AUTHORISED": {"zh": "已授权", "en": "Authorised"},
    "REVOKED": {"zh": "已撤回", "en": "Revoked"},
    "EXPIRED": {"zh": "已过期", "en": "Expired"},
    "REJECTED": {"zh": "已拒绝", "en": "Rejected"},
    "AWAITING_AUTHORISATION": {"zh": "待授权", "en": "Awaiting your decision"},
    "rewards": {"zh": "积分兑换", "en": "Rewards"},
    "rewards_intro": {
        "zh": "用积分兑换礼品、优惠券和服务。兑换后积分会冻结，凭兑换码在门店使用；未使用的兑换码到期自动退回积分。",
        "en": "Swap points for gifts, coupons and services. Claiming holds the points; show the code at the till. "
        "A code not used by its date expires and the points come back.",
    },
    "points_cost": {"zh": "所需积分", "en": "Points"},
    "worth": {"zh": "价值", "en": "Worth"},
    "left": {"zh": "剩余", "en": "Left"},
    "unlimited": {"zh": "不限量", "en": "unlimited"},
    "claim_reward": {"zh": "兑换", "en": "Claim"},
    "claimed": {"zh": "兑换成功，兑换码见下方。", "en": "Claimed: your code is below."},
    "my_claims": {"zh": "我的兑换码", "en": "My codes and claims"},
    "no_claims": {"zh": "还没有兑换记录。", "en": "You have not claimed anything yet."},
    "no_rewards": {"zh": "目前没有可兑换的奖励。", "en": "No rewards are on offer right now."},
    "redeem_code": {"zh": "兑换码", "en": "Code"},
    "valid_until": {"zh": "有效期至", "en": "Valid until"},
    "give_back": {"zh": "取消兑换（退回积分）", "en": "Give it back (points return)"},
    "GIFT": {"zh": "礼品", "en": "Gift"},
    "COUPON": {"zh": "优惠券", "en": "Coupon"},
    "SERVICE": {"zh": "服务", "en": "Service"},
    "TIER_TOO_LOW": {"zh": "您的等级暂不可兑换", "en": "Not open to your tier"},
    "NOT_YET_OPEN": {"zh": "尚未开放，开放时间", "en": "Opens for your tier at"},
    "OUT_OF_STOCK": {"zh": "已兑完", "en": "Out of stock"},
    "MEMBER_LIMIT_REACHED": {"zh": "已达兑换上限", "en": "You have claimed as many as allowed"},
    "WINDOW_CLOSED": {"zh": "兑换已结束", "en": "No longer on offer"},
    "INSUFFICIENT_POINTS": {"zh": "积分不足", "en": "Not enough points"},
    "RESERVED": {"zh": "已预留", "en": "Reserved"},
    "ISSUED": {"zh": "可使用", "en": "Ready to use"},
    "REDEEMED": {"zh": "已使用", "en": "Used"},
    "VOIDED": {"zh": "已取消", "en": "Given back"},
    "REVERSED": {"zh": "已退回", "en": "Reversed (order refunded)"},
}

PERMISSIONS_ZH: dict[str, str] = {
    "member:read": "读取会员资料（姓名、生日）",
    "member:enroll": "登记会员",
    "points:read": "查看积分余额与明细",
    "points:earn": "发放积分",
    "points:grant": "发放健康奖励积分",
    "points:redeem": "冻结与使用积分",
    "points:reverse": "冲正积分",
    "purchases:write": "记录购买与退货",
    "purchases:read": "读取购买汇总（健康相关）",
    "activity:write": "记录健康活动（健康相关）",
    "consent:read": "查看授权",
    "consent:request": "发起授权请求",
    "analytics:read": "读取统计分析",
    "settlement:read": "读取结算单",
    "webhooks:manage": "管理回调",
}


def pick(lang: str | None) -> str:
    return lang if lang in LANGUAGES else "zh"


def translator(lang: str) -> Callable[[str], str]:
    def t(key: str) -> str:
        return LABELS.get(key, {}).get(lang, key)

    return t


def permission_label(permission: str, lang: str) -> str:
    if lang == "zh":
        return PERMISSIONS_ZH.get(permission, permission)
    return PARTNER_SCOPES.get(permission, permission)
