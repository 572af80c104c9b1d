//! The TOML file as written, read field by field against the schema that the section modules
//! spell out. Reading by hand rather than through serde is what lets a single pass report every
//! unknown key, wrong type and bad value together, each with its field path and line: serde's
//! `deny_unknown_fields` and type errors stop at the first problem.

use std::cell::RefCell;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue};

use crate::error::{ConfigError, ConfigErrors};

/// The text being read, where relative paths in it point from, and the problems found so far.
pub(crate) struct Document<'d> {
    text: &'d str,
    base_dir: &'d Path,
    errors: RefCell<Vec<ConfigError>>,
}

impl<'d> Document<'d> {
    pub(crate) fn new(text: &'d str, base_dir: &'d Path) -> Self {
        Self { text, base_dir, errors: RefCell::default() }
    }

    /// The document's tables, or every syntax error with its line.
    pub(crate) fn parse(&self) -> Result<Spanned<DeTable<'d>>, ConfigErrors> {
        let (table, syntax_errors) = DeTable::parse_recoverable(self.text);
        for e in &syntax_errors {
            self.report(String::new(), e.span(), format!("invalid TOML: {}", e.message()));
        }
        if syntax_errors.is_empty() { Ok(table) } else { Err(self.take_errors()) }
    }

    pub(crate) fn report(&self, path: String, span: Option<Range<usize>>, message: impl Into<String>) {
        let line = span.map(|s| self.line_of(s.start));
        self.errors.borrow_mut().push(ConfigError { path, line, message: message.into() });
    }

    fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end].iter().filter(|&&b| b == b'\n').count() + 1
    }

    /// `value` when nothing was reported, else every problem.
    pub(crate) fn finish<T>(&self, value: T) -> Result<T, ConfigErrors> {
        if self.errors.borrow().is_empty() { Ok(value) } else { Err(self.take_errors()) }
    }

    fn take_errors(&self) -> ConfigErrors {
        ConfigErrors::in_file_order(self.errors.take())
    }
}

/// One table of the document at a field path. Every key a reader asks for becomes known, so
/// whatever the file holds beyond them is reported as unknown by [`Section::finish`].
pub(crate) struct Section<'d> {
    doc: &'d Document<'d>,
    /// `None` when the file leaves the section out (or it has the wrong type): every field then
    /// reads as absent and takes its default.
    table: Option<&'d DeTable<'d>>,
    path: String,
    span: Option<Range<usize>>,
    known: Vec<&'static str>,
}

impl<'d> Section<'d> {
    pub(crate) fn root(doc: &'d Document<'d>, table: &'d Spanned<DeTable<'d>>) -> Self {
        Self { doc, table: Some(table.get_ref()), path: String::new(), span: None, known: Vec::new() }
    }

