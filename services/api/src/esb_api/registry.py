"""In-memory registry of function descriptors."""

from esb_api.models import FunctionDescriptor


class FunctionAlreadyRegistered(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(f"function {name!r} is already registered")
        self.name = name


class FunctionRegistry:
    """Function descriptors by name.

    Not thread-safe: the API's handlers are coroutines on one event loop and never
    await between reading and writing the registry.
    """

    def __init__(self) -> None:
        self._functions: dict[str, FunctionDescriptor] = {}

    def register(self, descriptor: FunctionDescriptor) -> None:
        if descriptor.name in self._functions:
            raise FunctionAlreadyRegistered(descriptor.name)
        self._functions[descriptor.name] = descriptor

    def get(self, name: str) -> FunctionDescriptor | None:
        return self._functions.get(name)

    def remove(self, name: str) -> bool:
        return self._functions.pop(name, None) is not None

    def all(self) -> list[FunctionDescriptor]:
        return sorted(self._functions.values(), key=lambda descriptor: descriptor.name)
