//! Channel grouping: the Rust twin of `schemas/channels.py` (`ChannelRules.classify`).
//!
//! `(utm_source, utm_medium, referrer)` become one normalised `(source, medium)` pair
//! (`source_medium`: `str.strip()` over Python's `str.isspace`, `str.lower()` and
//! `urlsplit(...).hostname` exactly as CPython 3.11 does them, from `validation.rs` and
//! `attribution.rs`), then the first rule whose conditions all hold names the channel;
//! none gives `unassigned`.
//!
//! The rules arrive once as JSON built from the loaded Python object
//! (tests/native/test_channels.py `channel_rules_json`), not from the YAML: the YAML
//! loader and its validation stay in Python. `ChannelRules::from_json` refuses rules it
//! could not evaluate exactly.
//!
//! `source_matches` / `medium_matches` are Python regexes searched with `re.search`.
//! [`Regex`] implements the subset of Python's `re` syntax that `schemas/channels.yaml`
//! uses, and a little more, with Python's meaning: literals, `.` (any character but
//! `\n`), `^` (start of the string), `$` (end, or before a final `\n`), groups `( )` and
//! `(?: )`, alternation `|`, the quantifiers `*` `+` `?` and their lazy forms `*?` `+?`
//! `??`, character sets `[...]` / `[^...]` of literals and ranges, and the escapes of
//! characters that are not ASCII letters or digits plus `\a \f \n \r \t \v`. Anything
//! else (`{m,n}`, `\d`, `\w`, `\s`, `\b`, `\x..`, backreferences, lookarounds, named
//! groups, inline flags, possessive quantifiers, any flag but the default `re.UNICODE`) is
//! refused by `Regex::new`, so rules using it fail to load rather than match differently.
//! Only whether a match exists matters (`search(...) is not None`), so the pattern runs
//! as a Thompson NFA over the characters (linear in the text, no backtracking), which
//! finds a match exactly when Python's backtracking engine does.

use std::collections::{HashMap, HashSet};

use crate::attribution::{hostname, py_lower, urlsplit};
use crate::json::{Json, JsonError, JsonResult};
use crate::validation::{in_table, PY_ISSPACE};

/// `CHANNELS`, in the Python order.
pub const CHANNELS: [&str; 12] = [
    "organic_search",
    "paid_search",
    "organic_social",
    "paid_social",
    "email",
    "affiliates",
    "referral",
    "display",
    "kol",
    "marketplace_ads",
    "direct",
    "unassigned",
];
pub const UNASSIGNED: &str = "unassigned";
pub const NOT_SET: &str = "(not set)";
/// `CACHE_LIMIT`: the memo is cleared when it holds this many inputs.
pub const CACHE_LIMIT: usize = 65_536;
/// `re.UNICODE`, the flags of a `re.compile(str)` without flags.
pub const RE_UNICODE: i64 = 32;

fn json_err<T>(message: impl Into<String>) -> JsonResult<T> {
    Err(JsonError(message.into()))
}

// -- text helpers ---------------------------------------------------------------------

/// `str.strip()` (no argument): the characters where `str.isspace()` is true.
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(|c: char| in_table(PY_ISSPACE, c))
}

/// `_host_of(value)`: the host of a referrer (or of a source that looks like a host),
/// lower case, without trailing dots; '' where there is none or urlsplit raises.
pub fn host_of(value: &str) -> String {
    let text = py_lower(py_strip(value));
    if text.is_empty() {
        return String::new();
    }
    let text = if text.contains("//") {
        text
    } else {
        format!("//{}", text)
    };
    let host = match urlsplit(&text) {
        Ok(split) => hostname(&split.netloc).unwrap_or_default(),
        Err(_) => return String::new(),
    };
    host.trim_end_matches('.').to_owned()
}

// -- source groups --------------------------------------------------------------------

