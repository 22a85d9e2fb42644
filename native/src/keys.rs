//! The aggregate keys visitor contributions produce: the Rust twins of the key
//! NamedTuples of `streams/outputs/*.py` (funnel steps, outcomes, open attempts, time to
//! convert, attempts, KPI cells, order attribution, retention, order gaps).
//!
//! Python tells two NamedTuples with equal fields apart by their `family` field; here the
//! variant of [`Key`] does. Each key has the Python key's fields (without the family), its
//! `threshold` (the finality group: a key of the checkpoint's thresholds) and `final_at`
//! (the window, or period or day start, the key is final with).

use crate::attribution::{OrderAttributionKey, KPI_THRESHOLD};
use crate::json::Json;
use crate::retention::{OrderGapKey, RetentionContribution, RetentionKey, GAPS_FAMILY};
use crate::rules::funnel_threshold;
use crate::state::Dims;

/// `streams.outputs.funnel_outcomes` outcomes.
pub const CONVERTED: &str = "converted";
pub const DROPPED: &str = "dropped";
pub const IN_PROGRESS: &str = "in_progress";

/// `streams.outputs.kpi.METRICS`: a `KpiCellKey.metric` is an index into it.
pub const METRICS: [&str; 11] = [
    "orders",
    "gmv_minor",
    "items",
    "coupon_orders",
    "discount_minor",
    "first_orders",
    "repeat_orders",
    "refunds",
    "refunded_minor",
    "payment_failures",
    "cancellations",
];
pub const ORDERS: usize = 0;
pub const GMV: usize = 1;
pub const ITEMS: usize = 2;
pub const COUPON_ORDERS: usize = 3;
pub const DISCOUNT: usize = 4;
pub const FIRST_ORDERS: usize = 5;
pub const REPEAT_ORDERS: usize = 6;
pub const REFUNDS: usize = 7;
pub const REFUNDED: usize = 8;
pub const PAYMENT_FAILURES: usize = 9;
pub const CANCELLATIONS: usize = 10;

/// `streams.outputs.funnel_ttc.TTC_BUCKETS_S` (seconds; Python's are ints but the last,
/// float inf).
pub const TTC_BUCKETS_S: [f64; 11] = [
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
    7200.0,
    86400.0,
    f64::INFINITY,
];
/// The finite bounds in seconds.
const TTC_BOUNDS: [i128; 10] = [10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 86400];
/// `repr()` of the Python bucket values.
const TTC_REPRS: [&str; 11] = [
    "10", "30", "60", "120", "300", "600", "1800", "3600", "7200", "86400", "inf",
];

/// A time-to-convert histogram bucket: an index into [`TTC_BUCKETS_S`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TtcBucket(pub usize);

impl TtcBucket {
    /// The upper bound in seconds, as the `le_seconds` column holds it.
    pub fn le_seconds(self) -> f64 {
        TTC_BUCKETS_S.get(self.0).copied().unwrap_or(f64::INFINITY)
    }

    /// `repr()` of the Python value (`10`, ..., `86400`, `inf`).
    pub fn python_repr(self) -> &'static str {
        TTC_REPRS.get(self.0).copied().unwrap_or("inf")
    }
}

/// `funnel_ttc.bucket_of`: the first bound with `ttc_ms / 1000 <= bound`. Python compares
/// the rounded float quotient with an int bound; for bounds up to 86400 s that equals the
/// exact integer comparison `ttc_ms <= bound * 1000` (a quotient above a bound is at least
/// 1/1000 above it, far more than a float's spacing there).
pub fn bucket_of(ttc_ms: i64) -> TtcBucket {
    for (index, bound) in TTC_BOUNDS.iter().enumerate() {
        if ttc_ms as i128 <= bound * 1000 {
            return TtcBucket(index);
        }
    }
    TtcBucket(TTC_BOUNDS.len())
}

/// `funnel_steps.FunnelStepKey`: entities of `funnel` whose attempt started in `window`
/// and reached `step` (1-based).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FunnelStepKey {
    pub funnel: String,
    pub window: i64,
    pub dims: Dims,
    pub step: i64,
    pub breakdown: Vec<String>,
}

