//! The rows of the aggregate tables: the twin of `streams.outputs.aggregate_rows` and
//! `merge_rows`, with the `build_row` of each aggregate family (funnel steps, outcomes,
//! time to convert, attempts, KPIs, order attribution, retention cohorts, order gaps) and
//! `streams.outputs.family.RowContext`.
//!
//! A row is one struct per table, its fields in the table's column order (the five
//! dimension columns are the `dims` field); `to_json` gives it as the tests write the
//! Python tuple: a JSON list, dates as ISO strings ("2024-01-31"), the float buckets
//! (`le_seconds`, `le_days`) as the `repr()` of the Python value ("10", "inf"). Apart from
//! the retention and order-gap rows, the column order is written once, as the row's cells
//! (`rows_cells.rs`), and `to_json` is made from them.

use crate::aggregates::PartitionAggregates;
use crate::attribution::OrderAttributionKey;
use crate::funnels::FunnelDef;
use crate::json::{Json, JsonError, JsonResult};
use crate::keys::{
    row_of, FunnelAttemptKey, FunnelOutcomeKey, FunnelStepKey, FunnelTtcKey, KeyRef, KpiKey,
    RowKey, TtcBucket, METRICS,
};
use crate::retention::{day_of, Date, GapBucket, OrderGapKey, RetentionKey};
use crate::row_binary::Cell;
use crate::rules::Rules;
use crate::state::Dims;

/// Why a row could not be built (where Python raises).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowError(pub String);

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `RowContext`: what an aggregate row needs besides its key and totals. The step names
/// are the funnels' (`Rules.steps_by_funnel`: funnel -> step event types; with two
/// funnels of one name, the last one's, as the Python dict keeps it).
#[derive(Clone, Copy, Debug)]
pub struct RowContext<'a> {
    pub partition: i64,
    /// 1 when the window is closed and this is its last row.
    pub is_final: i64,
    pub version: i64,
    pub funnels: &'a [FunnelDef],
}

impl<'a> RowContext<'a> {
    /// `ctx.step_names[funnel][step - 1]` (Python's indexing: a negative index counts
    /// from the end); Err where Python raises KeyError or IndexError.
    pub fn step_name(&self, funnel: &str, step: i64) -> Result<&'a str, RowError> {
        let def = match self.funnels.iter().rev().find(|f| f.name == funnel) {
            Some(def) => def,
            None => return Err(RowError(format!("KeyError: funnel {:?}", funnel))),
        };
        let len = def.steps.len() as i128;
        let mut index = step as i128 - 1;
        if index < 0 {
            index += len;
        }
        if index < 0 || index >= len {
            return Err(RowError(format!(
                "IndexError: step {} of funnel {:?}",
                step, funnel
            )));
        }
        Ok(def.steps[index as usize].as_str())
    }
}

/// `family.day_of_ms`: the UTC date of an epoch millisecond time; Err where Python raises
/// OverflowError (a date outside years 1-9999).
pub fn day_of_ms(t_ms: i64) -> Result<Date, RowError> {
    Date::from_epoch_day(day_of(t_ms) as i128)
        .ok_or_else(|| RowError(format!("OverflowError: date of {} ms", t_ms)))
}

/// `date.isoformat()`.
pub fn iso_date(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day())
}

/// `key.window // 1000`: the DateTime (seconds) of a window.
fn seconds(window_ms: i64) -> i64 {
    window_ms.div_euclid(1000)
}

/// `funnel_steps_minute`.
#[derive(Clone, Debug, PartialEq)]
pub struct FunnelStepRow {
    pub funnel: String,
    pub window_start: i64, // seconds
    pub dims: Dims,
    pub breakdown: Vec<String>,
    pub step: i64,
    pub step_name: String,
    pub partition: i64,
    pub entered: i64,
    pub is_final: i64,
    pub version: i64,
}