/// `SourceGroup`: sources known by name, or by domain (and its subdomains); a wildcard
/// label (`google` of `google.*`) matches under any one- or two-label suffix.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceGroup {
    pub names: HashSet<String>,
    pub domains: HashSet<String>,
    pub wildcard_labels: HashSet<String>,
}

impl SourceGroup {
    /// `SourceGroup.matches(source)`.
    pub fn matches(&self, source: &str) -> bool {
        if self.names.contains(source) {
            return true;
        }
        if !source.contains('.') {
            return false;
        }
        let host = host_of(source);
        let labels: Vec<&str> = host.split('.').collect();
        for start in 0..labels.len() {
            if self.domains.contains(&labels[start..].join(".")) {
                return true;
            }
            let suffix_len = labels.len() - start - 1;
            if (1..=2).contains(&suffix_len) && self.wildcard_labels.contains(labels[start]) {
                return true;
            }
        }
        false
    }

    /// `{"names": [...], "domains": [...], "wildcard_labels": [...]}`.
    pub fn from_json(value: &Json) -> JsonResult<SourceGroup> {
        let mut group = SourceGroup::default();
        for (key, item) in value.object("a source group")? {
            let set = match key.as_str() {
                "names" => &mut group.names,
                "domains" => &mut group.domains,
                "wildcard_labels" => &mut group.wildcard_labels,
                other => return json_err(format!("a source group has an unknown key {:?}", other)),
            };
            for s in item.list(key)? {
                set.insert(s.str(key)?.to_owned());
            }
        }
        Ok(group)
    }
}

// -- conditions and rules -------------------------------------------------------------

/// One condition of a rule (a key of the YAML mapping).
#[derive(Clone, Debug)]
pub enum Check {
    /// `any`: at least one of these conditions holds.
    Any(Vec<Condition>),
    /// `source_in`: the source is in one of the groups.
    SourceIn(Vec<SourceGroup>),
    SourceIs(HashSet<String>),
    MediumIs(HashSet<String>),
    SourceMatches(Regex),
    MediumMatches(Regex),
}

impl Check {
    pub fn holds(&self, source: &str, medium: &str) -> bool {
        match self {
            Check::Any(options) => options.iter().any(|o| o.holds(source, medium)),
            Check::SourceIn(groups) => groups.iter().any(|g| g.matches(source)),
            Check::SourceIs(accepted) => accepted.contains(source),
            Check::MediumIs(accepted) => accepted.contains(medium),
            Check::SourceMatches(pattern) => pattern.search(source),
            Check::MediumMatches(pattern) => pattern.search(medium),
        }
    }

    /// `{"any": [[check, ...], ...]}`, `{"source_in": [group, ...]}`,
    /// `{"source_is": [str, ...]}`, `{"medium_is": [...]}`,
    /// `{"source_matches": {"pattern": str, "flags": int}}`, `{"medium_matches": ...}`.
    pub fn from_json(value: &Json) -> JsonResult<Check> {
        let entries = value.object("a check")?;
        if entries.len() != 1 {
            return json_err("a check is an object with one key");
        }
        let (key, arg) = &entries[0];
        let strings = |what: &str| -> JsonResult<HashSet<String>> {
            arg.list(what)?
                .iter()
                .map(|s| s.str(what).map(str::to_owned))
                .collect()
        };
        let regex = |what: &str| -> JsonResult<Regex> {
            let mut pattern = None;
            let mut flags = None;
            for (k, v) in arg.object(what)? {
                match k.as_str() {
                    "pattern" => pattern = Some(v.str("pattern")?),
                    "flags" => flags = Some(v.int("flags")?),
                    other => return json_err(format!("{} has an unknown key {:?}", what, other)),
                }
            }
            let pattern = pattern.ok_or_else(|| JsonError(format!("{} has no pattern", what)))?;
            if flags != Some(RE_UNICODE) {
                return json_err(format!(
                    "{} {:?}: only the default flags (re.UNICODE) are supported, not {:?}",
                    what, pattern, flags
                ));
            }
            Regex::new(pattern).map_err(|e| JsonError(format!("{} {:?}: {}", what, pattern, e)))
        };
        Ok(match key.as_str() {
            "any" => Check::Any(
                arg.list("any")?
                    .iter()
                    .map(Condition::from_json)
                    .collect::<JsonResult<_>>()?,
            ),
            "source_in" => Check::SourceIn(
                arg.list("source_in")?
                    .iter()
                    .map(SourceGroup::from_json)
                    .collect::<JsonResult<_>>()?,
            ),
            "source_is" => Check::SourceIs(strings("source_is")?),
            "medium_is" => Check::MediumIs(strings("medium_is")?),
            "source_matches" => Check::SourceMatches(regex("source_matches")?),
            "medium_matches" => Check::MediumMatches(regex("medium_matches")?),
            other => return json_err(format!("unknown check {:?}", other)),
        })
    }
}

