//! Retention cohorts and time between orders: the Rust twin of `streams/retention.py`
//! (docs/semantics.md section 6), plus `retention_contributions` of `streams/visitor.py`.
//!
//! A visitor contributes 1 to every (cohort, period N, activity) cell it is active in.
//! Periods are UTC days, ISO weeks (Monday) and calendar months, identified by the epoch
//! milliseconds of their start. Dates are proleptic Gregorian, computed here with
//! H. Hinnant's civil-from-days algorithms; a [`Date`] has Python's `datetime.date` range
//! (years 1 to 9999), and where Python raises for a date outside it the functions here
//! return `None`.
//!
//! Python's integers are unbounded, ours are `i64`: where Python would return a number
//! outside `i64` (event times within a month of `i64::MIN`), the functions return `None`
//! instead of a wrong number. Intermediate arithmetic is done in `i128`, which holds every
//! value these functions compute from `i64` inputs.

use crate::json::{Json, JsonError, JsonResult};
use crate::lives::{self, split_lives, LifecycleRules};
use crate::state::{DayActivity, Purchase};
use std::collections::BTreeSet;

use crate::fxhash::FxHashMap as HashMap;
use std::convert::TryFrom;

pub use crate::lifecycle::DAY_MS;

pub const ACTIVITIES: [&str; 3] = ["visit", "purchase", "repeat_purchase"];
pub const FIRST_VISIT: &str = "first_visit";
pub const FIRST_PURCHASE: &str = "first_purchase";
pub const GAPS_FAMILY: &str = "order_gaps";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Granularity {
    Day,
    Week,
    Month,
}

pub const GRANULARITIES: [Granularity; 3] =
    [Granularity::Day, Granularity::Week, Granularity::Month];

impl Granularity {
    pub fn as_str(self) -> &'static str {
        match self {
            Granularity::Day => "day",
            Granularity::Week => "week",
            Granularity::Month => "month",
        }
    }

    /// As the Python functions read their `granularity` argument: "day", "week", and
    /// anything else is a month.
    pub fn of(name: &str) -> Granularity {
        match name {
            "day" => Granularity::Day,
            "week" => Granularity::Week,
            _ => Granularity::Month,
        }
    }

    /// MAX_PERIOD
    pub fn max_period(self) -> i64 {
        match self {
            Granularity::Day => 30,
            Granularity::Week => 12,
            Granularity::Month => 12,
        }
    }

    /// RETENTION_FAMILY: the finality group of the granularity's cells.
    pub fn family(self) -> &'static str {
        match self {
            Granularity::Day => "retention:day",
            Granularity::Week => "retention:week",
            Granularity::Month => "retention:month",
        }
    }
}

// -- calendar ----------------------------------------------------------------------------

/// A `datetime.date`: proleptic Gregorian, year 1 to 9999.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    year: i64,
    month: i64,
    day: i64,
}

/// Epoch days of date(1, 1, 1) and date(9999, 12, 31).
pub const MIN_DATE_DAY: i64 = -719_162;
pub const MAX_DATE_DAY: i64 = 2_932_896;

/// (year, month, day) of an epoch day (H. Hinnant's civil_from_days), exact for any i128
/// day whose year fits.
fn civil_from_days(day: i128) -> (i128, i128, i128) {
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m, d)
}

/// Epoch day of (year, month 1-12, day) (H. Hinnant's days_from_civil).
fn days_from_civil(year: i128, month: i128, day: i128) -> i128 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 => {
            if is_leap(year) {
                29
            } else {
                28
            }
        }
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl Date {
    /// `date(year, month, day)`; None where Python raises ValueError.
    pub fn new(year: i64, month: i64, day: i64) -> Option<Date> {
        if !(1..=9999).contains(&year) || !(1..=12).contains(&month) {
            return None;
        }
        if day < 1 || day > days_in_month(year, month) {
            return None;
        }
        Some(Date { year, month, day })
    }

    /// `date(1970, 1, 1) + timedelta(days=day)`; None where Python raises OverflowError.
    pub fn from_epoch_day(day: i128) -> Option<Date> {
        if day < MIN_DATE_DAY as i128 || day > MAX_DATE_DAY as i128 {
            return None;
        }
        let (y, m, d) = civil_from_days(day);
        Some(Date {
            year: y as i64,
            month: m as i64,
            day: d as i64,
        })
    }

    pub fn epoch_day(self) -> i64 {
        days_from_civil(self.year as i128, self.month as i128, self.day as i128) as i64
    }

    pub fn year(self) -> i64 {
        self.year
    }

    pub fn month(self) -> i64 {
        self.month
    }

    pub fn day(self) -> i64 {
        self.day
    }

    /// `date.weekday()`: Monday is 0 (epoch day 0 was a Thursday).
    pub fn weekday(self) -> i64 {
        (self.epoch_day() + 3).rem_euclid(7)
    }
}