/// `funnel_outcomes_minute`.
#[derive(Clone, Debug, PartialEq)]
pub struct FunnelOutcomeRow {
    pub funnel: String,
    pub window_start: i64,
    pub dims: Dims,
    pub breakdown: Vec<String>,
    pub outcome: &'static str,
    pub partition: i64,
    pub entities: i64,
    pub is_final: i64,
    pub version: i64,
}

/// `funnel_ttc_minute`.
#[derive(Clone, Debug, PartialEq)]
pub struct FunnelTtcRow {
    pub funnel: String,
    pub window_start: i64,
    pub dims: Dims,
    pub breakdown: Vec<String>,
    /// `le_seconds` (its float value: `TtcBucket::le_seconds`).
    pub le_seconds: TtcBucket,
    pub partition: i64,
    pub converted: i64,
    pub is_final: i64,
    pub version: i64,
}

/// `funnel_attempts`.
#[derive(Clone, Debug, PartialEq)]
pub struct FunnelAttemptRow {
    pub funnel: String,
    pub window_start: i64,
    pub dims: Dims,
    pub breakdown: Vec<String>,
    pub anonymous_id: String,
    pub entity: String,
    pub start_event_id: String,
    pub outcome: &'static str,
    pub level: i64,
    /// DateTime64(3): epoch milliseconds.
    pub step_times: Vec<i64>,
    pub partition: i64,
    pub attempts: i64,
    pub is_final: i64,
    pub version: i64,
}

/// `kpi_minute`.
#[derive(Clone, Debug, PartialEq)]
pub struct KpiRow {
    pub window_start: i64,
    pub dims: Dims,
    pub currency: String,
    pub partition: i64,
    /// The METRICS columns, in order.
    pub metrics: [i64; 11],
    pub is_final: i64,
    pub version: i64,
}

/// `order_attribution`.
#[derive(Clone, Debug, PartialEq)]
pub struct OrderAttributionRow {
    pub window_start: i64,
    pub anonymous_id: String,
    pub transaction_id: String,
    pub model: &'static str,
    pub channel: String,
    pub source: String,
    pub medium: String,
    pub campaign: String,
    pub kol: String,
    /// DateTime64(3): epoch milliseconds.
    pub order_time: i64,
    pub currency: String,
    pub value_minor: i64,
    pub is_first: i64,
    pub partition: i64,
    pub share_micro: i64,
    pub is_final: i64,
    pub version: i64,
}

/// `retention_cohorts`.
#[derive(Clone, Debug, PartialEq)]
pub struct RetentionRow {
    pub cohort_kind: &'static str,
    pub granularity: &'static str,
    pub cohort_start: Date,
    pub activity: &'static str,
    pub period: i64,
    pub channel: String,
    pub platform: String,
    pub partition: i64,
    pub users: i64,
    pub is_final: i64,
    pub version: i64,
}

/// `order_gaps_daily`.
#[derive(Clone, Debug, PartialEq)]
pub struct OrderGapRow {
    pub day: Date,
    pub channel: String,
    /// `le_days` (its float value: `GapBucket::upper_days`).
    pub le_days: GapBucket,
    pub partition: i64,
    pub orders: i64,
    pub is_final: i64,
    pub version: i64,
}

/// A row of any aggregate table.
#[derive(Clone, Debug, PartialEq)]
pub enum Row {
    FunnelStep(FunnelStepRow),
    FunnelOutcome(FunnelOutcomeRow),
    FunnelTtc(FunnelTtcRow),
    FunnelAttempt(FunnelAttemptRow),
    Kpi(KpiRow),
    OrderAttribution(OrderAttributionRow),
    Retention(RetentionRow),
    OrderGap(OrderGapRow),
}