    fn child(&self, path: String, value: Option<&'d Spanned<DeValue<'d>>>) -> Self {
        let table = value.and_then(|v| match v.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => None,
        });
        Self { doc: self.doc, table, path, span: value.map(Spanned::span), known: Vec::new() }
    }

    /// The field path of `key` in this section.
    pub(crate) fn path_of(&self, key: &str) -> String {
        if self.path.is_empty() { key.to_owned() } else { format!("{}.{key}", self.path) }
    }

    /// The raw value of `key`, which becomes a known key.
    pub(crate) fn value(&mut self, key: &'static str) -> Option<&'d Spanned<DeValue<'d>>> {
        self.know(key);
        self.entry(key).map(|(_, v)| v)
    }

    fn know(&mut self, key: &'static str) {
        if !self.known.contains(&key) {
            self.known.push(key);
        }
    }

    fn entry(&self, key: &str) -> Option<(&'d Spanned<DeString<'d>>, &'d Spanned<DeValue<'d>>)> {
        self.table?.iter().find(|(k, _)| k.get_ref() == key)
    }

    /// `key` read by `read`; `None` when absent or refused (the refusal is reported).
    pub(crate) fn field<T>(
        &mut self,
        key: &'static str,
        read: impl FnOnce(&'d DeValue<'d>) -> Result<T, String>,
    ) -> Option<T> {
        let value = self.value(key)?;
        read(value.get_ref()).map_err(|message| self.doc.report(self.path_of(key), Some(value.span()), message)).ok()
    }

    /// Like [`Section::field`], and reports the key as missing when it is absent.
    pub(crate) fn required<T>(
        &mut self,
        key: &'static str,
        read: impl FnOnce(&'d DeValue<'d>) -> Result<T, String>,
    ) -> Option<T> {
        if self.reported_missing(key) {
            return None;
        }
        self.field(key, read)
    }

    /// Reports `key` as missing when it is absent (and makes it known).
    fn reported_missing(&mut self, key: &'static str) -> bool {
        self.know(key);
        let missing = self.entry(key).is_none();
        if missing {
            self.doc.report(self.path_of(key), None, "missing (required)");
        }
        missing
    }

    /// A non-empty array at `key`, each element read by `read`; refused elements are reported
    /// at `key[i]` and left out.
    pub(crate) fn list<T>(
        &mut self,
        key: &'static str,
        read: impl Fn(&'d DeValue<'d>) -> Result<T, String>,
    ) -> Option<Vec<T>> {
        let items = self.field(key, |v| array(v).and_then(non_empty))?;
        let path = self.path_of(key);
        let read_item = |(i, item): (usize, &'d Spanned<DeValue<'d>>)| {
            read(item.get_ref()).map_err(|m| self.doc.report(format!("{path}[{i}]"), Some(item.span()), m)).ok()
        };
        Some(items.iter().enumerate().filter_map(read_item).collect())
    }

    /// The sub-table `[key]`; absent reads as empty, so every field of it takes its default.
    pub(crate) fn section(&mut self, key: &'static str) -> Self {
        let value = self.field(key, |v| table(v).map(|_| ())).and_then(|()| self.entry(key)).map(|(_, v)| v);
        self.child(self.path_of(key), value)
    }

    /// The sub-table `[key]` when the file has it.
    pub(crate) fn optional_section(&mut self, key: &'static str) -> Option<Self> {
        self.know(key);
        self.entry(key).is_some().then(|| self.section(key))
    }

    /// The array of tables `[[key]]`, `None` when absent; elements that are not tables are
    /// reported and left out.
    pub(crate) fn sections(&mut self, key: &'static str) -> Option<Vec<Self>> {
        let items = self.field(key, array)?;
        let path = self.path_of(key);
        let mut sections = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let item_path = format!("{path}[{i}]");
            match table(item.get_ref()) {
                Ok(_) => sections.push(self.child(item_path, Some(item))),
                Err(message) => self.doc.report(item_path, Some(item.span()), message),
            }
        }
        Some(sections)
    }

    /// Reports a problem with `key`, at its line when the file has it.
    pub(crate) fn report(&self, key: &str, message: impl Into<String>) {
        let span = self.entry(key).map(|(_, v)| v.span());
        self.doc.report(self.path_of(key), span, message);
    }

    /// Reports a problem with the section as a whole.
    pub(crate) fn report_here(&self, message: impl Into<String>) {
        self.doc.report(self.path.clone(), self.span.clone(), message);
    }

    /// A path at `key`, resolved against the directory the file is in.
    pub(crate) fn path(&mut self, key: &'static str) -> Option<PathBuf> {
        let base_dir = self.doc.base_dir;
        self.field(key, |v| match string(v)? {
            "" => Err("must not be empty".to_owned()),
            path => Ok(base_dir.join(path)),
        })
    }

    /// Like [`Section::path`], and reports the key as missing when it is absent.
    pub(crate) fn required_path(&mut self, key: &'static str) -> Option<PathBuf> {
        if self.reported_missing(key) {
            return None;
        }
        self.path(key)
    }

    /// A path written by us rather than the file, resolved the same way.
    pub(crate) fn resolve(&self, path: &str) -> PathBuf {
        self.doc.base_dir.join(path)
    }

    /// Reports every key of the section that no reader asked for.
    pub(crate) fn finish(self) {
        let Some(table) = self.table else { return };
        for (key, _) in table.iter() {
            let name: &str = key.get_ref();
            if !self.known.contains(&name) {
                self.doc.report(self.path_of(name), Some(key.span()), unknown_key_message(name, &self.known));
            }
        }
    }
}

fn unknown_key_message(key: &str, known: &[&str]) -> String {
    match known.iter().copied().filter(|k| edit_distance(k, key) <= 2).min_by_key(|k| edit_distance(k, key)) {
        Some(close) => format!("unknown key (did you mean `{close}`?)"),
        None => format!("unknown key; known keys here: {}", known.join(", ")),
    }
}

/// Levenshtein distance, for suggesting the key a typo meant.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

fn kind(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a datetime",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

fn expected(what: &str, v: &DeValue<'_>) -> String {
    format!("expected {what}, found {}", kind(v))
}

/// A string value.
pub(crate) fn string<'v>(v: &'v DeValue<'_>) -> Result<&'v str, String> {
    match v {
        DeValue::String(s) => Ok(s),
        _ => Err(expected("a string", v)),
    }
}

/// A boolean value.
pub(crate) fn boolean(v: &DeValue<'_>) -> Result<bool, String> {
    v.as_bool().ok_or_else(|| expected("true or false", v))
}

/// An integer value.
pub(crate) fn integer(v: &DeValue<'_>) -> Result<i64, String> {
    let DeValue::Integer(i) = v else { return Err(expected("an integer", v)) };
    i64::from_str_radix(&i.as_str().replace('_', ""), i.radix()).map_err(|_| format!("{i} is out of range"))
}

/// A non-negative integer that fits `T`.
pub(crate) fn count<T: TryFrom<i64>>(v: &DeValue<'_>) -> Result<T, String> {
    let n = integer(v)?;
    T::try_from(n).map_err(|_| format!("{n} is out of range (expected a non-negative integer)"))
}

fn array<'v, 'i>(v: &'v DeValue<'i>) -> Result<&'v [Spanned<DeValue<'i>>], String> {
    match v {
        DeValue::Array(a) => Ok(a),
        _ => Err(expected("an array", v)),
    }
}

fn non_empty<T>(items: &[T]) -> Result<&[T], String> {
    if items.is_empty() { Err("must not be empty".to_owned()) } else { Ok(items) }
}

fn table<'v, 'i>(v: &'v DeValue<'i>) -> Result<&'v DeTable<'i>, String> {
    match v {
        DeValue::Table(t) => Ok(t),
        _ => Err(expected("a table", v)),
    }
}

/// A small file named by the configuration (a key, a credential), read whole but never more
/// than `limit` bytes: a path to something huge or endless is refused, not read.
pub(crate) fn read_small(path: &Path, limit: u64) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut text = String::new();
    file.take(limit + 1).read_to_string(&mut text).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if text.len() as u64 > limit {
        return Err(format!("{} is larger than {limit} bytes: not a key or credential file", path.display()));
    }
    Ok(text)
}
