//! Every operation the server serves, with every answer it can give: the one table the
//! document is generated from and the batch catalogue reads. Answers every route of an access
//! level gives (401, 429, 503) are added by the document, not repeated here.

use axum::http::Method;

use super::model::{Access, Answer, Content, Dialect, Kind, Param, Route, Typed, answer};
use crate::admin::tenants::TenantListing;
use crate::batch::wire::{BatchRequest, BatchState, LimitsAnswer, Queued};
use crate::bulk_export::wire::{
    DatasetDescription, EstadoGenerarXxl, InstalledPlugin, PluginListing, TokenAnswer, TokenRequest,
};
use crate::change_feed::wire::{Changes, HookListing, Switched};
use crate::collections::wire::{AttachmentInfo, Metadata, Upserted};
use crate::ops::Health;

use Content::{Empty, Error, Json, List, Media};

const JSON_LINES: &[&str] = &["application/json", "application/x-ndjson"];
const GZIP: &[&str] = &["application/gzip"];
const ANY_MEDIA: &[&str] = &["*/*"];
/// Bytes of any kind; a client may declare any media type, which downloads answer again.
const BYTES: &[&str] = &["application/octet-stream"];

const NOT_FOUND: Answer = answer("404", "No such document.", Error);
const REFUSED: Answer = answer("422", "The request was refused; `error` says why.", Error);
const OTHER_COMPANY: Answer = answer("403", "Another company.", Error);
const TOO_LARGE: Answer = answer("413", "The body is over the size limit.", Error);
const UNSATISFIABLE: Answer = answer("416", "The range lies outside the body.", Empty);

/// The answers to a plugin upload, the tenant's or the operator's.
const UPLOADED: &[Answer] = &[
    answer("201", "Installed.", Json(Typed::of::<InstalledPlugin>())),
    answer("413", "The component is over the upload limit.", Error),
    REFUSED,
];
/// The answers to a plugin's removal, the tenant's or the operator's.
const REMOVED: &[Answer] = &[
    answer("204", "Removed.", Empty),
    answer("404", "No such plugin.", Error),
    REFUSED,
];
/// The answers of a finished batch's JSON lines, under either of their names.
const RESULT_LINES: &[Answer] = &[
    answer("200", "The responses.", Media(&["application/x-ndjson"])),
    answer(
        "206",
        "The byte range asked for.",
        Media(&["application/x-ndjson"]),
    ),
    answer("404", "No such batch.", Error),
    answer("409", "The batch has not finished.", Error),
    UNSATISFIABLE,
];

const ITEM: Param = Param::path("id", Kind::Text, "A numeric id, or `code:KEY` for the key.");
const FIRMA: Param = Param::path("firma", Kind::Company, "The company (tenant).");
const ADD_VERSION: Param = Param::query(
    "add-global-version",
    Kind::Word(&["true", "false"]),
    "`true` adds the version the answer is at.",
);
const REQUEST_ID: Param = Param::path("id", Kind::Text, "The `peticion_id`.");
const BATCH_ID: Param = Param::path("uuid", Kind::Text, "The batch's `uuid`.");
const FILE_NAME: Param = Param::path("name", Kind::Text, "The file's name.");
const PLUGIN_NAME: Param = Param::path(
    "name",
    Kind::Text,
    "The plugin's name: letters, digits, `-` and `_`.",
);

const HOOK_ID: Param = Param::path("id", Kind::Whole, "The hook's id, as the listing shows it.");
/// What registering a change hook takes, by PUT or POST.
const HOOK_REGISTRATION: &[Param] = &[
    FIRMA,
    Param::required_query(
        "url",
        Kind::Text,
        "Where the changes are posted: an http:// or https:// URL.",
    ),
    Param::required_query(
        "format",
        Kind::Word(&["JSON", "XML"]),
        "The shape the changes are posted in: changes.json's or changes.xml's (any case).",
    ),
    Param::query(
        "lastVersion",
        Kind::Whole,
        "Send the changes after this version (0 to the global version); the global version by default.",
    ),
    Param::query(
        "secKey",
        Kind::Text,
        "Sent with every notification in `X-FB-Hook-SecKey`.",
    ),
    Param::query(
        "skipUrlTest",
        Kind::Word(&["true", "false"]),
        "`true` registers without posting the empty test notification first.",
    ),
];
/// The answers to a change hook's registration.
const HOOK_REGISTERED: &[Answer] = &[
    answer(
        "200",
        "Registered: the listing of the new hook.",
        Json(Typed::of::<HookListing>()),
    ),
    answer(
        "400",
        "A parameter is missing or malformed, `lastVersion` is ahead of the global version, or the URL test failed.",
        Error,
    ),
    answer(
        "403",
        "Another company, or the change feed is switched off.",
        Error,
    ),
];
/// The answers to what names one change hook.
const HOOK_FOUND: &[Answer] = &[
    answer("200", "Done.", Json(Typed::of::<Switched>())),
    answer("404", "No such hook.", Error),
    OTHER_COMPANY,
];