/// The table names (`TableSpec.name`) of the aggregate families.
pub const FUNNEL_STEPS_TABLE: &str = "funnel_steps_minute";
pub const FUNNEL_OUTCOMES_TABLE: &str = "funnel_outcomes_minute";
pub const FUNNEL_TTC_TABLE: &str = "funnel_ttc_minute";
pub const FUNNEL_ATTEMPTS_TABLE: &str = "funnel_attempts";
pub const KPI_TABLE: &str = "kpi_minute";
pub const ORDER_ATTRIBUTION_TABLE: &str = "order_attribution";
pub const RETENTION_TABLE: &str = "retention_cohorts";
pub const ORDER_GAPS_TABLE: &str = "order_gaps_daily";

impl Row {
    pub fn table(&self) -> &'static str {
        match self {
            Row::FunnelStep(_) => FUNNEL_STEPS_TABLE,
            Row::FunnelOutcome(_) => FUNNEL_OUTCOMES_TABLE,
            Row::FunnelTtc(_) => FUNNEL_TTC_TABLE,
            Row::FunnelAttempt(_) => FUNNEL_ATTEMPTS_TABLE,
            Row::Kpi(_) => KPI_TABLE,
            Row::OrderAttribution(_) => ORDER_ATTRIBUTION_TABLE,
            Row::Retention(_) => RETENTION_TABLE,
            Row::OrderGap(_) => ORDER_GAPS_TABLE,
        }
    }

    /// The row as a JSON list in its table's column order.
    pub fn to_json(&self) -> Json {
        match self {
            Row::Retention(r) => r.to_json(),
            Row::OrderGap(r) => r.to_json(),
            // The other rows' column order is their cells' (rows_cells.rs).
            _ => Json::List(
                self.cells()
                    .expect("every row but retention and order gaps has its cells")
                    .into_iter()
                    .map(Cell::to_json)
                    .collect(),
            ),
        }
    }
}

fn tail_json(out: &mut Vec<Json>, values: &[i64]) {
    out.extend(values.iter().map(|v| Json::Int(*v)));
}

impl RetentionRow {
    pub fn to_json(&self) -> Json {
        let mut out = vec![
            Json::s(self.cohort_kind),
            Json::s(self.granularity),
            Json::s(&iso_date(self.cohort_start)),
            Json::s(self.activity),
            Json::Int(self.period),
            Json::s(&self.channel),
            Json::s(&self.platform),
        ];
        tail_json(
            &mut out,
            &[self.partition, self.users, self.is_final, self.version],
        );
        Json::List(out)
    }
}

impl OrderGapRow {
    pub fn to_json(&self) -> Json {
        let mut out = vec![
            Json::s(&iso_date(self.day)),
            Json::s(&self.channel),
            Json::s(self.le_days.python_repr()),
        ];
        tail_json(
            &mut out,
            &[self.partition, self.orders, self.is_final, self.version],
        );
        Json::List(out)
    }
}

/// Reads a partition's running total of one aggregate key (`TotalOf`).
pub type TotalOf<'t> = dyn Fn(KeyRef<'_>) -> i64 + 't;

