//! What processing needs to know besides the events: the twin of `streams.visitor.Rules`.
//!
//! The core receives the rules once, as JSON built by the Python side
//! (`tests/native/specs.py::rules_json` for now): the funnels as `funnels.rs` reads them,
//! the lifecycle and attribution rules as their own `from_json` read them, and the four
//! durations and limits. The derived fields are computed here as Python computes them.

use crate::attribution::{AttributionRules, KPI_THRESHOLD};
use crate::funnels::{funnels_from_json, FunnelDef, Scope};
use crate::json::{Json, JsonError, JsonResult};
use crate::lifecycle::LifecycleRules;
use crate::retention::{GAPS_FAMILY, GRANULARITIES};

#[derive(Clone, Debug)]
pub struct Rules {
    pub funnels: Vec<FunnelDef>,
    pub window_ms: i64,
    pub session_timeout_ms: i64,
    pub lateness_ms: i64,
    pub max_transactions: i64,
    pub lifecycle: LifecycleRules,
    pub attribution: AttributionRules,
    /// Derived: the finality groups (KPI, one per funnel, retention per granularity, gaps).
    pub families: Vec<String>,
    /// Derived: indexes into `funnels` of the session-scope and user-scope funnels.
    pub session_funnels: Vec<usize>,
    pub user_funnels: Vec<usize>,
    /// Derived: event types user-scope funnels can use; None: every type (a strict one).
    pub user_funnel_types: Option<Vec<String>>,
    /// Derived: properties some funnel's filters or breakdown read, sorted.
    pub property_names: Vec<String>,
}

/// `streams.outputs.family.funnel_threshold`: the finality group of a funnel's rows.
pub fn funnel_threshold(funnel: &str) -> String {
    format!("funnel:{}", funnel)
}

fn positive(entries: &[(String, Json)], key: &str, default: i64) -> JsonResult<i64> {
    match entries.iter().find(|(k, _)| k == key) {
        None => Ok(default),
        Some((_, value)) => {
            let n = value.int(key)?;
            if n <= 0 {
                return Err(JsonError(format!("{} must be positive, not {}", key, n)));
            }
            Ok(n)
        }
    }
}

impl Rules {
    pub const FIELDS: [&'static str; 7] = [
        "funnels",
        "window_ms",
        "session_timeout_ms",
        "lateness_ms",
        "max_transactions",
        "lifecycle",
        "attribution",
    ];

    pub fn from_json(value: &Json) -> JsonResult<Rules> {
        let entries = value.object("the rules")?;
        for (key, _) in entries {
            if !Self::FIELDS.contains(&key.as_str()) {
                return Err(JsonError(format!(
                    "the rules have an unknown field {:?}",
                    key
                )));
            }
        }
        let funnels = match entries.iter().find(|(k, _)| k == "funnels") {
            Some((_, v)) => funnels_from_json(v)?,
            None => return Err(JsonError("the rules have no \"funnels\"".into())),
        };
        let lifecycle = match entries.iter().find(|(k, _)| k == "lifecycle") {
            Some((_, v)) => LifecycleRules::from_json(v)?,
            None => LifecycleRules::default(),
        };
        let attribution = match entries.iter().find(|(k, _)| k == "attribution") {
            Some((_, v)) => AttributionRules::from_json(v)?,
            None => AttributionRules::default(),
        };
        let session_timeout_ms = positive(entries, "session_timeout_ms", 1_800_000)?;
        let lateness_ms = positive(entries, "lateness_ms", 300_000)?;
        if session_timeout_ms <= lateness_ms {
            // A session could then close while on-time events for it may still arrive.
            return Err(JsonError(
                "session timeout must be longer than the allowed lateness".into(),
            ));
        }
        let mut families = vec![KPI_THRESHOLD.to_owned()];
        families.extend(funnels.iter().map(|f| funnel_threshold(&f.name)));
        families.extend(GRANULARITIES.iter().map(|g| g.family().to_owned()));
        families.push(GAPS_FAMILY.to_owned());
        let scoped = |scope: Scope| -> Vec<usize> {
            (0..funnels.len())
                .filter(|&i| funnels[i].scope == scope)
                .collect()
        };
        let session_funnels = scoped(Scope::Session);
        let user_funnels = scoped(Scope::User);
        let user_funnel_types = if user_funnels.iter().any(|&i| funnels[i].needs_all_events()) {
            None
        } else {
            let mut types: Vec<String> = Vec::new();
            for &i in &user_funnels {
                for t in funnels[i].event_types() {
                    if !types.iter().any(|known| known == t) {
                        types.push(t.to_owned());
                    }
                }
            }
            types.sort();
            Some(types)
        };
        let mut property_names: Vec<String> = funnels
            .iter()
            .flat_map(|f| f.property_names.iter().cloned())
            .collect();
        property_names.sort();
        property_names.dedup();
        Ok(Rules {
            window_ms: positive(entries, "window_ms", 60_000)?,
            session_timeout_ms,
            lateness_ms,
            max_transactions: positive(entries, "max_transactions", 100)?,
            lifecycle,
            attribution,
            families,
            session_funnels,
            user_funnels,
            user_funnel_types,
            property_names,
            funnels,
        })
    }

    /// `Rules.window_of`: the start of the window holding `t` (Python's floor modulo).
    pub fn window_of(&self, t: i64) -> i64 {
        t - t.rem_euclid(self.window_ms)
    }

    pub fn funnel_by_name(&self, name: &str) -> Option<&FunnelDef> {
        self.funnels.iter().find(|f| f.name == name)
    }

    /// Whether user-scope funnels can use an event of this type (`user_funnel_types`).
    pub fn user_funnels_use(&self, event_type: &str) -> bool {
        !self.user_funnels.is_empty()
            && self
                .user_funnel_types
                .as_ref()
                .map_or(true, |types| types.iter().any(|t| t == event_type))
    }
}

fn strings(values: &[String]) -> Json {
    Json::List(values.iter().map(|v| Json::s(v)).collect())
}

/// Probes "rules.derived": the derived fields, for comparison with the Python properties.
pub fn probe(name: &str, args: &Json) -> Option<JsonResult<Json>> {
    if name != "rules.derived" {
        return None;
    }
    Some(Rules::from_json(args).map(|rules| {
        let names = |indexes: &[usize]| {
            Json::List(
                indexes
                    .iter()
                    .map(|&i| Json::s(&rules.funnels[i].name))
                    .collect(),
            )
        };
        Json::Object(vec![
            ("families".into(), strings(&rules.families)),
            ("session_funnels".into(), names(&rules.session_funnels)),
            ("user_funnels".into(), names(&rules.user_funnels)),
            (
                "user_funnel_types".into(),
                rules
                    .user_funnel_types
                    .as_deref()
                    .map_or(Json::Null, strings),
            ),
            ("property_names".into(), strings(&rules.property_names)),
            ("window_ms".into(), Json::Int(rules.window_ms)),
        ])
    }))
}
