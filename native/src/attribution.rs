//! Multi-touch attribution of an order to the visitor's sessions: the Rust twin of
//! `streams/attribution.py` (docs/semantics.md 10), plus the attribution part of
//! `streams/visitor.py`'s contributions (`_attribution_contributions`).
//!
//! Every function gives exactly what the Python one gives (tests/native/test_attribution.py).
//! Where Python would raise, or return an integer that does not fit an i64 (it has big
//! integers; only for inputs the core never produces), the Rust returns an
//! [`AttributionError`] saying which.
//!
//! `source_of` reads `urllib.parse.urlsplit(referrer).hostname`: [`urlsplit`] ports the
//! part of CPython 3.11.7's urlsplit that decides the scheme, the netloc and whether it
//! raises (C0/space lstrip, tab/CR/LF removal, bracketed IPv6/IPvFuture hosts as
//! `ipaddress` parses them, the NFKC netloc check), and [`hostname`] the `.hostname`
//! property, with `str.lower()` over Python 3.11's Unicode 14 database (tables at the end
//! of the file).

use crate::fxhash::FxHashMap as HashMap;
use std::borrow::{Borrow, Cow};
use std::cmp::Ordering;

use crate::event::{Event, Stream};
use crate::json::{Json, JsonError, JsonResult};
use crate::state::{self, decode_touch, Touch, VisitorState};

pub const SHARE_UNIT: i64 = 1_000_000;
pub const MODELS: [&str; 6] = [
    "first_touch",
    "last_touch",
    "last_non_direct",
    "linear",
    "position_based",
    "time_decay",
];
pub const DIRECT: &str = "direct";
pub const NO_TOUCHPOINT: &str = "(none)";
pub const KOL_CHANNEL: &str = "kol";
/// `_DECAY_SCALE = 2**32`, as the float Python multiplies by.
pub const DECAY_SCALE: f64 = 4_294_967_296.0;
/// The KPI finality group (`streams.outputs.family.KPI_THRESHOLD`): the key of the
/// checkpoint thresholds the attribution rows are final with.
pub const KPI_THRESHOLD: &str = "kpi";

/// Why a function has no i64 answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttributionError {
    /// The Python function raises (ValueError, ZeroDivisionError, OverflowError).
    Raises(String),
    /// The Python function returns an integer outside the i64 range.
    OutOfRange(String),
}

impl std::fmt::Display for AttributionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AttributionError::Raises(why) => write!(f, "raises: {}", why),
            AttributionError::OutOfRange(what) => write!(f, "out of range: {}", what),
        }
    }
}

fn raises<T>(why: impl Into<String>) -> Result<T, AttributionError> {
    Err(AttributionError::Raises(why.into()))
}

fn out_of_range<T>(what: &str) -> Result<T, AttributionError> {
    Err(AttributionError::OutOfRange(what.to_owned()))
}

/// What a touchpoint is credited as (one attribution row per order, model and key).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TouchKey {
    pub channel: String,
    pub source: String,
    pub medium: String,
    pub campaign: String,
    pub kol: String,
}

/// `Touch.key`.
pub fn touch_key(touch: &Touch) -> TouchKey {
    TouchKey {
        channel: touch.channel.clone(),
        source: touch.source.clone(),
        medium: touch.medium.clone(),
        campaign: touch.campaign.clone(),
        kol: touch.kol.clone(),
    }
}

