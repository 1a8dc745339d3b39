//! ABRA Flexi's XML rendering, written with quick_xml's writer: the `winstrom` envelope and
//! what it holds (change records, the records of a listing, a success or an error), indented
//! by two spaces as ABRA Flexi's own answers are.
//!
//! The writer escapes text and attribute values; characters XML 1.0 cannot carry are replaced
//! before that ([`carriable`]), so an answer is well-formed XML whatever it holds.

use std::borrow::Cow;

use bulkhost_core::{ChangeRecord, Document, xml_cannot_carry};
use quick_xml::Writer;
use quick_xml::escape::escape;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use serde_json::Value;

/// A `winstrom` document being written into memory.
pub struct Winstrom {
    writer: Writer<Vec<u8>>,
}

impl Winstrom {
    /// Opens the document: the declaration and `<winstrom version="1.0">`, with the
    /// `globalVersion` attribute when given.
    pub fn open(global_version: Option<u64>) -> Self {
        let mut xml = Winstrom {
            writer: Writer::new_with_indent(Vec::new(), b' ', 2),
        };
        xml.emit(Event::Decl(BytesDecl::new("1.0", None, None)));
        let mut root = BytesStart::new("winstrom").with_attributes([("version", "1.0")]);
        if let Some(version) = global_version {
            root.push_attribute(("globalVersion", version.to_string().as_str()));
        }
        xml.emit(Event::Start(root));
        xml
    }

    /// A whole document of one element with text: `<success>true</success>` and the like.
    pub fn of_element(name: &str, text: &str) -> Vec<u8> {
        let mut xml = Winstrom::open(None);
        xml.element(name, text);
        xml.finish()
    }

    /// `<name>text</name>`.
    pub fn element(&mut self, name: &str, text: &str) {
        self.text_in(&element_name(name), text);
    }

    /// `<name>text</name>` for a name already made an element name.
    fn text_in(&mut self, name: &str, text: &str) {
        self.emit(Event::Start(BytesStart::new(name)));
        self.emit(Event::Text(BytesText::new(&carriable(text))));
        self.emit(Event::End(BytesEnd::new(name)));
    }

    /// One change record: the record type as the element, its version, operation and time as
    /// attributes, and every id of the record (numeric, `code:`, external).
    pub fn change(&mut self, change: &ChangeRecord, timestamp: &str) {
        let name = element_name(&change.collection);
        let version = change.version.to_string();
        self.emit(Event::Start(
            BytesStart::new(name.as_str()).with_attributes([
                ("in-version", version.as_str()),
                ("operation", change.operation.as_str()),
                ("timestamp", timestamp),
            ]),
        ));
        self.element("id", &change.id.to_string());
        self.element("id", &format!("code:{}", change.code));
        for external in &change.external_ids {
            self.element("id", external);
        }
        self.emit(Event::End(BytesEnd::new(name.as_str())));
    }

    /// One record of a listing: its id, then each property as an element.
    pub fn record(&mut self, collection: &str, doc: &Document) {
        let name = element_name(collection);
        self.emit(Event::Start(BytesStart::new(name.as_str())));
        self.element("id", &doc.id.to_string());
        for (key, value) in &doc.body {
            self.value(key, value);
        }
        self.emit(Event::End(BytesEnd::new(name.as_str())));
    }

    /// A property: objects as nested elements, lists as `<item>`s, null as an empty element.
    pub fn value(&mut self, name: &str, value: &Value) {
        let name = element_name(name);
        let start = || BytesStart::new(name.as_str());
        match value {
            Value::String(text) => self.text_in(&name, text),
            Value::Null => self.emit(Event::Empty(start())),
            Value::Object(fields) => {
                self.emit(Event::Start(start()));
                for (key, value) in fields {
                    self.value(key, value);
                }
                self.emit(Event::End(BytesEnd::new(name.as_str())));
            }
            Value::Array(items) => {
                self.emit(Event::Start(start()));
                for item in items {
                    self.value("item", item);
                }
                self.emit(Event::End(BytesEnd::new(name.as_str())));
            }
            scalar => self.text_in(&name, &scalar.to_string()),
        }
    }

    /// Bytes written since the last [`Winstrom::take`].
    pub fn pending(&self) -> usize {
        self.writer.get_ref().len()
    }

    /// What was written since the last call: a streamed listing sends it as one piece.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(self.writer.get_mut())
    }

    /// Closes the envelope; the document ends with a newline.
    pub fn close(&mut self) {
        self.emit(Event::End(BytesEnd::new("winstrom")));
        self.writer.get_mut().push(b'\n');
    }

    /// Closes the envelope and answers the whole document.
    pub fn finish(mut self) -> Vec<u8> {
        self.close();
        self.writer.into_inner()
    }

    fn emit(&mut self, event: Event<'_>) {
        self.writer
            .write_event(event)
            .unwrap_or_else(|e| unreachable!("writing XML into memory cannot fail: {e}"));
    }
}

/// Text as XML 1.0 can carry it: each character XML forbids replaced by U+FFFD. Writes refuse
/// such characters, so only text from elsewhere (a path a client sent, data stored before the
/// rule) meets the replacement.
fn carriable(text: &str) -> Cow<'_, str> {
    if text.contains(xml_cannot_carry) {
        Cow::Owned(
            text.chars()
                .map(|c| if xml_cannot_carry(c) { '\u{FFFD}' } else { c })
                .collect(),
        )
    } else {
        Cow::Borrowed(text)
    }
}

/// A record type or property name as an element name: names come from the collection's
/// schema, and whatever else one holds is carried as text would be, never as markup.
fn element_name(name: &str) -> String {
    escape(carriable(name)).into_owned()
}
