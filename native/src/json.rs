//! JSON as the visitor state's wire format uses it: orjson's compact output.
//!
//! `write` produces exactly the bytes `orjson.dumps` produces for the same value (no
//! spaces, `"`/`\` and control characters escaped, short escapes where JSON has them,
//! `\u00XX` in lower-case hex otherwise, everything else as UTF-8), so a state encoded
//! here is byte-identical to one encoded by `streams/state.py`. `parse` reads any JSON
//! whose numbers are integers (the state holds no floats).

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Str(String),
    List(Vec<Json>),
    /// Key order kept: Python dicts (and orjson) keep insertion order.
    Object(Vec<(String, Json)>),
}

#[derive(Debug, PartialEq, Eq)]
pub struct JsonError(pub String);

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub type JsonResult<T> = Result<T, JsonError>;

fn err<T>(message: impl Into<String>) -> JsonResult<T> {
    Err(JsonError(message.into()))
}

// -- writing ---------------------------------------------------------------------------

pub fn write(value: &Json, out: &mut Vec<u8>) {
    match value {
        Json::Null => out.extend_from_slice(b"null"),
        Json::Bool(true) => out.extend_from_slice(b"true"),
        Json::Bool(false) => out.extend_from_slice(b"false"),
        Json::Int(n) => write_int(*n, out),
        Json::Str(s) => write_str(s, out),
        Json::List(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out);
            }
            out.push(b']');
        }
        Json::Object(entries) => {
            out.push(b'{');
            for (i, (key, item)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(key, out);
                out.push(b':');
                write(item, out);
            }
            out.push(b'}');
        }
    }
}

pub fn to_bytes(value: &Json) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    write(value, &mut out);
    out
}

pub fn write_int(n: i64, out: &mut Vec<u8>) {
    // Digits into a stack buffer, most significant last (no allocation per number).
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut m = n.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (m % 10) as u8;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&buf[i..]);
}

pub fn write_str(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short: Option<u8> = match b {
            b'"' => Some(b'"'),
            b'\\' => Some(b'\\'),
            0x08 => Some(b'b'),
            0x09 => Some(b't'),
            0x0a => Some(b'n'),
            0x0c => Some(b'f'),
            0x0d => Some(b'r'),
            _ => None,
        };
        if short.is_none() && b >= 0x20 {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        start = i + 1;
        match short {
            Some(c) => {
                out.push(b'\\');
                out.push(c);
            }
            None => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 0xf) as usize]);
            }
        }
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

// -- reading ---------------------------------------------------------------------------

pub fn parse(raw: &[u8]) -> JsonResult<Json> {
    let mut parser = Parser::new(raw);
    parser.skip_ws();
    let value = parser.value()?;
    parser.skip_ws();
    if parser.pos != raw.len() {
        return err(format!("unexpected data at byte {}", parser.pos));
    }
    Ok(value)
}

/// The reader under `parse` and under `json_reader::ByteReader` (which reads a value's
/// parts in place, without building the tree).
pub(crate) struct Parser<'a> {
    raw: &'a [u8],
    pos: usize,
    depth: usize,
}

// Deeper nesting than any state has means the bytes are not a state (and would exhaust
// the stack).
const MAX_DEPTH: usize = 64;