/// Python's order of `Touch` tuples: field by field, strings by code point.
pub fn touch_cmp(a: &Touch, b: &Touch) -> Ordering {
    a.t.cmp(&b.t)
        .then_with(|| a.session_id.cmp(&b.session_id))
        .then_with(|| a.event_id.cmp(&b.event_id))
        .then_with(|| a.channel.cmp(&b.channel))
        .then_with(|| a.source.cmp(&b.source))
        .then_with(|| a.medium.cmp(&b.medium))
        .then_with(|| a.campaign.cmp(&b.campaign))
        .then_with(|| a.kol.cmp(&b.kol))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttributionRules {
    pub lookback_ms: i64,
    pub half_life_ms: i64,
    pub max_touches: i64,
}

impl Default for AttributionRules {
    fn default() -> Self {
        AttributionRules {
            lookback_ms: 30 * 86_400_000,
            half_life_ms: 7 * 86_400_000,
            max_touches: 50,
        }
    }
}

impl AttributionRules {
    /// Touchpoints a visitor keeps: an order's own plus room for sessions after it while
    /// its window is not final.
    pub fn kept_touches(&self) -> i128 {
        2 * self.max_touches as i128
    }

    /// `AttributionRules(**rules)`: an object with any of lookback_ms, half_life_ms and
    /// max_touches (integers; the others keep their defaults), as
    /// `Settings.attribution_ms()` gives them.
    pub fn from_json(value: &Json) -> JsonResult<AttributionRules> {
        let mut rules = AttributionRules::default();
        for (name, v) in value.object("the attribution rules")? {
            match name.as_str() {
                "lookback_ms" => rules.lookback_ms = v.int("lookback_ms")?,
                "half_life_ms" => rules.half_life_ms = v.int("half_life_ms")?,
                "max_touches" => rules.max_touches = v.int("max_touches")?,
                other => {
                    return Err(JsonError(format!(
                        "unknown attribution rule {:?}; use lookback_ms, half_life_ms, max_touches",
                        other
                    )))
                }
            }
        }
        Ok(rules)
    }

    pub fn to_json(&self) -> Json {
        Json::Object(vec![
            ("lookback_ms".into(), Json::Int(self.lookback_ms)),
            ("half_life_ms".into(), Json::Int(self.half_life_ms)),
            ("max_touches".into(), Json::Int(self.max_touches)),
        ])
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Model {
    FirstTouch,
    LastTouch,
    LastNonDirect,
    Linear,
    PositionBased,
    TimeDecay,
}

impl Model {
    /// Every model, in `MODELS` order.
    pub const ALL: [Model; 6] = [
        Model::FirstTouch,
        Model::LastTouch,
        Model::LastNonDirect,
        Model::Linear,
        Model::PositionBased,
        Model::TimeDecay,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Model::FirstTouch => MODELS[0],
            Model::LastTouch => MODELS[1],
            Model::LastNonDirect => MODELS[2],
            Model::Linear => MODELS[3],
            Model::PositionBased => MODELS[4],
            Model::TimeDecay => MODELS[5],
        }
    }

    /// The model named `name`; Python's ValueError for any other name.
    pub fn from_name(name: &str) -> Result<Model, AttributionError> {
        match Model::ALL.iter().find(|m| m.name() == name) {
            Some(model) => Ok(*model),
            None => raises(format!(
                "unknown attribution model {:?}; use one of {}",
                name,
                MODELS.join(", ")
            )),
        }
    }
}

// -- touchpoints of events ---------------------------------------------------------------

fn truthy(value: &Option<String>) -> Option<&str> {
    match value {
        Some(s) if !s.is_empty() => Some(s),
        _ => None,
    }
}

/// `source_of(event)`: utm_source, else the referrer's host, else ''.
pub fn source_of(event: &Event) -> String {
    source_of_fields(event.utm_source.as_deref(), event.referrer.as_deref())
}

/// `source_of` over the two fields it reads.
pub fn source_of_fields(utm_source: Option<&str>, referrer: Option<&str>) -> String {
    if let Some(source) = utm_source.filter(|s| !s.is_empty()) {
        return source.to_owned();
    }
    if let Some(referrer) = referrer.filter(|s| !s.is_empty()) {
        // An unparsable referrer names no host.
        return match urlsplit(referrer) {
            Ok(split) => hostname(&split.netloc).unwrap_or_default(),
            Err(_) => String::new(),
        };
    }
    String::new()
}

/// `touch_of(event, channel, campaign)`.
pub fn touch_of(event: &Event, channel: &str, campaign: &str) -> Touch {
    Touch {
        t: event.event_time_ms,
        session_id: event.session_id.clone(),
        event_id: event.event_id.clone(),
        channel: channel.to_owned(),
        source: source_of(event),
        medium: truthy(&event.utm_medium).unwrap_or("").to_owned(),
        campaign: campaign.to_owned(),
        kol: if channel == KOL_CHANNEL {
            truthy(&event.utm_content).unwrap_or("").to_owned()
        } else {
            String::new()
        },
    }
}

// -- touchpoints ----------------------------------------------------------------------------

/// `bisect.bisect_right(touches, candidate)`, the same probes as Python's (so the same
/// answer on any list, sorted or not).
fn bisect_right(touches: &[Touch], candidate: &Touch) -> usize {
    let (mut lo, mut hi) = (0, touches.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        if touch_cmp(candidate, &touches[mid]) == Ordering::Less {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

/// Keep `candidate` if it is its session's earliest counted event so far.
pub fn record_touch(touches: &mut Vec<Touch>, candidate: Touch, rules: &AttributionRules) {
    if let Some(index) = touches
        .iter()
        .position(|t| t.session_id == candidate.session_id)
    {
        let touch = &touches[index];
        if (candidate.t, &candidate.event_id) >= (touch.t, &touch.event_id) {
            return;
        }
        touches.remove(index);
    }
    let at = bisect_right(touches, &candidate);
    touches.insert(at, candidate);
    let kept = rules.kept_touches();
    let len = touches.len() as i128;
    if len > kept {
        let drop = (len - kept).min(len) as usize;
        touches.drain(..drop);
    }
}

/// Drop touchpoints no order at or after `oldest_order_t` can use.
pub fn prune_touches(touches: &mut Vec<Touch>, oldest_order_t: i64, rules: &AttributionRules) {
    let horizon = oldest_order_t as i128 - rules.lookback_ms as i128;
    let mut keep = 0;
    while keep < touches.len() && (touches[keep].t as i128) < horizon {
        keep += 1;
    }
    if keep > 0 {
        touches.drain(..keep);
    }
}

/// The touchpoint an order with none inside its lookback is credited to.
pub fn no_touchpoint(order_t: i64) -> Touch {
    Touch {
        t: order_t,
        session_id: String::new(),
        event_id: String::new(),
        channel: NO_TOUCHPOINT.to_owned(),
        source: String::new(),
        medium: String::new(),
        campaign: String::new(),
        kol: String::new(),
    }
}

/// The touchpoints of an order at `order_t`, oldest first; with none inside the lookback,
/// one credited to `(none)`.
pub fn order_touches<'a>(
    touches: &'a [Touch],
    order_t: i64,
    rules: &AttributionRules,
) -> Vec<Cow<'a, Touch>> {
    let low = order_t as i128 - rules.lookback_ms as i128;
    let inside: Vec<&Touch> = touches
        .iter()
        .filter(|touch| low <= touch.t as i128 && touch.t <= order_t)
        .collect();
    if inside.is_empty() {
        return vec![Cow::Owned(no_touchpoint(order_t))];
    }
    // inside[-max_touches:]
    let len = inside.len() as i128;
    let m = rules.max_touches as i128;
    let start = if m > 0 {
        (len - m).max(0)
    } else {
        (-m).min(len) // -0 is 0: everything; a negative one skips from the front
    };
    inside[start as usize..]
        .iter()
        .map(|t| Cow::Borrowed(*t))
        .collect()
}

// -- weights and shares ---------------------------------------------------------------------

/// `a / b` of Python ints (|a| < 2**66, b != 0): the float nearest the exact quotient,
/// ties to even, as Python's int true division gives it.
fn int_true_div(a: i128, b: i64) -> f64 {
    let negative = (a < 0) != (b < 0);
    let n = a.unsigned_abs();
    let d = (b as i128).unsigned_abs();
    let signed = |x: f64| if negative { -x } else { x };
    if n == 0 {
        return signed(0.0);
    }
    let bits = |x: u128| 128 - x.leading_zeros() as i32;
    // Scale so the quotient has 55 or 56 bits: q = floor(n * 2**k / d).
    let k = 55 - (bits(n) - bits(d));
    let (num, den) = if k >= 0 { (n << k, d) } else { (n, d << (-k)) };
    let q = num / den;
    let sticky = num % den != 0;
    let drop = bits(q) - 53;
    let mut mantissa = q >> drop;
    let rest = q & ((1u128 << drop) - 1);
    let half = 1u128 << (drop - 1);
    if rest > half || (rest == half && (sticky || mantissa & 1 == 1)) {
        mantissa += 1;
    }
    // value = mantissa * 2**(drop - k); the exponent keeps it a normal float.
    let exponent = drop - k;
    let scale = f64::from_bits(((exponent + 1023) as u64) << 52);
    signed(mantissa as f64 * scale)
}

/// 2.0 (exactly) from the half-life. `2.0f64.powf(x)` compiles to a call of `exp2`
/// (LLVM rewrites pow with a constant base 2), which differs from the C library's
/// `pow(2.0, x)` that Python's `2.0 ** x` calls in the last bit for about one x in
/// 1,500. A base the optimiser cannot see as a constant keeps the call to `pow`.
fn decay_base(half_life_ms: i64) -> f64 {
    let h = half_life_ms as f64; // finite and non-zero here
    (h + h) / h
}

/// `x = -(order_t - t) / half_life` and `2.0 ** x * 2**32`, the floats of a time-decay
/// weight (or what Python raises on the way).
pub fn decay_floats(
    order_t: i64,
    t: i64,
    half_life_ms: i64,
) -> Result<(f64, f64), AttributionError> {
    if half_life_ms == 0 {
        return raises("ZeroDivisionError: division by zero");
    }
    let exponent = int_true_div(-(order_t as i128 - t as i128), half_life_ms);
    let power = decay_base(half_life_ms).powf(exponent);
    if power.is_infinite() {
        return raises("OverflowError: (34, 'Numerical result out of range')");
    }
    Ok((exponent, power * DECAY_SCALE))
}

/// A weight as Python has it: an int, which a time-decay weight can make wider than i64
/// (the int of a float up to 2**1024, for a touchpoint many half-lives after the order).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Weight {
    Small(i64),
    /// An integral float at or above 2**63, exactly.
    Wide(f64),
}

/// `max(1, int(2.0 ** (-(order_t - t) / half_life) * 2**32))`.
fn decay_weight(order_t: i64, t: i64, half_life_ms: i64) -> Result<Weight, AttributionError> {
    let (_, scaled) = decay_floats(order_t, t, half_life_ms)?;
    if scaled.is_infinite() {
        return raises("OverflowError: cannot convert float infinity to integer");
    }
    if scaled >= 9_223_372_036_854_775_808.0 {
        return Ok(Weight::Wide(scaled)); // integral already: floats this large are
    }
    Ok(Weight::Small((scaled as i64).max(1))) // `as` truncates toward zero, as int() does
}

/// Python's weights, in order; the first that raises is the error.
fn exact_weights<T: Borrow<Touch>>(
    model: Model,
    touches: &[T],
    order_t: i64,
    rules: &AttributionRules,
) -> Result<Vec<Weight>, AttributionError> {
    if model == Model::TimeDecay {
        return touches
            .iter()
            .map(|touch| decay_weight(order_t, touch.borrow().t, rules.half_life_ms))
            .collect();
    }
    Ok(small_weights(model, touches.len(), |i| {
        touches[i].borrow().channel != DIRECT
    })
    .into_iter()
    .map(Weight::Small)
    .collect())
}

/// The weights of every model but time decay, for `n` touchpoints.
fn small_weights(model: Model, n: usize, not_direct: impl Fn(usize) -> bool) -> Vec<i64> {
    match model {
        // [1] + [0] * (n - 1): one element even for no touchpoints
        Model::FirstTouch => {
            let mut w = vec![0; n.max(1)];
            w[0] = 1;
            w
        }
        Model::LastTouch => {
            let mut w = vec![0; n.max(1)];
            let last = w.len() - 1;
            w[last] = 1;
            w
        }
        Model::LastNonDirect => {
            let chosen = (0..n)
                .rev()
                .find(|&i| not_direct(i))
                .unwrap_or_else(|| n.saturating_sub(1));
            (0..n).map(|i| if i == chosen { 1 } else { 0 }).collect()
        }
        Model::Linear => vec![1; n],
        Model::TimeDecay => Vec::new(), // exact_weights computes these
        Model::PositionBased => {
            if n <= 2 {
                vec![1; n]
            } else {
                let ends = 40 * (n as i64 - 2);
                let mut w = vec![20; n];
                w[0] = ends;
                w[n - 1] = ends;
                w
            }
        }
    }
}

/// The weight of each touchpoint under `model` (`touches` oldest first); OutOfRange
/// where Python's list holds an integer wider than i64 (only time decay, for a touchpoint
/// over 30 half-lives after the order: `shares` takes those exactly).
pub fn weights<T: Borrow<Touch>>(
    model: Model,
    touches: &[T],
    order_t: i64,
    rules: &AttributionRules,
) -> Result<Vec<i64>, AttributionError> {
    exact_weights(model, touches, order_t, rules)?
        .into_iter()
        .map(|w| match w {
            Weight::Small(w) => Ok(w),
            Weight::Wide(_) => out_of_range("a time-decay weight"),
        })
        .collect()
}

/// Integer parts of `total` proportional to `weights` (largest remainder; on equal
/// remainders the earlier part gets the unit).
pub fn apportion(weights: &[i64], total: i64) -> Result<Vec<i64>, AttributionError> {
    let whole: i128 = weights.iter().map(|&w| w as i128).sum();
    if whole <= 0 {
        return raises("ValueError: attribution weights must have a positive sum");
    }
    let total = total as i128;
    let mut parts: Vec<i64> = Vec::with_capacity(weights.len());
    let mut sum: i128 = 0;
    for &w in weights {
        let part = (total * w as i128).div_euclid(whole); // floor: whole > 0
        match i64::try_from(part) {
            Ok(p) => parts.push(p),
            Err(_) => return out_of_range("an apportioned part"),
        }
        sum += part;
    }
    let left = total - sum; // 0 <= left < len(weights)
    if left > 0 {
        let mut order: Vec<(i128, usize)> = weights
            .iter()
            .enumerate()
            .map(|(i, &w)| (-(total * w as i128).rem_euclid(whole), i))
            .collect();
        order.sort();
        for &(_, index) in order.iter().take(left as usize) {
            parts[index] = match parts[index].checked_add(1) {
                Some(p) => p,
                None => return out_of_range("an apportioned part"),
            };
        }
    }
    Ok(parts)
}

/// `apportion` of non-negative weights, some wider than i64 (the sum is then positive).
fn apportion_wide(weights: &[Weight], total: u64) -> Vec<i64> {
    let wide: Vec<Wide> = weights
        .iter()
        .map(|w| match *w {
            Weight::Small(w) => Wide::from_u128(w.max(0) as u128),
            Weight::Wide(x) => Wide::from_integral_float(x),
        })
        .collect();
    let mut whole = Wide::ZERO;
    for w in &wide {
        whole = whole.add(w);
    }
    let mut parts: Vec<i64> = Vec::with_capacity(wide.len());
    let mut remainders: Vec<(Wide, usize)> = Vec::with_capacity(wide.len());
    let mut sum: u64 = 0;
    for (i, w) in wide.iter().enumerate() {
        let (part, rest) = w.mul_u64(total).divmod(&whole);
        let part = part.low_u64(); // <= total
        sum += part;
        parts.push(part as i64);
        remainders.push((rest, i));
    }
    let left = total - sum;
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for &(_, index) in remainders.iter().take(left as usize) {
        parts[index] += 1;
    }
    parts
}

/// An unsigned integer of 1,280 bits: room for a sum of time-decay weights (each below
/// 2**1024) times a total below 2**64.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Wide([u64; Wide::LIMBS]);

impl Wide {
    const LIMBS: usize = 20;
    const ZERO: Wide = Wide([0; Wide::LIMBS]);

    fn from_u128(v: u128) -> Wide {
        let mut out = Wide::ZERO;
        out.0[0] = v as u64;
        out.0[1] = (v >> 64) as u64;
        out
    }

    /// A finite, non-negative, integral float, exactly.
    fn from_integral_float(x: f64) -> Wide {
        let bits = x.to_bits();
        let exponent = ((bits >> 52) & 0x7ff) as i64;
        let fraction = bits & ((1u64 << 52) - 1);
        if exponent == 0 {
            return Wide::from_u128(0); // zero or subnormal (never integral but 0)
        }
        let mantissa = fraction | (1u64 << 52);
        let shift = exponent - 1075;
        if shift <= 0 {
            return Wide::from_u128((mantissa >> (-shift).min(63)) as u128);
        }
        let mut out = Wide::ZERO;
        let (limb, offset) = ((shift / 64) as usize, (shift % 64) as u32);
        let wide = (mantissa as u128) << offset;
        for (k, part) in [wide as u64, (wide >> 64) as u64].iter().enumerate() {
            if let Some(slot) = out.0.get_mut(limb + k) {
                *slot = *part;
            }
        }
        out
    }

    fn add(&self, other: &Wide) -> Wide {
        let mut out = Wide::ZERO;
        let mut carry = 0u128;
        for i in 0..Wide::LIMBS {
            let s = self.0[i] as u128 + other.0[i] as u128 + carry;
            out.0[i] = s as u64;
            carry = s >> 64;
        }
        out
    }

    fn sub(&self, other: &Wide) -> Wide {
        let mut out = Wide::ZERO;
        let mut borrow = 0i128;
        for i in 0..Wide::LIMBS {
            let d = self.0[i] as i128 - other.0[i] as i128 - borrow;
            if d < 0 {
                out.0[i] = (d + (1i128 << 64)) as u64;
                borrow = 1;
            } else {
                out.0[i] = d as u64;
                borrow = 0;
            }
        }
        out
    }

    fn mul_u64(&self, m: u64) -> Wide {
        let mut out = Wide::ZERO;
        let mut carry = 0u128;
        for i in 0..Wide::LIMBS {
            let p = self.0[i] as u128 * m as u128 + carry;
            out.0[i] = p as u64;
            carry = p >> 64;
        }
        out
    }

    fn bits(&self) -> usize {
        for i in (0..Wide::LIMBS).rev() {
            if self.0[i] != 0 {
                return 64 * i + 64 - self.0[i].leading_zeros() as usize;
            }
        }
        0
    }

    fn bit(&self, i: usize) -> bool {
        (self.0[i / 64] >> (i % 64)) & 1 == 1
    }

    fn shl1_or(&mut self, low: bool) {
        for i in (1..Wide::LIMBS).rev() {
            self.0[i] = (self.0[i] << 1) | (self.0[i - 1] >> 63);
        }
        self.0[0] = (self.0[0] << 1) | low as u64;
    }

    /// (self // d, self % d), d > 0: binary long division.
    fn divmod(&self, d: &Wide) -> (Wide, Wide) {
        let mut quotient = Wide::ZERO;
        let mut rest = Wide::ZERO;
        for i in (0..self.bits()).rev() {
            rest.shl1_or(self.bit(i));
            if rest.cmp(d) != Ordering::Less {
                rest = rest.sub(d);
                quotient.0[i / 64] |= 1 << (i % 64);
            }
        }
        (quotient, rest)
    }

    fn low_u64(&self) -> u64 {
        self.0[0]
    }
}

impl Ord for Wide {
    fn cmp(&self, other: &Wide) -> Ordering {
        for i in (0..Wide::LIMBS).rev() {
            match self.0[i].cmp(&other.0[i]) {
                Ordering::Equal => {}
                unequal => return unequal,
            }
        }
        Ordering::Equal
    }
}

impl PartialOrd for Wide {
    fn partial_cmp(&self, other: &Wide) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Each touchpoint key's share of the order in millionths (sums to SHARE_UNIT), in the
/// order Python's dict has them.
pub fn shares<T: Borrow<Touch>>(
    model: Model,
    touches: &[T],
    order_t: i64,
    rules: &AttributionRules,
) -> Result<Vec<(TouchKey, i64)>, AttributionError> {
    let mut out: Vec<(TouchKey, i64)> = Vec::new();
    if touches.is_empty() {
        return Ok(out);
    }
    let exact = exact_weights(model, touches, order_t, rules)?;
    let small: Option<Vec<i64>> = exact
        .iter()
        .map(|w| match w {
            Weight::Small(w) => Some(*w),
            Weight::Wide(_) => None,
        })
        .collect();
    let parts = match small {
        Some(small) => apportion(&small, SHARE_UNIT)?,
        None => apportion_wide(&exact, SHARE_UNIT as u64),
    };
    for (touch, &part) in touches.iter().zip(parts.iter()) {
        if part == 0 {
            continue;
        }
        let touch = touch.borrow();
        let existing = out.iter_mut().find(|(k, _)| {
            k.channel == touch.channel
                && k.source == touch.source
                && k.medium == touch.medium
                && k.campaign == touch.campaign
                && k.kol == touch.kol
        });
        match existing {
            Some(entry) => entry.1 += part,
            None => out.push((touch_key(touch), part)),
        }
    }
    Ok(out)
}

// -- the order_attribution contributions (streams/visitor.py) -----------------------------

/// `streams.outputs.order_attribution.OrderAttributionKey` (its family is implied).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OrderAttributionKey {
    /// The order's window, epoch ms.
    pub window: i64,
    pub anonymous_id: String,
    pub transaction_id: String,
    pub model: &'static str,
    pub channel: String,
    pub source: String,
    pub medium: String,
    pub campaign: String,
    pub kol: String,
    pub order_time: i64,
    pub currency: String,
    pub value_minor: i64,
    pub is_first: i64,
}

impl OrderAttributionKey {
    /// As a list of the NamedTuple's fields, without the family.
    pub fn to_json(&self) -> Json {
        Json::List(vec![
            Json::Int(self.window),
            Json::s(&self.anonymous_id),
            Json::s(&self.transaction_id),
            Json::s(self.model),
            Json::s(&self.channel),
            Json::s(&self.source),
            Json::s(&self.medium),
            Json::s(&self.campaign),
            Json::s(&self.kol),
            Json::Int(self.order_time),
            Json::s(&self.currency),
            Json::Int(self.value_minor),
            Json::Int(self.is_first),
        ])
    }
}

/// `Rules.window_of`: `t - t % window_ms` with Python's floored modulo (an i128: one
/// below i64::MIN is possible, and only an error if it is kept).
pub fn window_of(t: i64, window_ms: i64) -> Result<i128, AttributionError> {
    if window_ms == 0 {
        return raises("ZeroDivisionError: integer modulo by zero");
    }
    let (t, w) = (t as i128, window_ms as i128);
    let mut r = t % w;
    if r != 0 && (r < 0) != (w < 0) {
        r += w;
    }
    Ok(t - r)
}

/// `_attribution_contributions(state, rules, thresholds, out)` into an empty `out`: each
/// non-final counted purchase's shares per model and touchpoint key, in the dict's order
/// (`window_ms`: `Rules.window_ms`; `kpi_threshold`: `thresholds.get("kpi", 0)`).
pub fn attribution_contributions(
    state: &VisitorState,
    window_ms: i64,
    kpi_threshold: i64,
    rules: &AttributionRules,
) -> Result<Vec<(OrderAttributionKey, i64)>, AttributionError> {
    let mut out: Vec<(OrderAttributionKey, i64)> = Vec::new();
    let mut index: HashMap<OrderAttributionKey, usize> = HashMap::default();
    for order in &state.orders {
        if order.kind != "purchase" {
            continue;
        }
        let window = window_of(order.t, window_ms)?;
        if window < kpi_threshold as i128 {
            continue;
        }
        // Out of an i64's range only if a credit keeps it: Python's int is unbounded, and an
        // order with nothing to credit adds nothing (hypothesis found the case).
        let window = i64::try_from(window).ok();
        let touches = order_touches(&state.touches, order.t, rules);
        let is_first = match &state.first_purchase {
            Some((t, transaction)) if *t == order.t && *transaction == order.transaction_id => 1,
            _ => 0,
        };
        for model in Model::ALL {
            for (key, share) in shares(model, &touches, order.t, rules)? {
                if share == 0 {
                    continue; // _add skips zeros
                }
                let Some(window) = window else {
                    return out_of_range("a window");
                };
                let credit = OrderAttributionKey {
                    window,
                    anonymous_id: state.anonymous_id.clone(),
                    transaction_id: order.transaction_id.clone(),
                    model: model.name(),
                    channel: key.channel,
                    source: key.source,
                    medium: key.medium,
                    campaign: key.campaign,
                    kol: key.kol,
                    order_time: order.t,
                    currency: order.currency.clone(),
                    value_minor: order.value_minor,
                    is_first,
                };
                match index.get(&credit) {
                    Some(&at) => out[at].1 += share,
                    None => {
                        index.insert(credit.clone(), out.len());
                        out.push((credit, share));
                    }
                }
            }
        }
    }
    Ok(out)
}

// -- urllib.parse.urlsplit (CPython 3.11) ----------------------------------------------------

/// The part of `urlsplit(url)` that `.hostname` reads (and the scheme, for tests).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitUrl {
    pub scheme: String,
    pub netloc: String,
}

/// Why urlsplit raises ValueError.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlError(pub &'static str);

fn is_scheme_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.'
}