/// Epoch day number (UTC) of an epoch millisecond time.
pub fn day_of(t: i64) -> i64 {
    t.div_euclid(DAY_MS)
}

/// Epoch milliseconds of the date's midnight UTC (`date_ms`).
pub fn date_ms(d: Date) -> i64 {
    // |epoch day| <= 2_932_896, so this cannot overflow.
    d.epoch_day() * DAY_MS
}

/// The start of the period holding epoch day `day`; None where Python raises (a date
/// outside years 1-9999).
pub fn period_start(day: i64, granularity: Granularity) -> Option<Date> {
    let d = Date::from_epoch_day(day as i128)?;
    match granularity {
        Granularity::Day => Some(d),
        Granularity::Week => Date::from_epoch_day((d.epoch_day() - d.weekday()) as i128),
        Granularity::Month => Some(Date { day: 1, ..d }),
    }
}

/// How many periods after `cohort` the period holding `day` starts.
pub fn period_index(cohort: Date, day: i64, granularity: Granularity) -> Option<i64> {
    let start = period_start(day, granularity)?;
    Some(match granularity {
        Granularity::Day => start.epoch_day() - cohort.epoch_day(),
        Granularity::Week => (start.epoch_day() - cohort.epoch_day()).div_euclid(7),
        Granularity::Month => (start.year - cohort.year) * 12 + start.month - cohort.month,
    })
}

/// The start of period `n` after `cohort`; None where Python raises.
pub fn add_periods(cohort: Date, n: i64, granularity: Granularity) -> Option<Date> {
    let n = n as i128;
    match granularity {
        Granularity::Day => Date::from_epoch_day(cohort.epoch_day() as i128 + n),
        Granularity::Week => Date::from_epoch_day(cohort.epoch_day() as i128 + 7 * n),
        Granularity::Month => {
            let months = cohort.month as i128 - 1 + n;
            let year = cohort.year as i128 + months.div_euclid(12);
            if !(1..=9999).contains(&year) {
                return None;
            }
            Date::new(year as i64, (months.rem_euclid(12) + 1) as i64, 1)
        }
    }
}

/// Start of the period holding the watermark: earlier periods are final. None where
/// Python raises (a watermark outside years 1-9999).
pub fn current_period_ms(watermark: i64, granularity: Granularity) -> Option<i64> {
    period_start(day_of(watermark), granularity).map(date_ms)
}

/// `year * 12 + month - 1` of an epoch day (UTC, proleptic Gregorian). Defined for every
/// i64 day (the result always fits).
pub fn month_of_day(day: i64) -> i64 {
    let (year, month, _) = civil_from_days(day as i128);
    (year * 12 + month - 1) as i64
}

fn month_start_day_wide(month_index: i128) -> i128 {
    let year = month_index.div_euclid(12);
    let month = month_index.rem_euclid(12) + 1;
    days_from_civil(year, month, 1)
}

/// Epoch day of the first day of month `year * 12 + month - 1`; None if it is outside
/// i64 (Python returns the big number).
pub fn month_start_day(month_index: i64) -> Option<i64> {
    i64::try_from(month_start_day_wide(month_index as i128)).ok()
}

// -- activity ----------------------------------------------------------------------------

/// `sorted(purchases, key=lambda p: (p.t, p.transaction_id))` (stable).
pub fn sorted_purchases<'a, I>(purchases: I) -> Vec<&'a Purchase>
where
    I: IntoIterator<Item = &'a Purchase>,
{
    let mut ordered: Vec<&Purchase> = purchases.into_iter().collect();
    ordered.sort_by(|a, b| (a.t, &a.transaction_id).cmp(&(b.t, &b.transaction_id)));
    ordered
}

