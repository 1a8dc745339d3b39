//! The mail that tells a batch's `email` the batch has finished.

use bulkhost_core::{Batch, OperationResult};

/// The subject and text of the mail: how many operations succeeded and failed, which failed,
/// and where the status and the responses are.
pub(crate) fn finished_mail(
    batch: &Batch,
    results: &[OperationResult],
    public_url: Option<&str>,
) -> (String, String) {
    let failed: Vec<String> = batch
        .operations
        .iter()
        .zip(results)
        .filter(|(_, r)| !r.succeeded())
        .map(|(op, r)| {
            format!(
                "  {} {} {}: {} {}",
                op.operation_id, op.method, op.endpoint, r.status_code, r.status_text
            )
        })
        .collect();
    let base = public_url.unwrap_or_default();
    let mut text = format!(
        "Batch {} has finished: {} operations, {} succeeded, {} failed.\n",
        batch.uuid,
        batch.operations.len(),
        results.len() - failed.len(),
        failed.len()
    );
    if !failed.is_empty() {
        text.push_str("\nFailed operations:\n");
        text.push_str(&failed.join("\n"));
        text.push('\n');
    }
    text.push_str(&format!(
        "\nStatus: {base}/v1/batch/{uuid}\nResponses: {base}/v1/batch/{uuid}/jsonl\n",
        uuid = batch.uuid
    ));
    let subject = match failed.len() {
        0 => format!("Batch {} finished", batch.uuid),
        n => format!(
            "Batch {} finished: {n} of {} operations failed",
            batch.uuid,
            batch.operations.len()
        ),
    };
    (subject, text)
}