/// A set of checks that must all hold (a YAML condition mapping; empty: always holds).
#[derive(Clone, Debug)]
pub struct Condition {
    pub checks: Vec<Check>,
}

impl Condition {
    pub fn holds(&self, source: &str, medium: &str) -> bool {
        self.checks.iter().all(|c| c.holds(source, medium))
    }

    /// A list of checks.
    pub fn from_json(value: &Json) -> JsonResult<Condition> {
        Ok(Condition {
            checks: value
                .list("a condition")?
                .iter()
                .map(Check::from_json)
                .collect::<JsonResult<_>>()?,
        })
    }
}

/// One rule: its channel, if its condition holds.
#[derive(Clone, Debug)]
pub struct ChannelRule {
    pub channel: String,
    pub condition: Condition,
}

/// `ChannelRules`: the ordered rules and the shop's own hosts.
#[derive(Clone, Debug)]
pub struct ChannelRules {
    pub rules: Vec<ChannelRule>,
    pub internal: SourceGroup,
}

impl ChannelRules {
    /// `{"internal": group, "rules": [{"channel": str, "all": [check, ...]}, ...]}`.
    pub fn from_json(value: &Json) -> JsonResult<ChannelRules> {
        let mut internal = None;
        let mut rules = None;
        for (key, item) in value.object("channel rules")? {
            match key.as_str() {
                "internal" => internal = Some(SourceGroup::from_json(item)?),
                "rules" => {
                    let mut parsed = Vec::new();
                    for rule in item.list("rules")? {
                        let mut channel = None;
                        let mut condition = None;
                        for (k, v) in rule.object("a rule")? {
                            match k.as_str() {
                                "channel" => channel = Some(v.str("channel")?.to_owned()),
                                "all" => condition = Some(Condition::from_json(v)?),
                                other => {
                                    return json_err(format!(
                                        "a rule has an unknown key {:?}",
                                        other
                                    ))
                                }
                            }
                        }
                        match (channel, condition) {
                            (Some(channel), Some(condition)) => {
                                parsed.push(ChannelRule { channel, condition })
                            }
                            _ => return json_err("a rule needs channel and all"),
                        }
                    }
                    rules = Some(parsed);
                }
                other => return json_err(format!("channel rules have an unknown key {:?}", other)),
            }
        }
        match (rules, internal) {
            (Some(rules), Some(internal)) => Ok(ChannelRules { rules, internal }),
            _ => json_err("channel rules need internal and rules"),
        }
    }

    /// `ChannelRules.source_medium`: the normalised (source, medium) pair the rules see.
    pub fn source_medium(
        &self,
        utm_source: Option<&str>,
        utm_medium: Option<&str>,
        referrer: Option<&str>,
    ) -> (String, String) {
        let source = py_lower(py_strip(utm_source.unwrap_or("")));
        let medium = py_lower(py_strip(utm_medium.unwrap_or("")));
        if !source.is_empty() || !medium.is_empty() {
            let or_not_set = |s: String| if s.is_empty() { NOT_SET.to_owned() } else { s };
            return (or_not_set(source), or_not_set(medium));
        }
        let host = host_of(referrer.unwrap_or(""));
        if !host.is_empty() && !self.internal.matches(&host) {
            return (host, "referral".to_owned());
        }
        ("(direct)".to_owned(), "(none)".to_owned())
    }