/// The days of each activity (`activity_days`): visit, purchase, repeat purchase.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ActivityDays {
    pub visit: BTreeSet<i64>,
    pub purchase: BTreeSet<i64>,
    pub repeat_purchase: BTreeSet<i64>,
}

pub fn activity_days<'a, I>(visit_days: &[i64], purchases: I) -> ActivityDays
where
    I: IntoIterator<Item = &'a Purchase>,
{
    let ordered = sorted_purchases(purchases);
    ActivityDays {
        visit: visit_days.iter().copied().collect(),
        purchase: ordered.iter().map(|p| day_of(p.t)).collect(),
        repeat_purchase: ordered.iter().skip(1).map(|p| day_of(p.t)).collect(),
    }
}

/// One retention cell a visitor is active in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cell {
    /// FIRST_VISIT or FIRST_PURCHASE
    pub kind: &'static str,
    pub granularity: Granularity,
    pub cohort_ms: i64,
    /// one of ACTIVITIES
    pub activity: &'static str,
    pub n: i64,
    pub start_ms: i64,
}

/// (cohort kind, granularity, cohort start ms, activity, N, activity period start ms) of
/// every cell the visitor is active in. None only where Python would return a time
/// outside i64.
pub fn retention_cells<'a, I>(
    first_visit_t: Option<i64>,
    visit_days: &[i64],
    purchases: I,
) -> Option<Vec<Cell>>
where
    I: IntoIterator<Item = &'a Purchase>,
{
    let first_visit_t = match first_visit_t {
        Some(t) => t,
        None => return Some(Vec::new()),
    };
    let purchase_days: Vec<i64> = sorted_purchases(purchases)
        .iter()
        .map(|p| day_of(p.t))
        .collect();
    cells_of_days(day_of(first_visit_t), visit_days, &purchase_days)
}

fn ms(day: i128) -> Option<i64> {
    i64::try_from(day.checked_mul(DAY_MS as i128)?).ok()
}

/// `_cells_of_days`: the cells from the days alone (purchase days in purchase order).
pub fn cells_of_days(
    first_visit_day: i64,
    visit_days: &[i64],
    purchase_days: &[i64],
) -> Option<Vec<Cell>> {
    let purchase: BTreeSet<i64> = purchase_days.iter().copied().collect();
    let repeat: BTreeSet<i64> = purchase_days.iter().skip(1).copied().collect();
    let visit: BTreeSet<i64> = visit_days.iter().copied().collect();
    let days: [&BTreeSet<i64>; 3] = [&visit, &purchase, &repeat];
    let mut anchors: Vec<(&'static str, i64)> = vec![(FIRST_VISIT, first_visit_day)];
    if let Some(first) = purchase_days.first() {
        anchors.push((FIRST_PURCHASE, *first));
    }
    let mut cells: Vec<Cell> = Vec::new();
    for (kind, anchor) in anchors {
        let anchor = anchor as i128;
        for granularity in GRANULARITIES {
            let limit = granularity.max_period() as i128;
            // For each granularity: the cohort's first epoch day, the period of a day,
            // and the first epoch day of period n.
            let (cohort_day, cohort_month) = match granularity {
                Granularity::Day => (anchor, 0),
                Granularity::Week => (anchor - (anchor + 3).rem_euclid(7), 0),
                Granularity::Month => {
                    let month = month_of_day(anchor as i64) as i128;
                    (month_start_day_wide(month), month)
                }
            };
            // None if outside i64: an error only if a cell holds it.
            let cohort_ms = ms(cohort_day);
            for (activity, active) in ACTIVITIES.iter().copied().zip(days.iter().copied()) {
                let periods: BTreeSet<i128> = active
                    .iter()
                    .map(|&d| match granularity {
                        Granularity::Day => d as i128 - anchor,
                        Granularity::Week => (d as i128 - cohort_day).div_euclid(7),
                        Granularity::Month => month_of_day(d) as i128 - cohort_month,
                    })
                    .filter(|p| 0 <= *p && *p <= limit)
                    .collect();
                for n in periods {
                    let start_day = match granularity {
                        Granularity::Day => anchor + n,
                        Granularity::Week => cohort_day + 7 * n,
                        Granularity::Month => month_start_day_wide(cohort_month + n),
                    };
                    cells.push(Cell {
                        kind,
                        granularity,
                        cohort_ms: cohort_ms?,
                        activity,
                        n: n as i64,
                        start_ms: ms(start_day)?,
                    });
                }
            }
        }
    }
    Some(cells)
}

// -- time between orders -----------------------------------------------------------------

/// A gap bucket: an index into GAP_BUCKETS_DAYS (upper bounds in days, the last infinite).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GapBucket(usize);

/// GAP_BUCKETS_DAYS, as the `le_days` column holds them.
pub const GAP_BUCKETS_DAYS: [f64; 9] =
    [1.0, 3.0, 7.0, 14.0, 30.0, 60.0, 90.0, 180.0, f64::INFINITY];
/// The finite bounds in days (Python's are ints: 1, 3, ..., 180; the last is float inf).
const GAP_BOUNDS: [i128; 8] = [1, 3, 7, 14, 30, 60, 90, 180];
/// `repr()` of the Python bucket values.
const GAP_REPRS: [&str; 9] = ["1", "3", "7", "14", "30", "60", "90", "180", "inf"];

impl GapBucket {
    pub fn upper_days(self) -> f64 {
        GAP_BUCKETS_DAYS
            .get(self.0)
            .copied()
            .unwrap_or(f64::INFINITY)
    }

    /// `repr()` of the Python value (`1`, ..., `180`, `inf`).
    pub fn python_repr(self) -> &'static str {
        GAP_REPRS.get(self.0).copied().unwrap_or("inf")
    }
}