/// Rows grouped by table name, tables in first-seen order.
pub type TableRows = Vec<(&'static str, Vec<Row>)>;

/// `funnel_steps.build_row`.
pub fn funnel_step_row(
    key: &FunnelStepKey,
    total: &TotalOf,
    ctx: &RowContext,
) -> Result<FunnelStepRow, RowError> {
    let step_name = ctx.step_name(&key.funnel, key.step)?.to_owned();
    Ok(FunnelStepRow {
        funnel: key.funnel.clone(),
        window_start: seconds(key.window),
        dims: key.dims.clone(),
        breakdown: key.breakdown.clone(),
        step: key.step,
        step_name,
        partition: ctx.partition,
        entered: total(KeyRef::FunnelStep(key)),
        is_final: ctx.is_final,
        version: ctx.version,
    })
}

/// `funnel_outcomes.build_row`.
pub fn funnel_outcome_row(
    key: &FunnelOutcomeKey,
    total: &TotalOf,
    ctx: &RowContext,
) -> FunnelOutcomeRow {
    FunnelOutcomeRow {
        funnel: key.funnel.clone(),
        window_start: seconds(key.window),
        dims: key.dims.clone(),
        breakdown: key.breakdown.clone(),
        outcome: key.outcome,
        partition: ctx.partition,
        entities: total(KeyRef::FunnelOutcome(key)),
        is_final: ctx.is_final,
        version: ctx.version,
    }
}

/// `funnel_ttc.build_row`.
pub fn funnel_ttc_row(key: &FunnelTtcKey, total: &TotalOf, ctx: &RowContext) -> FunnelTtcRow {
    FunnelTtcRow {
        funnel: key.funnel.clone(),
        window_start: seconds(key.window),
        dims: key.dims.clone(),
        breakdown: key.breakdown.clone(),
        le_seconds: key.le_seconds,
        partition: ctx.partition,
        converted: total(KeyRef::FunnelTtc(key)),
        is_final: ctx.is_final,
        version: ctx.version,
    }
}

/// `funnel_attempts.build_row`.
pub fn funnel_attempt_row(
    key: &FunnelAttemptKey,
    total: &TotalOf,
    ctx: &RowContext,
) -> FunnelAttemptRow {
    FunnelAttemptRow {
        funnel: key.funnel.clone(),
        window_start: seconds(key.window),
        dims: key.dims.clone(),
        breakdown: key.breakdown.clone(),
        anonymous_id: key.anonymous_id.clone(),
        entity: key.entity.clone(),
        start_event_id: key.start_event_id.clone(),
        outcome: key.outcome,
        level: key.level,
        step_times: key.step_times.clone(),
        partition: ctx.partition,
        attempts: total(KeyRef::FunnelAttempt(key)),
        is_final: ctx.is_final,
        version: ctx.version,
    }
}

/// `kpi.build_row`: the total of each of the row's cells, in METRICS order.
pub fn kpi_row(key: &KpiKey, total: &TotalOf, ctx: &RowContext) -> KpiRow {
    let mut metrics = [0i64; 11];
    for (metric, slot) in metrics.iter_mut().enumerate() {
        *slot = total(KeyRef::KpiCell(key, metric));
    }
    debug_assert_eq!(metrics.len(), METRICS.len());
    KpiRow {
        window_start: seconds(key.window),
        dims: key.dims.clone(),
        currency: key.currency.clone(),
        partition: ctx.partition,
        metrics,
        is_final: ctx.is_final,
        version: ctx.version,
    }
}

/// `order_attribution.build_row`.
pub fn order_attribution_row(
    key: &OrderAttributionKey,
    total: &TotalOf,
    ctx: &RowContext,
) -> OrderAttributionRow {
    OrderAttributionRow {
        window_start: seconds(key.window),
        anonymous_id: key.anonymous_id.clone(),
        transaction_id: key.transaction_id.clone(),
        model: key.model,
        channel: key.channel.clone(),
        source: key.source.clone(),
        medium: key.medium.clone(),
        campaign: key.campaign.clone(),
        kol: key.kol.clone(),
        order_time: key.order_time,
        currency: key.currency.clone(),
        value_minor: key.value_minor,
        is_first: key.is_first,
        partition: ctx.partition,
        share_micro: total(KeyRef::OrderAttribution(key)),
        is_final: ctx.is_final,
        version: ctx.version,
    }
}

/// `retention.build_row`.
pub fn retention_row(
    key: &RetentionKey,
    total: &TotalOf,
    ctx: &RowContext,
) -> Result<RetentionRow, RowError> {
    let cohort_start = day_of_ms(key.cohort_ms)?;
    Ok(RetentionRow {
        cohort_kind: key.cohort_kind,
        granularity: key.granularity.as_str(),
        cohort_start,
        activity: key.activity,
        period: key.period,
        channel: key.channel.clone(),
        platform: key.platform.clone(),
        partition: ctx.partition,
        users: total(KeyRef::Retention(key)),
        is_final: ctx.is_final,
        version: ctx.version,
    })
}

/// `order_gaps.build_row`.
pub fn order_gap_row(
    key: &OrderGapKey,
    total: &TotalOf,
    ctx: &RowContext,
) -> Result<OrderGapRow, RowError> {
    let day = day_of_ms(key.day_ms)?;
    Ok(OrderGapRow {
        day,
        channel: key.channel.clone(),
        le_days: key.le_days,
        partition: ctx.partition,
        orders: total(KeyRef::OrderGap(key)),
        is_final: ctx.is_final,
        version: ctx.version,
    })
}

/// The family's `build_row` for any row key.
pub fn build_row(key: &RowKey, total: &TotalOf, ctx: &RowContext) -> Result<Row, RowError> {
    Ok(match key {
        RowKey::FunnelStep(k) => Row::FunnelStep(funnel_step_row(k, total, ctx)?),
        RowKey::FunnelOutcome(k) => Row::FunnelOutcome(funnel_outcome_row(k, total, ctx)),
        RowKey::FunnelTtc(k) => Row::FunnelTtc(funnel_ttc_row(k, total, ctx)),
        RowKey::FunnelAttempt(k) => Row::FunnelAttempt(funnel_attempt_row(k, total, ctx)),
        RowKey::Kpi(k) => Row::Kpi(kpi_row(k, total, ctx)),
        RowKey::OrderAttribution(k) => Row::OrderAttribution(order_attribution_row(k, total, ctx)),
        RowKey::Retention(k) => Row::Retention(retention_row(k, total, ctx)?),
        RowKey::OrderGap(k) => Row::OrderGap(order_gap_row(k, total, ctx)?),
    })
}

fn push_row(out: &mut TableRows, row: Row) {
    let table = row.table();
    match out.iter_mut().find(|(name, _)| *name == table) {
        Some((_, rows)) => rows.push(row),
        None => out.push((table, vec![row])),
    }
}

/// `aggregate_rows`: rows for aggregate `keys` with the partition's current totals,
/// grouped by table (tables in first-seen order, rows in key order). Err where Python
/// raises (a funnel step without a name, a date outside years 1-9999): then no rows.
pub fn aggregate_rows<'k>(
    keys: impl IntoIterator<Item = &'k RowKey>,
    total: &TotalOf,
    ctx: &RowContext,
) -> Result<TableRows, RowError> {
    let mut out: TableRows = Vec::new();
    for key in keys {
        push_row(&mut out, build_row(key, total, ctx)?);
    }
    Ok(out)
}