    /// The index of the first rule that holds (None: unassigned).
    pub fn rule_of(
        &self,
        utm_source: Option<&str>,
        utm_medium: Option<&str>,
        referrer: Option<&str>,
    ) -> Option<usize> {
        let (source, medium) = self.source_medium(utm_source, utm_medium, referrer);
        self.rules
            .iter()
            .position(|r| r.condition.holds(&source, &medium))
    }

    /// `ChannelRules.classify(utm_source, utm_medium, referrer)` (without the memo: see
    /// [`ChannelCache`]).
    pub fn classify(
        &self,
        utm_source: Option<&str>,
        utm_medium: Option<&str>,
        referrer: Option<&str>,
    ) -> &str {
        self.channel(self.rule_of(utm_source, utm_medium, referrer))
    }

    fn channel(&self, rule: Option<usize>) -> &str {
        match rule.and_then(|i| self.rules.get(i)) {
            Some(r) => &r.channel,
            None => UNASSIGNED,
        }
    }
}

type CacheKey = (Option<String>, Option<String>, Option<String>);

/// The rules with `classify`'s bounded memo (cleared when it holds [`CACHE_LIMIT`]
/// inputs, as the Python one is): the same answers as [`ChannelRules::classify`].
#[derive(Clone, Debug)]
pub struct ChannelCache {
    pub rules: ChannelRules,
    cache: HashMap<CacheKey, Option<usize>>,
}

impl ChannelCache {
    pub fn new(rules: ChannelRules) -> ChannelCache {
        ChannelCache {
            rules,
            cache: HashMap::new(),
        }
    }

    pub fn classify(
        &mut self,
        utm_source: Option<&str>,
        utm_medium: Option<&str>,
        referrer: Option<&str>,
    ) -> &str {
        let key = (
            utm_source.map(str::to_owned),
            utm_medium.map(str::to_owned),
            referrer.map(str::to_owned),
        );
        let rule = match self.cache.get(&key) {
            Some(&rule) => rule,
            None => {
                let rule = self.rules.rule_of(utm_source, utm_medium, referrer);
                if self.cache.len() >= CACHE_LIMIT {
                    self.cache.clear();
                }
                self.cache.insert(key, rule);
                rule
            }
        };
        self.rules.channel(rule)
    }
}

// -- regular expressions (a subset of Python's re) -----------------------------------

#[derive(Clone, Debug, PartialEq, Eq)]
enum Node {
    Char(char),
    /// `.`: any character but `\n`.
    Any,
    /// `[...]`: inclusive ranges; negated for `[^...]`.
    Set(bool, Vec<(char, char)>),
    /// `^`
    Begin,
    /// `$`
    End,
    Concat(Vec<Node>),
    Alt(Vec<Node>),
    /// `( )` or `(?: )`: a quantifier may follow it even when it holds an anchor.
    Group(Box<Node>),
    /// `*` (min 0), `+` (min 1), `?` (min 0, at most one).
    Repeat(Box<Node>, u8, bool),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Inst {
    Char(char),
    Any,
    /// Index into `Regex::sets`.
    Set(usize),
    Begin,
    End,
    Split(usize, usize),
    Jmp(usize),
    Match,
}

/// A compiled pattern of the supported subset; [`Regex::search`] is
/// `re.search(pattern, text) is not None`.
#[derive(Clone, Debug)]
pub struct Regex {
    pub pattern: String,
    prog: Vec<Inst>,
    sets: Vec<(bool, Vec<(char, char)>)>,
}

/// Why a pattern is refused: invalid in Python, or outside the supported subset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegexError(pub String);

impl std::fmt::Display for RegexError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn unsupported<T>(what: &str, at: usize) -> Result<T, RegexError> {
    Err(RegexError(format!(
        "{} at position {} is not supported by the compiled core's regex subset",
        what, at
    )))
}

fn invalid<T>(what: &str, at: usize) -> Result<T, RegexError> {
    Err(RegexError(format!("{} at position {}", what, at)))
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
    depth: usize,
}

/// Nesting deeper than this is refused (no unbounded recursion on hostile rules).
const MAX_DEPTH: usize = 100;

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn alternation(&mut self) -> Result<Node, RegexError> {
        let mut branches = vec![self.concat()?];
        while self.eat('|') {
            branches.push(self.concat()?);
        }
        Ok(if branches.len() == 1 {
            branches.pop().unwrap_or(Node::Concat(Vec::new()))
        } else {
            Node::Alt(branches)
        })
    }

