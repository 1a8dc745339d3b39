//! Files attached to documents (a product's image, a lot's photos).
//!
//! An attachment is stored beside its document, not in the document's body, so listings and
//! the change feed stay small and a file is read only by whoever asks for it. Adding, replacing
//! or removing one gives the document a new version and an update in the change feed; deleting
//! the document deletes its attachments in the same transaction.

use chrono::{NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::documents::{DocRef, Snapshot};
use crate::quota::{self, Usage};
use crate::{Error, Result, Store};

/// The largest attachment accepted: a generous product image or scanned document, small
/// enough that reading one whole never strains the host or a plugin's memory.
pub const MAX_ATTACHMENT_BYTES: usize = 16 * 1024 * 1024;
/// The longest attachment name, in bytes.
const MAX_NAME_BYTES: usize = 255;

/// What is known of an attachment without reading its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentInfo {
    /// The file name, unique per document.
    pub name: String,
    /// The media type the uploader declared.
    pub content_type: String,
    /// The content's length in bytes.
    pub size: u64,
    /// When it was last written (UTC).
    pub modified: NaiveDateTime,
}

/// An attachment with its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// Its name, type, size and time.
    pub info: AttachmentInfo,
    /// The file's bytes.
    pub content: Vec<u8>,
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(Error::BadAttachment(format!(
            "An attachment name has 1 to {MAX_NAME_BYTES} bytes."
        )));
    }
    if name
        .chars()
        .any(|c| c == '/' || c == '\\' || c.is_control())
        || name == "."
        || name == ".."
    {
        return Err(Error::BadAttachment(format!(
            "The attachment name \"{}\" may not contain slashes or control characters.",
            name.escape_default()
        )));
    }
    Ok(())
}

/// The files attached to documents.
#[derive(Debug, Clone, Copy)]
pub struct Attachments<'a> {
    store: &'a Store,
}

impl Store {
    /// The files attached to documents.
    pub fn attachments(&self) -> Attachments<'_> {
        Attachments { store: self }
    }
}

impl Attachments<'_> {
    /// Adds or replaces the attachment `name` of a document; answers what was stored and
    /// whether the name is new to the document.
    pub fn put_attachment(
        &self,
        tenant: &str,
        collection: &str,
        doc: &DocRef,
        name: &str,
        content_type: &str,
        content: &[u8],
    ) -> Result<(AttachmentInfo, bool)> {
        check_name(name)?;
        if content.len() > MAX_ATTACHMENT_BYTES {
            return Err(Error::BadAttachment(format!(
                "An attachment has at most {MAX_ATTACHMENT_BYTES} bytes."
            )));
        }
        let attachment = Attachment {
            info: AttachmentInfo {
                name: name.to_string(),
                content_type: content_type.to_string(),
                size: content.len() as u64,
                modified: Utc::now().naive_utc(),
            },
            content: content.to_vec(),
        };
        let quotas = self.store.tenants.quotas(tenant);
        let replaced = self
            .store
            .change_attached(tenant, collection, doc, |txn, id| {
                let (replaced, size) = txn.put_attachment(tenant, collection, id, &attachment)?;
                let delta = size as i64 - replaced.map_or(0, |r| r as i64);
                quota::charge(txn, tenant, Usage::Attachments, delta, &quotas)?;
                Ok(replaced.is_some())
            })?;
        Ok((attachment.info, !replaced))
    }

    /// Removes the attachment `name` of a document; [`Error::NotFound`] when it has none by
    /// that name.
    pub fn delete_attachment(
        &self,
        tenant: &str,
        collection: &str,
        doc: &DocRef,
        name: &str,
    ) -> Result<()> {
        let quotas = self.store.tenants.quotas(tenant);
        self.store
            .change_attached(tenant, collection, doc, |txn, id| {
                let removed = txn
                    .remove_attachment(tenant, collection, id, name)?
                    .ok_or(Error::NotFound)?;
                quota::charge(txn, tenant, Usage::Attachments, -(removed as i64), &quotas)
            })
    }

    /// The attachments of a document, without their content.
    pub fn attachments(
        &self,
        tenant: &str,
        collection: &str,
        doc: &DocRef,
    ) -> Result<Vec<AttachmentInfo>> {
        let snapshot = self.store.documents().snapshot(tenant)?;
        let id = snapshot.require(collection, doc)?;
        snapshot.view.attachments(tenant, collection, id)
    }

    /// One attachment of a document with its content.
    pub fn attachment(
        &self,
        tenant: &str,
        collection: &str,
        doc: &DocRef,
        name: &str,
    ) -> Result<Attachment> {
        let snapshot = self.store.documents().snapshot(tenant)?;
        let id = snapshot.require(collection, doc)?;
        snapshot
            .view
            .attachment(tenant, collection, id, name)?
            .ok_or(Error::NotFound)
    }
}

impl Snapshot {
    /// The id of an existing document; [`Error::NotFound`] when none answers to `doc`.
    fn require(&self, collection: &str, doc: &DocRef) -> Result<u64> {
        Ok(self.get(collection, doc)?.ok_or(Error::NotFound)?.id)
    }

    /// The attachments of the document `id`, without their content, in name order; empty when
    /// the document has none or does not exist.
    pub fn attachments(&self, collection: &str, id: u64) -> Result<Vec<AttachmentInfo>> {
        self.schemas.require(collection)?;
        self.view.attachments(&self.tenant, collection, id)
    }

    /// The content of the attachment `name` of the document `id`, if there is one: files are
    /// handed out one at a time, so no reader holds all of a document's files at once.
    pub fn attachment_content(
        &self,
        collection: &str,
        id: u64,
        name: &str,
    ) -> Result<Option<Vec<u8>>> {
        self.schemas.require(collection)?;
        Ok(self
            .view
            .attachment(&self.tenant, collection, id, name)?
            .map(|a| a.content))
    }
}