/// `_gap_bucket`: the first bound with `gap_ms / DAY_MS <= bound`. Python compares the
/// rounded float quotient with an int bound; for bounds up to 180 that equals the exact
/// integer comparison `gap_ms <= bound * DAY_MS` (a quotient above a bound is at least
/// 1/DAY_MS above it, far more than a float's spacing there).
pub fn gap_bucket(gap_ms: i128) -> GapBucket {
    for (index, bound) in GAP_BOUNDS.iter().enumerate() {
        if gap_ms <= bound * DAY_MS as i128 {
            return GapBucket(index);
        }
    }
    GapBucket(GAP_BOUNDS.len())
}

/// One repeat purchase: the day start ms of the later purchase, its channel, gap bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderGap<'a> {
    pub day_ms: i64,
    pub channel: &'a str,
    pub bucket: GapBucket,
}

/// `order_gaps`: one per repeat purchase, in purchase order. None only where Python would
/// return a day start outside i64.
pub fn order_gaps<'a, I>(purchases: I) -> Option<Vec<OrderGap<'a>>>
where
    I: IntoIterator<Item = &'a Purchase>,
{
    let ordered = sorted_purchases(purchases);
    ordered
        .windows(2)
        .map(|pair| {
            let (earlier, later) = (pair[0], pair[1]);
            Some(OrderGap {
                day_ms: ms(day_of(later.t) as i128)?,
                channel: &later.channel,
                bucket: gap_bucket(later.t as i128 - earlier.t as i128),
            })
        })
        .collect()
}

// -- contributions (streams/visitor.py) ------------------------------------------------

/// streams/outputs/retention.py RetentionKey
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RetentionKey {
    pub cohort_kind: &'static str,
    pub granularity: Granularity,
    pub cohort_ms: i64,
    pub activity: &'static str,
    pub period: i64,
    pub period_start_ms: i64,
    pub channel: String,
    pub platform: String,
}

