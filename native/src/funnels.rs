//! The funnel definitions evaluation needs: the Rust twin of `streams/funnels.py`'s model
//! (FunnelDef, StepDef, EventMatcher, PropertyFilter, Exclusion, Breakdown) and of its
//! number reading (`as_number`, Python's `Decimal` comparisons).
//!
//! Python loads and validates the funnel file (`streams.funnels.load_funnels`) and hands
//! the result over once as JSON (`funnel_spec` in tests/native/test_funnel_eval.py):
//!
//! ```text
//! {"name": str, "steps": [label], "scope": "session"|"user", "window_ms": int,
//!  "mode": "ordered"|"strict"|"unordered",
//!  "step_defs": [{"event": str, "filters": [filter], "within_ms": int|null, "label": str}],
//!  "exclusions": [{"event": str, "from_step": int, "to_step": int, "filters": [filter]}],
//!  "breakdown": null | {"dimensions": [str], "attribution": str, "attributed_step": int|null}}
//! filter = {"prop": str, "op": "eq"|"ne"|"in"|"not_in"|"gt"|"gte"|"lt"|"lte", "values": [str]}
//! ```
//!
//! `FunnelDef::from_json` accepts what the Python loader can produce and refuses what
//! would make the Python evaluation fail on every entity (an IndexError, a recursion
//! deeper than Python's limit): no steps or more than `MAX_STEPS`, a window that is not
//! positive, exclusion steps outside `1 <= from_step < to_step <= steps`, a numeric
//! filter without a value, unknown keys or values.

use std::cmp::Ordering;

use crate::json::{Json, JsonError, JsonResult};
use crate::state::FunnelEvent;

/// streams.funnels.MAX_STEPS.
pub const MAX_STEPS: usize = 20;
/// Breakdown dimensions that are not event properties (streams.funnels.DIMENSION_NAMES).
pub const DIMENSION_NAMES: [&str; 5] = ["channel", "campaign", "device", "platform", "country"];

fn fail<T>(message: String) -> JsonResult<T> {
    Err(JsonError(message))
}

// -- numbers -----------------------------------------------------------------------------

/// What Python raises when `Decimal(text)` is out of the decimal module's exponent range
/// (`decimal.InvalidOperation`): `as_number`, and so a numeric filter, raises it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterError(pub String);

impl std::fmt::Display for FilterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A finite decimal number, normalised for comparison the way `Decimal` compares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Number {
    /// -1, 0 (the number is zero, of either sign) or 1.
    sign: i8,
    /// The significant digits, without leading or trailing zeros (empty for zero).
    digits: String,
    /// The power of ten of the first significant digit.
    adjusted: i128,
}

// libmpdec's limits for `Decimal(str)` (exact conversion in its max context, 64-bit):
// Emax, and Etiny = Emin - (prec - 1).
const EMAX: i128 = 999_999_999_999_999_999;
const ETINY: i128 = -999_999_999_999_999_999 - (999_999_999_999_999_999 - 1);
// Exponents are read up to this magnitude; anything larger is out of range either way.
const EXP_CAP: i128 = 1_000_000_000_000_000_000_000_000_000;

fn digit_run(bytes: &[u8], mut pos: usize) -> usize {
    while pos < bytes.len() && bytes[pos].is_ascii_digit() {
        pos += 1;
    }
    pos
}