/// `funnel_outcomes.FunnelOutcomeKey`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FunnelOutcomeKey {
    pub funnel: String,
    pub window: i64,
    pub dims: Dims,
    /// CONVERTED, DROPPED or IN_PROGRESS.
    pub outcome: &'static str,
    pub breakdown: Vec<String>,
}

/// `funnel_outcomes.OpenAttemptKey`: bookkeeping only (never written), it holds the
/// funnel's window back from being final while attempts in it are open.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OpenAttemptKey {
    pub funnel: String,
    pub window: i64,
}

/// `funnel_ttc.FunnelTtcKey`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FunnelTtcKey {
    pub funnel: String,
    pub window: i64,
    pub dims: Dims,
    pub le_seconds: TtcBucket,
    pub breakdown: Vec<String>,
}

/// `funnel_attempts.FunnelAttemptKey`: the credit of one entity.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FunnelAttemptKey {
    pub funnel: String,
    pub window: i64,
    pub dims: Dims,
    pub breakdown: Vec<String>,
    pub anonymous_id: String,
    /// Session segment id (session scope); "" for user scope.
    pub entity: String,
    pub start_event_id: String,
    pub outcome: &'static str,
    pub level: i64,
    /// Epoch ms of steps 1..level.
    pub step_times: Vec<i64>,
}

/// `kpi.KpiKey`: one `kpi_minute` row (a minute, its dimensions and a currency); the unit
/// rows are written by, made of the [`KpiCellKey`]s visitors contribute to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KpiKey {
    pub window: i64,
    pub dims: Dims,
    pub currency: String,
}

impl KpiKey {
    pub fn threshold(&self) -> &'static str {
        KPI_THRESHOLD
    }

    pub fn final_at(&self) -> i64 {
        self.window
    }
}

/// `kpi.KpiCellKey`: one metric of a `kpi_minute` row.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KpiCellKey {
    pub window: i64,
    pub dims: Dims,
    pub currency: String,
    /// Index into METRICS.
    pub metric: usize,
}

impl KpiCellKey {
    /// The row the cell belongs to.
    pub fn row(&self) -> KpiKey {
        KpiKey {
            window: self.window,
            dims: self.dims.clone(),
            currency: self.currency.clone(),
        }
    }
}

/// Any aggregate key a visitor contributes to (`streams.outputs.Key`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    FunnelStep(FunnelStepKey),
    FunnelOutcome(FunnelOutcomeKey),
    OpenAttempt(OpenAttemptKey),
    FunnelTtc(FunnelTtcKey),
    FunnelAttempt(FunnelAttemptKey),
    KpiCell(KpiCellKey),
    OrderAttribution(OrderAttributionKey),
    Retention(RetentionKey),
    OrderGap(OrderGapKey),
}

