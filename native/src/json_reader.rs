//! Reading a JSON value's parts in document order, from a parsed tree or from the bytes.
//!
//! A decoder that knows the shape it expects (the visitor state, `state::read_state`) is
//! written once against [`ValueReader`]. [`ByteReader`] reads the stored bytes in place:
//! no `Json` tree is built and dropped, and each string is copied once, into the value
//! that keeps it. [`TreeReader`] reads a tree already parsed (the probes' arguments).
//! Both accept exactly what `json::parse` accepts and the decoder's checks allow: the
//! bytes reader goes through the same `Parser`, and keeps an object's repeated key at its
//! first position with its last value, as `parse` does.

use crate::json::{Json, JsonError, JsonResult, Parser};

fn err<T>(message: impl Into<String>) -> JsonResult<T> {
    Err(JsonError(message.into()))
}

/// The next values of a JSON document, in order. A list or an object is entered, then
/// its items are read one by one after `more` (or `key`) says there is another.
pub trait ValueReader {
    /// Enters the next value, which must be a list.
    fn enter_list(&mut self, what: &str) -> JsonResult<()>;
    /// Whether the list entered last has another item, which is read next. `false`
    /// leaves the list: reading goes on in the list or object around it.
    fn more(&mut self) -> JsonResult<bool>;
    /// Enters the next value, which must be an object.
    fn enter_object(&mut self, what: &str) -> JsonResult<()>;
    /// The object's next key (its value is read next), or None at its end, which leaves
    /// the object.
    fn key(&mut self) -> JsonResult<Option<String>>;
    /// Steps over the next value if it is null.
    fn null(&mut self) -> JsonResult<bool>;
    fn int(&mut self, what: &str) -> JsonResult<i64>;
    fn string(&mut self, what: &str) -> JsonResult<String>;
    fn boolean(&mut self, what: &str) -> JsonResult<bool>;
    /// The next value, whatever it is.
    fn any(&mut self) -> JsonResult<Json>;
}

// -- from the bytes ------------------------------------------------------------------------

/// Reads a document's values straight from its bytes.
pub struct ByteReader<'a> {
    parser: Parser<'a>,
    /// No item of the innermost open list or object has been read yet.
    first: bool,
}

impl<'a> ByteReader<'a> {
    pub fn new(raw: &'a [u8]) -> Self {
        let mut parser = Parser::new(raw);
        parser.skip_ws();
        ByteReader {
            parser,
            first: false,
        }
    }

    /// Nothing but whitespace is left (call after the top-level value).
    pub fn finish(mut self) -> JsonResult<()> {
        self.parser.skip_ws();
        if self.parser.at_end() {
            Ok(())
        } else {
            err(format!(
                "unexpected data at byte {}",
                self.parser.position()
            ))
        }
    }

    fn enter(&mut self, open: u8, what: &str, kind: &str) -> JsonResult<()> {
        self.parser.skip_ws();
        if self.parser.peek() != Some(open) {
            return err(format!("{} is not {}", what, kind));
        }
        self.parser.enter()?;
        self.first = true;
        Ok(())
    }

    /// Past the separator before the next item of an open list or object: true if there
    /// is one, false if the closing byte was next (and is stepped over). A missing item
    /// (`[,1]`, `[1,]`) is refused by whatever reads the item.
    fn next_item(&mut self, close: u8) -> JsonResult<bool> {
        self.parser.skip_ws();
        let first = std::mem::replace(&mut self.first, false);
        if self.parser.eat(close) {
            self.parser.leave();
            return Ok(false);
        }
        if !first {
            if !self.parser.eat(b',') {
                return err(format!(
                    "expected ',' or '{}' at byte {}",
                    close as char,
                    self.parser.position()
                ));
            }
            self.parser.skip_ws();
        }
        Ok(true)
    }

    fn at_value(&mut self, what: &str) -> JsonResult<u8> {
        self.parser.skip_ws();
        self.parser
            .peek()
            .ok_or_else(|| JsonError(format!("{}: unexpected end of data", what)))
    }
}

impl<'a> ValueReader for ByteReader<'a> {
    fn enter_list(&mut self, what: &str) -> JsonResult<()> {
        self.enter(b'[', what, "a list")
    }