    fn concat(&mut self) -> Result<Node, RegexError> {
        let mut items: Vec<Node> = Vec::new();
        // Whether the last item is a repeat (Python: "multiple repeat").
        let mut last_repeat = false;
        while let Some(c) = self.peek() {
            let at = self.pos;
            match c {
                '|' | ')' => break,
                '*' | '+' | '?' => {
                    self.pos += 1;
                    let item = match items.pop() {
                        None | Some(Node::Begin) | Some(Node::End) => {
                            return invalid("nothing to repeat", at)
                        }
                        Some(_) if last_repeat => return invalid("multiple repeat", at),
                        Some(item) => item,
                    };
                    // A lazy quantifier finds a match exactly when the greedy one does.
                    self.eat('?');
                    if matches!(self.peek(), Some('+')) {
                        return unsupported("a possessive quantifier", self.pos);
                    }
                    let (min, max_one) = match c {
                        '*' => (0, false),
                        '+' => (1, false),
                        _ => (0, true),
                    };
                    items.push(Node::Repeat(Box::new(item), min, max_one));
                    last_repeat = true;
                    continue;
                }
                '{' => return unsupported("'{' (a counted repeat or a literal brace)", at),
                '(' => {
                    self.pos += 1;
                    if self.eat('?') && !self.eat(':') {
                        return unsupported("a '(?' group other than '(?:'", at);
                    }
                    self.depth += 1;
                    if self.depth > MAX_DEPTH {
                        return unsupported("nesting this deep", at);
                    }
                    let inner = self.alternation()?;
                    self.depth -= 1;
                    if !self.eat(')') {
                        return invalid("missing ), unterminated subpattern", at);
                    }
                    items.push(Node::Group(Box::new(inner)));
                }
                '[' => {
                    self.pos += 1;
                    items.push(self.set(at)?);
                }
                '.' => {
                    self.pos += 1;
                    items.push(Node::Any);
                }
                '^' => {
                    self.pos += 1;
                    items.push(Node::Begin);
                }
                '$' => {
                    self.pos += 1;
                    items.push(Node::End);
                }
                '\\' => {
                    self.pos += 1;
                    items.push(Node::Char(self.escape(at)?));
                }
                other => {
                    self.pos += 1;
                    items.push(Node::Char(other));
                }
            }
            last_repeat = false;
        }
        Ok(if items.len() == 1 {
            items.pop().unwrap_or(Node::Concat(Vec::new()))
        } else {
            Node::Concat(items)
        })
    }

    /// After a backslash: the literal character it stands for (the escapes the subset
    /// has, the same inside and outside a set).
    fn escape(&mut self, at: usize) -> Result<char, RegexError> {
        let c = match self.peek() {
            Some(c) => c,
            None => return invalid("bad escape (end of pattern)", at),
        };
        self.pos += 1;
        if !c.is_ascii_alphanumeric() {
            return Ok(c);
        }
        match c {
            'a' => Ok('\u{7}'),
            'f' => Ok('\u{c}'),
            'n' => Ok('\n'),
            'r' => Ok('\r'),
            't' => Ok('\t'),
            'v' => Ok('\u{b}'),
            _ => unsupported(&format!("the escape \\{}", c), at),
        }
    }

