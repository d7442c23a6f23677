"""Request and response models of the API."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class FunctionDescriptor(BaseModel):
    """A deployable function: what to run, with which runtime and limits."""

    model_config = ConfigDict(extra="forbid")

    # DNS-label shaped, so a name can also serve as a host name or a container name.
    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,62}$")
    runtime: Literal["python3.11", "python3.12"]
    handler: str = Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$",
        description="Entry point as 'package.module:function'.",
    )
    memory_mb: int = Field(default=128, ge=128, le=10240)
    timeout_s: int = Field(default=30, ge=1, le=900)
    environment: dict[str, str] = Field(default_factory=dict)
