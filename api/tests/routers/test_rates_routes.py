"""`GET /v1/rates`: the packaged catalogue until one is stored, then the newest stored; ETag and 304."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from importlib import resources

import pytest
from fastapi.testclient import TestClient

from halton_api.app import create_app
from halton_api.cloud_settings import CloudSettings
from halton_meter.catalogue.etag import catalogue_etag
from halton_warehouse import connect
from halton_warehouse.price_catalogues import store_catalogue


def packaged() -> dict:
    return json.loads(resources.files("halton_meter.catalogue").joinpath("rates.json").read_text())


@pytest.fixture
def rates_client(settings: CloudSettings):
    with TestClient(create_app(settings.model_copy(update={"rates_cache_seconds": 0}))) as client:
        yield client


def test_the_packaged_catalogue_until_one_is_stored_then_the_newest(
    rates_client, settings, warehouse
) -> None:
    first = rates_client.get("/v1/rates")
    assert first.status_code == 200
    shipped = packaged()
    assert first.json() == shipped
    assert first.headers["etag"] == catalogue_etag(shipped["version"])
    assert first.headers["x-halton-catalogue-version"] == shipped["version"]

    # The meter asks again with what it holds: nothing to send.
    again = rates_client.get("/v1/rates", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == first.headers["etag"]

    client = connect(warehouse.url)
    now = datetime.now(UTC)
    for version, age in (("2027-01-02+bbbbbbbbbbbb", 0), ("2027-01-01+aaaaaaaaaaaa", 1)):
        document = copy.deepcopy(shipped)
        document["version"] = version
        store_catalogue(
            client,
            warehouse.databases,
            version=version,
            document=json.dumps(document),
            source="test",
            fetched_at=now - timedelta(days=age),
            changes="",
        )
    newest = rates_client.get("/v1/rates", headers={"If-None-Match": first.headers["etag"]})
    assert newest.status_code == 200
    assert newest.json()["version"] == "2027-01-02+bbbbbbbbbbbb"
    assert newest.headers["etag"] == catalogue_etag("2027-01-02+bbbbbbbbbbbb")
    listed = f'W/"nope", {newest.headers["etag"]}'
    assert rates_client.get("/v1/rates", headers={"If-None-Match": listed}).status_code == 304


def test_an_invalid_stored_catalogue_is_not_served(rates_client, warehouse) -> None:
    broken = packaged()
    broken["version"] = "2099-01-01+broken"
    broken["models"][0]["prices"][0]["rates"]["input"] = -1
    store_catalogue(
        connect(warehouse.url),
        warehouse.databases,
        version=broken["version"],
        document=json.dumps(broken),
        source="hand-written",
        fetched_at=datetime.now(UTC),
        changes="",
    )
    answer = rates_client.get("/v1/rates")
    assert answer.status_code == 200 and answer.json()["version"] == packaged()["version"]
