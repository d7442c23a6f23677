import pytest
from starlette.testclient import TestClient

from esb_api import create_app

DESCRIPTOR = {
    "name": "resize-image",
    "runtime": "python3.11",
    "handler": "images.resize:handle",
    "memory_mb": 256,
    "environment": {"BUCKET": "thumbnails"},
}


@pytest.fixture
def client() -> TestClient:
    return TestClient(create_app())


def test_healthz_reports_ok(client: TestClient) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"status": "ok"}


def test_registered_function_can_be_fetched_with_defaults_filled_in(
    client: TestClient,
) -> None:
    created = client.post("/functions", json=DESCRIPTOR)
    fetched = client.get("/functions/resize-image")

    assert created.status_code == 201
    assert created.headers["location"] == "/functions/resize-image"
    assert fetched.status_code == 200
    assert fetched.json() == {**DESCRIPTOR, "timeout_s": 30}


def test_registering_a_name_twice_conflicts(client: TestClient) -> None:
    client.post("/functions", json=DESCRIPTOR)

    response = client.post("/functions", json={**DESCRIPTOR, "memory_mb": 512})

    assert response.status_code == 409
    assert client.get("/functions/resize-image").json()["memory_mb"] == 256


def test_list_is_sorted_by_name(client: TestClient) -> None:
    for name in ("zeta", "alpha", "mid"):
        client.post("/functions", json={**DESCRIPTOR, "name": name})

    response = client.get("/functions")

    assert response.status_code == 200
    assert [function["name"] for function in response.json()["functions"]] == [
        "alpha",
        "mid",
        "zeta",
    ]


def test_unknown_function_is_not_found(client: TestClient) -> None:
    assert client.get("/functions/missing").status_code == 404
    assert client.delete("/functions/missing").status_code == 404


def test_deleted_function_is_gone(client: TestClient) -> None:
    client.post("/functions", json=DESCRIPTOR)

    response = client.delete("/functions/resize-image")

    assert response.status_code == 204
    assert client.get("/functions/resize-image").status_code == 404


@pytest.mark.parametrize(
    ("change", "field", "error_type"),
    [
        ({"name": "Not_A_Label"}, "name", "string_pattern_mismatch"),
        ({"runtime": "node20"}, "runtime", "literal_error"),
        ({"handler": "no-colon"}, "handler", "string_pattern_mismatch"),
        ({"memory_mb": 64}, "memory_mb", "greater_than_equal"),
        ({"timeout_s": 0}, "timeout_s", "greater_than_equal"),
        ({"image": "busybox"}, "image", "extra_forbidden"),
    ],
)
def test_invalid_descriptor_is_rejected_with_the_failing_field(
    client: TestClient, change: dict, field: str, error_type: str
) -> None:
    response = client.post("/functions", json={**DESCRIPTOR, **change})

    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == [field]
    assert error["type"] == error_type
    assert client.get("/functions").json() == {"functions": []}


def test_missing_fields_are_all_reported(client: TestClient) -> None:
    response = client.post("/functions", json={"name": "only-a-name"})

    assert response.status_code == 422
    assert {tuple(error["loc"]) for error in response.json()["detail"]} == {
        ("runtime",),
        ("handler",),
    }


def test_validation_errors_do_not_echo_the_input(client: TestClient) -> None:
    response = client.post(
        "/functions", json={**DESCRIPTOR, "environment": {"TOKEN": 12345}}
    )

    assert response.status_code == 422
    assert "12345" not in response.text


def test_malformed_json_is_rejected(client: TestClient) -> None:
    response = client.post(
        "/functions", content=b"{not json", headers={"content-type": "application/json"}
    )

    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"