    /// After '[': re/_parser.py's character set loop.
    fn set(&mut self, start: usize) -> Result<Node, RegexError> {
        if self.peek() == Some('[') {
            return unsupported("'[' first in a set (a possible nested set)", self.pos);
        }
        let negate = self.eat('^');
        let mut items: Vec<(char, char)> = Vec::new();
        loop {
            let at = self.pos;
            let this = match self.peek() {
                Some(c) => c,
                None => return invalid("unterminated character set", start),
            };
            self.pos += 1;
            if this == ']' && !items.is_empty() {
                break;
            }
            let lo = if this == '\\' {
                self.escape(at)?
            } else {
                if "-&~|".contains(this) && !items.is_empty() && self.peek() == Some(this) {
                    return unsupported("a doubled '-&~|' in a set (a possible set operation)", at);
                }
                this
            };
            if self.eat('-') {
                let at2 = self.pos;
                let that = match self.peek() {
                    Some(c) => c,
                    None => return invalid("unterminated character set", start),
                };
                self.pos += 1;
                if that == ']' {
                    items.push((lo, lo));
                    items.push(('-', '-'));
                    break;
                }
                let hi = if that == '\\' {
                    self.escape(at2)?
                } else {
                    if that == '-' {
                        return unsupported("'--' in a set (a possible set difference)", at2);
                    }
                    that
                };
                if hi < lo {
                    return invalid("bad character range", at);
                }
                items.push((lo, hi));
            } else {
                items.push((lo, lo));
            }
        }
        Ok(Node::Set(negate, items))
    }
}

impl Regex {
    /// Compile `pattern` (as `re.compile(pattern)` with no flags), or say why not.
    pub fn new(pattern: &str) -> Result<Regex, RegexError> {
        let mut parser = Parser {
            chars: pattern.chars().collect(),
            pos: 0,
            depth: 0,
        };
        let node = parser.alternation()?;
        if parser.pos < parser.chars.len() {
            return invalid("unbalanced parenthesis", parser.pos);
        }
        let mut regex = Regex {
            pattern: pattern.to_owned(),
            prog: Vec::new(),
            sets: Vec::new(),
        };
        regex.emit(&node);
        regex.prog.push(Inst::Match);
        Ok(regex)
    }

    fn emit(&mut self, node: &Node) {
        match node {
            Node::Char(c) => self.prog.push(Inst::Char(*c)),
            Node::Any => self.prog.push(Inst::Any),
            Node::Set(negate, items) => {
                self.sets.push((*negate, items.clone()));
                self.prog.push(Inst::Set(self.sets.len() - 1));
            }
            Node::Begin => self.prog.push(Inst::Begin),
            Node::End => self.prog.push(Inst::End),
            Node::Group(inner) => self.emit(inner),
            Node::Concat(items) => {
                for item in items {
                    self.emit(item);
                }
            }
            Node::Alt(branches) => {
                // split L1, next; L1: branch; jmp end; next: split ... ; last branch
                let mut jumps = Vec::new();
                for (i, branch) in branches.iter().enumerate() {
                    if i + 1 < branches.len() {
                        let split = self.prog.len();
                        self.prog.push(Inst::Split(split + 1, 0));
                        self.emit(branch);
                        jumps.push(self.prog.len());
                        self.prog.push(Inst::Jmp(0));
                        let next = self.prog.len();
                        self.prog[split] = Inst::Split(split + 1, next);
                    } else {
                        self.emit(branch);
                    }
                }
                let end = self.prog.len();
                for j in jumps {
                    self.prog[j] = Inst::Jmp(end);
                }
            }
            Node::Repeat(item, min, max_one) => {
                if *max_one {
                    // split body, end
                    let split = self.prog.len();
                    self.prog.push(Inst::Split(split + 1, 0));
                    self.emit(item);
                    let end = self.prog.len();
                    self.prog[split] = Inst::Split(split + 1, end);
                } else if *min == 0 {
                    // L: split body, end; body; jmp L
                    let split = self.prog.len();
                    self.prog.push(Inst::Split(split + 1, 0));
                    self.emit(item);
                    self.prog.push(Inst::Jmp(split));
                    let end = self.prog.len();
                    self.prog[split] = Inst::Split(split + 1, end);
                } else {
                    // L: body; split L, end
                    let body = self.prog.len();
                    self.emit(item);
                    let split = self.prog.len();
                    self.prog.push(Inst::Split(body, split + 1));
                }
            }
        }
    }

