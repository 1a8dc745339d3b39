//! `bulkhost:plugin/documents`: reads of the invocation's tenant's documents, from the one
//! snapshot the invocation was given, so a generation sees one consistent version however
//! long it runs.

use bulkhost_core::{DocRef, Snapshot};
use wasmtime::component::{HasData, Linker};

use crate::bindings::documents::{self, Attachment, Document, Error, Page};

/// Documents one page of a scan answers at most...
const PAGE_LIMIT: u32 = 1000;
/// ...and the stored bytes past which it ends early (it always holds one document), so a
/// page of large documents stays a bounded allocation on the host.
const PAGE_BYTES: usize = 16 << 20;

/// What the interface reads: the tenant's documents at one version, or nothing (a call
/// outside a generation or an endpoint call, such as `describe`).
#[derive(Default)]
pub struct DocumentsCtx {
    snapshot: Option<Snapshot>,
}

impl DocumentsCtx {
    /// Reads from `snapshot`.
    pub fn new(snapshot: Option<Snapshot>) -> Self {
        DocumentsCtx { snapshot }
    }

    /// The view the generated bindings call.
    pub fn view(&self) -> Documents<'_> {
        Documents { ctx: self }
    }
}

/// The interface's implementation over a borrowed [`DocumentsCtx`].
pub struct Documents<'a> {
    ctx: &'a DocumentsCtx,
}

impl Documents<'_> {
    fn snapshot(&self) -> Result<&Snapshot, Error> {
        self.ctx.snapshot.as_ref().ok_or_else(|| {
            Error::Unavailable(
                "documents are readable only while generating or handling a call".into(),
            )
        })
    }
}

struct HasDocuments;

impl HasData for HasDocuments {
    type Data<'a> = Documents<'a>;
}

/// Adds the interface to `linker`; `get` borrows the context from the store's data.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> Documents<'_>,
) -> wasmtime::Result<()> {
    documents::add_to_linker::<T, HasDocuments>(linker, get)
}

fn read_error(e: bulkhost_core::Error) -> Error {
    match e {
        bulkhost_core::Error::UnknownCollection(c) => Error::UnknownCollection(c),
        bulkhost_core::Error::ChangesGone { .. } | bulkhost_core::Error::ChangesDisabled => {
            Error::HistoryGone
        }
        other => Error::Unavailable(other.to_string()),
    }
}

fn to_wit(doc: bulkhost_core::Document) -> Document {
    Document {
        id: doc.id,
        version: doc.version,
        body: serde_json::Value::Object(doc.body).to_string(),
    }
}

fn cursor(cursor: Option<String>) -> Result<u64, Error> {
    cursor.map_or(Ok(0), |c| c.parse().map_err(|_| Error::InvalidCursor))
}

impl documents::Host for Documents<'_> {
    fn scan(
        &mut self,
        collection: String,
        from: Option<String>,
        limit: u32,
    ) -> Result<Page, Error> {
        let after = from
            .map(|c| hex::decode(c).map_err(|_| Error::InvalidCursor))
            .transpose()?;
        let page = self
            .snapshot()?
            .scan_by_key(
                &collection,
                after.as_deref(),
                limit.clamp(1, PAGE_LIMIT) as usize,
                PAGE_BYTES,
            )
            .map_err(read_error)?;
        Ok(Page {
            documents: page.documents.into_iter().map(to_wit).collect(),
            next: page.next.map(hex::encode),
        })
    }

    fn modified_since(
        &mut self,
        collection: String,
        since: String,
        from: Option<String>,
        limit: u32,
    ) -> Result<Page, Error> {
        let moment = bulkhost_core::parse_datetime(&since).ok_or(Error::InvalidDatetime(since))?;
        let from = cursor(from)?;
        let page = self
            .snapshot()?
            .changed_since(
                &collection,
                moment,
                from,
                limit.clamp(1, PAGE_LIMIT) as usize,
                PAGE_BYTES,
            )
            .map_err(read_error)?;
        Ok(Page {
            documents: page.documents.into_iter().map(to_wit).collect(),
            next: page.next.map(|v| v.to_string()),
        })
    }

    fn get(&mut self, collection: String, key: String) -> Result<Option<Document>, Error> {
        Ok(self
            .snapshot()?
            .get(&collection, &DocRef::Code(key))
            .map_err(read_error)?
            .map(to_wit))
    }

    fn attachments(&mut self, collection: String, id: u64) -> Result<Vec<Attachment>, Error> {
        Ok(self
            .snapshot()?
            .attachments(&collection, id)
            .map_err(read_error)?
            .into_iter()
            .map(|info| Attachment {
                name: info.name,
                content_type: info.content_type,
                size: info.size,
            })
            .collect())
    }

    fn read_attachment(
        &mut self,
        collection: String,
        id: u64,
        name: String,
    ) -> Result<Option<Vec<u8>>, Error> {
        self.snapshot()?
            .attachment_content(&collection, id, &name)
            .map_err(read_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::documents::Host;

    #[test]
    fn without_a_snapshot_every_read_is_unavailable() {
        let ctx = DocumentsCtx::default();
        let mut view = ctx.view();
        assert!(matches!(
            view.get("shops".into(), "1".into()),
            Err(Error::Unavailable(_))
        ));
        assert!(matches!(
            view.scan("shops".into(), None, 10),
            Err(Error::Unavailable(_))
        ));
    }
}
