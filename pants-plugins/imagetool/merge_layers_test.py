from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from esb_contract import commands, flags
from imagetool.cli import main
from imagetool.merge_layers import merged_members
from imagetool.tarlayer import LayerError, LayerMember, read_layer_members, write_layer
from imagetool.tarlayer_test import regular, special

SITE = ".venv/lib/python3.11/site-packages"


def metadata(name: str, version: str) -> LayerMember:
    return regular(
        f"{SITE}/{name}-{version}.dist-info/METADATA",
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\n".encode(),
    )


def layer(path: Path, *members: LayerMember) -> Path:
    write_layer(members, path, mtime=0)
    return path


def contents(members: list[LayerMember]) -> dict[str, tuple[bytes, bytes | None]]:
    return {info.name: (info.type, data) for info, data in members}


def test_merged_layers_hold_every_files_and_the_upper_ones_entry_of_a_shared_path(
    tmp_path: Path,
) -> None:
    lower = layer(
        tmp_path / "lower.tar.gz",
        metadata("idna", "3.7"),
        regular(f"{SITE}/idna/__init__.py", b"idna\n"),
        regular(f"{SITE}/shared.pth", b"lower\n"),
    )
    upper = layer(
        tmp_path / "upper.tar.gz",
        metadata("sniffio", "1.3.1"),
        regular(f"{SITE}/sniffio/__init__.py", b"sniffio\n"),
        regular(f"{SITE}/shared.pth", b"upper\n"),
    )

    merged = contents(merged_members([lower, upper]))

    assert merged[f"{SITE}/idna/__init__.py"] == (tarfile.REGTYPE, b"idna\n")
    assert merged[f"{SITE}/sniffio/__init__.py"] == (tarfile.REGTYPE, b"sniffio\n")
    assert merged[f"{SITE}/shared.pth"] == (tarfile.REGTYPE, b"upper\n")
    assert merged[SITE][0] == tarfile.DIRTYPE


def test_a_merged_layer_is_the_layer_its_files_would_make_written_at_once(tmp_path: Path) -> None:
    files = [
        metadata("idna", "3.7"),
        regular(f"{SITE}/idna/__init__.py", b"idna\n"),
        metadata("sniffio", "1.3.1"),
        special(".venv/bin/python", tarfile.SYMTYPE, linkname="/usr/bin/python3.11", mode=0o777),
    ]
    parts = [layer(tmp_path / f"{i}.tar.gz", member) for i, member in enumerate(files)]

    merged = write_layer(merged_members(parts), tmp_path / "merged.tar.gz", mtime=0)

    assert merged == write_layer(files, tmp_path / "whole.tar.gz", mtime=0)
    assert merged == write_layer(merged_members(parts[::-1]), tmp_path / "again.tar.gz", mtime=0)


def test_a_hard_link_keeps_its_own_layers_data_when_an_upper_layer_replaces_its_target(
    tmp_path: Path,
) -> None:
    lower = layer(
        tmp_path / "lower.tar.gz",
        regular("opt/tool", b"lower tool\n", mode=0o755),
        special("opt/alias", tarfile.LNKTYPE, linkname="opt/tool"),
    )
    upper = layer(tmp_path / "upper.tar.gz", regular("opt/tool", b"upper tool\n", mode=0o755))

    merged = contents(merged_members([lower, upper]))

    assert merged["opt/tool"] == (tarfile.REGTYPE, b"upper tool\n")
    assert merged["opt/alias"] == (tarfile.REGTYPE, b"lower tool\n")


def test_a_file_in_place_of_a_lower_layers_directory_replaces_all_it_held(tmp_path: Path) -> None:
    lower = layer(tmp_path / "lower.tar.gz", regular("opt/pkg/module.py", b"x\n"))
    upper = layer(tmp_path / "upper.tar.gz", special("opt/pkg", tarfile.SYMTYPE, linkname="other"))

    assert contents(merged_members([lower, upper])) == {
        "opt": (tarfile.DIRTYPE, None),
        "opt/pkg": (tarfile.SYMTYPE, None),
    }


def test_a_layer_with_a_whiteout_is_refused_with_its_blob_and_entry(tmp_path: Path) -> None:
    lower = layer(tmp_path / "lower.tar.gz", regular("opt/old", b"x\n"))
    deleting = layer(tmp_path / "deleting.tar.gz", regular("opt/.wh.old", b""))

    with pytest.raises(LayerError) as raised:
        merged_members([lower, deleting])

    assert str(raised.value) == (
        f"The layer {deleting} holds the whiteout 'opt/.wh.old': a layer that deletes files of "
        "the layers below cannot be merged; keep it apart."
    )


def test_an_unreadable_layer_is_named(tmp_path: Path) -> None:
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(b"not gzip")

    with pytest.raises(LayerError, match=f"^Cannot read the layer {broken}: "):
        merged_members([broken])


def test_the_command_writes_the_merged_layer_with_every_parts_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    layer(tmp_path / "a.tar.gz", metadata("idna", "3.7"))
    layer(tmp_path / "b.tar.gz", metadata("sniffio", "1.3.1"))

    status = main(
        [
            commands.MERGE_LAYERS,
            *(flags.LAYER, "a.tar.gz", flags.LAYER, "b.tar.gz"),
            *(flags.OUT_BLOB, "layer.tar.gz", flags.OUT_DESCRIPTOR, "layer.json"),
            *(flags.OUT_INVENTORY, "layer.inventory.json"),
        ]
    )

    assert status == 0
    records = json.loads((tmp_path / "layer.inventory.json").read_text())["records"]
    assert sorted(entry["name"] for entries in records.values() for entry in entries) == [
        "idna",
        "sniffio",
    ]
    descriptor = json.loads((tmp_path / "layer.json").read_text())
    assert descriptor["size"] == (tmp_path / "layer.tar.gz").stat().st_size
    with read_layer_members(tmp_path / "layer.tar.gz") as members:
        assert {info.mtime for info, _ in members} == {1700000000}