/// `streams.funnels.as_number`: `text` as a number when it is plainly written (the
/// `_NUMBER` pattern), else None; Err when Python's `Decimal(text)` would raise.
pub fn as_number(text: &str) -> Result<Option<Number>, FilterError> {
    let bytes = text.as_bytes();
    let mut pos = 0;
    let mut sign: i8 = 1;
    if let Some(&c) = bytes.first() {
        if c == b'+' || c == b'-' {
            if c == b'-' {
                sign = -1;
            }
            pos = 1;
        }
    }
    let int_start = pos;
    let int_end = digit_run(bytes, pos);
    pos = int_end;
    let (mut frac_start, mut frac_end) = (pos, pos);
    if pos < bytes.len() && bytes[pos] == b'.' {
        frac_start = pos + 1;
        frac_end = digit_run(bytes, frac_start);
        pos = frac_end;
    }
    if int_end == int_start && frac_end == frac_start {
        return Ok(None); // no digits before or after the point
    }
    let mut written_exp: i128 = 0;
    if pos < bytes.len() && (bytes[pos] == b'e' || bytes[pos] == b'E') {
        pos += 1;
        let mut exp_sign: i128 = 1;
        if pos < bytes.len() && (bytes[pos] == b'+' || bytes[pos] == b'-') {
            if bytes[pos] == b'-' {
                exp_sign = -1;
            }
            pos += 1;
        }
        let exp_end = digit_run(bytes, pos);
        if exp_end == pos {
            return Ok(None);
        }
        for &d in &bytes[pos..exp_end] {
            if written_exp < EXP_CAP {
                written_exp = written_exp * 10 + i128::from(d - b'0');
            }
        }
        written_exp *= exp_sign;
        pos = exp_end;
    }
    if pos != bytes.len() {
        return Ok(None);
    }
    // The coefficient is the integer digits then the fraction digits.
    let coefficient: String = [&text[int_start..int_end], &text[frac_start..frac_end]].concat();
    let exp = written_exp - (frac_end - frac_start) as i128;
    let significant = coefficient.trim_start_matches('0');
    if significant.is_empty() {
        if exp > EMAX || exp < ETINY {
            return Ok(None); // beyond the decimal context: not a number (as_number)
        }
        return Ok(Some(Number {
            sign: 0,
            digits: String::new(),
            adjusted: 0,
        }));
    }
    let adjusted = exp + significant.len() as i128 - 1;
    if adjusted > EMAX || exp < ETINY {
        return Ok(None); // beyond the decimal context: not a number (as_number)
    }
    Ok(Some(Number {
        sign,
        digits: significant.trim_end_matches('0').to_owned(),
        adjusted,
    }))
}

impl Ord for Number {
    fn cmp(&self, other: &Self) -> Ordering {
        if self.sign != other.sign {
            return self.sign.cmp(&other.sign);
        }
        let magnitude = self
            .adjusted
            .cmp(&other.adjusted)
            .then_with(|| self.digits.as_str().cmp(other.digits.as_str()));
        match self.sign {
            0 => Ordering::Equal,
            1 => magnitude,
            _ => magnitude.reverse(),
        }
    }
}

impl PartialOrd for Number {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

// -- the model ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterOp {
    Eq,
    Ne,
    In,
    NotIn,
    Gt,
    Gte,
    Lt,
    Lte,
}

impl FilterOp {
    pub fn parse(text: &str) -> Option<FilterOp> {
        Some(match text {
            "eq" => FilterOp::Eq,
            "ne" => FilterOp::Ne,
            "in" => FilterOp::In,
            "not_in" => FilterOp::NotIn,
            "gt" => FilterOp::Gt,
            "gte" => FilterOp::Gte,
            "lt" => FilterOp::Lt,
            "lte" => FilterOp::Lte,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            FilterOp::Eq => "eq",
            FilterOp::Ne => "ne",
            FilterOp::In => "in",
            FilterOp::NotIn => "not_in",
            FilterOp::Gt => "gt",
            FilterOp::Gte => "gte",
            FilterOp::Lt => "lt",
            FilterOp::Lte => "lte",
        }
    }

    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            FilterOp::Gt | FilterOp::Gte | FilterOp::Lt | FilterOp::Lte
        )
    }
}

/// `property op values` (streams.funnels.PropertyFilter).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PropertyFilter {
    pub prop: String,
    pub op: FilterOp,
    pub values: Vec<String>,
    /// For gt/gte/lt/lte: `as_number(values[0])`, read once.
    bound: Result<Option<Number>, FilterError>,
}

impl PropertyFilter {
    pub fn new(prop: String, op: FilterOp, values: Vec<String>) -> JsonResult<PropertyFilter> {
        let bound = if op.is_numeric() {
            match values.first() {
                Some(first) => as_number(first),
                None => return fail(format!("the filter on {} has no value", prop)),
            }
        } else {
            Ok(None)
        };
        Ok(PropertyFilter {
            prop,
            op,
            values,
            bound,
        })
    }