/// `urllib.parse.urlsplit(url)`'s scheme and netloc, or the ValueError it raises.
pub fn urlsplit(url: &str) -> Result<SplitUrl, UrlError> {
    // url.lstrip(_WHATWG_C0_CONTROL_OR_SPACE), then drop every tab, CR and LF.
    let url = url.trim_start_matches(|c: char| c <= ' ');
    let cleaned: Cow<str> = if url.contains(['\t', '\r', '\n']) {
        Cow::Owned(
            url.chars()
                .filter(|c| !matches!(c, '\t' | '\r' | '\n'))
                .collect(),
        )
    } else {
        Cow::Borrowed(url)
    };
    let mut rest: &str = &cleaned;
    let mut scheme = String::new();
    if let Some(i) = rest.find(':') {
        let bytes = rest.as_bytes();
        if i > 0 && bytes[0].is_ascii_alphabetic() && bytes[..i].iter().all(|&b| is_scheme_char(b))
        {
            scheme = rest[..i].to_ascii_lowercase();
            rest = &rest[i + 1..];
        }
    }
    let mut netloc = "";
    if let Some(after) = rest.strip_prefix("//") {
        let end = after.find(['/', '?', '#']).unwrap_or(after.len());
        netloc = &after[..end];
        let (open, close) = (netloc.find('['), netloc.contains(']'));
        if open.is_some() != close {
            return Err(UrlError("Invalid IPv6 URL"));
        }
        if let Some(open) = open {
            let bracketed = &netloc[open + 1..];
            let host = match bracketed.find(']') {
                Some(end) => &bracketed[..end],
                None => bracketed,
            };
            check_bracketed_host(host)?;
        }
    }
    check_netloc(netloc)?;
    Ok(SplitUrl {
        scheme,
        netloc: netloc.to_owned(),
    })
}