    fn more(&mut self) -> JsonResult<bool> {
        self.next_item(b']')
    }

    fn enter_object(&mut self, what: &str) -> JsonResult<()> {
        self.enter(b'{', what, "an object")
    }

    fn key(&mut self) -> JsonResult<Option<String>> {
        if !self.next_item(b'}')? {
            return Ok(None);
        }
        if self.parser.peek() != Some(b'"') {
            return err(format!("expected a key at byte {}", self.parser.position()));
        }
        let key = self.parser.string()?;
        self.parser.skip_ws();
        if !self.parser.eat(b':') {
            return err(format!("expected ':' at byte {}", self.parser.position()));
        }
        Ok(Some(key))
    }

    fn null(&mut self) -> JsonResult<bool> {
        self.parser.skip_ws();
        Ok(self.parser.eat_null())
    }

    fn int(&mut self, what: &str) -> JsonResult<i64> {
        match self.at_value(what)? {
            b'-' | b'0'..=b'9' => self.parser.integer(),
            _ => err(format!("{} is not an integer", what)),
        }
    }

    fn string(&mut self, what: &str) -> JsonResult<String> {
        match self.at_value(what)? {
            b'"' => self.parser.string(),
            _ => err(format!("{} is not a string", what)),
        }
    }

    fn boolean(&mut self, what: &str) -> JsonResult<bool> {
        match self.at_value(what)? {
            b't' | b'f' => match self.parser.value()? {
                Json::Bool(b) => Ok(b),
                other => err(format!("{} is {}, not a boolean", what, other.kind())),
            },
            _ => err(format!("{} is not a boolean", what)),
        }
    }

    fn any(&mut self) -> JsonResult<Json> {
        self.at_value("a value")?;
        self.parser.value()
    }
}

// -- from a tree ---------------------------------------------------------------------------

enum Frame<'t> {
    List(&'t [Json], usize),
    /// The entries, the next one's index, and whether its key was handed out.
    Object(&'t [(String, Json)], usize, bool),
}

/// Reads the values of a tree already parsed.
pub struct TreeReader<'t> {
    root: Option<&'t Json>,
    open: Vec<Frame<'t>>,
}

impl<'t> TreeReader<'t> {
    pub fn new(root: &'t Json) -> Self {
        TreeReader {
            root: Some(root),
            open: Vec::new(),
        }
    }

    fn peek(&self) -> Option<&'t Json> {
        match self.open.last() {
            None => self.root,
            Some(Frame::List(items, next)) => items.get(*next),
            Some(Frame::Object(entries, next, true)) => entries.get(*next).map(|(_, v)| v),
            Some(Frame::Object(..)) => None,
        }
    }

    /// Reads the next value with `read`; it is consumed only if `read` accepts it.
    fn take<T>(&mut self, read: impl FnOnce(&'t Json) -> JsonResult<T>) -> JsonResult<T> {
        let value = self
            .peek()
            .ok_or_else(|| JsonError("read past the end of a value".into()))?;
        let taken = read(value)?;
        match self.open.last_mut() {
            None => self.root = None,
            Some(Frame::List(_, next)) => *next += 1,
            Some(Frame::Object(_, next, handed)) => {
                *handed = false;
                *next += 1;
            }
        }
        Ok(taken)
    }
}

impl<'t> ValueReader for TreeReader<'t> {
    fn enter_list(&mut self, what: &str) -> JsonResult<()> {
        let items = self.take(|v| v.list(what))?;
        self.open.push(Frame::List(items, 0));
        Ok(())
    }

    fn more(&mut self) -> JsonResult<bool> {
        match self.open.last() {
            Some(Frame::List(items, next)) if *next < items.len() => Ok(true),
            Some(Frame::List(..)) => {
                self.open.pop();
                Ok(false)
            }
            _ => err("not in a list"),
        }
    }

    fn enter_object(&mut self, what: &str) -> JsonResult<()> {
        let entries = self.take(|v| v.object(what))?;
        self.open.push(Frame::Object(entries, 0, false));
        Ok(())
    }