    /// `PropertyFilter.matches(event.values(prop))`: true when any of the event's values
    /// of the property satisfies it (ne and not_in: when none equals).
    pub fn matches(&self, event: &FunnelEvent) -> Result<bool, FilterError> {
        let prop = self.prop.as_str();
        self.matches_values(
            event
                .props
                .iter()
                .filter(move |(key, _)| key == prop)
                .map(|(_, value)| value.as_str()),
        )
    }

    /// `PropertyFilter.matches(event_values)`.
    pub fn matches_values<'a, I>(&self, event_values: I) -> Result<bool, FilterError>
    where
        I: IntoIterator<Item = &'a str>,
    {
        let mut event_values = event_values.into_iter();
        match self.op {
            FilterOp::Eq | FilterOp::In => {
                Ok(event_values.any(|v| self.values.iter().any(|w| w == v)))
            }
            FilterOp::Ne | FilterOp::NotIn => {
                Ok(!event_values.any(|v| self.values.iter().any(|w| w == v)))
            }
            op => {
                let bound = match &self.bound {
                    Ok(Some(bound)) => bound,
                    Ok(None) => return Ok(false),
                    Err(e) => return Err(e.clone()),
                };
                for value in event_values {
                    let number = match as_number(value)? {
                        Some(number) => number,
                        None => continue,
                    };
                    let order = number.cmp(bound);
                    let holds = match op {
                        FilterOp::Gt => order == Ordering::Greater,
                        FilterOp::Gte => order != Ordering::Less,
                        FilterOp::Lt => order == Ordering::Less,
                        _ => order != Ordering::Greater,
                    };
                    if holds {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
        }
    }
}

/// An event type with property filters, all of which must hold (streams.funnels.EventMatcher).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventMatcher {
    pub event: String,
    pub filters: Vec<PropertyFilter>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepDef {
    /// The step's event type and filters (Python: `StepDef.event`, `.filters`, `.matcher`).
    pub matcher: EventMatcher,
    /// At most this long after the previous step's event.
    pub within_ms: Option<i64>,
    pub label: String,
}

/// A matching event strictly between the attempt's events of steps `from_step` and
/// `to_step` (1-based) disqualifies the attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exclusion {
    pub matcher: EventMatcher,
    pub from_step: usize,
    pub to_step: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Breakdown {
    pub dimensions: Vec<String>,
    /// first_touch | last_touch | step:N
    pub attribution: String,
    /// N of step:N (Python's `Breakdown.attributed_step`).
    pub attributed_step: Option<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Session,
    User,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Ordered,
    Strict,
    Unordered,
}

impl Scope {
    pub fn name(self) -> &'static str {
        match self {
            Scope::Session => "session",
            Scope::User => "user",
        }
    }
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Ordered => "ordered",
            Mode::Strict => "strict",
            Mode::Unordered => "unordered",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunnelDef {
    pub name: String,
    /// The step labels.
    pub steps: Vec<String>,
    pub scope: Scope,
    pub window_ms: i64,
    pub mode: Mode,
    pub step_defs: Vec<StepDef>,
    pub exclusions: Vec<Exclusion>,
    pub breakdown: Option<Breakdown>,
    /// Derived: the property names its filters and breakdown read, sorted.
    pub property_names: Vec<String>,
    /// Derived: per event type (in order of first step), the steps (0-based) it may fill.
    pub steps_of_type: Vec<(String, Vec<usize>)>,
    /// Derived: no step has filters.
    pub plain: bool,
}

fn keys_in(entries: &[(String, Json)], allowed: &[&str], what: &str) -> JsonResult<()> {
    for (key, _) in entries {
        if !allowed.contains(&key.as_str()) {
            return fail(format!("{} has an unknown field {:?}", what, key));
        }
    }
    Ok(())
}

fn field<'a>(entries: &'a [(String, Json)], key: &str, what: &str) -> JsonResult<&'a Json> {
    match entries.iter().find(|(k, _)| k == key) {
        Some((_, value)) => Ok(value),
        None => fail(format!("{} has no {:?}", what, key)),
    }
}

/// An optional field: absent is null.
fn opt_field<'a>(entries: &'a [(String, Json)], key: &str) -> &'a Json {
    const NULL: &Json = &Json::Null;
    entries
        .iter()
        .find(|(k, _)| k == key)
        .map_or(NULL, |(_, v)| v)
}

