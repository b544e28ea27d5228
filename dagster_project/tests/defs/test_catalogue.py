"""The price catalogue asset: stores a new version with what it changed, skips a known one, refuses an
invalid one naming the entry (nothing stored); the catalogue in force is the newest stored."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from halton_meter.catalogue import load_catalogue
from halton_meter.testing.catalogues import edited_catalogue
from halton_pipelines.catalogue_source import catalogue_in_force
from halton_pipelines.defs.catalogue import price_catalogue
from halton_pipelines.resources import CatalogueSourceResource, WarehouseResource

NODE = "price_card__price_catalogue"


def resources(stores, location: str) -> dict:
    return {
        "warehouse": WarehouseResource(clickhouse_url=stores.warehouse_url, database_prefix=stores.prefix),
        "price_source": CatalogueSourceResource(location=location),
    }


def stored_versions(stores) -> list[str]:
    rows = stores.client().query(
        f"SELECT version FROM {stores.databases.raw}.price_catalogues FINAL ORDER BY fetched_at"
    )
    return [version for (version,) in rows.result_rows]


def test_refresh_stores_new_versions_with_their_changes_and_refuses_a_bad_one(stores, tmp_path) -> None:
    client = stores.client()
    packaged = load_catalogue().version
    assert catalogue_in_force(client, stores.databases).version == packaged  # nothing stored yet

    # The packaged catalogue (no source configured) is stored first: nothing changed against itself.
    first = dg.materialize([price_catalogue], resources=resources(stores, ""))
    [event] = first.asset_materializations_for_node(NODE)
    assert event.metadata["stored"].value is True and event.metadata["values_changed"].value == 0
    assert stored_versions(stores) == [packaged]

    new = edited_catalogue(
        "2027-01-05+0123456789ab",
        new_models=[("openai", "gpt-mystery-9", "1", "2")],
        dated_prices=[("openai", "gpt-4o", "2027-01-01", "5", "20")],
    )
    path = tmp_path / "rates.json"
    path.write_text(json.dumps(new))
    second = dg.materialize([price_catalogue], resources=resources(stores, str(path)))
    [event] = second.asset_materializations_for_node(NODE)
    assert event.metadata["version"].value == "2027-01-05+0123456789ab"
    assert event.metadata["previous_version"].value == packaged
    assert event.metadata["models_added"].value == 1
    changes = event.metadata["changes"].value
    assert "+ openai/gpt-mystery-9" in changes
    assert "~ openai/gpt-4o prices[2027-01-01].rates.input: (none) -> 5, from 2027-01-01" in changes
    in_force = catalogue_in_force(client, stores.databases)
    assert in_force.version == "2027-01-05+0123456789ab" and in_force.find("openai", "gpt-mystery-9")
    (stored_changes,) = client.query(
        f"SELECT changes FROM {stores.databases.raw}.price_catalogues WHERE version = '2027-01-05+0123456789ab'"
    ).result_rows[0]
    assert "+ openai/gpt-mystery-9" in stored_changes

    # The same version again: nothing stored.
    third = dg.materialize([price_catalogue], resources=resources(stores, str(path)))
    [event] = third.asset_materializations_for_node(NODE)
    assert event.metadata["stored"].value is False

    # Invalid: the run fails naming the entry, nothing is stored, the one in force stays.
    broken = edited_catalogue("2027-02-01+broken", base=new)
    broken["models"][0]["prices"][0]["rates"]["input"] = "-1"
    path.write_text(json.dumps(broken))
    with pytest.raises(dg.Failure) as failure:
        dg.materialize([price_catalogue], resources=resources(stores, str(path)))
    assert "models[0] openai/gpt-mystery-9: prices[0].rates.input" in failure.value.description
    assert "Nothing was stored" in failure.value.description
    assert stored_versions(stores) == [packaged, "2027-01-05+0123456789ab"]
    assert catalogue_in_force(client, stores.databases).version == "2027-01-05+0123456789ab"


def test_a_source_that_cannot_be_read_fails_the_run(stores, tmp_path) -> None:
    with pytest.raises(dg.Failure) as failure:
        dg.materialize([price_catalogue], resources=resources(stores, str(tmp_path / "missing.json")))
    assert "cannot read" in failure.value.description and "missing.json" in failure.value.description


def test_the_source_can_be_a_url(stores) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    body = json.dumps(edited_catalogue("2027-03-01+fromaurl0000")).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/rates.json"
        result = dg.materialize([price_catalogue], resources=resources(stores, url))
    finally:
        server.shutdown()
        server.server_close()
    [event] = result.asset_materializations_for_node(NODE)
    assert event.metadata["source"].value == url and event.metadata["stored"].value is True
    assert catalogue_in_force(stores.client(), stores.databases).version == "2027-03-01+fromaurl0000"