/// `merge_rows`: `more`'s rows appended to `target`'s, table by table.
pub fn merge_rows(target: &mut TableRows, more: TableRows) {
    for (table, rows) in more {
        match target.iter_mut().find(|(name, _)| *name == table) {
            Some((_, existing)) => existing.extend(rows),
            None => target.push((table, rows)),
        }
    }
}

// -- probes ------------------------------------------------------------------------------

fn arg<'a>(args: &'a Json, name: &str) -> JsonResult<&'a Json> {
    args.object("the arguments")?
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
        .ok_or_else(|| JsonError(format!("no argument {:?}", name)))
}

/// A row key from [type name, *fields]: a contribution key's form (`contributions.rs`),
/// or ["KpiKey", window, dims, currency].
pub fn row_key_from(fields: &[Json]) -> JsonResult<RowKey> {
    match fields.first() {
        Some(Json::Str(name)) if name == "KpiKey" => {
            let f = |i: usize| -> JsonResult<&Json> {
                fields
                    .get(i)
                    .ok_or_else(|| JsonError("KpiKey has too few fields".into()))
            };
            let dims = f(2)?.list("dims")?;
            if dims.len() != 5 {
                return Err(JsonError("dims are five strings".into()));
            }
            let d = |i: usize| -> JsonResult<String> { Ok(dims[i].str("a dimension")?.to_owned()) };
            Ok(RowKey::Kpi(KpiKey {
                window: f(1)?.int("window")?,
                dims: [d(0)?, d(1)?, d(2)?, d(3)?, d(4)?],
                currency: f(3)?.str("currency")?.to_owned(),
            }))
        }
        Some(Json::Str(name)) if name == "KpiCellKey" || name == "OpenAttemptKey" => {
            Err(JsonError(format!("{} is not a row key", name)))
        }
        _ => {
            let key = crate::contributions::key_from(fields)?;
            row_of(&key).ok_or_else(|| JsonError("not a row key".into()))
        }
    }
}

