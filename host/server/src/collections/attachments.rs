//! Files attached to a collection's documents, under the document's own URL:
//! `GET {item}/attachments/` lists them, `PUT`, `GET` and `DELETE` on
//! `{item}/attachments/{name}` store, download and remove one. The body of a `PUT` is the
//! file itself and its `Content-Type` is kept and answered on download.

use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bulkhost_core::{AttachmentInfo, DocRef, MAX_ATTACHMENT_BYTES};

use super::{Ctx, DrfError};
use crate::state::blocking;
use crate::stream;

const LIST_ALLOW: &str = "GET, HEAD";
const FILE_ALLOW: &str = "GET, PUT, DELETE, HEAD";

/// The media type of an upload that declares none.
const DEFAULT_TYPE: &str = "application/octet-stream";

impl Ctx {
    /// Serves `{item}/attachments/` and `{item}/attachments/{name}`.
    pub(super) async fn attachments(
        &self,
        item: &str,
        name: Option<&str>,
        request: Request,
    ) -> Result<Response, DrfError> {
        let doc = DocRef::parse(item).ok_or_else(DrfError::not_found)?;
        let method = request.method().clone();
        match (name, method) {
            (None, Method::GET | Method::HEAD) => self.list_attachments(item, doc).await,
            (Some(name), Method::GET | Method::HEAD) => self.download(doc, name).await,
            (Some(name), Method::PUT) => self.upload(item, doc, name, request).await,
            (Some(name), Method::DELETE) => self.remove(doc, name).await,
            (name, other) => Err(DrfError::method_not_allowed(
                &other,
                if name.is_some() {
                    FILE_ALLOW
                } else {
                    LIST_ALLOW
                },
            )),
        }
    }

    fn attachment_json(&self, item: &str, info: &AttachmentInfo) -> super::wire::AttachmentInfo {
        super::wire::AttachmentInfo {
            url: format!(
                "{}{item}/attachments/{}",
                self.collection_url(),
                percent_encoding::utf8_percent_encode(
                    &info.name,
                    percent_encoding::NON_ALPHANUMERIC
                )
            ),
            name: info.name.clone(),
            content_type: info.content_type.clone(),
            size: info.size,
            modified: info
                .modified
                .format(bulkhost_core::DATETIME_FORMAT)
                .to_string(),
        }
    }

    async fn list_attachments(&self, item: &str, doc: DocRef) -> Result<Response, DrfError> {
        let store = self.state.store.clone();
        let (tenant, collection) = (self.tenant.clone(), self.schema.collection.clone());
        let list =
            blocking(move || store.attachments().attachments(&tenant, &collection, &doc)).await?;
        let body: Vec<_> = list
            .iter()
            .map(|info| self.attachment_json(item, info))
            .collect();
        Ok(self.respond(StatusCode::OK, body, LIST_ALLOW))
    }

    /// Serves a file as a download, never as a page: it goes out with the type its uploader
    /// declared, but `nosniff` and `Content-Disposition: attachment` keep a browser from
    /// rendering it (an uploaded HTML file cannot run script in the server's origin). It holds
    /// one of the tenant's stream places while a slow client reads it.
    async fn download(&self, doc: DocRef, name: &str) -> Result<Response, DrfError> {
        let pass = self.state.gates.streams.enter(&self.tenant)?;
        let store = self.state.store.clone();
        let (tenant, collection, wanted) = (
            self.tenant.clone(),
            self.schema.collection.clone(),
            name.to_string(),
        );
        let file = blocking(move || {
            store
                .attachments()
                .attachment(&tenant, &collection, &doc, &wanted)
        })
        .await?;
        let content_type = HeaderValue::from_str(&file.info.content_type)
            .unwrap_or(HeaderValue::from_static(DEFAULT_TYPE));
        let encoded =
            percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC);
        let disposition = HeaderValue::from_str(&format!("attachment; filename*=UTF-8''{encoded}"))
            .unwrap_or(HeaderValue::from_static("attachment"));
        let length = file.content.len();
        Ok((
            [
                (header::CONTENT_TYPE, content_type),
                (header::ALLOW, HeaderValue::from_static(FILE_ALLOW)),
                (header::CONTENT_DISPOSITION, disposition),
                (
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ),
                (header::CONTENT_LENGTH, HeaderValue::from(length)),
            ],
            stream::body(stream::Held(Some(file.content)), Some(pass)),
        )
            .into_response())
    }

    async fn upload(
        &self,
        item: &str,
        doc: DocRef,
        name: &str,
        request: Request,
    ) -> Result<Response, DrfError> {
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(DEFAULT_TYPE)
            .to_string();
        let content = crate::http::body::read(request.into_body(), MAX_ATTACHMENT_BYTES).await?;
        let store = self.state.store.clone();
        let (tenant, collection, name) = (
            self.tenant.clone(),
            self.schema.collection.clone(),
            name.to_string(),
        );
        let (info, created) = blocking(move || {
            store.attachments().put_attachment(
                &tenant,
                &collection,
                &doc,
                &name,
                &content_type,
                &content,
            )
        })
        .await?;
        let status = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok(self.respond(status, self.attachment_json(item, &info), FILE_ALLOW))
    }

    async fn remove(&self, doc: DocRef, name: &str) -> Result<Response, DrfError> {
        let store = self.state.store.clone();
        let (tenant, collection, name) = (
            self.tenant.clone(),
            self.schema.collection.clone(),
            name.to_string(),
        );
        blocking(move || {
            store
                .attachments()
                .delete_attachment(&tenant, &collection, &doc, &name)
        })
        .await?;
        Ok((
            StatusCode::NO_CONTENT,
            [(header::ALLOW, HeaderValue::from_static(FILE_ALLOW))],
        )
            .into_response())
    }
}