impl<'a> Parser<'a> {
    pub(crate) fn new(raw: &'a [u8]) -> Self {
        Parser {
            raw,
            pos: 0,
            depth: 0,
        }
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos == self.raw.len()
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// Steps over `byte` if it is next.
    pub(crate) fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Steps over the word `null` if it is next.
    pub(crate) fn eat_null(&mut self) -> bool {
        if self.raw[self.pos..].starts_with(b"null") {
            self.pos += 4;
            true
        } else {
            false
        }
    }

    pub(crate) fn leave(&mut self) {
        self.depth -= 1;
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.raw.get(self.pos).copied()
    }

    pub(crate) fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn expect_word(&mut self, word: &[u8], value: Json) -> JsonResult<Json> {
        if self.raw[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(value)
        } else {
            err(format!("invalid literal at byte {}", self.pos))
        }
    }

    pub(crate) fn value(&mut self) -> JsonResult<Json> {
        match self.peek() {
            None => err("unexpected end of data"),
            Some(b'n') => self.expect_word(b"null", Json::Null),
            Some(b't') => self.expect_word(b"true", Json::Bool(true)),
            Some(b'f') => self.expect_word(b"false", Json::Bool(false)),
            Some(b'"') => Ok(Json::Str(self.string()?)),
            Some(b'[') => self.list(),
            Some(b'{') => self.object(),
            Some(b'-' | b'0'..=b'9') => self.int(),
            Some(other) => err(format!(
                "unexpected byte {:#04x} at byte {}",
                other, self.pos
            )),
        }
    }

    pub(crate) fn enter(&mut self) -> JsonResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return err("nested too deeply");
        }
        self.pos += 1;
        self.skip_ws();
        Ok(())
    }

    fn list(&mut self) -> JsonResult<Json> {
        self.enter()?;
        let mut items = Vec::new();
        if self.peek() == Some(b']') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(Json::List(items));
        }
        loop {
            self.skip_ws();
            items.push(self.value()?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(Json::List(items));
                }
                _ => return err(format!("expected ',' or ']' at byte {}", self.pos)),
            }
        }
    }

    fn object(&mut self) -> JsonResult<Json> {
        self.enter()?;
        let mut entries: Vec<(String, Json)> = Vec::new();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(Json::Object(entries));
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return err(format!("expected a key at byte {}", self.pos));
            }
            let key = self.string()?;
            self.skip_ws();
            if self.peek() != Some(b':') {
                return err(format!("expected ':' at byte {}", self.pos));
            }
            self.pos += 1;
            self.skip_ws();
            let value = self.value()?;
            // A repeated key keeps its first position and its last value (as dict() does).
            match entries.iter_mut().find(|(k, _)| *k == key) {
                Some(entry) => entry.1 = value,
                None => entries.push((key, value)),
            }
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(Json::Object(entries));
                }
                _ => return err(format!("expected ',' or '}}' at byte {}", self.pos)),
            }
        }
    }

    fn int(&mut self) -> JsonResult<Json> {
        self.integer().map(Json::Int)
    }

    pub(crate) fn integer(&mut self) -> JsonResult<i64> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        let digits = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        if self.pos == digits {
            return err(format!("invalid number at byte {}", start));
        }
        if let Some(b'.' | b'e' | b'E') = self.peek() {
            return err(format!(
                "a fraction at byte {}: the state holds integers only",
                start
            ));
        }
        let text = std::str::from_utf8(&self.raw[start..self.pos])
            .map_err(|_| JsonError(format!("invalid number at byte {}", start)))?;
        text.parse::<i64>()
            .map_err(|_| JsonError(format!("integer out of range at byte {}", start)))
    }

    fn hex4(&mut self) -> JsonResult<u32> {
        let end = self.pos + 4;
        if end > self.raw.len() {
            return err("truncated \\u escape");
        }
        let text = std::str::from_utf8(&self.raw[self.pos..end])
            .map_err(|_| JsonError("invalid \\u escape".into()))?;
        let code = u32::from_str_radix(text, 16)
            .map_err(|_| JsonError(format!("invalid \\u escape at byte {}", self.pos)))?;
        self.pos = end;
        Ok(code)
    }

    pub(crate) fn string(&mut self) -> JsonResult<String> {
        self.pos += 1; // the opening quote
        let mut out: Vec<u8> = Vec::new();
        loop {
            let start = self.pos;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            out.extend_from_slice(&self.raw[start..self.pos]);
            match self.peek() {
                None => return err("unterminated string"),
                Some(b'"') => {
                    self.pos += 1;
                    return String::from_utf8(out)
                        .map_err(|_| JsonError("a string is not valid UTF-8".into()));
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let escape = self
                        .peek()
                        .ok_or_else(|| JsonError("truncated escape".into()))?;
                    self.pos += 1;
                    let simple = match escape {
                        b'"' => Some('"'),
                        b'\\' => Some('\\'),
                        b'/' => Some('/'),
                        b'b' => Some('\u{8}'),
                        b'f' => Some('\u{c}'),
                        b'n' => Some('\n'),
                        b'r' => Some('\r'),
                        b't' => Some('\t'),
                        b'u' => None,
                        other => return err(format!("invalid escape \\{}", other as char)),
                    };
                    let c = match simple {
                        Some(c) => c,
                        None => {
                            let first = self.hex4()?;
                            let code = if (0xd800..0xdc00).contains(&first) {
                                if !self.raw[self.pos..].starts_with(b"\\u") {
                                    return err("a lone surrogate in a string");
                                }
                                self.pos += 2;
                                let second = self.hex4()?;
                                if !(0xdc00..0xe000).contains(&second) {
                                    return err("a lone surrogate in a string");
                                }
                                0x10000 + ((first - 0xd800) << 10) + (second - 0xdc00)
                            } else {
                                first
                            };
                            char::from_u32(code)
                                .ok_or_else(|| JsonError("a lone surrogate in a string".into()))?
                        }
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                Some(_) => {
                    return err(format!(
                        "a control character in a string at byte {}",
                        self.pos
                    ))
                }
            }
        }
    }
}

// -- typed access, for decoding ----------------------------------------------------------

impl Json {
    pub fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Int(_) => "an integer",
            Json::Str(_) => "a string",
            Json::List(_) => "a list",
            Json::Object(_) => "an object",
        }
    }

    pub fn int(&self, what: &str) -> JsonResult<i64> {
        match self {
            Json::Int(n) => Ok(*n),
            other => err(format!("{} is {}, not an integer", what, other.kind())),
        }
    }

    pub fn opt_int(&self, what: &str) -> JsonResult<Option<i64>> {
        match self {
            Json::Null => Ok(None),
            other => other.int(what).map(Some),
        }
    }

    pub fn str(&self, what: &str) -> JsonResult<&str> {
        match self {
            Json::Str(s) => Ok(s),
            other => err(format!("{} is {}, not a string", what, other.kind())),
        }
    }

    pub fn opt_str(&self, what: &str) -> JsonResult<Option<&str>> {
        match self {
            Json::Null => Ok(None),
            other => other.str(what).map(Some),
        }
    }

    pub fn boolean(&self, what: &str) -> JsonResult<bool> {
        match self {
            Json::Bool(b) => Ok(*b),
            other => err(format!("{} is {}, not a boolean", what, other.kind())),
        }
    }

    pub fn list(&self, what: &str) -> JsonResult<&[Json]> {
        match self {
            Json::List(items) => Ok(items),
            other => err(format!("{} is {}, not a list", what, other.kind())),
        }
    }

    pub fn object(&self, what: &str) -> JsonResult<&[(String, Json)]> {
        match self {
            Json::Object(entries) => Ok(entries),
            other => err(format!("{} is {}, not an object", what, other.kind())),
        }
    }

    pub fn s(value: &str) -> Json {
        Json::Str(value.to_owned())
    }

    pub fn opt_i(value: Option<i64>) -> Json {
        value.map_or(Json::Null, Json::Int)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_like_orjson() {
        let value = Json::List(vec![
            Json::s("a\u{1}\u{1f}\u{7f}\"\\/\u{8}\t\n\u{c}\r"),
            Json::s("é€😀"),
            Json::Int(-5),
            Json::Int(i64::MAX),
            Json::Null,
            Json::Bool(true),
            Json::Object(vec![("k".into(), Json::Int(1))]),
        ]);
        let expected: &[u8] = b"[\"a\\u0001\\u001f\x7f\\\"\\\\/\\b\\t\\n\\f\\r\",\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\",-5,9223372036854775807,null,true,{\"k\":1}]";
        assert_eq!(to_bytes(&value), expected);
        assert_eq!(parse(expected).unwrap(), value);
    }

    #[test]
    fn rejects_fractions_and_garbage() {
        assert!(parse(b"[1.5]").is_err());
        assert!(parse(b"[1,]").is_err());
        assert!(parse(b"\"\\ud800\"").is_err());
        assert!(parse(b"[1] x").is_err());
        assert!(parse(&[b'['; 100]).is_err());
    }
}