/// streams/outputs/order_gaps.py OrderGapKey
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OrderGapKey {
    pub day_ms: i64,
    pub channel: String,
    pub le_days: GapBucket,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RetentionContribution {
    Retention(RetentionKey),
    OrderGap(OrderGapKey),
}

/// `thresholds.get(family, 0)`.
pub fn threshold_of(thresholds: &[(String, i64)], family: &str) -> i64 {
    thresholds
        .iter()
        .find(|(name, _)| name == family)
        .map_or(0, |(_, value)| *value)
}

/// `retention_contributions`: retention cells and order gaps of every life, non-final
/// only, as (key, value) in the Python dict's insertion order. `thresholds` is the
/// Python dict (finality group -> first window not final yet). None only where Python
/// would produce a time outside i64.
pub fn retention_contributions(
    days: &[DayActivity],
    purchases: &[Purchase],
    thresholds: &[(String, i64)],
    lifecycle: &LifecycleRules,
) -> Option<Vec<(RetentionContribution, i64)>> {
    let mut out: Vec<(RetentionContribution, i64)> = Vec::new();
    let mut index: HashMap<RetentionContribution, usize> = HashMap::default();
    let mut add = |key: RetentionContribution| match index.get(&key) {
        Some(&at) => {
            if let Some(entry) = out.get_mut(at) {
                entry.1 += 1;
            }
        }
        None => {
            index.insert(key.clone(), out.len());
            out.push((key, 1));
        }
    };
    let gaps_threshold = threshold_of(thresholds, GAPS_FAMILY);
    let cell_threshold = |g: Granularity| threshold_of(thresholds, g.family());
    for life in split_lives(days, purchases.iter(), lifecycle) {
        let first = life.first();
        let (channel, platform) = (&first.channel, &first.platform);
        let visit_days: Vec<i64> = life.days().iter().map(|d| d.day).collect();
        let held = life.purchases();
        let cells = retention_cells(Some(life.first_t()), &visit_days, held.iter().copied())?;
        for cell in cells {
            if cell.start_ms >= cell_threshold(cell.granularity) {
                add(RetentionContribution::Retention(RetentionKey {
                    cohort_kind: cell.kind,
                    granularity: cell.granularity,
                    cohort_ms: cell.cohort_ms,
                    activity: cell.activity,
                    period: cell.n,
                    period_start_ms: cell.start_ms,
                    channel: channel.clone(),
                    platform: platform.clone(),
                }));
            }
        }
        for gap in order_gaps(held.iter().copied())? {
            if gap.day_ms >= gaps_threshold {
                add(RetentionContribution::OrderGap(OrderGapKey {
                    day_ms: gap.day_ms,
                    channel: gap.channel.to_owned(),
                    le_days: gap.bucket,
                }));
            }
        }
    }
    Some(out)
}

// -- probes ------------------------------------------------------------------------------

fn arg<'a>(args: &'a Json, name: &str) -> JsonResult<&'a Json> {
    args.object("the arguments")?
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
        .ok_or_else(|| JsonError(format!("no argument {:?}", name)))
}

fn date_arg(value: &Json) -> JsonResult<Date> {
    let f = value.list("a date")?;
    if f.len() != 3 {
        return Err(JsonError("a date is [year, month, day]".into()));
    }
    Date::new(
        f[0].int("a year")?,
        f[1].int("a month")?,
        f[2].int("a day")?,
    )
    .ok_or_else(|| JsonError("not a date".into()))
}

fn date_json(d: Option<Date>) -> Json {
    match d {
        Some(d) => Json::List(vec![
            Json::Int(d.year),
            Json::Int(d.month),
            Json::Int(d.day),
        ]),
        None => Json::Null,
    }
}

fn ints(values: &[Json], what: &str) -> JsonResult<Vec<i64>> {
    values.iter().map(|v| v.int(what)).collect()
}

fn set_json(values: &BTreeSet<i64>) -> Json {
    Json::List(values.iter().map(|v| Json::Int(*v)).collect())
}

fn cells_json(cells: Option<Vec<Cell>>) -> Json {
    match cells {
        None => Json::Null,
        Some(cells) => Json::List(
            cells
                .iter()
                .map(|c| {
                    Json::List(vec![
                        Json::s(c.kind),
                        Json::s(c.granularity.as_str()),
                        Json::Int(c.cohort_ms),
                        Json::s(c.activity),
                        Json::Int(c.n),
                        Json::Int(c.start_ms),
                    ])
                })
                .collect(),
        ),
    }
}

fn purchases_arg(args: &Json) -> JsonResult<Vec<Purchase>> {
    arg(args, "purchases")?
        .list("the purchases")?
        .iter()
        .map(lives::purchase_from_json)
        .collect()
}