/// A borrowed aggregate key, to read a total without building (and copying) an owned
/// `Key`: a KPI cell is its row's key and the metric's index.
#[derive(Clone, Copy, Debug)]
pub enum KeyRef<'a> {
    FunnelStep(&'a FunnelStepKey),
    FunnelOutcome(&'a FunnelOutcomeKey),
    FunnelTtc(&'a FunnelTtcKey),
    FunnelAttempt(&'a FunnelAttemptKey),
    KpiCell(&'a KpiKey, usize),
    OrderAttribution(&'a OrderAttributionKey),
    Retention(&'a RetentionKey),
    OrderGap(&'a OrderGapKey),
}

/// A row of an aggregate table (`streams.outputs.RowKey`): what `Key`s are grouped into
/// for writing. A KPI row has one cell per metric; open attempts are never written.
///
/// The two largest keys are boxed, so a row of the others (most rows) does not take
/// their size: the live aggregates keep one `RowKey` per row (BENCHMARKS.md).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RowKey {
    FunnelStep(FunnelStepKey),
    FunnelOutcome(FunnelOutcomeKey),
    FunnelTtc(FunnelTtcKey),
    FunnelAttempt(Box<FunnelAttemptKey>),
    Kpi(KpiKey),
    OrderAttribution(Box<OrderAttributionKey>),
    Retention(RetentionKey),
    OrderGap(OrderGapKey),
}

/// `streams.aggregates.row_of`: the output row a contribution key belongs to; None for
/// an open attempt (the Python asserts it never asks).
pub fn row_of(key: &Key) -> Option<RowKey> {
    Some(match key {
        Key::FunnelStep(k) => RowKey::FunnelStep(k.clone()),
        Key::FunnelOutcome(k) => RowKey::FunnelOutcome(k.clone()),
        Key::OpenAttempt(_) => return None,
        Key::FunnelTtc(k) => RowKey::FunnelTtc(k.clone()),
        Key::FunnelAttempt(k) => RowKey::FunnelAttempt(Box::new(k.clone())),
        Key::KpiCell(k) => RowKey::Kpi(k.row()),
        Key::OrderAttribution(k) => RowKey::OrderAttribution(Box::new(k.clone())),
        Key::Retention(k) => RowKey::Retention(k.clone()),
        Key::OrderGap(k) => RowKey::OrderGap(k.clone()),
    })
}

impl From<RetentionContribution> for Key {
    fn from(key: RetentionContribution) -> Key {
        match key {
            RetentionContribution::Retention(k) => Key::Retention(k),
            RetentionContribution::OrderGap(k) => Key::OrderGap(k),
        }
    }
}

impl Key {
    /// The key's finality group (`key.threshold`): a key of the checkpoint's thresholds.
    pub fn threshold(&self) -> String {
        match self {
            Key::FunnelStep(k) => funnel_threshold(&k.funnel),
            Key::FunnelOutcome(k) => funnel_threshold(&k.funnel),
            Key::OpenAttempt(k) => funnel_threshold(&k.funnel),
            Key::FunnelTtc(k) => funnel_threshold(&k.funnel),
            Key::FunnelAttempt(k) => funnel_threshold(&k.funnel),
            Key::KpiCell(_) | Key::OrderAttribution(_) => KPI_THRESHOLD.to_owned(),
            Key::Retention(k) => k.granularity.family().to_owned(),
            Key::OrderGap(_) => GAPS_FAMILY.to_owned(),
        }
    }

    /// `thresholds.get(key.threshold, 0)` without building the group's name.
    pub fn threshold_in(&self, thresholds: &[(String, i64)]) -> i64 {
        let funnel = match self {
            Key::FunnelStep(k) => &k.funnel,
            Key::FunnelOutcome(k) => &k.funnel,
            Key::OpenAttempt(k) => &k.funnel,
            Key::FunnelTtc(k) => &k.funnel,
            Key::FunnelAttempt(k) => &k.funnel,
            Key::KpiCell(_) | Key::OrderAttribution(_) => {
                return group_in(thresholds, KPI_THRESHOLD)
            }
            Key::Retention(k) => return group_in(thresholds, k.granularity.family()),
            Key::OrderGap(_) => return group_in(thresholds, GAPS_FAMILY),
        };
        thresholds
            .iter()
            .find(|(name, _)| {
                name.len() == FUNNEL_PREFIX.len() + funnel.len()
                    && name.starts_with(FUNNEL_PREFIX)
                    && name.ends_with(funnel.as_str())
            })
            .map_or(0, |(_, value)| *value)
    }

    /// `key.final_at`: final once the group's threshold has passed it.
    pub fn final_at(&self) -> i64 {
        match self {
            Key::FunnelStep(k) => k.window,
            Key::FunnelOutcome(k) => k.window,
            Key::OpenAttempt(k) => k.window,
            Key::FunnelTtc(k) => k.window,
            Key::FunnelAttempt(k) => k.window,
            Key::KpiCell(k) => k.window,
            Key::OrderAttribution(k) => k.window,
            Key::Retention(k) => k.period_start_ms,
            Key::OrderGap(k) => k.day_ms,
        }
    }

    /// `key.window` of the keys that have one (funnel, KPI and attribution keys).
    pub fn window(&self) -> Option<i64> {
        match self {
            Key::FunnelStep(k) => Some(k.window),
            Key::FunnelOutcome(k) => Some(k.window),
            Key::OpenAttempt(k) => Some(k.window),
            Key::FunnelTtc(k) => Some(k.window),
            Key::FunnelAttempt(k) => Some(k.window),
            Key::KpiCell(k) => Some(k.window),
            Key::OrderAttribution(k) => Some(k.window),
            Key::Retention(_) | Key::OrderGap(_) => None,
        }
    }

    /// The Python key class's name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Key::FunnelStep(_) => "FunnelStepKey",
            Key::FunnelOutcome(_) => "FunnelOutcomeKey",
            Key::OpenAttempt(_) => "OpenAttemptKey",
            Key::FunnelTtc(_) => "FunnelTtcKey",
            Key::FunnelAttempt(_) => "FunnelAttemptKey",
            Key::KpiCell(_) => "KpiCellKey",
            Key::OrderAttribution(_) => "OrderAttributionKey",
            Key::Retention(_) => "RetentionKey",
            Key::OrderGap(_) => "OrderGapKey",
        }
    }

    /// The key as the tests write it: [type name, *fields] (the family left out; tuples as
    /// lists; float buckets as the `repr()` of the Python value).
    pub fn fields_json(&self) -> Vec<Json> {
        let mut out = vec![Json::s(self.type_name())];
        match self {
            Key::FunnelStep(k) => {
                out.push(Json::s(&k.funnel));
                out.push(Json::Int(k.window));
                out.push(dims_json(&k.dims));
                out.push(Json::Int(k.step));
                out.push(strings_json(&k.breakdown));
            }
            Key::FunnelOutcome(k) => {
                out.push(Json::s(&k.funnel));
                out.push(Json::Int(k.window));
                out.push(dims_json(&k.dims));
                out.push(Json::s(k.outcome));
                out.push(strings_json(&k.breakdown));
            }
            Key::OpenAttempt(k) => {
                out.push(Json::s(&k.funnel));
                out.push(Json::Int(k.window));
            }
            Key::FunnelTtc(k) => {
                out.push(Json::s(&k.funnel));
                out.push(Json::Int(k.window));
                out.push(dims_json(&k.dims));
                out.push(Json::s(k.le_seconds.python_repr()));
                out.push(strings_json(&k.breakdown));
            }
            Key::FunnelAttempt(k) => {
                out.push(Json::s(&k.funnel));
                out.push(Json::Int(k.window));
                out.push(dims_json(&k.dims));
                out.push(strings_json(&k.breakdown));
                out.push(Json::s(&k.anonymous_id));
                out.push(Json::s(&k.entity));
                out.push(Json::s(&k.start_event_id));
                out.push(Json::s(k.outcome));
                out.push(Json::Int(k.level));
                out.push(Json::List(
                    k.step_times.iter().map(|t| Json::Int(*t)).collect(),
                ));
            }
            Key::KpiCell(k) => {
                out.push(Json::Int(k.window));
                out.push(dims_json(&k.dims));
                out.push(Json::s(&k.currency));
                out.push(Json::Int(k.metric as i64));
            }
            Key::OrderAttribution(k) => {
                if let Json::List(fields) = k.to_json() {
                    out.extend(fields);
                }
            }
            Key::Retention(k) => {
                out.push(Json::s(k.cohort_kind));
                out.push(Json::s(k.granularity.as_str()));
                out.push(Json::Int(k.cohort_ms));
                out.push(Json::s(k.activity));
                out.push(Json::Int(k.period));
                out.push(Json::Int(k.period_start_ms));
                out.push(Json::s(&k.channel));
                out.push(Json::s(&k.platform));
            }
            Key::OrderGap(k) => {
                out.push(Json::Int(k.day_ms));
                out.push(Json::s(&k.channel));
                out.push(Json::s(k.le_days.python_repr()));
            }
        }
        out
    }
}

/// What `funnel_threshold` puts before the funnel's name.
const FUNNEL_PREFIX: &str = "funnel:";

fn group_in(thresholds: &[(String, i64)], group: &str) -> i64 {
    thresholds
        .iter()
        .find(|(name, _)| name == group)
        .map_or(0, |(_, value)| *value)
}

fn dims_json(dims: &Dims) -> Json {
    Json::List(dims.iter().map(|d| Json::s(d)).collect())
}

fn strings_json(values: &[String]) -> Json {
    Json::List(values.iter().map(|v| Json::s(v)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttc_buckets() {
        assert_eq!(bucket_of(i64::MIN), TtcBucket(0));
        assert_eq!(bucket_of(10_000), TtcBucket(0));
        assert_eq!(bucket_of(10_001), TtcBucket(1));
        assert_eq!(bucket_of(86_400_000), TtcBucket(9));
        assert_eq!(bucket_of(86_400_001).python_repr(), "inf");
        assert_eq!(bucket_of(i64::MAX).le_seconds(), f64::INFINITY);
    }
}