fn strings(value: &Json, what: &str) -> JsonResult<Vec<String>> {
    value
        .list(what)?
        .iter()
        .map(|v| v.str(what).map(str::to_owned))
        .collect()
}

fn filters_from_json(value: &Json, what: &str) -> JsonResult<Vec<PropertyFilter>> {
    let mut out = Vec::new();
    for raw in value.list(what)? {
        let f = raw.object("a filter")?;
        keys_in(f, &["prop", "op", "values"], "a filter")?;
        let op_name = field(f, "op", "a filter")?.str("a filter's op")?;
        let op = match FilterOp::parse(op_name) {
            Some(op) => op,
            None => return fail(format!("unknown filter op {:?}", op_name)),
        };
        out.push(PropertyFilter::new(
            field(f, "prop", "a filter")?
                .str("a filter's prop")?
                .to_owned(),
            op,
            strings(field(f, "values", "a filter")?, "a filter's values")?,
        )?);
    }
    Ok(out)
}

fn matcher_from_json(entries: &[(String, Json)], what: &str) -> JsonResult<EventMatcher> {
    Ok(EventMatcher {
        event: field(entries, "event", what)?
            .str("an event type")?
            .to_owned(),
        filters: match opt_field(entries, "filters") {
            Json::Null => Vec::new(),
            other => filters_from_json(other, "filters")?,
        },
    })
}

fn step_number(value: &Json, what: &str) -> JsonResult<usize> {
    let n = value.int(what)?;
    usize::try_from(n).map_err(|_| JsonError(format!("{} is negative", what)))
}

impl FunnelDef {
    /// The funnel `funnel_spec` (Python) wrote as JSON.
    pub fn from_json(value: &Json) -> JsonResult<FunnelDef> {
        let f = value.object("a funnel")?;
        keys_in(
            f,
            &[
                "name",
                "steps",
                "scope",
                "window_ms",
                "mode",
                "step_defs",
                "exclusions",
                "breakdown",
            ],
            "a funnel",
        )?;
        let name = field(f, "name", "a funnel")?
            .str("a funnel's name")?
            .to_owned();
        let what = format!("funnel {:?}", name);
        let scope = match opt_field(f, "scope") {
            Json::Null => Scope::Session,
            other => match other.str("the scope")? {
                "session" => Scope::Session,
                "user" => Scope::User,
                s => return fail(format!("{}: unknown scope {:?}", what, s)),
            },
        };
        let mode = match opt_field(f, "mode") {
            Json::Null => Mode::Ordered,
            other => match other.str("the mode")? {
                "ordered" => Mode::Ordered,
                "strict" => Mode::Strict,
                "unordered" => Mode::Unordered,
                s => return fail(format!("{}: unknown mode {:?}", what, s)),
            },
        };
        let window_ms = field(f, "window_ms", &what)?.int("the window")?;
        if window_ms <= 0 {
            return fail(format!(
                "{}: the window must be positive, got {}",
                what, window_ms
            ));
        }
        let steps = strings(field(f, "steps", &what)?, "the steps")?;
        let mut step_defs = Vec::new();
        for raw in field(f, "step_defs", &what)?.list("the step definitions")? {
            let s = raw.object("a step")?;
            keys_in(s, &["event", "filters", "within_ms", "label"], "a step")?;
            let matcher = matcher_from_json(s, "a step")?;
            step_defs.push(StepDef {
                within_ms: opt_field(s, "within_ms").opt_int("a step's within")?,
                label: match opt_field(s, "label") {
                    Json::Null => String::new(),
                    other => other.str("a step's label")?.to_owned(),
                },
                matcher,
            });
        }
        if step_defs.is_empty() || step_defs.len() > MAX_STEPS {
            return fail(format!(
                "{}: {} steps; a funnel has 1 to {} steps",
                what,
                step_defs.len(),
                MAX_STEPS
            ));
        }
        let mut exclusions = Vec::new();
        let raw_exclusions = match opt_field(f, "exclusions") {
            Json::Null => &[][..],
            other => other.list("the exclusions")?,
        };
        for raw in raw_exclusions {
            let x = raw.object("an exclusion")?;
            keys_in(
                x,
                &["event", "filters", "from_step", "to_step"],
                "an exclusion",
            )?;
            let from_step = step_number(field(x, "from_step", "an exclusion")?, "from_step")?;
            let to_step = step_number(field(x, "to_step", "an exclusion")?, "to_step")?;
            if !(1 <= from_step && from_step < to_step && to_step <= step_defs.len()) {
                return fail(format!(
                    "{}: exclusion steps {}..{} are out of 1..{}",
                    what,
                    from_step,
                    to_step,
                    step_defs.len()
                ));
            }
            exclusions.push(Exclusion {
                matcher: matcher_from_json(x, "an exclusion")?,
                from_step,
                to_step,
            });
        }
        let breakdown = match opt_field(f, "breakdown") {
            Json::Null => None,
            other => {
                let b = other.object("a breakdown")?;
                keys_in(
                    b,
                    &["dimensions", "attribution", "attributed_step"],
                    "a breakdown",
                )?;
                let attributed_step = match opt_field(b, "attributed_step") {
                    Json::Null => None,
                    n => {
                        let n = step_number(n, "the attributed step")?;
                        if n < 1 || n > step_defs.len() {
                            return fail(format!(
                                "{}: attributed step {} is out of range",
                                what, n
                            ));
                        }
                        Some(n)
                    }
                };
                Some(Breakdown {
                    dimensions: strings(field(b, "dimensions", "a breakdown")?, "dimensions")?,
                    attribution: match opt_field(b, "attribution") {
                        Json::Null => "first_touch".to_owned(),
                        a => a.str("the attribution")?.to_owned(),
                    },
                    attributed_step,
                })
            }
        };
        Ok(FunnelDef::new(
            name, steps, scope, window_ms, mode, step_defs, exclusions, breakdown,
        ))
    }

