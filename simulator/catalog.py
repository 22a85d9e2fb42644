"""The simulated shop's world: countries, products, traffic sources, campaigns, experiments.

Static data only; behaviour lives in :mod:`simulator.behaviour`. Probabilities are rough
but plausible shapes for a cross-border shop whose traffic is mostly from China.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Final


@dataclass(frozen=True, slots=True)
class Country:
    code: str
    weight: float
    currency: str
    # Minor units of this currency per CNY fen (prices are kept in CNY fen).
    minor_per_fen: float
    tax_rate: float
    payment_types: tuple[str, ...]
    # Mini programs exist only inside WeChat, which is used mostly in mainland China.
    mini_program_share: float = 0.0


COUNTRIES: Final = (
    Country("CN", 0.55, "CNY", 1.0, 0.0, ("alipay", "wechat_pay", "unionpay"), 0.35),
    Country("US", 0.12, "USD", 1 / 7.2, 0.08, ("card", "paypal", "apple_pay")),
    Country("DE", 0.05, "EUR", 1 / 7.8, 0.0, ("card", "paypal", "klarna")),
    Country("FR", 0.04, "EUR", 1 / 7.8, 0.0, ("card", "paypal")),
    Country("GB", 0.05, "GBP", 1 / 9.1, 0.0, ("card", "paypal", "apple_pay")),
    Country("JP", 0.06, "JPY", 0.2 / 0.96, 0.0, ("card", "konbini", "paypay")),
    Country("HK", 0.04, "HKD", 1 / 0.92, 0.0, ("card", "alipay", "wechat_pay"), 0.1),
    Country("SG", 0.03, "SGD", 1 / 5.3, 0.09, ("card", "grabpay")),
    Country("KR", 0.03, "KRW", 1.93, 0.0, ("card", "kakaopay")),
    Country("AU", 0.03, "AUD", 1 / 4.7, 0.1, ("card", "paypal", "afterpay")),
)


@dataclass(frozen=True, slots=True)
class Product:
    item_id: str
    name: str
    category: str
    brand: str
    price_fen: int
    variants: tuple[str, ...]


_CATEGORIES: Final = (
    ("Apparel/Jackets", 29_900, ("S", "M", "L", "XL")),
    ("Apparel/Sweaters", 19_900, ("S", "M", "L")),
    ("Shoes/Sneakers", 59_900, ("38", "40", "42", "44")),
    ("Beauty/Skincare", 25_900, ("30ml", "50ml")),
    ("Beauty/Makeup", 15_900, ("01", "02", "03")),
    ("Home/Kitchen", 39_900, ("red", "black")),
    ("Electronics/Audio", 89_900, ("black", "white")),
    ("Electronics/Accessories", 9_900, ("usb-c", "lightning")),
    ("Food/Tea", 12_800, ("100g", "250g")),
    ("Toys/Blocks", 34_900, ("standard",)),
)
_BRANDS: Final = ("Lumen", "Hexa", "Qingshan", "Northwind", "Sakura Lab", "Orbit", "Mori")


def _build_products() -> tuple[Product, ...]:
    # A fixed generator seed: the catalogue is part of the shop, not of the run.
    rng = random.Random("catalogue-v1")
    products = []
    for number in range(240):
        category, base_price, variants = _CATEGORIES[number % len(_CATEGORIES)]
        price = int(base_price * rng.uniform(0.5, 2.2)) // 100 * 100 + 99
        products.append(
            Product(
                item_id=f"SKU-{10_000 + number}",
                name=f"{category.split('/')[1]} #{number}",
                category=category,
                brand=rng.choice(_BRANDS),
                price_fen=price,
                variants=variants,
            )
        )
    return tuple(products)


PRODUCTS: Final = _build_products()

SEARCH_TERMS: Final = (
    "jacket",
    "sneakers",
    "skincare set",
    "lipstick",
    "tea gift box",
    "wireless earbuds",
    "双十一",
    "羽绒服",
    "口红",
    "蓝牙耳机",
    "sweater",
    "kitchen knife",
)


@dataclass(frozen=True, slots=True)
class Funnel:
    """Per-source step probabilities (multiplied with the base rates of behaviour.py)."""

    view: float = 1.0
    cart: float = 1.0
    checkout: float = 1.0
    complete: float = 1.0


@dataclass(frozen=True, slots=True)
class TrafficSource:
    """A combination of campaign parameters and referrer that a visit can arrive with."""

    name: str
    weight: float
    utm_source: str | None = None
    utm_medium: str | None = None
    utm_campaign: str | None = None
    utm_content: str | None = None
    utm_term: str | None = None
    referrer: str | None = None
    funnel: Funnel = field(default_factory=Funnel)
    # Share of visits landing straight on a product page (ads, KOL posts).
    deep_link: float = 0.1
    # Platform preferences: (web, app, mini_program) before country constraints.
    platforms: tuple[float, float, float] = (0.55, 0.35, 0.10)
    # Daily spend in CNY fen for paid sources (0 = organic / owned).
    daily_cost_fen: int = 0
    # Only returning visitors arrive this way (email, push, sms need a known user).
    returning_only: bool = False


_WECHAT_PLATFORMS: Final = (0.25, 0.05, 0.70)
_APP_HEAVY: Final = (0.30, 0.60, 0.10)

TRAFFIC_SOURCES: Final = (
    TrafficSource("direct", 0.12, funnel=Funnel(1.1, 1.1, 1.1, 1.05)),
    TrafficSource(
        "organic_baidu", 0.07, referrer="https://www.baidu.com/link?url=r8sK2", deep_link=0.3
    ),
    TrafficSource("organic_google", 0.05, referrer="https://www.google.com/", deep_link=0.3),
    TrafficSource("organic_bing", 0.01, referrer="https://www.bing.com/search?q=shop"),
    TrafficSource(
        "baidu_sem",
        0.05,
        "baidu",
        "cpc",
        "brand_search_cn",
        utm_term="品牌",
        funnel=Funnel(1.2, 1.15, 1.1, 1.0),
        deep_link=0.5,
        daily_cost_fen=800_000,
    ),
    TrafficSource(
        "google_ads",
        0.04,
        "google",
        "cpc",
        "shopping_intl",
        utm_term="sneakers",
        funnel=Funnel(1.2, 1.1, 1.05, 1.0),
        deep_link=0.7,
        daily_cost_fen=650_000,
    ),
    TrafficSource(
        "wechat_moments_ads",
        0.04,
        "wechat",
        "paid_social",
        "moments_double11",
        funnel=Funnel(0.9, 0.95, 0.95, 1.0),
        deep_link=0.6,
        platforms=_WECHAT_PLATFORMS,
        daily_cost_fen=900_000,
    ),
    TrafficSource(
        "wechat_article",
        0.04,
        referrer="https://mp.weixin.qq.com/s/Xk2f9",
        platforms=_WECHAT_PLATFORMS,
        deep_link=0.4,
    ),
    TrafficSource("weibo_organic", 0.03, referrer="https://weibo.com/u/shop", deep_link=0.2),
    TrafficSource(
        "weibo_ads",
        0.02,
        "weibo",
        "cpc",
        "fensitong_winter",
        funnel=Funnel(0.85, 0.9, 0.9, 1.0),
        deep_link=0.6,
        daily_cost_fen=300_000,
    ),
    TrafficSource(
        "douyin_organic",
        0.03,
        referrer="https://www.douyin.com/video/7301",
        platforms=_APP_HEAVY,
        funnel=Funnel(0.9, 0.9, 0.9, 1.0),
    ),
    TrafficSource(
        "douyin_ads",
        0.04,
        "douyin",
        "cpm",
        "oceanengine_feed",
        funnel=Funnel(0.85, 0.95, 0.9, 1.0),
        deep_link=0.8,
        platforms=_APP_HEAVY,
        daily_cost_fen=1_200_000,
    ),
    TrafficSource(
        "xiaohongshu_organic",
        0.03,
        referrer="https://www.xiaohongshu.com/explore/65a1",
        platforms=_APP_HEAVY,
        funnel=Funnel(1.0, 1.1, 1.0, 1.0),
        deep_link=0.5,
    ),
    TrafficSource(
        "xiaohongshu_ads",
        0.02,
        "xiaohongshu",
        "cpc",
        "notes_boost_beauty",
        funnel=Funnel(0.95, 1.1, 1.0, 1.0),
        deep_link=0.7,
        platforms=_APP_HEAVY,
        daily_cost_fen=400_000,
    ),
    # KOL partnerships: utm_medium=kol; the creator's handle travels in utm_content.
    TrafficSource(
        "kol_douyin_lily",
        0.025,
        "douyin",
        "kol",
        "kol_lily_winter",
        "lily_makeup",
        funnel=Funnel(1.0, 1.3, 1.05, 1.0),
        deep_link=0.9,
        platforms=_APP_HEAVY,
        daily_cost_fen=1_500_000,
    ),
    TrafficSource(
        "kol_xhs_mia",
        0.02,
        "xiaohongshu",
        "kol",
        "kol_mia_skincare",
        "mia_daily",
        funnel=Funnel(1.05, 1.35, 1.05, 1.0),
        deep_link=0.9,
        platforms=_APP_HEAVY,
        daily_cost_fen=800_000,
    ),
    TrafficSource(
        "kol_weibo_chen",
        0.01,
        "weibo",
        "kol",
        "kol_chen_tech",
        "chen_reviews",
        funnel=Funnel(1.0, 1.2, 1.0, 1.0),
        deep_link=0.9,
        daily_cost_fen=500_000,
    ),
    TrafficSource(
        "kol_bilibili_kai",
        0.01,
        "bilibili",
        "kol",
        "kol_kai_unboxing",
        "kai_unbox",
        funnel=Funnel(1.0, 1.2, 1.0, 1.0),
        deep_link=0.9,
        platforms=_APP_HEAVY,
        daily_cost_fen=400_000,
    ),
    # Ads bought inside marketplaces that send shoppers to the brand store.
    TrafficSource(
        "tmall_ads",
        0.02,
        "tmall",
        "marketplace",
        "tmall_zhitongche",
        funnel=Funnel(1.2, 1.2, 1.1, 1.0),
        deep_link=0.9,
        daily_cost_fen=600_000,
    ),
    TrafficSource(
        "jd_ads",
        0.015,
        "jd",
        "marketplace",
        "jd_kuaiche",
        funnel=Funnel(1.2, 1.15, 1.1, 1.0),
        deep_link=0.9,
        daily_cost_fen=450_000,
    ),
    TrafficSource(
        "amazon_ads",
        0.01,
        "amazon",
        "marketplace",
        "amazon_sponsored",
        funnel=Funnel(1.2, 1.15, 1.05, 1.0),
        deep_link=0.9,
        daily_cost_fen=350_000,
    ),
    TrafficSource(
        "newsletter",
        0.035,
        "newsletter",
        "email",
        "weekly_picks",
        funnel=Funnel(1.15, 1.2, 1.15, 1.05),
        returning_only=True,
    ),
    TrafficSource(
        "sms_reminder",
        0.01,
        "sms",
        "sms",
        "cart_reminder",
        funnel=Funnel(1.2, 1.3, 1.2, 1.0),
        returning_only=True,
        platforms=(0.6, 0.3, 0.1),
    ),
    TrafficSource(
        "app_push",
        0.02,
        "app",
        "push",
        "flash_sale",
        funnel=Funnel(1.1, 1.1, 1.0, 1.0),
        returning_only=True,
        platforms=(0.0, 1.0, 0.0),
    ),
    TrafficSource(
        "affiliate_smzdm",
        0.02,
        "smzdm",
        "affiliate",
        "deals_feed",
        funnel=Funnel(1.2, 1.2, 1.1, 1.0),
        deep_link=0.9,
        daily_cost_fen=200_000,
    ),
    TrafficSource(
        "display_retargeting",
        0.015,
        "baidu_union",
        "display",
        "retargeting_q4",
        funnel=Funnel(0.8, 0.9, 0.9, 1.0),
        daily_cost_fen=250_000,
    ),
    TrafficSource("referral_blog", 0.02, referrer="https://blog.gearnotes.example/best-2026"),
    TrafficSource(
        "zhihu_answer",
        0.01,
        referrer="https://www.zhihu.com/question/58211",
        deep_link=0.5,
    ),
    TrafficSource(
        "bilibili_video",
        0.01,
        referrer="https://www.bilibili.com/video/BV1x",
        platforms=_APP_HEAVY,
    ),
    # Tagged links nobody mapped: they must land in the catch-all channel.
    TrafficSource("untagged_partner", 0.005, "partner_x", "sponsorship_q4"),
)

# The campaign the campaign-launch scenario ramps up.
LAUNCH_SOURCE: Final = TrafficSource(
    "launch_xhs_winter",
    0.0,
    "xiaohongshu",
    "kol",
    "launch_winter_drop",
    "winter_drop_creators",
    funnel=Funnel(1.05, 1.4, 1.1, 1.0),
    deep_link=0.9,
    platforms=_APP_HEAVY,
    daily_cost_fen=3_000_000,
)

REGISTRATION_SOURCES: Final = tuple(s for s in TRAFFIC_SOURCES if not s.returning_only)
RETURNING_SOURCES: Final = tuple(s for s in TRAFFIC_SOURCES if s.returning_only)
SOURCE_BY_NAME: Final = {s.name: s for s in (*TRAFFIC_SOURCES, LAUNCH_SOURCE)}


@dataclass(frozen=True, slots=True)
class Experiment:
    name: str
    variants: tuple[str, str]
    # What the effect multiplies: "complete" = P(purchase | begin_checkout).
    metric: str
    description: str


CHECKOUT_BUTTON: Final = Experiment(
    "checkout_button",
    ("A", "B"),
    "complete",
    "B (one-tap pay button) lifts P(purchase | begin_checkout) by checkout_button_lift",
)
FREE_SHIPPING_BANNER: Final = Experiment(
    "free_shipping_banner",
    ("control", "treatment"),
    "cart",
    "A/A-style null experiment: no effect on any step",
)
EXPERIMENTS: Final = (CHECKOUT_BUTTON, FREE_SHIPPING_BANNER)

COUPONS: Final = {"first": "WELCOME10", "seasonal": "DOUBLE11", "item": "SKU15OFF"}
REFUND_REASONS: Final = ("damaged", "wrong_size", "not_as_described", "changed_mind")
PAYMENT_ERRORS: Final = ("card_declined", "insufficient_funds", "gateway_timeout", "3ds_failed")
