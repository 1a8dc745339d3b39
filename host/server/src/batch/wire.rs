//! The bodies LogiCommerce's batch clients send and receive, as types: what the handlers parse
//! and render, and what the OpenAPI document describes.
//!
//! Fields a rule requires are `Option` here so that a missing one is refused by the rule, with
//! the message LogiCommerce's clients see, rather than by the parser.

use bulkhost_core::{Batch, BatchOperation, OperationResult};
use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /v1/batch`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct BatchRequest {
    /// The batch; required.
    pub batch: Option<NewBatchBody>,
}

/// What a batch holds.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewBatchBody {
    /// At least one operation.
    #[serde(default)]
    pub operations: Vec<OperationIn>,
    /// Whom to tell when it finishes.
    pub webhook: Option<WebhookIn>,
}

/// One operation as a client sends it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationIn {
    /// Unique within the batch; required.
    pub operation_id: Option<String>,
    /// `GET`, `POST`, `PUT`, `PATCH` or `DELETE`, any case; required.
    pub method: Option<String>,
    /// The path called, starting with `/`, query string included; required.
    pub endpoint: Option<String>,
    /// The request body: JSON, or JSON text in a string.
    #[schema(value_type = Option<Object>)]
    pub body: Option<serde_json::Value>,
}

impl From<&BatchOperation> for OperationIn {
    fn from(op: &BatchOperation) -> Self {
        OperationIn {
            operation_id: Some(op.operation_id.clone()),
            method: Some(op.method.clone()),
            endpoint: Some(op.endpoint.clone()),
            body: op.body.clone().map(serde_json::Value::String),
        }
    }
}

/// The webhook block of a batch.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookIn {
    /// An `http://` or `https://` URL to post the final status to.
    pub callback_url: Option<String>,
    /// An address to mail when the batch finishes.
    pub email: Option<String>,
}

/// `201` to a queued batch.
#[derive(Debug, Serialize, ToSchema)]
pub struct Queued {
    /// The batch's id.
    pub uuid: String,
}

/// LogiCommerce's timestamps: UTC, seconds, `Z`.
fn stamp(at: Option<NaiveDateTime>) -> Option<String> {
    at.map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

/// One completed operation, as `responses` and the JSON lines show it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationResponse {
    /// The response body, as text.
    pub body: String,
    /// When it completed.
    pub completed_at: Option<String>,
    /// The path called.
    pub endpoint: String,
    /// The method, upper case.
    pub method: String,
    /// The client's id of the operation.
    pub operation_id: String,
    /// Always `finished`.
    pub status: &'static str,
    /// The HTTP status the operation got.
    pub status_code: u16,
    /// Its reason phrase, or what went wrong.
    pub status_text: String,
    /// This response's own id.
    pub uuid: String,
}

impl OperationResponse {
    /// The response of `op`.
    pub fn new(op: &BatchOperation, result: &OperationResult) -> Self {
        OperationResponse {
            body: result.body.clone(),
            completed_at: stamp(Some(result.completed_at)),
            endpoint: op.endpoint.clone(),
            method: op.method.clone(),
            operation_id: op.operation_id.clone(),
            status: "finished",
            status_code: result.status_code,
            status_text: result.status_text.clone(),
            uuid: result.uuid.clone(),
        }
    }
}

/// A batch's progress, as `GET /v1/batch/{uuid}` and its callback show it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchState {
    /// When it finished.
    pub completed_at: Option<String>,
    /// When it was accepted.
    pub created_at: Option<String>,
    /// How many operations it holds.
    pub operations: usize,
    /// When it started running.
    pub processed_at: Option<String>,
    /// The responses of the operations done so far, in order.
    pub responses: Vec<OperationResponse>,
    /// `pending`, `processing` or `finished`.
    pub status: &'static str,
    /// When it last progressed.
    pub updating_at: Option<String>,
    /// The batch's id.
    pub uuid: String,
    /// The webhook block it was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookIn>,
    /// Why it stopped, when it could not run to the end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl BatchState {
    /// `batch` with the results done so far.
    pub fn new(batch: &Batch, results: &[OperationResult]) -> Self {
        let webhook = (batch.callback_url.is_some() || batch.email.is_some()).then(|| WebhookIn {
            callback_url: batch.callback_url.clone(),
            email: batch.email.clone(),
        });
        BatchState {
            completed_at: stamp(batch.completed_at),
            created_at: stamp(Some(batch.created_at)),
            operations: batch.operations.len(),
            processed_at: stamp(batch.processed_at),
            responses: batch
                .operations
                .iter()
                .zip(results)
                .map(|(op, result)| OperationResponse::new(op, result))
                .collect(),
            status: batch.status.as_str(),
            updating_at: stamp(batch.updating_at),
            uuid: batch.uuid.clone(),
            webhook,
            error: batch.error.clone(),
        }
    }
}

/// `GET /v1/batch/limits`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LimitsAnswer {
    /// The limits.
    pub limits: Limits,
}

/// What a batch may call and weigh.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Every endpoint a batch may call.
    pub endpoints: Vec<EndpointLimit>,
    /// The most a batch's operations may weigh together.
    pub max_load_score: u32,
}

/// One endpoint a batch may call.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointLimit {
    /// The path template, `{name}` matching one segment.
    pub endpoint: String,
    /// What one call weighs.
    pub load_score: u32,
    /// The method, lower case.
    pub method: String,
}

/// An error of the `/v1/` surface.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchFailure {
    /// What went wrong.
    pub error: BatchFailureDetail,
}

/// The code and words of a `/v1/` error.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchFailureDetail {
    /// A stable code such as `INVALID_BATCH`.
    pub code: String,
    /// What went wrong, in words.
    pub message: String,
}
