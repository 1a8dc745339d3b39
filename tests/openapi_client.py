"""A client generated from bulkhost's OpenAPI document (openapi-python-client), used as an
integrator would: list and page a collection, upsert into it, queue an export and follow it
to its end. Usage: openapi_client.py CLIENT_DIR BASE_URL USER PASSWORD."""

import sys
import time

sys.path.insert(0, sys.argv[1])

from bulkhost_client import AuthenticatedClient  # noqa: E402
from bulkhost_client.api.datawiz_collections import get_api_v1_shops, post_api_v1_shops  # noqa: E402
from bulkhost_client.api.winfra_xxl_bulk_export import (  # noqa: E402
    get_api_v1_estado_xxl_id,
    post_api_v1_generar_xxl,
)
from bulkhost_client.models import (  # noqa: E402
    Estado,
    PostApiV1GenerarXxlSyntheticRequest,
    PostApiV1GenerarXxlSyntheticRequestDataset,
    ShopsInput,
)

base, user, password = sys.argv[2:5]
client = AuthenticatedClient(base_url=base, token="", httpx_args={"auth": (user, password)})

first = get_api_v1_shops.sync(client=client, page_size=2)
assert first.count >= 3, first
assert len(first.results) == 2, first
assert first.next_ is not None and first.previous is None, first
second = get_api_v1_shops.sync(client=client, page_size=2, page="2")
assert second.previous is not None, second
assert {s.shop_id for s in first.results}.isdisjoint(s.shop_id for s in second.results)

written = post_api_v1_shops.sync_detailed(
    client=client, body=ShopsInput(shop_id="generated-client", name="Made by a generated client")
)
assert written.status_code == 201, written
assert written.parsed.inserted == 1 and written.parsed.updated == 0, written.parsed
found = get_api_v1_shops.sync(client=client, search="generated")
assert [s.shop_id for s in found.results] == ["generated-client"], found
assert found.results[0].url.endswith("/"), found.results[0]

queued = post_api_v1_generar_xxl.sync(
    client=client,
    body=[
        PostApiV1GenerarXxlSyntheticRequest(
            dataset=PostApiV1GenerarXxlSyntheticRequestDataset.SYNTHETIC, count=7
        )
    ],
)
assert queued.estado == Estado.PENDING, queued
deadline = time.monotonic() + 60
state = queued
while state.estado == Estado.PENDING and time.monotonic() < deadline:
    time.sleep(0.2)
    state = get_api_v1_estado_xxl_id.sync(queued.peticion_id, client=client)
assert state.estado == Estado.OK, state
assert state.datasets[0].numero_registros == 7, state
print("generated client: listed, paged, upserted and exported")