    /// With the derived fields (Python's `__post_init__`).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: String,
        steps: Vec<String>,
        scope: Scope,
        window_ms: i64,
        mode: Mode,
        step_defs: Vec<StepDef>,
        exclusions: Vec<Exclusion>,
        breakdown: Option<Breakdown>,
    ) -> FunnelDef {
        let mut names: Vec<String> = Vec::new();
        let matchers = step_defs
            .iter()
            .map(|s| &s.matcher)
            .chain(exclusions.iter().map(|x| &x.matcher));
        for matcher in matchers {
            names.extend(matcher.filters.iter().map(|f| f.prop.clone()));
        }
        if let Some(b) = &breakdown {
            names.extend(
                b.dimensions
                    .iter()
                    .filter(|d| !DIMENSION_NAMES.contains(&d.as_str()))
                    .cloned(),
            );
        }
        names.sort();
        names.dedup();
        let mut steps_of_type: Vec<(String, Vec<usize>)> = Vec::new();
        for (index, step) in step_defs.iter().enumerate() {
            match steps_of_type
                .iter_mut()
                .find(|(t, _)| *t == step.matcher.event)
            {
                Some((_, indexes)) => indexes.push(index),
                None => steps_of_type.push((step.matcher.event.clone(), vec![index])),
            }
        }
        let plain = step_defs.iter().all(|s| s.matcher.filters.is_empty());
        FunnelDef {
            name,
            steps,
            scope,
            window_ms,
            mode,
            step_defs,
            exclusions,
            breakdown,
            property_names: names,
            steps_of_type,
            plain,
        }
    }

    /// The steps (0-based) an event of type `event_type` may fill.
    pub fn steps_of(&self, event_type: &str) -> &[usize] {
        match self.steps_of_type.iter().find(|(t, _)| t == event_type) {
            Some((_, steps)) => steps,
            None => &[],
        }
    }

    /// Every step's matcher, then every exclusion's.
    pub fn matchers(&self) -> impl Iterator<Item = &EventMatcher> {
        self.step_defs
            .iter()
            .map(|s| &s.matcher)
            .chain(self.exclusions.iter().map(|x| &x.matcher))
    }

    /// Event types any step or exclusion of this funnel can match, sorted.
    pub fn event_types(&self) -> Vec<&str> {
        let mut types: Vec<&str> = self.matchers().map(|m| m.event.as_str()).collect();
        types.sort();
        types.dedup();
        types
    }

    /// Strict order looks at every event of the entity, not only the steps' types.
    pub fn needs_all_events(&self) -> bool {
        self.mode == Mode::Strict
    }

    /// The JSON `from_json` reads (what `funnel_spec` writes).
    pub fn to_json(&self) -> Json {
        fn filters(list: &[PropertyFilter]) -> Json {
            Json::List(
                list.iter()
                    .map(|f| {
                        Json::Object(vec![
                            ("prop".into(), Json::s(&f.prop)),
                            ("op".into(), Json::s(f.op.name())),
                            (
                                "values".into(),
                                Json::List(f.values.iter().map(|v| Json::s(v)).collect()),
                            ),
                        ])
                    })
                    .collect(),
            )
        }
        let step_defs = self
            .step_defs
            .iter()
            .map(|s| {
                Json::Object(vec![
                    ("event".into(), Json::s(&s.matcher.event)),
                    ("filters".into(), filters(&s.matcher.filters)),
                    ("within_ms".into(), Json::opt_i(s.within_ms)),
                    ("label".into(), Json::s(&s.label)),
                ])
            })
            .collect();
        let exclusions = self
            .exclusions
            .iter()
            .map(|x| {
                Json::Object(vec![
                    ("event".into(), Json::s(&x.matcher.event)),
                    ("from_step".into(), Json::Int(x.from_step as i64)),
                    ("to_step".into(), Json::Int(x.to_step as i64)),
                    ("filters".into(), filters(&x.matcher.filters)),
                ])
            })
            .collect();
        let breakdown = match &self.breakdown {
            None => Json::Null,
            Some(b) => Json::Object(vec![
                (
                    "dimensions".into(),
                    Json::List(b.dimensions.iter().map(|d| Json::s(d)).collect()),
                ),
                ("attribution".into(), Json::s(&b.attribution)),
                (
                    "attributed_step".into(),
                    Json::opt_i(b.attributed_step.map(|n| n as i64)),
                ),
            ]),
        };
        Json::Object(vec![
            ("name".into(), Json::s(&self.name)),
            (
                "steps".into(),
                Json::List(self.steps.iter().map(|s| Json::s(s)).collect()),
            ),
            ("scope".into(), Json::s(self.scope.name())),
            ("window_ms".into(), Json::Int(self.window_ms)),
            ("mode".into(), Json::s(self.mode.name())),
            ("step_defs".into(), Json::List(step_defs)),
            ("exclusions".into(), Json::List(exclusions)),
            ("breakdown".into(), breakdown),
        ])
    }
}