/// Every operation, grouped by dialect.
pub const ROUTES: &[Route] = &[
    Route {
        method: Method::GET,
        path: "/api/v1/{collection}/",
        dialect: Dialect::Collections,
        access: Access::Tenant,
        summary: "One page of the collection: {count, next, previous, results}. Also at `/{collection}.json`, `/{collection}/.json/` and, as HTML, `.api`.",
        params: &[
            Param::query(
                "page",
                Kind::Text,
                "Page number from 1, or `last`; a page past the end is 404 \"Invalid page.\".",
            ),
            Param::query(
                "page_size",
                Kind::Whole,
                "Documents per page; default 100, at most 1000.",
            ),
            Param::query(
                "search",
                Kind::Text,
                "Terms that must each occur in one of the collection's search fields.",
            ),
            Param::query(
                "ordering",
                Kind::Text,
                "Comma-separated fields, `-` for descending.",
            ),
            Param::query(
                "format",
                Kind::Word(&["json", "api"]),
                "`json`, or `api` for HTML.",
            ),
            ADD_VERSION,
        ],
        body: Empty,
        answers: &[
            answer("200", "The page.", Content::Page),
            answer("404", "No such page.", Error),
        ],
    },
    Route {
        method: Method::POST,
        path: "/api/v1/{collection}/",
        dialect: Dialect::Collections,
        access: Access::Tenant,
        summary: "Upserts one document or a list by the collection's key, atomically: 201 {updated, inserted}, or 400 with DRF's field errors and nothing written.",
        params: &[],
        body: Content::Upsert,
        answers: &[
            answer("201", "Written.", Json(Typed::of::<Upserted>())),
            answer("400", "Field errors, or a body that is not JSON.", Error),
            answer("403", "A quota of the tenant is used up.", Error),
            TOO_LARGE,
            answer("415", "The body is not JSON.", Error),
        ],
    },
    Route {
        method: Method::OPTIONS,
        path: "/api/v1/{collection}/",
        dialect: Dialect::Collections,
        access: Access::Tenant,
        summary: "The collection's fields in DRF's OPTIONS metadata.",
        params: &[],
        body: Empty,
        answers: &[answer(
            "200",
            "The metadata.",
            Json(Typed::of::<Metadata>()),
        )],
    },
    Route {
        method: Method::GET,
        path: "/api/v1/{collection}/{id}/",
        dialect: Dialect::Collections,
        access: Access::Tenant,
        summary: "One document.",
        params: &[ITEM],
        body: Empty,
        answers: &[answer("200", "The document.", Content::Document), NOT_FOUND],
    },
    Route {
        method: Method::DELETE,
        path: "/api/v1/{collection}/{id}/",
        dialect: Dialect::Collections,
        access: Access::Tenant,
        summary: "Removes one document; the change feed lists the deletion.",
        params: &[ITEM],
        body: Empty,
        answers: &[answer("204", "Removed.", Empty), NOT_FOUND],
    },
    Route {
        method: Method::OPTIONS,
        path: "/api/v1/{collection}/{id}/",
        dialect: Dialect::Collections,
        access: Access::Tenant,
        summary: "DRF's OPTIONS metadata of one document.",
        params: &[ITEM],
        body: Empty,
        answers: &[answer(
            "200",
            "The metadata.",
            Json(Typed::of::<Metadata>()),
        )],
    },
    Route {
        method: Method::GET,
        path: "/api/v1/{collection}/{id}/attachments/",
        dialect: Dialect::Collections,
        access: Access::Tenant,
        summary: "The files attached to a document.",
        params: &[ITEM],
        body: Empty,
        answers: &[
            answer("200", "The files.", List(Typed::of::<AttachmentInfo>())),
            NOT_FOUND,
        ],
    },
    Route {
        method: Method::PUT,
        path: "/api/v1/{collection}/{id}/attachments/{name}",
        dialect: Dialect::Collections,
        access: Access::Tenant,
        summary: "Attaches a file (at most 16 MiB) with its Content-Type; each write is an update of the document in the change feed.",
        params: &[ITEM, FILE_NAME],
        body: Media(BYTES),
        answers: &[
            answer("200", "Replaced.", Json(Typed::of::<AttachmentInfo>())),
            answer("201", "Attached.", Json(Typed::of::<AttachmentInfo>())),
            answer("400", "The name or file cannot be stored.", Error),
            answer("403", "A quota of the tenant is used up.", Error),
            NOT_FOUND,
            answer("413", "The file is over 16 MiB.", Error),
        ],
    },
    Route {
        method: Method::GET,
        path: "/api/v1/{collection}/{id}/attachments/{name}",
        dialect: Dialect::Collections,
        access: Access::Tenant,
        summary: "Downloads an attached file.",
        params: &[ITEM, FILE_NAME],
        body: Empty,
        answers: &[answer("200", "The file.", Media(ANY_MEDIA)), NOT_FOUND],
    },
    Route {
        method: Method::DELETE,
        path: "/api/v1/{collection}/{id}/attachments/{name}",
        dialect: Dialect::Collections,
        access: Access::Tenant,
        summary: "Removes an attached file.",
        params: &[ITEM, FILE_NAME],
        body: Empty,
        answers: &[answer("204", "Removed.", Empty), NOT_FOUND],
    },
    Route {
        method: Method::GET,
        path: "/c/{firma}/changes.json",
        dialect: Dialect::ChangeFeed,
        access: Access::Tenant,
        summary: "Changes since a version, ascending (also `.xml`). `X-Oldest-Version` names the oldest version still listed.",
        params: &[
            FIRMA,
            Param::query("start", Kind::Whole, "First version to list (inclusive)."),
            Param::query(
                "limit",
                Kind::Whole,
                "Changes to list; default 100, at most 1000; 0 for the version only.",
            ),
            Param::query(
                "records",
                Kind::Repeated,
                "Only these record types (collections); ABRA's `evidence` is taken too.",
            ),
            Param::query(
                "wait",
                Kind::Whole,
                "Seconds (at most 60) to wait for a change when none is newer than `start`.",
            ),
        ],
        body: Empty,
        answers: &[
            answer("200", "The changes.", Json(Typed::of::<Changes>())),
            answer("400", "A number parameter is not a number.", Error),
            answer(
                "403",
                "Another company, or the change feed is switched off.",
                Error,
            ),
            answer(
                "410",
                "`start` is older than the oldest version kept: reload, then continue.",
                Error,
            ),
        ],
    },
    Route {
        method: Method::PUT,
        path: "/c/{firma}/changes/enable.json",
        dialect: Dialect::ChangeFeed,
        access: Access::Tenant,
        summary: "Switches the change feed on (also POST, and `.xml`).",
        params: &[FIRMA],
        body: Empty,
        answers: &[
            answer("200", "Switched on.", Json(Typed::of::<Switched>())),
            OTHER_COMPANY,
        ],
    },
    Route {
        method: Method::POST,
        path: "/c/{firma}/changes/enable.json",
        dialect: Dialect::ChangeFeed,
        access: Access::Tenant,
        summary: "Switches the change feed on (also PUT, and `.xml`).",
        params: &[FIRMA],
        body: Empty,
        answers: &[
            answer("200", "Switched on.", Json(Typed::of::<Switched>())),
            OTHER_COMPANY,
        ],
    },
    Route {
        method: Method::PUT,
        path: "/c/{firma}/changes/disable.json",
        dialect: Dialect::ChangeFeed,
        access: Access::Tenant,
        summary: "Switches the change feed off (also POST, and `.xml`).",
        params: &[FIRMA],
        body: Empty,
        answers: &[
            answer("200", "Switched off.", Json(Typed::of::<Switched>())),
            OTHER_COMPANY,
        ],
    },
    Route {
        method: Method::POST,
        path: "/c/{firma}/changes/disable.json",
        dialect: Dialect::ChangeFeed,
        access: Access::Tenant,
        summary: "Switches the change feed off (also PUT, and `.xml`).",
        params: &[FIRMA],
        body: Empty,
        answers: &[
            answer("200", "Switched off.", Json(Typed::of::<Switched>())),
            OTHER_COMPANY,
        ],
    },
    Route {
        method: Method::GET,
        path: "/c/{firma}/hooks.json",
        dialect: Dialect::ChangeFeed,
        access: Access::Tenant,
        summary: "The company's change hooks (ABRA Flexi's web hooks; also `.xml`): each with its URL, format, the version it has seen, its penalty, and whether it is paused and why.",
        params: &[FIRMA],
        body: Empty,
        answers: &[
            answer("200", "The hooks.", Json(Typed::of::<HookListing>())),
            OTHER_COMPANY,
        ],
    },
    Route {
        method: Method::PUT,
        path: "/c/{firma}/hooks.json",
        dialect: Dialect::ChangeFeed,
        access: Access::Tenant,
        summary: "Registers a change hook (also POST, and `.xml`): after each commit it is posted the changes after the last version it acknowledged, in changes.json's or changes.xml's shape, with `X-FB-Hook-SecKey` and signed (Standard Webhooks). Unless `skipUrlTest=true`, an empty notification is posted first and must be answered with a 2xx.",
        params: HOOK_REGISTRATION,
        body: Empty,
        answers: HOOK_REGISTERED,
    },
    Route {
        method: Method::POST,
        path: "/c/{firma}/hooks.json",
        dialect: Dialect::ChangeFeed,
        access: Access::Tenant,
        summary: "Registers a change hook (also PUT, and `.xml`).",
        params: HOOK_REGISTRATION,
        body: Empty,
        answers: HOOK_REGISTERED,
    },
    Route {
        method: Method::DELETE,
        path: "/c/{firma}/hooks/{id}.json",
        dialect: Dialect::ChangeFeed,
        access: Access::Tenant,
        summary: "Removes a change hook (also `.xml`).",
        params: &[FIRMA, HOOK_ID],
        body: Empty,
        answers: HOOK_FOUND,
    },
    Route {
        method: Method::PUT,
        path: "/c/{firma}/hooks/{id}/retry.json",
        dialect: Dialect::ChangeFeed,
        access: Access::Tenant,
        summary: "Clears a change hook's penalty and pause and tries it at once (also POST, and `.xml`).",
        params: &[FIRMA, HOOK_ID],
        body: Empty,
        answers: HOOK_FOUND,
    },
    Route {
        method: Method::GET,
        path: "/c/{firma}/changes/stream",
        dialect: Dialect::ChangeFeed,
        access: Access::Tenant,
        summary: "The changes as server-sent events (beyond ABRA Flexi): one `change` event per change, its `id` the version and its data the change as `changes.json` lists it; reconnect with `Last-Event-ID` to continue. Without it or `start`, from the next change on. Comments every 15 s keep it open; a `gone` event ends a stream the change log no longer reaches.",
        params: &[
            FIRMA,
            Param::query("start", Kind::Whole, "First version to send (inclusive)."),
            Param::header(
                "Last-Event-ID",
                "The last version received: the stream continues after it.",
            ),
            Param::query(
                "records",
                Kind::Repeated,
                "Only these record types (collections); ABRA's `evidence` is taken too.",
            ),
        ],
        body: Empty,
        answers: &[
            answer("200", "The event stream.", Media(&["text/event-stream"])),
            answer(
                "400",
                "A number parameter or `Last-Event-ID` is not a number.",
                Error,
            ),
            answer(
                "403",
                "Another company, or the change feed is switched off.",
                Error,
            ),
            answer(
                "410",
                "`start` is older than the oldest version kept: reload, then continue.",
                Error,
            ),
        ],
    },
    Route {
        method: Method::GET,
        path: "/c/{firma}/changes/status.json",
        dialect: Dialect::ChangeFeed,
        access: Access::Tenant,
        summary: "Whether the change feed is on (also `.xml`).",
        params: &[FIRMA],
        body: Empty,
        answers: &[
            answer("200", "`success` says.", Json(Typed::of::<Switched>())),
            OTHER_COMPANY,
        ],
    },
    Route {
        method: Method::GET,
        path: "/c/{firma}/{collection}.json",
        dialect: Dialect::ChangeFeed,
        access: Access::Tenant,
        summary: "The collection in ABRA's winstrom envelope (also `.xml`), streamed from one snapshot.",
        params: &[
            FIRMA,
            ADD_VERSION,
            Param::query("start", Kind::Whole, "Records to skip."),
            Param::query(
                "limit",
                Kind::Whole,
                "Records to list; default 20, 0 for all.",
            ),
        ],
        body: Empty,
        answers: &[
            answer("200", "The records.", Content::Listing),
            answer("400", "A number parameter is not a number.", Error),
            OTHER_COMPANY,
        ],
    },
    Route {
        method: Method::GET,
        path: "/c/{firma}/{collection}/{id}.json",
        dialect: Dialect::ChangeFeed,
        access: Access::Tenant,
        summary: "One record (also `.xml`).",
        params: &[FIRMA, ITEM, ADD_VERSION],
        body: Empty,
        answers: &[
            answer("200", "The record, in a listing.", Content::Listing),
            OTHER_COMPANY,
            answer("404", "No such record.", Error),
        ],
    },
    Route {
        method: Method::POST,
        path: "/api_token/",
        dialect: Dialect::BulkExport,
        access: Access::Open,
        summary: "Basic credentials and {domain, api} answer a token for the `WINFRA-API-TOKEN` header.",
        params: &[],
        body: Json(Typed::of::<TokenRequest>()),
        answers: &[
            answer("200", "The token.", Json(Typed::of::<TokenAnswer>())),
            answer("401", "The credentials were refused.", Error),
            TOO_LARGE,
            answer(
                "429",
                "Too many sign-ins; `Retry-After` says when to try again.",
                Error,
            ),
            REFUSED,
        ],
    },
    Route {
        method: Method::POST,
        path: "/api_v1/generar_xxl",
        dialect: Dialect::BulkExport,
        access: Access::Tenant,
        summary: "Queues a list of PeticionGenerarXXL, each a data set with its parameters; answers EstadoGenerarXXL, or 422 before anything is queued. Also without `api_v1/`.",
        params: &[],
        body: Content::Exports,
        answers: &[
            answer("200", "Queued.", Json(Typed::of::<EstadoGenerarXxl>())),
            TOO_LARGE,
            REFUSED,
        ],
    },
    Route {
        method: Method::GET,
        path: "/api_v1/estado_xxl",
        dialect: Dialect::BulkExport,
        access: Access::Tenant,
        summary: "EstadoGenerarXXL of each of the caller's requests that has not expired.",
        params: &[],
        body: Empty,
        answers: &[answer(
            "200",
            "The requests.",
            List(Typed::of::<EstadoGenerarXxl>()),
        )],
    },
    Route {
        method: Method::GET,
        path: "/api_v1/estado_xxl/{id}",
        dialect: Dialect::BulkExport,
        access: Access::Tenant,
        summary: "One request's EstadoGenerarXXL.",
        params: &[REQUEST_ID],
        body: Empty,
        answers: &[
            answer("200", "The request.", Json(Typed::of::<EstadoGenerarXxl>())),
            answer("404", "No such request.", Error),
        ],
    },
    Route {
        method: Method::DELETE,
        path: "/api_v1/estado_xxl/{id}",
        dialect: Dialect::BulkExport,
        access: Access::Tenant,
        summary: "Cancels what is still pending of a request.",
        params: &[REQUEST_ID],
        body: Empty,
        answers: &[
            answer("200", "The request.", Json(Typed::of::<EstadoGenerarXxl>())),
            answer("404", "No such request.", Error),
        ],
    },
    Route {
        method: Method::GET,
        path: "/api_v1/datos_xxl/{id}/{dataset}",
        dialect: Dialect::BulkExport,
        access: Access::Tenant,
        summary: "A finished data set's records as one JSON list (JSON lines for `Accept: application/x-ndjson`), streamed; gzip when accepted; resumable with Range.",
        params: &[
            REQUEST_ID,
            Param::path("dataset", Kind::Dataset, "The data set."),
        ],
        body: Empty,
        answers: &[
            answer("200", "The records.", Media(JSON_LINES)),
            answer("206", "The byte range asked for.", Media(JSON_LINES)),
            UNSATISFIABLE,
            answer("404", "No such request or data set.", Error),
            answer("409", "The data set is not ready.", Error),
        ],
    },
    Route {
        method: Method::GET,
        path: "/api_v1/datos_xxl/{id}/{dataset}/{offset}/{limit}",
        dialect: Dialect::BulkExport,
        access: Access::Tenant,
        summary: "`limit` records from `offset`, found by one seek.",
        params: &[
            REQUEST_ID,
            Param::path("dataset", Kind::Dataset, "The data set."),
            Param::path("offset", Kind::Whole, "Records to skip."),
            Param::path("limit", Kind::Whole, "Records to answer."),
        ],
        body: Empty,
        answers: &[
            answer("200", "The records.", Media(JSON_LINES)),
            answer("404", "No such request or data set.", Error),
            answer("409", "The data set is not ready.", Error),
            REFUSED,
        ],
    },
    Route {
        method: Method::GET,
        path: "/api_v1/datasets",
        dialect: Dialect::BulkExport,
        access: Access::Tenant,
        summary: "Every data set offered to the caller, with its parameters and record fields.",
        params: &[],
        body: Empty,
        answers: &[answer(
            "200",
            "The data sets.",
            List(Typed::of::<DatasetDescription>()),
        )],
    },
    Route {
        method: Method::GET,
        path: "/api_v1/plugins",
        dialect: Dialect::BulkExport,
        access: Access::Tenant,
        summary: "The caller's own plugins, which no other tenant sees.",
        params: &[],
        body: Empty,
        answers: &[answer(
            "200",
            "The plugins.",
            List(Typed::of::<PluginListing>()),
        )],
    },
    Route {
        method: Method::PUT,
        path: "/api_v1/plugins/{name}",
        dialect: Dialect::BulkExport,
        access: Access::Tenant,
        summary: "Uploads one of the caller's own plugins (the component's bytes), checked completely before it is kept.",
        params: &[PLUGIN_NAME],
        body: Media(BYTES),
        answers: UPLOADED,
    },
    Route {
        method: Method::DELETE,
        path: "/api_v1/plugins/{name}",
        dialect: Dialect::BulkExport,
        access: Access::Tenant,
        summary: "Removes one of the caller's own plugins.",
        params: &[PLUGIN_NAME],
        body: Empty,
        answers: REMOVED,
    },
    Route {
        method: Method::GET,
        path: "/admin/plugins",
        dialect: Dialect::Operator,
        access: Access::Operator,
        summary: "The operator's plugins, serving every tenant.",
        params: &[],
        body: Empty,
        answers: &[answer(
            "200",
            "The plugins.",
            List(Typed::of::<PluginListing>()),
        )],
    },
    Route {
        method: Method::PUT,
        path: "/admin/plugins/{name}",
        dialect: Dialect::Operator,
        access: Access::Operator,
        summary: "Uploads an operator plugin, checked completely before it is kept.",
        params: &[PLUGIN_NAME],
        body: Media(BYTES),
        answers: UPLOADED,
    },
    Route {
        method: Method::DELETE,
        path: "/admin/plugins/{name}",
        dialect: Dialect::Operator,
        access: Access::Operator,
        summary: "Removes an operator plugin.",
        params: &[PLUGIN_NAME],
        body: Empty,
        answers: REMOVED,
    },
    Route {
        method: Method::GET,
        path: "/admin/tenants",
        dialect: Dialect::Operator,
        access: Access::Operator,
        summary: "Every tenant: usage beside quotas, exports, batches and change hooks by state, its own plugins and its newest failures.",
        params: &[],
        body: Empty,
        answers: &[answer(
            "200",
            "The tenants, in the configuration's order.",
            List(Typed::of::<TenantListing>()),
        )],
    },
    Route {
        method: Method::POST,
        path: "/v1/batch",
        dialect: Dialect::Batch,
        access: Access::Tenant,
        summary: "Queues a batch once every rule holds: one unfinished batch per tenant, operations the tenant may call, within maxLoadScore. An Idempotency-Key makes retries safe.",
        params: &[Param::header(
            "Idempotency-Key",
            "Repeating a request with the same key and body answers the batch it queued.",
        )],
        body: Json(Typed::of::<BatchRequest>()),
        answers: &[
            answer("201", "Queued.", Json(Typed::of::<Queued>())),
            answer("400", "The body is not JSON.", Error),
            answer("409", "Another batch has not finished.", Error),
            TOO_LARGE,
            answer(
                "422",
                "A rule does not hold; `code` and `message` say which.",
                Error,
            ),
        ],
    },
    Route {
        method: Method::GET,
        path: "/v1/batch/limits",
        dialect: Dialect::Batch,
        access: Access::Tenant,
        summary: "Every endpoint the caller's batches may call, with its load score, and maxLoadScore.",
        params: &[],
        body: Empty,
        answers: &[answer(
            "200",
            "The limits.",
            Json(Typed::of::<LimitsAnswer>()),
        )],
    },
    Route {
        method: Method::GET,
        path: "/v1/batch/{uuid}",
        dialect: Dialect::Batch,
        access: Access::Tenant,
        summary: "A batch's progress; kept 1 hour after it finished (then 404 STATUS_EXPIRED).",
        params: &[BATCH_ID],
        body: Empty,
        answers: &[
            answer("200", "The batch.", Json(Typed::of::<BatchState>())),
            answer("404", "No such batch, or its status expired.", Error),
        ],
    },
    Route {
        method: Method::GET,
        path: "/v1/batch/{uuid}/jsonl",
        dialect: Dialect::Batch,
        access: Access::Tenant,
        summary: "Every operation's response of a finished batch, one JSON line each; kept 24 hours; resumable with Range.",
        params: &[BATCH_ID],
        body: Empty,
        answers: RESULT_LINES,
    },
    Route {
        method: Method::GET,
        path: "/v1/batch/{uuid}/file",
        dialect: Dialect::Batch,
        access: Access::Tenant,
        summary: "The same JSON lines, under the name LogiCommerce gives them once the status has expired.",
        params: &[BATCH_ID],
        body: Empty,
        answers: RESULT_LINES,
    },
    Route {
        method: Method::GET,
        path: "/v1/batch/{uuid}/gz",
        dialect: Dialect::Batch,
        access: Access::Tenant,
        summary: "The JSON lines, gzip-compressed; resumable with Range.",
        params: &[BATCH_ID],
        body: Empty,
        answers: &[
            answer("200", "The responses.", Media(GZIP)),
            answer("206", "The byte range asked for.", Media(GZIP)),
            answer("404", "No such batch.", Error),
            answer("409", "The batch has not finished.", Error),
            UNSATISFIABLE,
        ],
    },
    Route {
        method: Method::POST,
        path: "/v1/batch/{uuid}/retry",
        dialect: Dialect::Batch,
        access: Access::Tenant,
        summary: "Queues the operations of a finished batch that did not succeed as a new batch with the same webhook.",
        params: &[BATCH_ID],
        body: Empty,
        answers: &[
            answer("201", "Queued.", Json(Typed::of::<Queued>())),
            answer("404", "No such batch.", Error),
            answer(
                "409",
                "The batch has not finished, or another has not.",
                Error,
            ),
            answer("422", "Nothing failed, or a rule no longer holds.", Error),
        ],
    },
    Route {
        method: Method::GET,
        path: "/healthz",
        dialect: Dialect::Service,
        access: Access::Open,
        summary: "200 when the database answers.",
        params: &[],
        body: Empty,
        answers: &[
            answer("200", "Serving.", Json(Typed::of::<Health>())),
            answer(
                "503",
                "The database does not answer.",
                Json(Typed::of::<Health>()),
            ),
        ],
    },
    Route {
        method: Method::GET,
        path: "/metrics",
        dialect: Dialect::Service,
        access: Access::Open,
        summary: "Metrics in the OpenMetrics text format.",
        params: &[],
        body: Empty,
        answers: &[answer(
            "200",
            "The metrics.",
            Media(&["application/openmetrics-text"]),
        )],
    },
    Route {
        method: Method::GET,
        path: "/openapi.json",
        dialect: Dialect::Service,
        access: Access::Open,
        summary: "This document; with a tenant's credentials, it also describes the tenant's own data sets and endpoints.",
        params: &[],
        body: Empty,
        answers: &[answer("200", "The document.", Media(&["application/json"]))],
    },
    Route {
        method: Method::GET,
        path: crate::contract::PACKAGE_PATH,
        dialect: Dialect::Service,
        access: Access::Open,
        summary: "The plugin contract as a binary WIT package, at its path in wkg's local registry layout.",
        params: &[Param::header(
            "If-None-Match",
            "The `ETag` of a copy the client holds: `304` when it is this one.",
        )],
        body: Empty,
        answers: &[
            answer("200", "The package.", Media(&["application/wasm"])),
            answer("304", "The client's copy is this one.", Empty),
        ],
    },
    Route {
        method: Method::GET,
        path: "/docs/",
        dialect: Dialect::Service,
        access: Access::Open,
        summary: "This document as a reference page to read and try (`/docs` leads there).",
        params: &[],
        body: Empty,
        answers: &[answer("200", "The page.", Media(&["text/html"]))],
    },
];