    fn in_set(&self, set: usize, c: char) -> bool {
        match self.sets.get(set) {
            Some((negate, items)) => items.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negate,
            None => false,
        }
    }

    /// Follow the zero-width instructions from `pc` at position `pos`; the character
    /// instructions reached go to `list`. True when the pattern can match here.
    fn add(
        &self,
        list: &mut Vec<usize>,
        seen: &mut [usize],
        mark: usize,
        pc: usize,
        pos: usize,
        chars: &[char],
        stack: &mut Vec<usize>,
    ) -> bool {
        stack.clear();
        stack.push(pc);
        while let Some(pc) = stack.pop() {
            match seen.get_mut(pc) {
                Some(s) if *s != mark => *s = mark,
                _ => continue,
            }
            match self.prog[pc] {
                Inst::Match => return true,
                Inst::Jmp(to) => stack.push(to),
                Inst::Split(a, b) => {
                    stack.push(b);
                    stack.push(a);
                }
                Inst::Begin => {
                    if pos == 0 {
                        stack.push(pc + 1);
                    }
                }
                Inst::End => {
                    let n = chars.len();
                    if pos == n || (pos + 1 == n && chars[pos] == '\n') {
                        stack.push(pc + 1);
                    }
                }
                Inst::Char(_) | Inst::Any | Inst::Set(_) => list.push(pc),
            }
        }
        false
    }

    /// `re.search(pattern, text) is not None`.
    pub fn search(&self, text: &str) -> bool {
        let chars: Vec<char> = text.chars().collect();
        // seen[pc] == step + 1 when pc was added at this step (0: never).
        let mut seen = vec![0usize; self.prog.len()];
        let mut current: Vec<usize> = Vec::new();
        let mut next: Vec<usize> = Vec::new();
        let mut stack = Vec::new();
        for pos in 0..=chars.len() {
            // A match may start at every position (search).
            if self.add(&mut current, &mut seen, pos + 1, 0, pos, &chars, &mut stack) {
                return true;
            }
            let c = match chars.get(pos) {
                Some(&c) => c,
                None => break,
            };
            next.clear();
            for &pc in &current {
                let step = match self.prog[pc] {
                    Inst::Char(want) => want == c,
                    Inst::Any => c != '\n',
                    Inst::Set(set) => self.in_set(set, c),
                    _ => false,
                };
                if step
                    && self.add(
                        &mut next,
                        &mut seen,
                        pos + 2,
                        pc + 1,
                        pos + 1,
                        &chars,
                        &mut stack,
                    )
                {
                    return true;
                }
            }
            std::mem::swap(&mut current, &mut next);
        }
        false
    }
}

// -- probes (the differential test's adapter) -----------------------------------------

fn arg<'a>(args: &'a Json, name: &str) -> JsonResult<&'a Json> {
    args.object("arguments")?
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
        .ok_or_else(|| JsonError(format!("missing argument {:?}", name)))
}

fn triples(args: &Json) -> JsonResult<Vec<[Option<String>; 3]>> {
    arg(args, "cases")?
        .list("cases")?
        .iter()
        .map(|case| {
            let items = case.list("a case")?;
            if items.len() != 3 {
                return json_err("a case is [utm_source, utm_medium, referrer]");
            }
            let field = |i: usize| {
                items[i]
                    .opt_str("a case field")
                    .map(|s| s.map(str::to_owned))
            };
            Ok([field(0)?, field(1)?, field(2)?])
        })
        .collect()
}