/// The contribution key as the test writes the Python key: its fields, the family last.
pub fn contribution_json(key: &RetentionContribution) -> Json {
    match key {
        RetentionContribution::Retention(k) => Json::List(vec![
            Json::s(k.cohort_kind),
            Json::s(k.granularity.as_str()),
            Json::Int(k.cohort_ms),
            Json::s(k.activity),
            Json::Int(k.period),
            Json::Int(k.period_start_ms),
            Json::s(&k.channel),
            Json::s(&k.platform),
            Json::s("retention"),
        ]),
        RetentionContribution::OrderGap(k) => Json::List(vec![
            Json::Int(k.day_ms),
            Json::s(&k.channel),
            Json::s(k.le_days.python_repr()),
            Json::s("order_gaps"),
        ]),
    }
}

pub fn probe(name: &str, args: &Json) -> Option<JsonResult<Json>> {
    let run = match name {
        "retention.day_of" => probe_day_of,
        "retention.date" => probe_date,
        "retention.date_ms" => probe_date_ms,
        "retention.period_start" => probe_period_start,
        "retention.period_index" => probe_period_index,
        "retention.add_periods" => probe_add_periods,
        "retention.current_period_ms" => probe_current_period_ms,
        "retention.month_of_day" => probe_month_of_day,
        "retention.month_start_day" => probe_month_start_day,
        "retention.activity_days" => probe_activity_days,
        "retention.retention_cells" => probe_retention_cells,
        "retention.cells_of_days" => probe_cells_of_days,
        "retention.gap_bucket" => probe_gap_bucket,
        "retention.order_gaps" => probe_order_gaps,
        "retention.retention_contributions" => probe_retention_contributions,
        _ => return None,
    };
    Some(run(args))
}

fn probe_day_of(args: &Json) -> JsonResult<Json> {
    Ok(Json::Int(day_of(arg(args, "t")?.int("t")?)))
}

fn probe_date(args: &Json) -> JsonResult<Json> {
    Ok(date_json(Date::from_epoch_day(
        arg(args, "day")?.int("day")? as i128,
    )))
}

fn probe_date_ms(args: &Json) -> JsonResult<Json> {
    Ok(Json::Int(date_ms(date_arg(arg(args, "date")?)?)))
}

fn granularity_arg(args: &Json) -> JsonResult<Granularity> {
    Ok(Granularity::of(
        arg(args, "granularity")?.str("the granularity")?,
    ))
}

fn probe_period_start(args: &Json) -> JsonResult<Json> {
    let day = arg(args, "day")?.int("day")?;
    Ok(date_json(period_start(day, granularity_arg(args)?)))
}

fn probe_period_index(args: &Json) -> JsonResult<Json> {
    let cohort = date_arg(arg(args, "cohort")?)?;
    let day = arg(args, "day")?.int("day")?;
    Ok(Json::opt_i(period_index(
        cohort,
        day,
        granularity_arg(args)?,
    )))
}

fn probe_add_periods(args: &Json) -> JsonResult<Json> {
    let cohort = date_arg(arg(args, "cohort")?)?;
    let n = arg(args, "n")?.int("n")?;
    Ok(date_json(add_periods(cohort, n, granularity_arg(args)?)))
}

fn probe_current_period_ms(args: &Json) -> JsonResult<Json> {
    let watermark = arg(args, "watermark")?.int("the watermark")?;
    Ok(Json::opt_i(current_period_ms(
        watermark,
        granularity_arg(args)?,
    )))
}

fn probe_month_of_day(args: &Json) -> JsonResult<Json> {
    Ok(Json::Int(month_of_day(arg(args, "day")?.int("day")?)))
}

fn probe_month_start_day(args: &Json) -> JsonResult<Json> {
    Ok(Json::opt_i(month_start_day(
        arg(args, "month")?.int("month")?,
    )))
}

fn probe_activity_days(args: &Json) -> JsonResult<Json> {
    let visit_days = ints(arg(args, "visit_days")?.list("visit days")?, "a visit day")?;
    let purchases = purchases_arg(args)?;
    let days = activity_days(&visit_days, purchases.iter());
    Ok(Json::Object(vec![
        ("visit".into(), set_json(&days.visit)),
        ("purchase".into(), set_json(&days.purchase)),
        ("repeat_purchase".into(), set_json(&days.repeat_purchase)),
    ]))
}