/// The funnel configuration: a list of `FunnelDef::from_json` objects.
pub fn funnels_from_json(value: &Json) -> JsonResult<Vec<FunnelDef>> {
    value
        .list("the funnels")?
        .iter()
        .map(FunnelDef::from_json)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(text: &str) -> Number {
        as_number(text).unwrap().unwrap()
    }

    #[test]
    fn reads_numbers_like_decimal() {
        assert_eq!(as_number("abc"), Ok(None));
        assert_eq!(as_number(""), Ok(None));
        assert_eq!(as_number("."), Ok(None));
        assert_eq!(as_number("1e"), Ok(None));
        assert_eq!(as_number(" 1"), Ok(None));
        assert_eq!(n("-0"), n("0.000e7"));
        assert_eq!(n("1."), n("1.000"));
        assert_eq!(n(".5"), n("5e-1"));
        assert!(n("-2") < n("-1.5"));
        assert!(n("10") > n("9.99"));
        assert!(n("1e999999999999999999") > n("9e999999999999999998"));
        // Beyond the decimal context's exponents: not a number (Decimal() raises there).
        assert_eq!(as_number("1e1000000000000000000"), Ok(None));
        assert!(matches!(as_number("1e-1999999999999999997"), Ok(Some(_))));
        assert_eq!(as_number("10e-1999999999999999998"), Ok(None));
        assert_eq!(as_number("0e-1999999999999999998"), Ok(None));
        assert!(matches!(as_number("0.0e1000000000000000000"), Ok(Some(_))));
        assert_eq!(
            as_number("1e99999999999999999999999999999999999999999"),
            Ok(None)
        );
    }
}