fn run_probe(name: &str, args: &Json) -> JsonResult<Json> {
    match name {
        "channels.classify" | "channels.classify_cached" | "channels.source_medium" => {
            let rules = ChannelRules::from_json(arg(args, "rules")?)?;
            let cases = triples(args)?;
            let mut cache = ChannelCache::new(rules.clone());
            let out = cases
                .iter()
                .map(|[s, m, r]| {
                    let (s, m, r) = (s.as_deref(), m.as_deref(), r.as_deref());
                    match name {
                        "channels.classify" => Json::s(rules.classify(s, m, r)),
                        "channels.classify_cached" => Json::s(cache.classify(s, m, r)),
                        _ => {
                            let (source, medium) = rules.source_medium(s, m, r);
                            Json::List(vec![Json::Str(source), Json::Str(medium)])
                        }
                    }
                })
                .collect();
            Ok(Json::List(out))
        }
        "channels.host_of" => Ok(Json::List(
            arg(args, "values")?
                .list("values")?
                .iter()
                .map(|v| v.str("a value").map(|v| Json::Str(host_of(v))))
                .collect::<JsonResult<_>>()?,
        )),
        "channels.search" => {
            // {"pattern": str, "texts": [str, ...]} -> [bool, ...] or {"error": why}
            let pattern = arg(args, "pattern")?.str("pattern")?;
            let texts = arg(args, "texts")?.list("texts")?;
            match Regex::new(pattern) {
                Ok(regex) => Ok(Json::List(
                    texts
                        .iter()
                        .map(|t| t.str("a text").map(|t| Json::Bool(regex.search(t))))
                        .collect::<JsonResult<_>>()?,
                )),
                Err(e) => Ok(Json::Object(vec![("error".into(), Json::Str(e.0))])),
            }
        }
        _ => json_err(format!("no probe {:?}", name)),
    }
}

pub fn probe(name: &str, args: &Json) -> Option<JsonResult<Json>> {
    if !name.starts_with("channels.") {
        return None;
    }
    Some(run_probe(name, args))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search(pattern: &str, text: &str) -> bool {
        Regex::new(pattern).unwrap().search(text)
    }

    #[test]
    fn shipped_patterns() {
        let paid = "^(.*cp.*|ppc|retargeting|paid.*)$";
        assert!(search(paid, "cpc"));
        assert!(search(paid, "xcpx"));
        assert!(search(paid, "paid_social"));
        assert!(search(paid, "ppc\n"));
        assert!(!search(paid, "ppc\n\n"));
        assert!(!search(paid, "c\ncp"));
        assert!(!search(paid, "ppcx"));
        let kol = "^(kol|koc|influencers?|creators?)([-_ ].*)?$";
        assert!(search(kol, "influencer"));
        assert!(search(kol, "creators_x"));
        assert!(search(kol, "kol-"));
        assert!(!search(kol, "kolx"));
        assert!(search("^(.*video.*)$", "short video"));
    }

    #[test]
    fn refuses_outside_the_subset() {
        for p in [
            "a{2}", "\\d", "(?i)a", "a*+", "a**", "*a", "^*", "(a", "a)", "[a", "[z-a]",
        ] {
            assert!(Regex::new(p).is_err(), "{}", p);
        }
        assert!(search("[]a]", "]"));
        assert!(search("[^]]", "a"));
        assert!(search("[a-]", "-"));
        assert!(search("", ""));
        assert!(search("(|a)*$", "b"));
        assert!(search("a(^)*", "a"));
        assert!(Regex::new("a(^)*").is_ok());
    }

    #[test]
    fn hosts() {
        assert_eq!(
            host_of(" HTTPS://WWW.Google.COM.:8080/x "),
            "www.google.com"
        );
        assert_eq!(host_of("google.com"), "google.com");
        assert_eq!(host_of("http://[::1"), "");
        assert_eq!(host_of("\u{1c}a.b"), "a.b");
    }
}