fn key_list(value: &Json) -> JsonResult<Vec<&[Json]>> {
    value
        .list("keys")?
        .iter()
        .map(|k| k.list("a key"))
        .collect()
}

fn context_of<'a>(args: &Json, rules: &'a Rules) -> JsonResult<RowContext<'a>> {
    let ctx = arg(args, "ctx")?;
    Ok(RowContext {
        partition: arg(ctx, "partition")?.int("partition")?,
        is_final: arg(ctx, "is_final")?.int("is_final")?,
        version: arg(ctx, "version")?.int("version")?,
        funnels: &rules.funnels,
    })
}

fn totals_of(args: &Json) -> JsonResult<PartitionAggregates> {
    let mut totals = PartitionAggregates::new();
    for pair in arg(args, "totals")?.list("totals")? {
        let pair = pair.list("a [key, total] pair")?;
        if pair.len() != 2 {
            return Err(JsonError("a [key, total] pair".into()));
        }
        let key = crate::contributions::key_from(pair[0].list("a key")?)?;
        let total = pair[1].int("a total")?;
        // Set, not added: a pair repeated in the probe's input replaces the earlier one.
        let now = totals.value(&key);
        totals.apply(&[(key, total.wrapping_sub(now))]);
    }
    Ok(totals)
}

pub fn rows_json(rows: &TableRows) -> Json {
    Json::List(
        rows.iter()
            .map(|(table, rows)| {
                Json::List(vec![
                    Json::s(table),
                    Json::List(rows.iter().map(Row::to_json).collect()),
                ])
            })
            .collect(),
    )
}

fn rows_of(args: &Json, keys: &Json, rules: &Rules) -> JsonResult<TableRows> {
    let ctx = context_of(args, rules)?;
    let totals = totals_of(args)?;
    let keys: Vec<RowKey> = key_list(keys)?
        .into_iter()
        .map(row_key_from)
        .collect::<JsonResult<_>>()?;
    let total = |key: KeyRef<'_>| totals.total(key);
    aggregate_rows(&keys, &total, &ctx).map_err(|e| JsonError(e.0))
}

fn run_probe(name: &str, args: &Json) -> JsonResult<Json> {
    let rules = Rules::from_json(arg(args, "rules")?)?;
    match name {
        "rows_aggregate.aggregate_rows" => {
            Ok(rows_json(&rows_of(args, arg(args, "keys")?, &rules)?))
        }
        // aggregate_rows of each list of keys in "batches", merged in order.
        "rows_aggregate.merge_rows" => {
            let mut target = TableRows::new();
            for keys in arg(args, "batches")?.list("batches")? {
                merge_rows(&mut target, rows_of(args, keys, &rules)?);
            }
            Ok(rows_json(&target))
        }
        other => Err(JsonError(format!("no probe {:?}", other))),
    }
}

/// The probes of this module: "rows_aggregate.<function>".
pub fn probe(name: &str, args: &Json) -> Option<JsonResult<Json>> {
    if name.starts_with("rows_aggregate.") {
        Some(run_probe(name, args))
    } else {
        None
    }
}