/// `_checknetloc`: a non-ASCII netloc must not gain one of `/?#@:` under NFKC. Those are
/// ASCII starters no composition consumes, and the netloc holds no `/?#` and is checked
/// without its `@:`, so it fails exactly when one of its characters' NFKC form has one.
fn check_netloc(netloc: &str) -> Result<(), UrlError> {
    if netloc
        .chars()
        .any(|c| NFKC_NETLOC_DANGER.binary_search(&(c as u32)).is_ok())
    {
        return Err(UrlError(
            "netloc contains invalid characters under NFKC normalization",
        ));
    }
    Ok(())
}

/// `_check_bracketed_host`: an IPvFuture (`v<hex>.<anything>`) or an IPv6 address.
fn check_bracketed_host(host: &str) -> Result<(), UrlError> {
    if let Some(after_v) = host.strip_prefix('v') {
        // re.match(r"\Av[a-fA-F0-9]+\..+\Z"): '.' matches all but '\n', gone already.
        let hex = after_v.bytes().take_while(u8::is_ascii_hexdigit).count();
        let valid =
            hex > 0 && after_v.as_bytes().get(hex) == Some(&b'.') && after_v.len() > hex + 1;
        return if valid {
            Ok(())
        } else {
            Err(UrlError("IPvFuture address is invalid"))
        };
    }
    // ipaddress.ip_address(host): IPv4 first, then IPv6.
    if !host.contains('/') && ipv4_int(host).is_some() {
        return Err(UrlError("An IPv4 address cannot be in brackets"));
    }
    if is_ipv6(host) {
        Ok(())
    } else {
        Err(UrlError("does not appear to be an IPv4 or IPv6 address"))
    }
}

/// `IPv4Address(text)._ip`, None where it raises.
fn ipv4_int(text: &str) -> Option<u32> {
    if text.is_empty() {
        return None;
    }
    let octets: Vec<&str> = text.split('.').collect();
    if octets.len() != 4 {
        return None;
    }
    let mut ip: u32 = 0;
    for octet in octets {
        if octet.is_empty() || !octet.bytes().all(|b| b.is_ascii_digit()) || octet.len() > 3 {
            return None;
        }
        if octet != "0" && octet.starts_with('0') {
            return None;
        }
        let value: u32 = octet.parse().ok()?;
        if value > 255 {
            return None;
        }
        ip = (ip << 8) | value;
    }
    Some(ip)
}

/// `IPv6Address(text)` does not raise.
fn is_ipv6(text: &str) -> bool {
    if text.contains('/') {
        return false;
    }
    // _split_scope_id
    let addr = match text.find('%') {
        Some(at) => {
            let scope = &text[at + 1..];
            if scope.is_empty() || scope.contains('%') {
                return false;
            }
            &text[..at]
        }
        None => text,
    };
    if addr.is_empty() {
        return false;
    }
    let mut parts: Vec<Cow<str>> = addr.split(':').map(Cow::Borrowed).collect();
    if parts.len() < 3 {
        return false;
    }
    if parts.last().map_or(false, |p| p.contains('.')) {
        let ipv4 = match parts.pop().map(|p| ipv4_int(&p)) {
            Some(Some(ip)) => ip,
            _ => return false,
        };
        parts.push(Cow::Owned(format!("{:x}", (ipv4 >> 16) & 0xFFFF)));
        parts.push(Cow::Owned(format!("{:x}", ipv4 & 0xFFFF)));
    }
    const HEXTETS: usize = 8;
    if parts.len() > HEXTETS + 1 {
        return false;
    }
    let mut skip_index: Option<usize> = None;
    for (i, part) in parts.iter().enumerate().take(parts.len() - 1).skip(1) {
        if part.is_empty() {
            if skip_index.is_some() {
                return false;
            }
            skip_index = Some(i);
        }
    }
    let n = parts.len();
    let (parts_hi, parts_lo) = match skip_index {
        Some(skip) => {
            let mut hi = skip;
            let mut lo = n - skip - 1;
            if parts[0].is_empty() {
                hi -= 1;
                if hi > 0 {
                    return false;
                }
            }
            if parts[n - 1].is_empty() {
                lo -= 1;
                if lo > 0 {
                    return false;
                }
            }
            if hi + lo >= HEXTETS {
                return false;
            }
            (hi, lo)
        }
        None => {
            if n != HEXTETS || parts[0].is_empty() || parts[n - 1].is_empty() {
                return false;
            }
            (n, 0)
        }
    };
    let hextet =
        |p: &str| !p.is_empty() && p.len() <= 4 && p.bytes().all(|b| b.is_ascii_hexdigit());
    parts[..parts_hi].iter().all(|p| hextet(p)) && parts[n - parts_lo..].iter().all(|p| hextet(p))
}

/// The `.hostname` of a split URL's netloc: None where Python gives None.
pub fn hostname(netloc: &str) -> Option<String> {
    let hostinfo = match netloc.rfind('@') {
        Some(at) => &netloc[at + 1..],
        None => netloc,
    };
    let host = match hostinfo.find('[') {
        Some(open) => {
            let bracketed = &hostinfo[open + 1..];
            match bracketed.find(']') {
                Some(end) => &bracketed[..end],
                None => bracketed,
            }
        }
        None => match hostinfo.find(':') {
            Some(colon) => &hostinfo[..colon],
            None => hostinfo,
        },
    };
    if host.is_empty() {
        return None;
    }
    // A scoped IPv6 address's zone is not lowercased.
    Some(match host.find('%') {
        Some(at) => {
            let mut out = py_lower(&host[..at]);
            out.push_str(&host[at..]);
            out
        }
        None => py_lower(host),
    })
}

// -- str.lower() over Python 3.11's Unicode 14 database ------------------------------------

fn in_ranges(table: &[u32], c: u32) -> bool {
    // table: start0, end0, start1, end1, ... sorted
    let ranges = table.len() / 2;
    let (mut lo, mut hi) = (0, ranges);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if table[2 * mid] <= c {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo > 0 && c <= table[2 * (lo - 1) + 1]
}

fn is_cased(c: char) -> bool {
    in_ranges(&CASED, c as u32)
}

fn is_case_ignorable(c: char) -> bool {
    in_ranges(&CASE_IGNORABLE, c as u32)
}

/// `_PyUnicode_ToLowerFull(c)` for one code point (U+0130 maps to two).
fn lower_char(c: char, out: &mut String) {
    if c == '\u{130}' {
        out.push_str("i\u{307}");
        return;
    }
    let cp = c as u32;
    let runs = LOWER_RUNS.len() / 4;
    let (mut lo, mut hi) = (0, runs);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if LOWER_RUNS[4 * mid] <= cp as i64 {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if lo > 0 {
        let run = &LOWER_RUNS[4 * (lo - 1)..4 * lo];
        let (start, end, stride, delta) = (run[0], run[1], run[2], run[3]);
        let cp = cp as i64;
        if cp <= end && (cp - start) % stride == 0 {
            if let Some(lower) = char::from_u32((cp + delta) as u32) {
                out.push(lower);
                return;
            }
        }
    }
    out.push(c);
}

/// `str.lower()` as CPython 3.11 does it, Final_Sigma included.
pub fn py_lower(s: &str) -> String {
    if s.is_ascii() {
        return s.to_ascii_lowercase();
    }
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    for (i, &c) in chars.iter().enumerate() {
        if c == '\u{3a3}' {
            out.push(if final_sigma(&chars, i) {
                '\u{3c2}'
            } else {
                '\u{3c3}'
            });
        } else {
            lower_char(c, &mut out);
        }
    }
    out
}

/// `handle_capital_sigma`: cased, case-ignorables, the sigma, and no cased letter after
/// case-ignorables.
fn final_sigma(chars: &[char], i: usize) -> bool {
    let before = chars[..i].iter().rev().find(|&&c| !is_case_ignorable(c));
    let mut is_final = before.map_or(false, |&c| is_cased(c));
    if is_final && i + 1 < chars.len() {
        let after = chars[i + 1..].iter().find(|&&c| !is_case_ignorable(c));
        is_final = after.map_or(true, |&c| !is_cased(c));
    }
    is_final
}

// -- probes (the differential test's adapter) -----------------------------------------------

fn touch_to_json(t: &Touch) -> Json {
    Json::List(vec![
        Json::Int(t.t),
        Json::s(&t.session_id),
        Json::s(&t.event_id),
        Json::s(&t.channel),
        Json::s(&t.source),
        Json::s(&t.medium),
        Json::s(&t.campaign),
        Json::s(&t.kol),
    ])
}

fn key_to_json(k: &TouchKey) -> Json {
    Json::List(vec![
        Json::s(&k.channel),
        Json::s(&k.source),
        Json::s(&k.medium),
        Json::s(&k.campaign),
        Json::s(&k.kol),
    ])
}

fn touches_arg(args: &Json, name: &str) -> JsonResult<Vec<Touch>> {
    arg(args, name)?
        .list(name)?
        .iter()
        .map(decode_touch)
        .collect()
}

fn arg<'a>(args: &'a Json, name: &str) -> JsonResult<&'a Json> {
    args.object("the arguments")?
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
        .ok_or_else(|| JsonError(format!("missing argument {:?}", name)))
}

fn rules_arg(args: &Json) -> JsonResult<AttributionRules> {
    AttributionRules::from_json(arg(args, "rules")?)
}

fn attribution_result(result: Result<Json, AttributionError>) -> JsonResult<Json> {
    result.map_err(|e| JsonError(e.to_string()))
}

/// An event with the fields attribution reads from a JSON object (the others default).
fn event_from_json(value: &Json) -> JsonResult<Event> {
    let field = |name: &str| -> JsonResult<&Json> {
        value
            .object("an event")?
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
            .ok_or_else(|| JsonError(format!("an event needs {}", name)))
    };
    let text = |name: &str| -> JsonResult<Option<String>> {
        match field(name) {
            Ok(v) => Ok(v.opt_str(name)?.map(str::to_owned)),
            Err(_) => Ok(None),
        }
    };
    let mut event = Event::new(
        Stream::Clickstream,
        String::new(),
        field("event_id")?.str("event_id")?.to_owned(),
        field("event_time_ms")?.int("event_time_ms")?,
        0,
        String::new(),
        field("session_id")?.str("session_id")?.to_owned(),
    );
    event.referrer = text("referrer")?;
    event.utm_source = text("utm_source")?;
    event.utm_medium = text("utm_medium")?;
    event.utm_content = text("utm_content")?;
    Ok(event)
}