    fn key(&mut self) -> JsonResult<Option<String>> {
        let next_key = match self.open.last_mut() {
            Some(Frame::Object(_, _, true)) => return err("a key's value was not read"),
            Some(Frame::Object(entries, next, handed)) => {
                let key = entries.get(*next).map(|(k, _)| k.clone());
                *handed = key.is_some();
                key
            }
            _ => return err("not in an object"),
        };
        if next_key.is_none() {
            self.open.pop();
        }
        Ok(next_key)
    }

    fn null(&mut self) -> JsonResult<bool> {
        if let Some(Json::Null) = self.peek() {
            return self.take(|_| Ok(true));
        }
        Ok(false)
    }

    fn int(&mut self, what: &str) -> JsonResult<i64> {
        self.take(|v| v.int(what))
    }

    fn string(&mut self, what: &str) -> JsonResult<String> {
        self.take(|v| v.str(what).map(str::to_owned))
    }

    fn boolean(&mut self, what: &str) -> JsonResult<bool> {
        self.take(|v| v.boolean(what))
    }

    fn any(&mut self) -> JsonResult<Json> {
        self.take(|v| Ok(v.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::{self, parse};

    /// Everything the document holds, read through `reader` as a flat log.
    fn walk<R: ValueReader>(reader: &mut R, log: &mut Vec<String>) -> JsonResult<()> {
        if reader.null()? {
            log.push("null".into());
        } else if let Ok(n) = reader.int("x") {
            log.push(n.to_string());
        } else if let Ok(s) = reader.string("x") {
            log.push(format!("{:?}", s));
        } else if let Ok(b) = reader.boolean("x") {
            log.push(b.to_string());
        } else if reader.enter_list("x").is_ok() {
            log.push("[".into());
            while reader.more()? {
                walk(reader, log)?;
            }
            log.push("]".into());
        } else {
            reader.enter_object("x")?;
            log.push("{".into());
            while let Some(key) = reader.key()? {
                log.push(format!("{:?}:", key));
                walk(reader, log)?;
            }
            log.push("}".into());
        }
        Ok(())
    }

    #[test]
    fn both_readers_read_what_parse_reads() {
        let raw: &[u8] = b" [1, -2 ,\"a\\u00e9\\n\", null, true, [], [[]], {}, {\"k\": [3, {\"j\": false}], \"l\": null}] ";
        let tree = parse(raw).unwrap();
        let mut from_tree = Vec::new();
        walk(&mut TreeReader::new(&tree), &mut from_tree).unwrap();
        let mut from_bytes = Vec::new();
        let mut reader = ByteReader::new(raw);
        walk(&mut reader, &mut from_bytes).unwrap();
        reader.finish().unwrap();
        assert_eq!(from_tree, from_bytes);
        assert_eq!(from_tree.join(" "), "[ 1 -2 \"aé\\n\" null true [ ] [ [ ] ] { } { \"k\": [ 3 { \"j\": false } ] \"l\": null } ]");
    }

    #[test]
    fn the_bytes_reader_refuses_what_parse_refuses() {
        for raw in [
            &b"[1,]"[..],
            b"[,1]",
            b"[1 2]",
            b"[1.5]",
            b"[\"a]",
            b"{\"k\" 1}",
            b"{1:2}",
            b"[1,,2]",
            b"[]]",
            b"[nul]",
        ] {
            assert!(parse(raw).is_err(), "{:?}", raw);
            let mut reader = ByteReader::new(raw);
            let walked = walk(&mut reader, &mut Vec::new()).and_then(|_| reader.finish());
            assert!(walked.is_err(), "{:?}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn any_reads_a_whole_value() {
        let raw: &[u8] = b"[{\"a\":[1,[2]]},\"x\",7]";
        let mut reader = ByteReader::new(raw);
        reader.enter_list("x").unwrap();
        assert!(reader.more().unwrap());
        let first = reader.any().unwrap();
        assert_eq!(json::to_bytes(&first), b"{\"a\":[1,[2]]}");
        assert!(reader.more().unwrap());
        assert_eq!(reader.any().unwrap(), Json::s("x"));
        assert!(reader.more().unwrap());
        assert_eq!(reader.int("x").unwrap(), 7);
        assert!(!reader.more().unwrap());
        reader.finish().unwrap();
    }
}
