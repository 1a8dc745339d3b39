//! Files attached to documents (a product's image, a lot's photos).
//!
//! An attachment is stored beside its document, not in the document's body, so listings and
//! the change feed stay small and a file is read only by whoever asks for it. Adding, replacing
//! or removing one gives the document a new version and an update in the change feed; deleting
//! the document deletes its attachments in the same transaction.

use chrono::{NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::documents::{DocRef, Snapshot};
use crate::keys::{Key, prefix_end};
use crate::quota::{self, Quotas, Usage};
use crate::storage::{Reader, Tbl, Writer};
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

/// The stored header before the content: everything of [`AttachmentInfo`] but the length.
#[derive(Serialize, Deserialize)]
struct Header {
    name: String,
    content_type: String,
    modified: NaiveDateTime,
}

fn document_prefix(tenant: &str, collection: &str, id: u64) -> Vec<u8> {
    Key::new().str(tenant).str(collection).u64(id).into_vec()
}

fn attachment_key(tenant: &str, collection: &str, id: u64, name: &str) -> Vec<u8> {
    Key::new()
        .bytes(&document_prefix(tenant, collection, id))
        .str(name)
        .into_vec()
}

fn encode(header: &Header, content: &[u8]) -> Vec<u8> {
    let header =
        serde_json::to_vec(header).unwrap_or_else(|e| unreachable!("a header serializes: {e}"));
    let mut out = Vec::with_capacity(4 + header.len() + content.len());
    out.extend_from_slice(&(header.len() as u32).to_be_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(content);
    out
}

fn decode(raw: &[u8], with_content: bool) -> Result<Attachment> {
    let corrupt = || Error::Corrupt("an attachment is truncated".into());
    let len = raw.get(..4).ok_or_else(corrupt)?;
    let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    let header = raw.get(4..4 + len).ok_or_else(corrupt)?;
    let header: Header =
        serde_json::from_slice(header).map_err(|e| Error::Corrupt(e.to_string()))?;
    let content = &raw[4 + len..];
    Ok(Attachment {
        info: AttachmentInfo {
            name: header.name,
            content_type: header.content_type,
            size: content.len() as u64,
            modified: header.modified,
        },
        content: if with_content {
            content.to_vec()
        } else {
            Vec::new()
        },
    })
}

/// The attachments of one document in name order, with or without their content.
fn list(
    r: &impl Reader,
    tenant: &str,
    collection: &str,
    id: u64,
    with_content: bool,
) -> Result<Vec<Attachment>> {
    let prefix = document_prefix(tenant, collection, id);
    let end = prefix_end(&prefix);
    let mut out = Vec::new();
    r.scan(
        Tbl::Attachments,
        std::ops::Bound::Included(&prefix),
        std::ops::Bound::Excluded(&end),
        false,
        &mut |_, v| {
            out.push(decode(v, with_content)?);
            Ok(true)
        },
    )?;
    Ok(out)
}

/// Deletes every attachment of a document that is being deleted.
pub(crate) fn remove_all(
    w: &mut impl Writer,
    tenant: &str,
    collection: &str,
    id: u64,
    quotas: &Quotas,
) -> Result<()> {
    let freed = w.remove_prefix(Tbl::Attachments, &document_prefix(tenant, collection, id))?;
    quota::charge(w, tenant, Usage::Attachments, -(freed as i64), quotas)
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

impl Store {
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
        let header = Header {
            name: name.to_string(),
            content_type: content_type.to_string(),
            modified: Utc::now().naive_utc(),
        };
        let value = encode(&header, content);
        let quotas = self.tenants.quotas(tenant);
        let replaced = self.change_attached(tenant, collection, doc, |w, id| {
            let replaced = w.replace(
                Tbl::Attachments,
                &attachment_key(tenant, collection, id, name),
                &value,
            )?;
            let delta = value.len() as i64 - replaced.as_ref().map_or(0, |r| r.len() as i64);
            quota::charge(w, tenant, Usage::Attachments, delta, &quotas)?;
            Ok(replaced.map(drop))
        })?;
        let info = AttachmentInfo {
            name: header.name,
            content_type: header.content_type,
            size: content.len() as u64,
            modified: header.modified,
        };
        Ok((info, replaced.is_none()))
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
        let quotas = self.tenants.quotas(tenant);
        self.change_attached(tenant, collection, doc, |w, id| {
            let removed = w
                .remove(
                    Tbl::Attachments,
                    &attachment_key(tenant, collection, id, name),
                )?
                .ok_or(Error::NotFound)?;
            quota::charge(
                w,
                tenant,
                Usage::Attachments,
                -(removed.len() as i64),
                &quotas,
            )
        })
    }

    /// The attachments of a document, without their content.
    pub fn attachments(
        &self,
        tenant: &str,
        collection: &str,
        doc: &DocRef,
    ) -> Result<Vec<AttachmentInfo>> {
        let snapshot = self.snapshot(tenant)?;
        let id = snapshot.require(collection, doc)?;
        Ok(list(&snapshot.tables, tenant, collection, id, false)?
            .into_iter()
            .map(|a| a.info)
            .collect())
    }

    /// One attachment of a document with its content.
    pub fn attachment(
        &self,
        tenant: &str,
        collection: &str,
        doc: &DocRef,
        name: &str,
    ) -> Result<Attachment> {
        let snapshot = self.snapshot(tenant)?;
        let id = snapshot.require(collection, doc)?;
        let raw = snapshot
            .tables
            .get(
                Tbl::Attachments,
                &attachment_key(tenant, collection, id, name),
            )?
            .ok_or(Error::NotFound)?;
        decode(&raw, true)
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
        Ok(list(&self.tables, &self.tenant, collection, id, false)?
            .into_iter()
            .map(|a| a.info)
            .collect())
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
        self.tables
            .get(
                Tbl::Attachments,
                &attachment_key(&self.tenant, collection, id, name),
            )?
            .map(|raw| decode(&raw, true).map(|a| a.content))
            .transpose()
    }
}