fn touches_json(ts: &[Touch]) -> Json {
    Json::List(ts.iter().map(touch_to_json).collect())
}

/// `urlsplit(url)`'s scheme, netloc and hostname, or the ValueError it raises.
fn split_json(url: &str) -> Json {
    match urlsplit(url) {
        Ok(split) => Json::Object(vec![
            ("scheme".into(), Json::s(&split.scheme)),
            ("netloc".into(), Json::s(&split.netloc)),
            (
                "hostname".into(),
                hostname(&split.netloc).map_or(Json::Null, Json::Str),
            ),
        ]),
        Err(UrlError(why)) => Json::Object(vec![("error".into(), Json::s(why))]),
    }
}

const PROBES: [&str; 13] = [
    "attribution.decay_floats",
    "attribution.rules",
    "attribution.urlsplit",
    "attribution.lower",
    "attribution.source_of",
    "attribution.touch_of",
    "attribution.record_touch",
    "attribution.prune_touches",
    "attribution.order_touches",
    "attribution.weights",
    "attribution.shares",
    "attribution.apportion",
    "attribution.contributions",
];

fn run_probe(name: &str, args: &Json) -> JsonResult<Json> {
    match name {
        "attribution.rules" => {
            let rules = rules_arg(args)?;
            let kept = i64::try_from(rules.kept_touches()).map_or(Json::Null, Json::Int);
            match rules.to_json() {
                Json::Object(mut fields) => {
                    fields.push(("kept_touches".into(), kept));
                    Ok(Json::Object(fields))
                }
                other => Ok(other),
            }
        }
        "attribution.urlsplit" => {
            // {"urls": [...]}: one answer per URL (the fuzz test sends thousands at once)
            let urls = arg(args, "urls")?.list("urls")?;
            let answers = urls
                .iter()
                .map(|url| url.str("a url").map(split_json))
                .collect::<JsonResult<_>>()?;
            Ok(Json::List(answers))
        }
        "attribution.decay_floats" => {
            // {"cases": [[order_t, t, half_life], ...]}: the bits of x and of 2.0**x * 2**32
            // as decimal strings (JSON here has no floats), or {"error": why}
            let cases = arg(args, "cases")?.list("cases")?;
            let mut answers = Vec::with_capacity(cases.len());
            for case in cases {
                let c = case.list("a case")?;
                if c.len() != 3 {
                    return Err(JsonError("a case is [order_t, t, half_life]".into()));
                }
                let (order_t, t, half_life) =
                    (c[0].int("order_t")?, c[1].int("t")?, c[2].int("half_life")?);
                answers.push(match decay_floats(order_t, t, half_life) {
                    Ok((x, scaled)) => Json::List(vec![
                        Json::Str(x.to_bits().to_string()),
                        Json::Str(scaled.to_bits().to_string()),
                    ]),
                    Err(e) => Json::Object(vec![("error".into(), Json::Str(e.to_string()))]),
                });
            }
            Ok(Json::List(answers))
        }
        "attribution.lower" => Ok(Json::Str(py_lower(arg(args, "text")?.str("text")?))),
        "attribution.source_of" => Ok(Json::Str(source_of(&event_from_json(arg(args, "event")?)?))),
        "attribution.touch_of" => {
            let event = event_from_json(arg(args, "event")?)?;
            let channel = arg(args, "channel")?.str("channel")?;
            let campaign = arg(args, "campaign")?.str("campaign")?;
            Ok(touch_to_json(&touch_of(&event, channel, campaign)))
        }
        "attribution.record_touch" => {
            let mut touches = touches_arg(args, "touches")?;
            let candidate = decode_touch(arg(args, "candidate")?)?;
            record_touch(&mut touches, candidate, &rules_arg(args)?);
            Ok(touches_json(&touches))
        }
        "attribution.prune_touches" => {
            let mut touches = touches_arg(args, "touches")?;
            let oldest = arg(args, "oldest_order_t")?.int("oldest_order_t")?;
            prune_touches(&mut touches, oldest, &rules_arg(args)?);
            Ok(touches_json(&touches))
        }
        "attribution.order_touches" => {
            let touches = touches_arg(args, "touches")?;
            let order_t = arg(args, "order_t")?.int("order_t")?;
            let chosen = order_touches(&touches, order_t, &rules_arg(args)?);
            Ok(Json::List(
                chosen.iter().map(|t| touch_to_json(t)).collect(),
            ))
        }
        "attribution.weights" | "attribution.shares" => {
            let touches = touches_arg(args, "touches")?;
            let order_t = arg(args, "order_t")?.int("order_t")?;
            let rules = rules_arg(args)?;
            let model = arg(args, "model")?.str("model")?;
            if name == "attribution.shares" && touches.is_empty() {
                return Ok(Json::List(Vec::new())); // before Python looks at the model
            }
            attribution_result(Model::from_name(model).and_then(|model| {
                if name == "attribution.weights" {
                    let w = weights(model, &touches, order_t, &rules)?;
                    Ok(Json::List(w.into_iter().map(Json::Int).collect()))
                } else {
                    let s = shares(model, &touches, order_t, &rules)?;
                    Ok(Json::List(
                        s.iter()
                            .map(|(k, v)| Json::List(vec![key_to_json(k), Json::Int(*v)]))
                            .collect(),
                    ))
                }
            }))
        }
        "attribution.apportion" => {
            let weights = arg(args, "weights")?
                .list("weights")?
                .iter()
                .map(|w| w.int("a weight"))
                .collect::<JsonResult<Vec<i64>>>()?;
            let total = arg(args, "total")?.int("total")?;
            attribution_result(
                apportion(&weights, total)
                    .map(|parts| Json::List(parts.into_iter().map(Json::Int).collect())),
            )
        }
        "attribution.contributions" => {
            let raw = arg(args, "state")?.str("state")?;
            let anonymous_id = arg(args, "anonymous_id")?.str("anonymous_id")?;
            let state = state::decode(raw.as_bytes(), anonymous_id)
                .map_err(|e| JsonError(format!("state: {:?}", e)))?;
            let window_ms = arg(args, "window_ms")?.int("window_ms")?;
            let kpi = arg(args, "kpi_threshold")?.int("kpi_threshold")?;
            let rules = rules_arg(args)?;
            attribution_result(
                attribution_contributions(&state, window_ms, kpi, &rules).map(|out| {
                    Json::List(
                        out.iter()
                            .map(|(k, v)| Json::List(vec![k.to_json(), Json::Int(*v)]))
                            .collect(),
                    )
                }),
            )
        }
        other => Err(JsonError(format!("no probe {:?}", other))),
    }
}

/// The probes of this module: "attribution.<function>".
pub fn probe(name: &str, args: &Json) -> Option<JsonResult<Json>> {
    if PROBES.contains(&name) {
        Some(run_probe(name, args))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn true_division_rounds_like_python() {
        assert_eq!(int_true_div(1, 3), 1.0 / 3.0);
        assert_eq!(int_true_div(-7, 2), -3.5);
        assert_eq!(int_true_div(0, -5).to_bits(), (-0.0f64).to_bits());
        // 2**53 + 1 over 1 rounds to even: 2**53
        assert_eq!(int_true_div((1 << 53) + 1, 1), 9007199254740992.0);
        assert_eq!(int_true_div((1 << 53) + 3, 1), 9007199254740996.0);
        assert_eq!(
            int_true_div(i64::MAX as i128 * 2, 1),
            18446744073709551616.0
        );
    }

    #[test]
    fn lowercases_like_python() {
        assert_eq!(py_lower("WWW.Example.COM"), "www.example.com");
        assert_eq!(py_lower("ΑΣ"), "ας");
        assert_eq!(py_lower("Σ"), "σ");
        assert_eq!(py_lower("ΑΣΑ"), "ασα");
        assert_eq!(py_lower("İ"), "i\u{307}");
    }

    #[test]
    fn splits_hosts() {
        let host = |u: &str| urlsplit(u).map(|s| hostname(&s.netloc));
        assert_eq!(
            host("https://www.Google.com/x"),
            Ok(Some("www.google.com".into()))
        );
        assert_eq!(
            host("  http://u:p@[::1%Zone]:80/"),
            Ok(Some("::1%Zone".into()))
        );
        assert!(host("http://[1.2.3.4]/").is_err());
        assert!(host("http://a\u{2100}b/").is_err());
        assert_eq!(host("no-scheme"), Ok(None));
        assert_eq!(host("//h:x"), Ok(Some("h".into())));
    }

    #[test]
    fn wide_arithmetic_matches_u128() {
        let mut x: u128 = 0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let a = x >> (x % 64);
            let d = (x.rotate_left(37) >> (x % 120)).max(1);
            let (q, r) = Wide::from_u128(a).divmod(&Wide::from_u128(d));
            assert_eq!((q, r), (Wide::from_u128(a / d), Wide::from_u128(a % d)));
            let m = (x >> 70) as u64;
            let p = Wide::from_u128(a >> 64).mul_u64(m);
            assert_eq!(p, Wide::from_u128((a >> 64) * m as u128));
        }
        assert_eq!(
            Wide::from_integral_float(2f64.powi(64)),
            Wide::from_u128(1 << 64)
        );
        assert_eq!(Wide::from_integral_float(12345.0), Wide::from_u128(12345));
    }

    #[test]
    fn decay_keeps_pow() {
        assert_eq!(decay_weight(0, 0, 7), Ok(Weight::Small(1 << 32)));
        assert_eq!(decay_weight(0, 32, 1), Ok(Weight::Wide(2f64.powi(64))));
        assert_eq!(decay_weight(7, 0, 7), Ok(Weight::Small(1 << 31)));
        assert!(decay_weight(0, 0, 0).is_err());
    }
}

// -- tables ----------------------------------------------------------------------------------