fn probe_retention_cells(args: &Json) -> JsonResult<Json> {
    let first = arg(args, "first_visit_t")?.opt_int("the first visit time")?;
    let visit_days = ints(arg(args, "visit_days")?.list("visit days")?, "a visit day")?;
    let purchases = purchases_arg(args)?;
    Ok(cells_json(retention_cells(
        first,
        &visit_days,
        purchases.iter(),
    )))
}

fn probe_cells_of_days(args: &Json) -> JsonResult<Json> {
    let first = arg(args, "first_visit_day")?.int("the first visit day")?;
    let visit_days = ints(arg(args, "visit_days")?.list("visit days")?, "a visit day")?;
    let purchase_days = ints(
        arg(args, "purchase_days")?.list("purchase days")?,
        "a purchase day",
    )?;
    Ok(cells_json(cells_of_days(
        first,
        &visit_days,
        &purchase_days,
    )))
}

fn probe_gap_bucket(args: &Json) -> JsonResult<Json> {
    let gap = arg(args, "gap_ms")?.int("the gap")?;
    Ok(Json::s(gap_bucket(gap as i128).python_repr()))
}

fn probe_order_gaps(args: &Json) -> JsonResult<Json> {
    let purchases = purchases_arg(args)?;
    Ok(match order_gaps(purchases.iter()) {
        None => Json::Null,
        Some(gaps) => Json::List(
            gaps.iter()
                .map(|g| {
                    Json::List(vec![
                        Json::Int(g.day_ms),
                        Json::s(g.channel),
                        Json::s(g.bucket.python_repr()),
                    ])
                })
                .collect(),
        ),
    })
}

fn probe_retention_contributions(args: &Json) -> JsonResult<Json> {
    let days: Vec<DayActivity> = arg(args, "days")?
        .list("the days")?
        .iter()
        .map(lives::day_from_json)
        .collect::<JsonResult<_>>()?;
    let purchases = purchases_arg(args)?;
    let thresholds: Vec<(String, i64)> = arg(args, "thresholds")?
        .object("the thresholds")?
        .iter()
        .map(|(k, v)| Ok((k.clone(), v.int("a threshold")?)))
        .collect::<JsonResult<_>>()?;
    let rules = LifecycleRules::from_json(arg(args, "lifecycle")?)?;
    Ok(
        match retention_contributions(&days, &purchases, &thresholds, &rules) {
            None => Json::Null,
            Some(out) => Json::List(
                out.iter()
                    .map(|(key, value)| Json::List(vec![contribution_json(key), Json::Int(*value)]))
                    .collect(),
            ),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_round_trips() {
        for day in [MIN_DATE_DAY, -1, 0, 1, 59, 10_957, 11_016, MAX_DATE_DAY] {
            let d = Date::from_epoch_day(day as i128).unwrap();
            assert_eq!(d.epoch_day(), day);
            assert_eq!(Date::new(d.year, d.month, d.day), Some(d));
        }
        assert_eq!(Date::from_epoch_day(MIN_DATE_DAY as i128 - 1), None);
        assert_eq!(Date::from_epoch_day(MAX_DATE_DAY as i128 + 1), None);
        assert_eq!(Date::from_epoch_day(0).unwrap().weekday(), 3);
        assert_eq!(
            Date::from_epoch_day(MIN_DATE_DAY as i128)
                .unwrap()
                .weekday(),
            0
        );
        assert_eq!(month_of_day(0), 1970 * 12);
        assert_eq!(month_start_day(1970 * 12 + 1), Some(31));
        assert_eq!(month_of_day(i64::MIN) as i128 * 0, 0);
        assert_eq!(month_of_day(i64::MAX) as i128 * 0, 0);
    }

    #[test]
    fn gap_buckets() {
        assert_eq!(gap_bucket(-5).python_repr(), "1");
        assert_eq!(gap_bucket(DAY_MS as i128).python_repr(), "1");
        assert_eq!(gap_bucket(DAY_MS as i128 + 1).python_repr(), "3");
        assert_eq!(gap_bucket(180 * DAY_MS as i128 + 1).python_repr(), "inf");
        assert_eq!(
            gap_bucket(180 * DAY_MS as i128 + 1).upper_days(),
            f64::INFINITY
        );
    }
}
