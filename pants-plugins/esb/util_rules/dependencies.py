"""A service image depends on its base image target, so `dependents` and `--changed-dependents`
see every image that a change to the base reaches."""

from __future__ import annotations

from dataclasses import dataclass

from pants.engine.addresses import Address, AddressInput
from pants.engine.rules import Get, collect_rules, rule
from pants.engine.target import (
    FieldSet,
    InferDependenciesRequest,
    InferredDependencies,
    InvalidFieldException,
    WrappedTarget,
    WrappedTargetRequest,
)
from pants.engine.unions import UnionRule

from esb.target_types import EsbBaseImageTarget, EsbServiceBaseField, EsbServiceImageTarget


@dataclass(frozen=True)
class ServiceBaseFieldSet(FieldSet):
    required_fields = (EsbServiceBaseField,)

    base: EsbServiceBaseField


class InferServiceBaseDependency(InferDependenciesRequest):
    infer_from = ServiceBaseFieldSet


@dataclass(frozen=True)
class ResolvedBaseAddress:
    address: Address


@rule
async def resolve_base_address(field: EsbServiceBaseField) -> ResolvedBaseAddress:
    origin = (
        f"the `{field.alias}` field of the `{EsbServiceImageTarget.alias}` target {field.address}"
    )
    address = await Get(
        Address,
        AddressInput,
        AddressInput.parse(
            field.value, relative_to=field.address.spec_path, description_of_origin=origin
        ),
    )
    wrapped = await Get(WrappedTarget, WrappedTargetRequest(address, description_of_origin=origin))
    if not isinstance(wrapped.target, EsbBaseImageTarget):
        what = (
            "this target itself"
            if address == field.address
            else f"a `{wrapped.target.alias}` target"
        )
        raise InvalidFieldException(
            f"The `{field.alias}` field of the target {field.address} is {field.value!r}, which "
            f"is {what}, not an `{EsbBaseImageTarget.alias}`.\n\n"
            f"Fix: point `{field.alias}` at an `{EsbBaseImageTarget.alias}` target, e.g. "
            '`base="//base:esb-service-base"`.'
        )
    return ResolvedBaseAddress(address)


@rule
async def infer_service_base_dependency(
    request: InferServiceBaseDependency,
) -> InferredDependencies:
    resolved = await Get(ResolvedBaseAddress, EsbServiceBaseField, request.field_set.base)
    return InferredDependencies([resolved.address])


def rules():
    return [
        *collect_rules(),
        UnionRule(InferDependenciesRequest, InferServiceBaseDependency),
    ]
