"""`/healthz` reports each store, and answers 503 when one is down."""

from __future__ import annotations

from fastapi.testclient import TestClient

from halton_api.app import create_app
from halton_warehouse import WarehouseSettings


def test_healthy_when_both_stores_answer(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    assert body["postgres"]["status"] == "ok"
    assert body["warehouse"]["status"] == "ok"
    assert body["postgres"]["latency_ms"] >= 0


def test_503_naming_the_warehouse_when_it_is_down(settings) -> None:
    # Nothing listens on port 9 (discard) on the loopback interface.
    down = settings.model_copy(update={"warehouse": WarehouseSettings(clickhouse_url="http://127.0.0.1:9/")})
    with TestClient(create_app(down)) as client:
        response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert body["postgres"]["status"] == "ok"
    assert body["warehouse"]["status"] == "down"
    assert body["warehouse"]["error"]


def test_503_naming_postgres_when_it_is_down(client: TestClient, postgres_url: str) -> None:
    import psycopg
    from psycopg import sql

    name = postgres_url.split("?")[0].rsplit("/", 1)[1]
    server = postgres_url.replace(f"/{name}", "/postgres")
    with psycopg.connect(server, autocommit=True) as conn:
        # Take the database away from under the running app.
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["postgres"]["status"] == "down"
    assert body["warehouse"]["status"] == "ok"


def test_openapi_describes_the_batch_body(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/v1/requests/batch"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/RequestBatch"}
    assert "RequestRow" in schema["components"]["schemas"]


def test_a_nul_character_in_the_address_is_a_422(client) -> None:
    for path in ("/v1/x/audit?q=a%00b", "/healthz?x=%00"):
        response = client.get(path)
        assert response.status_code == 422 and "NUL" in response.json()["detail"], path
