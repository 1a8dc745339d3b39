"""`shops_by_city`: a bulkhost data set plugin written in Python (componentize-py).

Reads the tenant's `shops` collection through `documents`, keeps the shops whose address
ends with the requested city, and streams them to the `sink` in batches. The host does not
check parameters against the specs itself (the Rust SDK does it in the guest), so
`validate`/`generate` here check kinds and allowed values and fill in defaults.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.generator import GenerateError_Failed, GenerateError_InvalidParams
from wit_world.imports import documents, log, sink
from wit_world.imports.types import (
    DatasetInfo,
    FieldKind,
    FieldSpec,
    Param,
    ParamError,
    ParamKind,
    ParamSpec,
)

DATASET = "shops_by_city"
PAGE = 500  # documents per `scan` call (the host caps it at 1000)
BATCH_RECORDS = 512  # records per `sink.emit`...
BATCH_BYTES = 256 * 1024  # ...or this many bytes, whichever comes first

PARAMS = [
    ParamSpec(
        name="city",
        description="Only shops whose address ends with this city (case-insensitive); "
        "all shops when absent.",
        kind=ParamKind.STRING,
        required=False,
        default_value=None,
        allowed_values=[],
    ),
    ParamSpec(
        name="detail",
        description="`full`: every field of the shop; `compact`: shop_id, name and city.",
        kind=ParamKind.STRING,
        required=False,
        default_value="full",
        allowed_values=["full", "compact"],
    ),
    ParamSpec(
        name="limit",
        description="At most this many shops (0 = no limit).",
        kind=ParamKind.INTEGER,
        required=False,
        default_value="0",
        allowed_values=[],
    ),
]

FIELDS = [
    FieldSpec("shop_id", FieldKind.STRING, "The shop's key."),
    FieldSpec("name", FieldKind.STRING, "The shop's name."),
    FieldSpec("city", FieldKind.STRING, "The last comma-separated part of the address."),
    FieldSpec("address", FieldKind.STRING, "The full address (detail=full only)."),
    FieldSpec("open_date", FieldKind.DATETIME, "When the shop opened (detail=full only)."),
    FieldSpec("id", FieldKind.INTEGER, "The document id (detail=full only)."),
    FieldSpec("version", FieldKind.INTEGER, "The document's version (detail=full only)."),
]


def _kind_ok(kind: ParamKind, value: str) -> bool:
    v = value.strip()
    try:
        if kind == ParamKind.INTEGER:
            int(v)
        elif kind == ParamKind.DECIMAL:
            float(v)
        elif kind == ParamKind.BOOLEAN:
            return v.lower() in ("true", "false", "1", "0")
    except ValueError:
        return False
    return True


def _resolve(dataset: str, given: list[Param]) -> tuple[dict[str, str], list[ParamError]]:
    """Checks `given` against the specs, fills in defaults, applies extra rules."""
    if dataset != DATASET:
        return {}, [ParamError("", f"unknown data set `{dataset}`")]
    errors = []
    known = {s.name for s in PARAMS}
    for p in given:
        if p.name not in known:
            errors.append(ParamError(p.name, "unknown parameter"))
    values: dict[str, str] = {}
    given_by_name = {p.name: p.value for p in given}
    for spec in PARAMS:
        value = given_by_name.get(spec.name, spec.default_value)
        if value is None:
            if spec.required:
                errors.append(ParamError(spec.name, "is required"))
            continue
        if not _kind_ok(spec.kind, value):
            errors.append(ParamError(spec.name, f"`{value}` is not a valid {spec.kind.name.lower()}"))
        elif spec.allowed_values and value not in spec.allowed_values:
            errors.append(ParamError(spec.name, "must be one of " + ", ".join(spec.allowed_values)))
        values[spec.name] = value
    if not errors:
        if len(values.get("city", "")) > 100:
            errors.append(ParamError("city", "at most 100 characters"))
        if int(values["limit"]) < 0:
            errors.append(ParamError("limit", "must be 0 or more"))
    return values, errors


def _city_of(address: str) -> str:
    return address.rsplit(",", 1)[-1].strip() if address else ""


class _Output:
    """Batches records for `sink.emit`, like the Rust SDK's `Output`."""

    def __init__(self) -> None:
        self.batch: list[str] = []
        self.bytes = 0
        self.count = 0

    def push(self, record: dict) -> None:
        text = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
        self.batch.append(text)
        self.bytes += len(text)
        self.count += 1
        if len(self.batch) >= BATCH_RECORDS or self.bytes >= BATCH_BYTES:
            self.flush()

    def flush(self) -> None:
        if not self.batch:
            return
        batch, self.batch, self.bytes = self.batch, [], 0
        try:
            sink.emit(batch)
        except Err as e:  # e.value is a sink.Error_* dataclass
            err = e.value
            if isinstance(err, sink.Error_OutputLimit):
                why = f"output limit of {err.value} bytes reached"
            elif isinstance(err, sink.Error_Cancelled):
                why = "cancelled"
            else:
                why = f"invalid record: {err.value}"
            raise Err(GenerateError_Failed(why))


def _all_documents(collection: str):
    """Every document of `collection` in key order, a page at a time."""
    cursor = None
    while True:
        try:
            page = documents.scan(collection, cursor, PAGE)
        except Err as e:
            raise Err(GenerateError_Failed(f"reading {collection}: {e.value!r}"))
        yield from page.documents
        if page.next is None:
            return
        cursor = page.next


class Generator(exports.Generator):
    def describe(self) -> list[DatasetInfo]:
        return [
            DatasetInfo(
                name=DATASET,
                description="The tenant's shops, optionally only those in one city "
                "(a Python plugin built with componentize-py).",
                params=PARAMS,
                fields=FIELDS,
            )
        ]

    def validate(self, dataset: str, params: list[Param]) -> list[ParamError]:
        return _resolve(dataset, params)[1]

    def generate(self, dataset: str, params: list[Param]) -> None:
        values, errors = _resolve(dataset, params)
        if errors:
            raise Err(GenerateError_InvalidParams(errors))
        city = values.get("city")
        wanted = city.strip().casefold() if city else None
        compact = values["detail"] == "compact"
        limit = int(values["limit"])
        log.log(log.Level.INFO, f"shops_by_city: city={city!r} detail={values['detail']} limit={limit}")

        out = _Output()
        scanned = 0
        for doc in _all_documents("shops"):
            scanned += 1
            try:
                shop = json.loads(doc.body)
            except ValueError as e:
                raise Err(GenerateError_Failed(f"document {doc.id} is not JSON: {e}"))
            shop_city = _city_of(shop.get("address") or "")
            if wanted is not None and shop_city.casefold() != wanted:
                continue
            if compact:
                record = {"shop_id": shop.get("shop_id"), "name": shop.get("name"), "city": shop_city}
            else:
                record = dict(shop, city=shop_city, id=doc.id, version=doc.version)
            out.push(record)
            if limit and out.count >= limit:
                break
        out.flush()
        if out.count == 0:
            log.log(log.Level.WARN, f"shops_by_city: no shop matched city={city!r} ({scanned} scanned)")
        else:
            log.log(log.Level.INFO, f"shops_by_city: {out.count} of {scanned} shops emitted")
