//! A collection in ABRA Flexi's listing envelope (`/c/{firma}/{collection}.json|.xml`), and one
//! record in it (`/c/{firma}/{collection}/{id}.json|.xml`).

use axum::http::header;
use axum::response::{IntoResponse, Response};
use bulkhost_core::{Document, Error, Snapshot};
use serde::Serialize;
use serde_json::Value;

use super::xml::Winstrom;
use super::{AbraError, DEFAULT_LISTING_LIMIT, Format, content_type, number};
use crate::http::query::{Params, param};
use crate::state::{AppState, blocking};
use crate::stream::{PIECE_BYTES, Producer};

/// Streams a collection in the listing envelope from one snapshot, so the `globalVersion` it
/// carries is exactly the version the listed data is at, however large the collection.
pub(super) async fn list_collection(
    state: &AppState,
    tenant: String,
    collection: String,
    params: &Params,
    format: Format,
) -> Result<Response, AbraError> {
    state.store.schemas().require(&collection)?;
    let start = number(params, "start", format)?.unwrap_or(0);
    let limit = match number(params, "limit", format)?.unwrap_or(DEFAULT_LISTING_LIMIT) {
        0 => u64::MAX,
        n => n,
    };
    let with_version = param(params, "add-global-version") == Some("true");
    let pass = state.gates.streams.enter(&tenant)?;
    let store = state.store.clone();
    let snapshot = blocking(move || store.documents().snapshot(&tenant)).await?;
    let listing = Listing {
        snapshot,
        collection,
        format,
        with_version,
        position: start,
        sent: 0,
        limit,
        envelope: None,
    };
    let body = crate::stream::body(listing, Some(pass));
    Ok(([(header::CONTENT_TYPE, content_type(format))], body).into_response())
}

/// One record in the listing envelope.
pub(super) fn one_record(
    collection: &str,
    doc: &Document,
    version: Option<u64>,
    format: Format,
) -> Vec<u8> {
    let mut envelope = Envelope::open(collection, version, format);
    envelope.record(collection, doc);
    envelope.close();
    envelope.take()
}

/// A collection's documents in a listing envelope, read from one snapshot piece by piece.
struct Listing {
    snapshot: Snapshot,
    collection: String,
    format: Format,
    with_version: bool,
    position: u64,
    sent: u64,
    limit: u64,
    /// Opened with the first piece, which reads the version.
    envelope: Option<Envelope>,
}

impl Producer for Listing {
    fn produce(&mut self, out: &mut Vec<u8>) -> std::io::Result<bool> {
        let failed = |e: Error| std::io::Error::other(e.to_string());
        let envelope = match &mut self.envelope {
            Some(envelope) => envelope,
            None => {
                let version = self
                    .with_version
                    .then(|| self.snapshot.global_version())
                    .transpose()
                    .map_err(failed)?;
                let opened = Envelope::open(&self.collection, version, self.format);
                self.envelope.insert(opened)
            }
        };
        let (collection, limit) = (&self.collection, self.limit);
        let (sent, mut scanned, mut full) = (&mut self.sent, 0, false);
        if *sent < limit {
            self.snapshot
                .scan(collection, self.position, &mut |doc| {
                    if *sent >= limit {
                        return Ok(false);
                    }
                    envelope.record(collection, &doc);
                    *sent += 1;
                    scanned += 1;
                    full = envelope.written() >= PIECE_BYTES;
                    Ok(!full)
                })
                .map_err(failed)?;
        }
        self.position += scanned;
        let more = full && self.sent < limit;
        if !more {
            envelope.close();
        }
        out.append(&mut envelope.take());
        Ok(more)
    }
}

/// A listing's envelope being written, in the rendering asked for.
enum Envelope {
    /// `{"winstrom": {"@version": "1.0", "@globalVersion": "…", "collection": [records]}}`,
    /// written a record at a time.
    Json { written: Vec<u8>, first: bool },
    /// `<winstrom version="1.0" globalVersion="…">` holding one element per record.
    Xml(Winstrom),
}

/// A record of a JSON listing: its id, then its properties; a property of its own named `id`
/// stands in the id's place, once.
struct JsonRecord<'a>(&'a Document);

impl Serialize for JsonRecord<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let Document { id, body, .. } = self.0;
        let mut record = serializer.serialize_map(Some(body.len() + 1))?;
        match body.get("id") {
            Some(own) => record.serialize_entry("id", own)?,
            None => record.serialize_entry("id", &id.to_string())?,
        }
        for (key, value) in body.iter().filter(|(key, _)| *key != "id") {
            record.serialize_entry(key, value)?;
        }
        record.end()
    }
}

impl Envelope {
    fn open(collection: &str, version: Option<u64>, format: Format) -> Self {
        match format {
            Format::Json => {
                let mut head = String::from("{\"winstrom\":{\"@version\":\"1.0\",");
                if let Some(v) = version {
                    head.push_str(&format!("\"@globalVersion\":\"{v}\","));
                }
                head.push_str(&format!("{}:[", Value::String(collection.to_string())));
                Envelope::Json {
                    written: head.into_bytes(),
                    first: true,
                }
            }
            Format::Xml => Envelope::Xml(Winstrom::open(version)),
        }
    }

    fn record(&mut self, collection: &str, doc: &Document) {
        match self {
            Envelope::Json { written, first } => {
                if !std::mem::take(first) {
                    written.push(b',');
                }
                serde_json::to_writer(&mut *written, &JsonRecord(doc))
                    .unwrap_or_else(|e| unreachable!("a JSON record serializes: {e}"));
            }
            Envelope::Xml(xml) => xml.record(collection, doc),
        }
    }

    fn close(&mut self) {
        match self {
            Envelope::Json { written, .. } => written.extend_from_slice(b"]}}\n"),
            Envelope::Xml(xml) => xml.close(),
        }
    }

    /// Bytes written and not yet taken.
    fn written(&self) -> usize {
        match self {
            Envelope::Json { written, .. } => written.len(),
            Envelope::Xml(xml) => xml.pending(),
        }
    }

    /// What was written since the last call.
    fn take(&mut self) -> Vec<u8> {
        match self {
            Envelope::Json { written, .. } => std::mem::take(written),
            Envelope::Xml(xml) => xml.take(),
        }
    }
}