// Generated (tests/native/gen_attribution_tables.py) from Python 3.11.7's Unicode 14.0.0
// database, the one the Python core's str.lower() and urlsplit use:
// - CASED, CASE_IGNORABLE: inclusive code point ranges where CPython's
//   _PyUnicode_IsCased / _PyUnicode_IsCaseIgnorable hold (the Final_Sigma context);
// - LOWER_RUNS: (start, end, stride, delta): chr(c).lower() == chr(c + delta) for c in
//   range(start, end + 1, stride); every other code point but U+0130 lowercases to itself;
// - NFKC_NETLOC_DANGER: the code points whose NFKC form holds one of '/?#@:'.
// tests/native/test_attribution.py checks lower() over every code point and the NFKC
// check for every character NFKC changes.
const CASED: [u32; 310] = [
    0x41, 0x5a, 0x61, 0x7a, 0xaa, 0xaa, 0xb5, 0xb5, 0xba, 0xba, 0xc0, 0xd6, 0xd8, 0xf6, 0xf8,
    0x1ba, 0x1bc, 0x1bf, 0x1c4, 0x293, 0x295, 0x2b8, 0x2c0, 0x2c1, 0x2e0, 0x2e4, 0x345, 0x345,
    0x370, 0x373, 0x376, 0x377, 0x37a, 0x37d, 0x37f, 0x37f, 0x386, 0x386, 0x388, 0x38a, 0x38c,
    0x38c, 0x38e, 0x3a1, 0x3a3, 0x3f5, 0x3f7, 0x481, 0x48a, 0x52f, 0x531, 0x556, 0x560, 0x588,
    0x10a0, 0x10c5, 0x10c7, 0x10c7, 0x10cd, 0x10cd, 0x10d0, 0x10fa, 0x10fd, 0x10ff, 0x13a0, 0x13f5,
    0x13f8, 0x13fd, 0x1c80, 0x1c88, 0x1c90, 0x1cba, 0x1cbd, 0x1cbf, 0x1d00, 0x1dbf, 0x1e00, 0x1f15,
    0x1f18, 0x1f1d, 0x1f20, 0x1f45, 0x1f48, 0x1f4d, 0x1f50, 0x1f57, 0x1f59, 0x1f59, 0x1f5b, 0x1f5b,
    0x1f5d, 0x1f5d, 0x1f5f, 0x1f7d, 0x1f80, 0x1fb4, 0x1fb6, 0x1fbc, 0x1fbe, 0x1fbe, 0x1fc2, 0x1fc4,
    0x1fc6, 0x1fcc, 0x1fd0, 0x1fd3, 0x1fd6, 0x1fdb, 0x1fe0, 0x1fec, 0x1ff2, 0x1ff4, 0x1ff6, 0x1ffc,
    0x2071, 0x2071, 0x207f, 0x207f, 0x2090, 0x209c, 0x2102, 0x2102, 0x2107, 0x2107, 0x210a, 0x2113,
    0x2115, 0x2115, 0x2119, 0x211d, 0x2124, 0x2124, 0x2126, 0x2126, 0x2128, 0x2128, 0x212a, 0x212d,
    0x212f, 0x2134, 0x2139, 0x2139, 0x213c, 0x213f, 0x2145, 0x2149, 0x214e, 0x214e, 0x2160, 0x217f,
    0x2183, 0x2184, 0x24b6, 0x24e9, 0x2c00, 0x2ce4, 0x2ceb, 0x2cee, 0x2cf2, 0x2cf3, 0x2d00, 0x2d25,
    0x2d27, 0x2d27, 0x2d2d, 0x2d2d, 0xa640, 0xa66d, 0xa680, 0xa69d, 0xa722, 0xa787, 0xa78b, 0xa78e,
    0xa790, 0xa7ca, 0xa7d0, 0xa7d1, 0xa7d3, 0xa7d3, 0xa7d5, 0xa7d9, 0xa7f5, 0xa7f6, 0xa7f8, 0xa7fa,
    0xab30, 0xab5a, 0xab5c, 0xab68, 0xab70, 0xabbf, 0xfb00, 0xfb06, 0xfb13, 0xfb17, 0xff21, 0xff3a,
    0xff41, 0xff5a, 0x10400, 0x1044f, 0x104b0, 0x104d3, 0x104d8, 0x104fb, 0x10570, 0x1057a,
    0x1057c, 0x1058a, 0x1058c, 0x10592, 0x10594, 0x10595, 0x10597, 0x105a1, 0x105a3, 0x105b1,
    0x105b3, 0x105b9, 0x105bb, 0x105bc, 0x10780, 0x10780, 0x10783, 0x10785, 0x10787, 0x107b0,
    0x107b2, 0x107ba, 0x10c80, 0x10cb2, 0x10cc0, 0x10cf2, 0x118a0, 0x118df, 0x16e40, 0x16e7f,
    0x1d400, 0x1d454, 0x1d456, 0x1d49c, 0x1d49e, 0x1d49f, 0x1d4a2, 0x1d4a2, 0x1d4a5, 0x1d4a6,
    0x1d4a9, 0x1d4ac, 0x1d4ae, 0x1d4b9, 0x1d4bb, 0x1d4bb, 0x1d4bd, 0x1d4c3, 0x1d4c5, 0x1d505,
    0x1d507, 0x1d50a, 0x1d50d, 0x1d514, 0x1d516, 0x1d51c, 0x1d51e, 0x1d539, 0x1d53b, 0x1d53e,
    0x1d540, 0x1d544, 0x1d546, 0x1d546, 0x1d54a, 0x1d550, 0x1d552, 0x1d6a5, 0x1d6a8, 0x1d6c0,
    0x1d6c2, 0x1d6da, 0x1d6dc, 0x1d6fa, 0x1d6fc, 0x1d714, 0x1d716, 0x1d734, 0x1d736, 0x1d74e,
    0x1d750, 0x1d76e, 0x1d770, 0x1d788, 0x1d78a, 0x1d7a8, 0x1d7aa, 0x1d7c2, 0x1d7c4, 0x1d7cb,
    0x1df00, 0x1df09, 0x1df0b, 0x1df1e, 0x1e900, 0x1e943, 0x1f130, 0x1f149, 0x1f150, 0x1f169,
    0x1f170, 0x1f189,
];
const CASE_IGNORABLE: [u32; 854] = [
    0x27, 0x27, 0x2e, 0x2e, 0x3a, 0x3a, 0x5e, 0x5e, 0x60, 0x60, 0xa8, 0xa8, 0xad, 0xad, 0xaf, 0xaf,
    0xb4, 0xb4, 0xb7, 0xb8, 0x2b0, 0x36f, 0x374, 0x375, 0x37a, 0x37a, 0x384, 0x385, 0x387, 0x387,
    0x483, 0x489, 0x559, 0x559, 0x55f, 0x55f, 0x591, 0x5bd, 0x5bf, 0x5bf, 0x5c1, 0x5c2, 0x5c4,
    0x5c5, 0x5c7, 0x5c7, 0x5f4, 0x5f4, 0x600, 0x605, 0x610, 0x61a, 0x61c, 0x61c, 0x640, 0x640,
    0x64b, 0x65f, 0x670, 0x670, 0x6d6, 0x6dd, 0x6df, 0x6e8, 0x6ea, 0x6ed, 0x70f, 0x70f, 0x711,
    0x711, 0x730, 0x74a, 0x7a6, 0x7b0, 0x7eb, 0x7f5, 0x7fa, 0x7fa, 0x7fd, 0x7fd, 0x816, 0x82d,
    0x859, 0x85b, 0x888, 0x888, 0x890, 0x891, 0x898, 0x89f, 0x8c9, 0x902, 0x93a, 0x93a, 0x93c,
    0x93c, 0x941, 0x948, 0x94d, 0x94d, 0x951, 0x957, 0x962, 0x963, 0x971, 0x971, 0x981, 0x981,
    0x9bc, 0x9bc, 0x9c1, 0x9c4, 0x9cd, 0x9cd, 0x9e2, 0x9e3, 0x9fe, 0x9fe, 0xa01, 0xa02, 0xa3c,
    0xa3c, 0xa41, 0xa42, 0xa47, 0xa48, 0xa4b, 0xa4d, 0xa51, 0xa51, 0xa70, 0xa71, 0xa75, 0xa75,
    0xa81, 0xa82, 0xabc, 0xabc, 0xac1, 0xac5, 0xac7, 0xac8, 0xacd, 0xacd, 0xae2, 0xae3, 0xafa,
    0xaff, 0xb01, 0xb01, 0xb3c, 0xb3c, 0xb3f, 0xb3f, 0xb41, 0xb44, 0xb4d, 0xb4d, 0xb55, 0xb56,
    0xb62, 0xb63, 0xb82, 0xb82, 0xbc0, 0xbc0, 0xbcd, 0xbcd, 0xc00, 0xc00, 0xc04, 0xc04, 0xc3c,
    0xc3c, 0xc3e, 0xc40, 0xc46, 0xc48, 0xc4a, 0xc4d, 0xc55, 0xc56, 0xc62, 0xc63, 0xc81, 0xc81,
    0xcbc, 0xcbc, 0xcbf, 0xcbf, 0xcc6, 0xcc6, 0xccc, 0xccd, 0xce2, 0xce3, 0xd00, 0xd01, 0xd3b,
    0xd3c, 0xd41, 0xd44, 0xd4d, 0xd4d, 0xd62, 0xd63, 0xd81, 0xd81, 0xdca, 0xdca, 0xdd2, 0xdd4,
    0xdd6, 0xdd6, 0xe31, 0xe31, 0xe34, 0xe3a, 0xe46, 0xe4e, 0xeb1, 0xeb1, 0xeb4, 0xebc, 0xec6,
    0xec6, 0xec8, 0xecd, 0xf18, 0xf19, 0xf35, 0xf35, 0xf37, 0xf37, 0xf39, 0xf39, 0xf71, 0xf7e,
    0xf80, 0xf84, 0xf86, 0xf87, 0xf8d, 0xf97, 0xf99, 0xfbc, 0xfc6, 0xfc6, 0x102d, 0x1030, 0x1032,
    0x1037, 0x1039, 0x103a, 0x103d, 0x103e, 0x1058, 0x1059, 0x105e, 0x1060, 0x1071, 0x1074, 0x1082,
    0x1082, 0x1085, 0x1086, 0x108d, 0x108d, 0x109d, 0x109d, 0x10fc, 0x10fc, 0x135d, 0x135f, 0x1712,
    0x1714, 0x1732, 0x1733, 0x1752, 0x1753, 0x1772, 0x1773, 0x17b4, 0x17b5, 0x17b7, 0x17bd, 0x17c6,
    0x17c6, 0x17c9, 0x17d3, 0x17d7, 0x17d7, 0x17dd, 0x17dd, 0x180b, 0x180f, 0x1843, 0x1843, 0x1885,
    0x1886, 0x18a9, 0x18a9, 0x1920, 0x1922, 0x1927, 0x1928, 0x1932, 0x1932, 0x1939, 0x193b, 0x1a17,
    0x1a18, 0x1a1b, 0x1a1b, 0x1a56, 0x1a56, 0x1a58, 0x1a5e, 0x1a60, 0x1a60, 0x1a62, 0x1a62, 0x1a65,
    0x1a6c, 0x1a73, 0x1a7c, 0x1a7f, 0x1a7f, 0x1aa7, 0x1aa7, 0x1ab0, 0x1ace, 0x1b00, 0x1b03, 0x1b34,
    0x1b34, 0x1b36, 0x1b3a, 0x1b3c, 0x1b3c, 0x1b42, 0x1b42, 0x1b6b, 0x1b73, 0x1b80, 0x1b81, 0x1ba2,
    0x1ba5, 0x1ba8, 0x1ba9, 0x1bab, 0x1bad, 0x1be6, 0x1be6, 0x1be8, 0x1be9, 0x1bed, 0x1bed, 0x1bef,
    0x1bf1, 0x1c2c, 0x1c33, 0x1c36, 0x1c37, 0x1c78, 0x1c7d, 0x1cd0, 0x1cd2, 0x1cd4, 0x1ce0, 0x1ce2,
    0x1ce8, 0x1ced, 0x1ced, 0x1cf4, 0x1cf4, 0x1cf8, 0x1cf9, 0x1d2c, 0x1d6a, 0x1d78, 0x1d78, 0x1d9b,
    0x1dff, 0x1fbd, 0x1fbd, 0x1fbf, 0x1fc1, 0x1fcd, 0x1fcf, 0x1fdd, 0x1fdf, 0x1fed, 0x1fef, 0x1ffd,
    0x1ffe, 0x200b, 0x200f, 0x2018, 0x2019, 0x2024, 0x2024, 0x2027, 0x2027, 0x202a, 0x202e, 0x2060,
    0x2064, 0x2066, 0x206f, 0x2071, 0x2071, 0x207f, 0x207f, 0x2090, 0x209c, 0x20d0, 0x20f0, 0x2c7c,
    0x2c7d, 0x2cef, 0x2cf1, 0x2d6f, 0x2d6f, 0x2d7f, 0x2d7f, 0x2de0, 0x2dff, 0x2e2f, 0x2e2f, 0x3005,
    0x3005, 0x302a, 0x302d, 0x3031, 0x3035, 0x303b, 0x303b, 0x3099, 0x309e, 0x30fc, 0x30fe, 0xa015,
    0xa015, 0xa4f8, 0xa4fd, 0xa60c, 0xa60c, 0xa66f, 0xa672, 0xa674, 0xa67d, 0xa67f, 0xa67f, 0xa69c,
    0xa69f, 0xa6f0, 0xa6f1, 0xa700, 0xa721, 0xa770, 0xa770, 0xa788, 0xa78a, 0xa7f2, 0xa7f4, 0xa7f8,
    0xa7f9, 0xa802, 0xa802, 0xa806, 0xa806, 0xa80b, 0xa80b, 0xa825, 0xa826, 0xa82c, 0xa82c, 0xa8c4,
    0xa8c5, 0xa8e0, 0xa8f1, 0xa8ff, 0xa8ff, 0xa926, 0xa92d, 0xa947, 0xa951, 0xa980, 0xa982, 0xa9b3,
    0xa9b3, 0xa9b6, 0xa9b9, 0xa9bc, 0xa9bd, 0xa9cf, 0xa9cf, 0xa9e5, 0xa9e6, 0xaa29, 0xaa2e, 0xaa31,
    0xaa32, 0xaa35, 0xaa36, 0xaa43, 0xaa43, 0xaa4c, 0xaa4c, 0xaa70, 0xaa70, 0xaa7c, 0xaa7c, 0xaab0,
    0xaab0, 0xaab2, 0xaab4, 0xaab7, 0xaab8, 0xaabe, 0xaabf, 0xaac1, 0xaac1, 0xaadd, 0xaadd, 0xaaec,
    0xaaed, 0xaaf3, 0xaaf4, 0xaaf6, 0xaaf6, 0xab5b, 0xab5f, 0xab69, 0xab6b, 0xabe5, 0xabe5, 0xabe8,
    0xabe8, 0xabed, 0xabed, 0xfb1e, 0xfb1e, 0xfbb2, 0xfbc2, 0xfe00, 0xfe0f, 0xfe13, 0xfe13, 0xfe20,
    0xfe2f, 0xfe52, 0xfe52, 0xfe55, 0xfe55, 0xfeff, 0xfeff, 0xff07, 0xff07, 0xff0e, 0xff0e, 0xff1a,
    0xff1a, 0xff3e, 0xff3e, 0xff40, 0xff40, 0xff70, 0xff70, 0xff9e, 0xff9f, 0xffe3, 0xffe3, 0xfff9,
    0xfffb, 0x101fd, 0x101fd, 0x102e0, 0x102e0, 0x10376, 0x1037a, 0x10780, 0x10785, 0x10787,
    0x107b0, 0x107b2, 0x107ba, 0x10a01, 0x10a03, 0x10a05, 0x10a06, 0x10a0c, 0x10a0f, 0x10a38,
    0x10a3a, 0x10a3f, 0x10a3f, 0x10ae5, 0x10ae6, 0x10d24, 0x10d27, 0x10eab, 0x10eac, 0x10f46,
    0x10f50, 0x10f82, 0x10f85, 0x11001, 0x11001, 0x11038, 0x11046, 0x11070, 0x11070, 0x11073,
    0x11074, 0x1107f, 0x11081, 0x110b3, 0x110b6, 0x110b9, 0x110ba, 0x110bd, 0x110bd, 0x110c2,
    0x110c2, 0x110cd, 0x110cd, 0x11100, 0x11102, 0x11127, 0x1112b, 0x1112d, 0x11134, 0x11173,
    0x11173, 0x11180, 0x11181, 0x111b6, 0x111be, 0x111c9, 0x111cc, 0x111cf, 0x111cf, 0x1122f,
    0x11231, 0x11234, 0x11234, 0x11236, 0x11237, 0x1123e, 0x1123e, 0x112df, 0x112df, 0x112e3,
    0x112ea, 0x11300, 0x11301, 0x1133b, 0x1133c, 0x11340, 0x11340, 0x11366, 0x1136c, 0x11370,
    0x11374, 0x11438, 0x1143f, 0x11442, 0x11444, 0x11446, 0x11446, 0x1145e, 0x1145e, 0x114b3,
    0x114b8, 0x114ba, 0x114ba, 0x114bf, 0x114c0, 0x114c2, 0x114c3, 0x115b2, 0x115b5, 0x115bc,
    0x115bd, 0x115bf, 0x115c0, 0x115dc, 0x115dd, 0x11633, 0x1163a, 0x1163d, 0x1163d, 0x1163f,
    0x11640, 0x116ab, 0x116ab, 0x116ad, 0x116ad, 0x116b0, 0x116b5, 0x116b7, 0x116b7, 0x1171d,
    0x1171f, 0x11722, 0x11725, 0x11727, 0x1172b, 0x1182f, 0x11837, 0x11839, 0x1183a, 0x1193b,
    0x1193c, 0x1193e, 0x1193e, 0x11943, 0x11943, 0x119d4, 0x119d7, 0x119da, 0x119db, 0x119e0,
    0x119e0, 0x11a01, 0x11a0a, 0x11a33, 0x11a38, 0x11a3b, 0x11a3e, 0x11a47, 0x11a47, 0x11a51,
    0x11a56, 0x11a59, 0x11a5b, 0x11a8a, 0x11a96, 0x11a98, 0x11a99, 0x11c30, 0x11c36, 0x11c38,
    0x11c3d, 0x11c3f, 0x11c3f, 0x11c92, 0x11ca7, 0x11caa, 0x11cb0, 0x11cb2, 0x11cb3, 0x11cb5,
    0x11cb6, 0x11d31, 0x11d36, 0x11d3a, 0x11d3a, 0x11d3c, 0x11d3d, 0x11d3f, 0x11d45, 0x11d47,
    0x11d47, 0x11d90, 0x11d91, 0x11d95, 0x11d95, 0x11d97, 0x11d97, 0x11ef3, 0x11ef4, 0x13430,
    0x13438, 0x16af0, 0x16af4, 0x16b30, 0x16b36, 0x16b40, 0x16b43, 0x16f4f, 0x16f4f, 0x16f8f,
    0x16f9f, 0x16fe0, 0x16fe1, 0x16fe3, 0x16fe4, 0x1aff0, 0x1aff3, 0x1aff5, 0x1affb, 0x1affd,
    0x1affe, 0x1bc9d, 0x1bc9e, 0x1bca0, 0x1bca3, 0x1cf00, 0x1cf2d, 0x1cf30, 0x1cf46, 0x1d167,
    0x1d169, 0x1d173, 0x1d182, 0x1d185, 0x1d18b, 0x1d1aa, 0x1d1ad, 0x1d242, 0x1d244, 0x1da00,
    0x1da36, 0x1da3b, 0x1da6c, 0x1da75, 0x1da75, 0x1da84, 0x1da84, 0x1da9b, 0x1da9f, 0x1daa1,
    0x1daaf, 0x1e000, 0x1e006, 0x1e008, 0x1e018, 0x1e01b, 0x1e021, 0x1e023, 0x1e024, 0x1e026,
    0x1e02a, 0x1e130, 0x1e13d, 0x1e2ae, 0x1e2ae, 0x1e2ec, 0x1e2ef, 0x1e8d0, 0x1e8d6, 0x1e944,
    0x1e94b, 0x1f3fb, 0x1f3ff, 0xe0001, 0xe0001, 0xe0020, 0xe007f, 0xe0100, 0xe01ef,
];
const LOWER_RUNS: [i64; 724] = [
    0x41, 0x5a, 0x1, 0x20, 0xc0, 0xd6, 0x1, 0x20, 0xd8, 0xde, 0x1, 0x20, 0x100, 0x12e, 0x2, 0x1,
    0x132, 0x136, 0x2, 0x1, 0x139, 0x147, 0x2, 0x1, 0x14a, 0x176, 0x2, 0x1, 0x178, 0x178, 0x1,
    -0x79, 0x179, 0x17d, 0x2, 0x1, 0x181, 0x181, 0x1, 0xd2, 0x182, 0x184, 0x2, 0x1, 0x186, 0x186,
    0x1, 0xce, 0x187, 0x187, 0x1, 0x1, 0x189, 0x18a, 0x1, 0xcd, 0x18b, 0x18b, 0x1, 0x1, 0x18e,
    0x18e, 0x1, 0x4f, 0x18f, 0x18f, 0x1, 0xca, 0x190, 0x190, 0x1, 0xcb, 0x191, 0x191, 0x1, 0x1,
    0x193, 0x193, 0x1, 0xcd, 0x194, 0x194, 0x1, 0xcf, 0x196, 0x196, 0x1, 0xd3, 0x197, 0x197, 0x1,
    0xd1, 0x198, 0x198, 0x1, 0x1, 0x19c, 0x19c, 0x1, 0xd3, 0x19d, 0x19d, 0x1, 0xd5, 0x19f, 0x19f,
    0x1, 0xd6, 0x1a0, 0x1a4, 0x2, 0x1, 0x1a6, 0x1a6, 0x1, 0xda, 0x1a7, 0x1a7, 0x1, 0x1, 0x1a9,
    0x1a9, 0x1, 0xda, 0x1ac, 0x1ac, 0x1, 0x1, 0x1ae, 0x1ae, 0x1, 0xda, 0x1af, 0x1af, 0x1, 0x1,
    0x1b1, 0x1b2, 0x1, 0xd9, 0x1b3, 0x1b5, 0x2, 0x1, 0x1b7, 0x1b7, 0x1, 0xdb, 0x1b8, 0x1b8, 0x1,
    0x1, 0x1bc, 0x1bc, 0x1, 0x1, 0x1c4, 0x1c4, 0x1, 0x2, 0x1c5, 0x1c5, 0x1, 0x1, 0x1c7, 0x1c7, 0x1,
    0x2, 0x1c8, 0x1c8, 0x1, 0x1, 0x1ca, 0x1ca, 0x1, 0x2, 0x1cb, 0x1db, 0x2, 0x1, 0x1de, 0x1ee, 0x2,
    0x1, 0x1f1, 0x1f1, 0x1, 0x2, 0x1f2, 0x1f4, 0x2, 0x1, 0x1f6, 0x1f6, 0x1, -0x61, 0x1f7, 0x1f7,
    0x1, -0x38, 0x1f8, 0x21e, 0x2, 0x1, 0x220, 0x220, 0x1, -0x82, 0x222, 0x232, 0x2, 0x1, 0x23a,
    0x23a, 0x1, 0x2a2b, 0x23b, 0x23b, 0x1, 0x1, 0x23d, 0x23d, 0x1, -0xa3, 0x23e, 0x23e, 0x1,
    0x2a28, 0x241, 0x241, 0x1, 0x1, 0x243, 0x243, 0x1, -0xc3, 0x244, 0x244, 0x1, 0x45, 0x245,
    0x245, 0x1, 0x47, 0x246, 0x24e, 0x2, 0x1, 0x370, 0x372, 0x2, 0x1, 0x376, 0x376, 0x1, 0x1,
    0x37f, 0x37f, 0x1, 0x74, 0x386, 0x386, 0x1, 0x26, 0x388, 0x38a, 0x1, 0x25, 0x38c, 0x38c, 0x1,
    0x40, 0x38e, 0x38f, 0x1, 0x3f, 0x391, 0x3a1, 0x1, 0x20, 0x3a3, 0x3ab, 0x1, 0x20, 0x3cf, 0x3cf,
    0x1, 0x8, 0x3d8, 0x3ee, 0x2, 0x1, 0x3f4, 0x3f4, 0x1, -0x3c, 0x3f7, 0x3f7, 0x1, 0x1, 0x3f9,
    0x3f9, 0x1, -0x7, 0x3fa, 0x3fa, 0x1, 0x1, 0x3fd, 0x3ff, 0x1, -0x82, 0x400, 0x40f, 0x1, 0x50,
    0x410, 0x42f, 0x1, 0x20, 0x460, 0x480, 0x2, 0x1, 0x48a, 0x4be, 0x2, 0x1, 0x4c0, 0x4c0, 0x1,
    0xf, 0x4c1, 0x4cd, 0x2, 0x1, 0x4d0, 0x52e, 0x2, 0x1, 0x531, 0x556, 0x1, 0x30, 0x10a0, 0x10c5,
    0x1, 0x1c60, 0x10c7, 0x10c7, 0x1, 0x1c60, 0x10cd, 0x10cd, 0x1, 0x1c60, 0x13a0, 0x13ef, 0x1,
    0x97d0, 0x13f0, 0x13f5, 0x1, 0x8, 0x1c90, 0x1cba, 0x1, -0xbc0, 0x1cbd, 0x1cbf, 0x1, -0xbc0,
    0x1e00, 0x1e94, 0x2, 0x1, 0x1e9e, 0x1e9e, 0x1, -0x1dbf, 0x1ea0, 0x1efe, 0x2, 0x1, 0x1f08,
    0x1f0f, 0x1, -0x8, 0x1f18, 0x1f1d, 0x1, -0x8, 0x1f28, 0x1f2f, 0x1, -0x8, 0x1f38, 0x1f3f, 0x1,
    -0x8, 0x1f48, 0x1f4d, 0x1, -0x8, 0x1f59, 0x1f5f, 0x2, -0x8, 0x1f68, 0x1f6f, 0x1, -0x8, 0x1f88,
    0x1f8f, 0x1, -0x8, 0x1f98, 0x1f9f, 0x1, -0x8, 0x1fa8, 0x1faf, 0x1, -0x8, 0x1fb8, 0x1fb9, 0x1,
    -0x8, 0x1fba, 0x1fbb, 0x1, -0x4a, 0x1fbc, 0x1fbc, 0x1, -0x9, 0x1fc8, 0x1fcb, 0x1, -0x56,
    0x1fcc, 0x1fcc, 0x1, -0x9, 0x1fd8, 0x1fd9, 0x1, -0x8, 0x1fda, 0x1fdb, 0x1, -0x64, 0x1fe8,
    0x1fe9, 0x1, -0x8, 0x1fea, 0x1feb, 0x1, -0x70, 0x1fec, 0x1fec, 0x1, -0x7, 0x1ff8, 0x1ff9, 0x1,
    -0x80, 0x1ffa, 0x1ffb, 0x1, -0x7e, 0x1ffc, 0x1ffc, 0x1, -0x9, 0x2126, 0x2126, 0x1, -0x1d5d,
    0x212a, 0x212a, 0x1, -0x20bf, 0x212b, 0x212b, 0x1, -0x2046, 0x2132, 0x2132, 0x1, 0x1c, 0x2160,
    0x216f, 0x1, 0x10, 0x2183, 0x2183, 0x1, 0x1, 0x24b6, 0x24cf, 0x1, 0x1a, 0x2c00, 0x2c2f, 0x1,
    0x30, 0x2c60, 0x2c60, 0x1, 0x1, 0x2c62, 0x2c62, 0x1, -0x29f7, 0x2c63, 0x2c63, 0x1, -0xee6,
    0x2c64, 0x2c64, 0x1, -0x29e7, 0x2c67, 0x2c6b, 0x2, 0x1, 0x2c6d, 0x2c6d, 0x1, -0x2a1c, 0x2c6e,
    0x2c6e, 0x1, -0x29fd, 0x2c6f, 0x2c6f, 0x1, -0x2a1f, 0x2c70, 0x2c70, 0x1, -0x2a1e, 0x2c72,
    0x2c72, 0x1, 0x1, 0x2c75, 0x2c75, 0x1, 0x1, 0x2c7e, 0x2c7f, 0x1, -0x2a3f, 0x2c80, 0x2ce2, 0x2,
    0x1, 0x2ceb, 0x2ced, 0x2, 0x1, 0x2cf2, 0x2cf2, 0x1, 0x1, 0xa640, 0xa66c, 0x2, 0x1, 0xa680,
    0xa69a, 0x2, 0x1, 0xa722, 0xa72e, 0x2, 0x1, 0xa732, 0xa76e, 0x2, 0x1, 0xa779, 0xa77b, 0x2, 0x1,
    0xa77d, 0xa77d, 0x1, -0x8a04, 0xa77e, 0xa786, 0x2, 0x1, 0xa78b, 0xa78b, 0x1, 0x1, 0xa78d,
    0xa78d, 0x1, -0xa528, 0xa790, 0xa792, 0x2, 0x1, 0xa796, 0xa7a8, 0x2, 0x1, 0xa7aa, 0xa7aa, 0x1,
    -0xa544, 0xa7ab, 0xa7ab, 0x1, -0xa54f, 0xa7ac, 0xa7ac, 0x1, -0xa54b, 0xa7ad, 0xa7ad, 0x1,
    -0xa541, 0xa7ae, 0xa7ae, 0x1, -0xa544, 0xa7b0, 0xa7b0, 0x1, -0xa512, 0xa7b1, 0xa7b1, 0x1,
    -0xa52a, 0xa7b2, 0xa7b2, 0x1, -0xa515, 0xa7b3, 0xa7b3, 0x1, 0x3a0, 0xa7b4, 0xa7c2, 0x2, 0x1,
    0xa7c4, 0xa7c4, 0x1, -0x30, 0xa7c5, 0xa7c5, 0x1, -0xa543, 0xa7c6, 0xa7c6, 0x1, -0x8a38, 0xa7c7,
    0xa7c9, 0x2, 0x1, 0xa7d0, 0xa7d0, 0x1, 0x1, 0xa7d6, 0xa7d8, 0x2, 0x1, 0xa7f5, 0xa7f5, 0x1, 0x1,
    0xff21, 0xff3a, 0x1, 0x20, 0x10400, 0x10427, 0x1, 0x28, 0x104b0, 0x104d3, 0x1, 0x28, 0x10570,
    0x1057a, 0x1, 0x27, 0x1057c, 0x1058a, 0x1, 0x27, 0x1058c, 0x10592, 0x1, 0x27, 0x10594, 0x10595,
    0x1, 0x27, 0x10c80, 0x10cb2, 0x1, 0x40, 0x118a0, 0x118bf, 0x1, 0x20, 0x16e40, 0x16e5f, 0x1,
    0x20, 0x1e900, 0x1e921, 0x1, 0x22,
];
const NFKC_NETLOC_DANGER: [u32; 19] = [
    0x2047, 0x2048, 0x2049, 0x2100, 0x2101, 0x2105, 0x2106, 0x2a74, 0xfe13, 0xfe16, 0xfe55, 0xfe56,
    0xfe5f, 0xfe6b, 0xff03, 0xff0f, 0xff1a, 0xff1f, 0xff20,
];
