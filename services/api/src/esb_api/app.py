"""The Starlette application: routes and their handlers."""

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from esb_api.models import FunctionDescriptor
from esb_api.registry import FunctionAlreadyRegistered, FunctionRegistry


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def list_functions(request: Request) -> JSONResponse:
    registry: FunctionRegistry = request.app.state.registry
    return JSONResponse(
        {
            "functions": [
                descriptor.model_dump(mode="json") for descriptor in registry.all()
            ]
        }
    )


async def register_function(request: Request) -> JSONResponse:
    registry: FunctionRegistry = request.app.state.registry
    try:
        descriptor = FunctionDescriptor.model_validate_json(await request.body())
    except ValidationError as error:
        # Inputs are left out: a rejected descriptor's environment may hold secrets.
        details = error.errors(
            include_url=False, include_context=False, include_input=False
        )
        return JSONResponse({"detail": details}, status_code=422)
    try:
        registry.register(descriptor)
    except FunctionAlreadyRegistered as error:
        return JSONResponse({"detail": str(error)}, status_code=409)
    return JSONResponse(
        descriptor.model_dump(mode="json"),
        status_code=201,
        headers={"Location": f"/functions/{descriptor.name}"},
    )


async def get_function(request: Request) -> JSONResponse:
    registry: FunctionRegistry = request.app.state.registry
    name = request.path_params["name"]
    descriptor = registry.get(name)
    if descriptor is None:
        return JSONResponse(
            {"detail": f"function {name!r} is not registered"}, status_code=404
        )
    return JSONResponse(descriptor.model_dump(mode="json"))


async def delete_function(request: Request) -> Response:
    registry: FunctionRegistry = request.app.state.registry
    name = request.path_params["name"]
    if not registry.remove(name):
        return JSONResponse(
            {"detail": f"function {name!r} is not registered"}, status_code=404
        )
    return Response(status_code=204)


def create_app(registry: FunctionRegistry | None = None) -> Starlette:
    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/functions", list_functions, methods=["GET"]),
            Route("/functions", register_function, methods=["POST"]),
            Route("/functions/{name}", get_function, methods=["GET"]),
            Route("/functions/{name}", delete_function, methods=["DELETE"]),
        ]
    )
    app.state.registry = registry if registry is not None else FunctionRegistry()
    return app
