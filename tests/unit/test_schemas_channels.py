"""Channel grouping: the shipped rules on a table of visits, and rule-file errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from funnel.errors import ConfigError
from schemas.channels import CACHE_LIMIT, CHANNELS, ChannelRules
from schemas.cli import app
from schemas.errors import ChannelRulesError

RULES = ChannelRules.load()

# (utm_source, utm_medium, referrer, expected channel)
TABLE: list[tuple[str | None, str | None, str | None, str]] = [
    # direct
    (None, None, None, "direct"),
    ("", "", "", "direct"),
    ("(direct)", "(none)", None, "direct"),
    ("(direct)", None, None, "direct"),
    # search engines, paid and organic, Chinese and global
    ("baidu", "cpc", None, "paid_search"),
    ("Baidu", "CPC", None, "paid_search"),
    ("  BAIDU ", " Cpc ", None, "paid_search"),
    ("百度", "cpc", None, "paid_search"),
    ("sogou", "ppc", None, "paid_search"),
    ("360", "paid_search", None, "paid_search"),
    ("shenma", "cpc", None, "paid_search"),
    ("google", "cpc", None, "paid_search"),
    ("bing", "retargeting", None, "paid_search"),
    ("baidu", "organic", None, "organic_search"),
    ("google", "(not set)", None, "organic_search"),
    ("newengine", "organic", None, "organic_search"),
    (None, None, "https://www.baidu.com/s?wd=乌龙茶", "organic_search"),
    (None, None, "https://m.sogou.com/web?query=x", "organic_search"),
    (None, None, "https://www.so.com/s?q=x", "organic_search"),
    (None, None, "https://m.sm.cn/s?q=x", "organic_search"),
    (None, None, "https://www.google.co.jp/", "organic_search"),
    (None, None, "HTTPS://WWW.GOOGLE.COM/", "organic_search"),
    (None, None, "www.bing.com/search?q=x", "organic_search"),
    # social platforms, paid and organic
    ("wechat", "cpc", None, "paid_social"),
    ("douyin", "paid_social", None, "paid_social"),
    ("Xiaohongshu", "CPM", None, "paid_social"),
    ("facebook", "paid", None, "paid_social"),
    ("weibo", "social", None, "organic_social"),
    ("bilibili", "(not set)", None, "organic_social"),
    ("unknown-forum", "social-media", None, "organic_social"),
    ("some-site", "video", None, "organic_social"),
    ("小红书", "social", None, "organic_social"),
    (None, None, "https://mp.weixin.qq.com/s/abc", "organic_social"),
    (None, None, "https://weibo.com/123", "organic_social"),
    (None, None, "https://www.douyin.com/video/1", "organic_social"),
    (None, None, "https://www.xiaohongshu.com/explore/1", "organic_social"),
    (None, None, "https://www.bilibili.com/video/BV1", "organic_social"),
    (None, None, "https://v.kuaishou.com/abc", "organic_social"),
    (None, None, "https://www.zhihu.com/question/1", "organic_social"),
    (None, None, "https://t.co/abc", "organic_social"),
    # KOL wins over the platform
    ("xiaohongshu", "kol", None, "kol"),
    ("douyin", "KOL_live", None, "kol"),
    ("bilibili", "influencer", None, "kol"),
    ("weibo", "koc", None, "kol"),
    (None, "creator", None, "kol"),
    # marketplaces
    ("taobao", "cpc", None, "marketplace_ads"),
    ("Tmall", "paid", None, "marketplace_ads"),
    ("jd", "cpc", None, "marketplace_ads"),
    ("pinduoduo", "cpm", None, "marketplace_ads"),
    ("京东", "cpc", None, "marketplace_ads"),
    ("alimama", "ztc", None, "marketplace_ads"),
    ("anything", "JZT", None, "marketplace_ads"),
    (None, None, "https://item.taobao.com/item.htm?id=1", "referral"),
    (None, None, "https://item.jd.com/1.html", "referral"),
    # display, email, affiliates, referral
    ("adnetwork", "display", None, "display"),
    ("adnetwork", "banner", None, "display"),
    ("newsletter", "email", None, "email"),
    ("EDM", None, None, "email"),
    ("crm", "e-mail", None, "email"),
    (None, None, "https://mail.qq.com/cgi-bin/frame_html", "email"),
    (None, None, "https://mail.google.com/mail/u/0/", "email"),
    ("partner", "affiliate", None, "affiliates"),
    ("taobaoke", "cps", None, "affiliates"),
    ("blog", "referral", None, "referral"),
    (None, None, "https://blog.example.org/post", "referral"),
    # utm wins over referrer
    ("newsletter", "email", "https://www.baidu.com/", "email"),
    # unknown values
    ("foo", "bar", None, "unassigned"),
    ("foo", None, None, "unassigned"),
    (None, "qr_code", None, "unassigned"),
    ("unknownsite", "cpc", None, "unassigned"),
    ("sms", "sms", None, "unassigned"),
    (None, None, "not a url at all", "referral"),
    (None, None, "https://[::1", "direct"),
]


@pytest.mark.parametrize(("source", "medium", "referrer", "expected"), TABLE)
def test_channel_table(
    source: str | None, medium: str | None, referrer: str | None, expected: str
) -> None:
    assert RULES.classify(source, medium, referrer) == expected


def test_table_is_big_and_covers_every_channel() -> None:
    assert len(TABLE) >= 40
    assert {row[3] for row in TABLE} == set(CHANNELS)


def test_internal_hosts_are_not_referrals(tmp_path: Path) -> None:
    shipped = (Path(__file__).parents[2] / "schemas" / "channels.yaml").read_text()
    path = tmp_path / "channels.yaml"
    path.write_text(shipped.replace("internal_hosts: []", "internal_hosts: [shop.example.com]"))
    rules = ChannelRules.load(path)
    assert rules.classify(None, None, "https://m.shop.example.com/cart") == "direct"
    assert rules.classify(None, None, "https://blog.example.com/") == "referral"


def test_classify_is_memoised_and_bounded() -> None:
    rules = ChannelRules.load()
    assert rules.classify("baidu", "cpc", None) == "paid_search"
    assert rules._cache[("baidu", "cpc", None)] == "paid_search"
    for n in range(CACHE_LIMIT + 10):
        rules.classify(f"s{n}", "cpc", None)
    assert len(rules._cache) <= CACHE_LIMIT


def write_rules(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "channels.yaml"
    path.write_text(text)
    return path


BAD_RULES: list[tuple[str, str]] = [
    ("rules:\n  - channel: direct\n     source_is: [a]\n", r"channels\.yaml:3: invalid YAML"),
    ("rules:\n  - channel: tv\n    medium_is: [tv]\n", r"channels\.yaml:2: channel 'tv'"),
    (
        "rules:\n  - channel: email\n    medium_matches: '(['\n",
        r":2: medium_matches.*not a valid regex",
    ),
    ("rules:\n  - channel: email\n    source_in: [nope]\n", r":2: unknown group 'nope'"),
    (
        "rules:\n  - channel: email\n    medium_like: x\n",
        r":2: unknown condition \['medium_like'\]",
    ),
    ("rules:\n  - channel: email\n", r":2: rule for email has no conditions"),
    ("rules: []\n", "non-empty list"),
    (
        "rules:\n  - channel: email\n    medium_is: [a]\n    medium_is: [b]\n",
        r":4: invalid YAML \(duplicate key",
    ),
    ("rulez: []\n", "unknown top-level keys"),
    ("- just a list\n", "expected a mapping"),
]


@pytest.mark.parametrize(("text", "message"), BAD_RULES)
def test_bad_rules_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = write_rules(tmp_path, text)
    with pytest.raises(ChannelRulesError, match=message) as caught:
        ChannelRules.load(path)
    assert isinstance(caught.value, ConfigError)
    assert str(path) in str(caught.value)


def test_missing_rules_file(tmp_path: Path) -> None:
    with pytest.raises(ChannelRulesError, match="cannot read channel rules"):
        ChannelRules.load(tmp_path / "absent.yaml")


def test_cli_channel_command() -> None:
    result = CliRunner().invoke(app, ["channel", "--source", "Douyin", "--medium", "kol"])
    assert (result.exit_code, result.output.strip()) == (0, "kol")
    result = CliRunner().invoke(app, ["channel", "--referrer", "https://www.baidu.com/"])
    assert result.output.strip() == "organic_search"
